// Package exampletest is the black-box suite that every framework example
// of sesh passes over real HTTP: a counter kept across requests and exact
// under parallel requests (exclusive mode), login that renews the ID and
// rotates the CSRF secret, logout, one-hop flash, and CSRF refusals. The
// examples share it so that each proves the same behaviour; each adds only
// the tests its framework calls for.
package exampletest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// RunFunc is an example's entry point: it serves until ctx is done.
type RunFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Start runs an example with run on a free loopback port, as `go run .`
// would, and returns its base URL. The server is shut down, and run must
// return nil, when the test ends.
func Start(t *testing.T, run RunFunc) string {
	t.Helper()
	t.Setenv("SESH_KEYS", "") // a development key, as on a first run
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, pw, t.Output())
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	// The URL is on the "listening on" line (a framework may print first).
	br := bufio.NewReader(pr)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the listening URL: %v", err) // the cleanup reports run's error
		}
		if u := regexp.MustCompile(`listening on (http://\S+)/`).FindStringSubmatch(line); u != nil {
			go io.Copy(io.Discard, br)
			return u[1]
		}
	}
}

// Client is a browser: it keeps cookies, and does not follow redirects so
// that the tests see every response.
type Client struct {
	t    *testing.T
	base string
	jar  *cookiejar.Jar
	hc   *http.Client
}

// HTTP returns the browser's HTTP client (its cookies, no redirects), for
// tests that need whole responses.
func (c *Client) HTTP() *http.Client { return c.hc }

// NewClient returns a browser for the application at base.
func NewClient(t *testing.T, base string) *Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &Client{t: t, base: base, jar: jar, hc: &http.Client{
		Jar:       jar,
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// Do sends req and returns the status and body. It reports errors with
// t.Errorf, so it may be called from any goroutine.
func (c *Client) Do(req *http.Request) (int, string) {
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Errorf("%s %s: %v", req.Method, req.URL.Path, err)
		return 0, ""
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Errorf("%s %s: reading the body: %v", req.Method, req.URL.Path, err)
	}
	return res.StatusCode, string(b)
}

// Get sends GET path.
func (c *Client) Get(path string) (int, string) {
	req, err := http.NewRequest("GET", c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.Do(req)
}

// Post submits a form as a browser would, with the Sec-Fetch-Site header
// set to site ("same-origin", "cross-site"; "" sends none).
func (c *Client) Post(path string, form url.Values, site string) int {
	req, err := http.NewRequest("POST", c.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Error(err)
		return 0
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if site != "" {
		req.Header.Set("Sec-Fetch-Site", site)
	}
	code, _ := c.Do(req)
	return code
}

var tokenField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// Page loads the home page, checks its status and returns its body.
func (c *Client) Page() string {
	c.t.Helper()
	code, body := c.Get("/")
	if code != http.StatusOK {
		c.t.Fatalf("GET /: status %d", code)
	}
	return body
}

// Token loads the home page and returns the CSRF token of its forms.
func (c *Client) Token() string {
	c.t.Helper()
	m := tokenField.FindStringSubmatch(c.Page())
	if m == nil {
		c.t.Fatal("GET /: no csrf_token field in the page")
	}
	return m[1]
}

// SessionID returns the session cookie the browser holds, or "".
func (c *Client) SessionID() string {
	u, _ := url.Parse(c.base)
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == "sesh" {
			return ck.Value
		}
	}
	return ""
}

// GetJSON decodes the JSON answer of GET path into v.
func (c *Client) GetJSON(path string, v any) {
	c.t.Helper()
	code, body := c.Get(path)
	if code != http.StatusOK {
		c.t.Fatalf("GET %s: status %d", path, code)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		c.t.Fatalf("GET %s: %v in %q", path, err, body)
	}
}

// Count returns the session's counter.
func (c *Client) Count() int {
	c.t.Helper()
	var v struct{ Count int }
	c.GetJSON("/counter", &v)
	return v.Count
}

// User returns the signed-in user, or "".
func (c *Client) User() string {
	c.t.Helper()
	var v struct{ User string }
	c.GetJSON("/whoami", &v)
	return v.User
}

// Login posts the login form with the CSRF token tok.
func (c *Client) Login(tok, user, password string) int {
	return c.Post("/login", url.Values{"csrf_token": {tok}, "user": {user}, "password": {password}}, "same-origin")
}

func testCounterIncrementsAcrossRequests(t *testing.T, startApp func(*testing.T) string) {
	c := NewClient(t, startApp(t))
	tok := c.Token()
	for i := 1; i <= 3; i++ {
		if code := c.Post("/counter", url.Values{"csrf_token": {tok}}, "same-origin"); code != http.StatusSeeOther {
			t.Fatalf("increment %d: status %d, want 303", i, code)
		}
		if n := c.Count(); n != i {
			t.Fatalf("after %d increments the counter is %d", i, n)
		}
	}
	if !strings.Contains(c.Page(), `<strong id="count">3</strong>`) {
		t.Error("the page does not show the count")
	}
}

func testExclusiveCounterParallel(t *testing.T, startApp func(*testing.T) string) {
	c := NewClient(t, startApp(t))
	tok := c.Token() // creates the session
	const n = 50
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if code := c.Post("/counter", url.Values{"csrf_token": {tok}}, "same-origin"); code != http.StatusSeeOther {
				t.Errorf("increment: status %d, want 303", code)
			}
		})
	}
	wg.Wait()
	if got := c.Count(); got != n {
		t.Fatalf("after %d parallel increments the counter is %d", n, got)
	}
}

