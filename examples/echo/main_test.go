package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/seal"
)

// startApp runs the application with run on a free loopback port, as
// `go run .` would, and returns its base URL. The server is shut down,
// and run must return nil, when the test ends.
func startApp(t *testing.T) string {
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

// client is a browser: it keeps cookies, and does not follow redirects so
// that the tests see every response.
type client struct {
	t    *testing.T
	base string
	jar  *cookiejar.Jar
	hc   *http.Client
}

func newClient(t *testing.T, base string) *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, base: base, jar: jar, hc: &http.Client{
		Jar:       jar,
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// do sends req and returns the status and body. It reports errors with
// t.Errorf, so it may be called from any goroutine.
func (c *client) do(req *http.Request) (int, string) {
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

func (c *client) get(path string) (int, string) {
	req, err := http.NewRequest("GET", c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.do(req)
}

// post submits a form as a browser would, with the Sec-Fetch-Site header
// set to site ("same-origin", "cross-site"; "" sends none).
func (c *client) post(path string, form url.Values, site string) int {
	req, err := http.NewRequest("POST", c.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Error(err)
		return 0
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if site != "" {
		req.Header.Set("Sec-Fetch-Site", site)
	}
	code, _ := c.do(req)
	return code
}

var tokenField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// page loads the home page, checks its status and returns its body.
func (c *client) page() string {
	c.t.Helper()
	code, body := c.get("/")
	if code != http.StatusOK {
		c.t.Fatalf("GET /: status %d", code)
	}
	return body
}

// token loads the home page and returns the CSRF token of its forms.
func (c *client) token() string {
	c.t.Helper()
	m := tokenField.FindStringSubmatch(c.page())
	if m == nil {
		c.t.Fatal("GET /: no csrf_token field in the page")
	}
	return m[1]
}

// sessionID returns the session cookie the browser holds, or "".
func (c *client) sessionID() string {
	u, _ := url.Parse(c.base)
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == "sesh" {
			return ck.Value
		}
	}
	return ""
}

func (c *client) getJSON(path string, v any) {
	c.t.Helper()
	code, body := c.get(path)
	if code != http.StatusOK {
		c.t.Fatalf("GET %s: status %d", path, code)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		c.t.Fatalf("GET %s: %v in %q", path, err, body)
	}
}

func (c *client) count() int {
	c.t.Helper()
	var v struct{ Count int }
	c.getJSON("/counter", &v)
	return v.Count
}

func (c *client) user() string {
	c.t.Helper()
	var v struct{ User string }
	c.getJSON("/whoami", &v)
	return v.User
}

func (c *client) login(tok, user, password string) int {
	return c.post("/login", url.Values{"csrf_token": {tok}, "user": {user}, "password": {password}}, "same-origin")
}

func TestCounterIncrementsAcrossRequests(t *testing.T) {
	c := newClient(t, startApp(t))
	tok := c.token()
	for i := 1; i <= 3; i++ {
		if code := c.post("/counter", url.Values{"csrf_token": {tok}}, "same-origin"); code != http.StatusSeeOther {
			t.Fatalf("increment %d: status %d, want 303", i, code)
		}
		if n := c.count(); n != i {
			t.Fatalf("after %d increments the counter is %d", i, n)
		}
	}
	if !strings.Contains(c.page(), `<strong id="count">3</strong>`) {
		t.Error("the page does not show the count")
	}
}

func TestExclusiveCounterParallel(t *testing.T) {
	c := newClient(t, startApp(t))
	tok := c.token() // creates the session
	const n = 50
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if code := c.post("/counter", url.Values{"csrf_token": {tok}}, "same-origin"); code != http.StatusSeeOther {
				t.Errorf("increment: status %d, want 303", code)
			}
		})
	}
	wg.Wait()
	if got := c.count(); got != n {
		t.Fatalf("after %d parallel increments the counter is %d", n, got)
	}
}

func TestLoginWhoamiLogout(t *testing.T) {
	base := startApp(t)
	c := newClient(t, base)
	tok := c.token()
	before := c.sessionID()
	if before == "" {
		t.Fatal("no session cookie after the form was served")
	}
	if u := c.user(); u != "" {
		t.Fatalf("whoami before login: %q", u)
	}
	if code := c.login(tok, "alice", "demo"); code != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", code)
	}
	after := c.sessionID()
	if after == "" || after == before {
		t.Fatal("login did not change the session ID")
	}
	if u := c.user(); u != "alice" {
		t.Fatalf("whoami after login: %q, want alice", u)
	}
	// The ID from before login is dead: it finds no user.
	old := newClient(t, base)
	baseURL, _ := url.Parse(base)
	old.jar.SetCookies(baseURL, []*http.Cookie{{Name: "sesh", Value: before}})
	if got := old.user(); got != "" {
		t.Fatalf("the pre-login session ID still names user %q", got)
	}
	// Login rotated the CSRF secret: the token from before is refused.
	if code := c.post("/logout", url.Values{"csrf_token": {tok}}, "same-origin"); code != http.StatusForbidden {
		t.Fatalf("logout with the pre-login token: status %d, want 403", code)
	}
	if code := c.post("/logout", url.Values{"csrf_token": {c.token()}}, "same-origin"); code != http.StatusSeeOther {
		t.Fatalf("logout: status %d, want 303", code)
	}
	if id := c.sessionID(); id != "" {
		t.Fatal("logout left the session cookie in the browser")
	}
	if u := c.user(); u != "" {
		t.Fatalf("whoami after logout: %q", u)
	}
	// The logged-out ID is dead too.
	old.jar.SetCookies(baseURL, []*http.Cookie{{Name: "sesh", Value: after}})
	if got := old.user(); got != "" {
		t.Fatalf("the logged-out session ID still names user %q", got)
	}
}