func testLoginWhoamiLogout(t *testing.T, startApp func(*testing.T) string) {
	base := startApp(t)
	c := NewClient(t, base)
	tok := c.Token()
	before := c.SessionID()
	if before == "" {
		t.Fatal("no session cookie after the form was served")
	}
	if u := c.User(); u != "" {
		t.Fatalf("whoami before login: %q", u)
	}
	if code := c.Login(tok, "alice", "demo"); code != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", code)
	}
	after := c.SessionID()
	if after == "" || after == before {
		t.Fatal("login did not change the session ID")
	}
	if u := c.User(); u != "alice" {
		t.Fatalf("whoami after login: %q, want alice", u)
	}
	// The ID from before login is dead: it finds no user.
	old := NewClient(t, base)
	baseURL, _ := url.Parse(base)
	old.jar.SetCookies(baseURL, []*http.Cookie{{Name: "sesh", Value: before}})
	if got := old.User(); got != "" {
		t.Fatalf("the pre-login session ID still names user %q", got)
	}
	// Login rotated the CSRF secret: the token from before is refused.
	if code := c.Post("/logout", url.Values{"csrf_token": {tok}}, "same-origin"); code != http.StatusForbidden {
		t.Fatalf("logout with the pre-login token: status %d, want 403", code)
	}
	if code := c.Post("/logout", url.Values{"csrf_token": {c.Token()}}, "same-origin"); code != http.StatusSeeOther {
		t.Fatalf("logout: status %d, want 303", code)
	}
	if id := c.SessionID(); id != "" {
		t.Fatal("logout left the session cookie in the browser")
	}
	if u := c.User(); u != "" {
		t.Fatalf("whoami after logout: %q", u)
	}
	// The logged-out ID is dead too.
	old.jar.SetCookies(baseURL, []*http.Cookie{{Name: "sesh", Value: after}})
	if got := old.User(); got != "" {
		t.Fatalf("the logged-out session ID still names user %q", got)
	}
}

func testFlashShownOnce(t *testing.T, startApp func(*testing.T) string) {
	c := NewClient(t, startApp(t))
	if code := c.Login(c.Token(), "alice", "wrong"); code != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", code)
	}
	const msg = "Wrong user name or password."
	if !strings.Contains(c.Page(), msg) {
		t.Fatalf("the flash message %q is not shown", msg)
	}
	if strings.Contains(c.Page(), msg) {
		t.Fatalf("the flash message %q is shown twice", msg)
	}
	if code := c.Login(c.Token(), "alice", "demo"); code != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", code)
	}
	if body := c.Page(); !strings.Contains(body, "Welcome, alice.") || strings.Contains(body, msg) {
		t.Fatalf("after login the page shows the wrong flash messages:\n%s", body)
	}
	if strings.Contains(c.Page(), "Welcome, alice.") {
		t.Fatal("the welcome message is shown twice")
	}
}

func testCSRF(t *testing.T, startApp func(*testing.T) string) {
	c := NewClient(t, startApp(t))
	tok := c.Token()
	form := url.Values{"csrf_token": {tok}, "user": {"mallory"}, "password": {"demo"}}
	// A form on another site posting here: the browser says cross-site.
	if code := c.Post("/login", form, "cross-site"); code != http.StatusForbidden {
		t.Fatalf("cross-site login: status %d, want 403", code)
	}
	if code := c.Post("/counter", url.Values{"csrf_token": {tok}}, "cross-site"); code != http.StatusForbidden {
		t.Fatalf("cross-site increment: status %d, want 403", code)
	}
	// Same origin but without the token.
	if code := c.Post("/login", url.Values{"user": {"mallory"}, "password": {"demo"}}, "same-origin"); code != http.StatusForbidden {
		t.Fatalf("login without a token: status %d, want 403", code)
	}
	if u, n := c.User(), c.Count(); u != "" || n != 0 {
		t.Fatalf("refused requests changed the session: user %q, count %d", u, n)
	}
	// The application's own form.
	if code := c.Post("/login", form, "same-origin"); code != http.StatusSeeOther {
		t.Fatalf("same-origin login with the token: status %d, want 303", code)
	}
	if u := c.User(); u != "mallory" {
		t.Fatalf("whoami: %q", u)
	}
}

// Run runs the suite; start starts a fresh instance of the example for
// each test and returns its base URL.
func Run(t *testing.T, start func(t *testing.T) string) {
	t.Run("CounterIncrementsAcrossRequests", func(t *testing.T) { testCounterIncrementsAcrossRequests(t, start) })
	t.Run("ExclusiveCounterParallel", func(t *testing.T) { testExclusiveCounterParallel(t, start) })
	t.Run("LoginWhoamiLogout", func(t *testing.T) { testLoginWhoamiLogout(t, start) })
	t.Run("FlashShownOnce", func(t *testing.T) { testFlashShownOnce(t, start) })
	t.Run("CSRF", func(t *testing.T) { testCSRF(t, start) })
}