func TestFlashShownOnce(t *testing.T) {
	c := newClient(t, startApp(t))
	if code := c.login(c.token(), "alice", "wrong"); code != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", code)
	}
	const msg = "Wrong user name or password."
	if !strings.Contains(c.page(), msg) {
		t.Fatalf("the flash message %q is not shown", msg)
	}
	if strings.Contains(c.page(), msg) {
		t.Fatalf("the flash message %q is shown twice", msg)
	}
	if code := c.login(c.token(), "alice", "demo"); code != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", code)
	}
	if body := c.page(); !strings.Contains(body, "Welcome, alice.") || strings.Contains(body, msg) {
		t.Fatalf("after login the page shows the wrong flash messages:\n%s", body)
	}
	if strings.Contains(c.page(), "Welcome, alice.") {
		t.Fatal("the welcome message is shown twice")
	}
}

func TestCSRF(t *testing.T) {
	c := newClient(t, startApp(t))
	tok := c.token()
	form := url.Values{"csrf_token": {tok}, "user": {"mallory"}, "password": {"demo"}}
	// A form on another site posting here: the browser says cross-site.
	if code := c.post("/login", form, "cross-site"); code != http.StatusForbidden {
		t.Fatalf("cross-site login: status %d, want 403", code)
	}
	if code := c.post("/counter", url.Values{"csrf_token": {tok}}, "cross-site"); code != http.StatusForbidden {
		t.Fatalf("cross-site increment: status %d, want 403", code)
	}
	// Same origin but without the token.
	if code := c.post("/login", url.Values{"user": {"mallory"}, "password": {"demo"}}, "same-origin"); code != http.StatusForbidden {
		t.Fatalf("login without a token: status %d, want 403", code)
	}
	if u, n := c.user(), c.count(); u != "" || n != 0 {
		t.Fatalf("refused requests changed the session: user %q, count %d", u, n)
	}
	// The application's own form.
	if code := c.post("/login", form, "same-origin"); code != http.StatusSeeOther {
		t.Fatalf("same-origin login with the token: status %d, want 303", code)
	}
	if u := c.user(); u != "mallory" {
		t.Fatalf("whoami: %q", u)
	}
}

// failingStore is a memory store whose saves fail while fail is set.
type failingStore struct {
	sesh.Store
	fail atomic.Bool
}

func (f *failingStore) Save(ctx context.Context, key sesh.Key, rec sesh.Record, prev uint64) error {
	if f.fail.Load() {
		return errors.New("the disk is on fire")
	}
	return f.Store.Save(ctx, key, rec, prev)
}

// startEcho serves the application on store with httptest, after routes
// lets the test add its own routes, and returns the base URL.
func startEcho(t *testing.T, store sesh.Store, routes func(e *echo.Echo)) string {
	t.Helper()
	k, err := seal.GenerateKey(1)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := seal.NewRing(k)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	m, err := newManager(store, keys, logger)
	if err != nil {
		t.Fatal(err)
	}
	e, err := newApp(m, logger)
	if err != nil {
		t.Fatal(err)
	}
	if routes != nil {
		routes(e)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv.URL
}

// A handler's error is answered inside sesh's middleware, so sesh sees
// the 500 and drops the changes the failed request made.
func TestHandlerErrorDropsChanges(t *testing.T) {
	base := startEcho(t, memstore.New(), func(e *echo.Echo) {
		e.POST("/test/set", func(c echo.Context) error {
			if err := session(c).Set("count", 7); err != nil {
				return err
			}
			return c.NoContent(http.StatusNoContent)
		})
		e.POST("/test/fail", func(c echo.Context) error {
			if err := session(c).Set("count", 99); err != nil {
				return err
			}
			return echo.NewHTTPError(http.StatusInternalServerError, "boom")
		})
	})
	c := newClient(t, base)
	if code := c.post("/test/set", nil, ""); code != http.StatusNoContent {
		t.Fatalf("set: status %d", code)
	}
	if n := c.count(); n != 7 {
		t.Fatalf("count %d, want 7", n)
	}
	req, _ := http.NewRequest("POST", base+"/test/fail", nil)
	code, body := c.do(req)
	if code != http.StatusInternalServerError || !strings.Contains(body, "boom") {
		t.Fatalf("fail: status %d, body %q; want Echo's 500 JSON", code, body)
	}
	if n := c.count(); n != 7 {
		t.Fatalf("the failed request's change was saved: count %d, want 7", n)
	}
}

// The session is committed before the first byte: when the store fails,
// sesh answers 503 instead of the handler's response, with no cookie.
func TestStoreFailureIs503(t *testing.T) {
	store := &failingStore{Store: memstore.New()}
	base := startEcho(t, store, nil)
	c := newClient(t, base)
	tok := c.token()
	store.fail.Store(true)
	req, _ := http.NewRequest("POST", base+"/counter", strings.NewReader(url.Values{"csrf_token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Location") != "" || len(res.Cookies()) != 0 {
		t.Fatalf("increment on a failing store: status %d, Location %q, %d cookies; want 503 without either",
			res.StatusCode, res.Header.Get("Location"), len(res.Cookies()))
	}
	store.fail.Store(false)
	if n := c.count(); n != 0 {
		t.Fatalf("count %d after a failed save, want 0", n)
	}
}
