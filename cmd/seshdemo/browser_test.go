package main

// TestBrowser drives the demo's HTML pages in headless Chromium: two
// browser contexts with separate cookies play two devices of alice. It
// relies on the element ids and classes listed at the top of pages.go.
//
// The browser is $SESH_TEST_CHROMIUM, else /usr/bin/chromium, else
// chromium on PATH. Without one the test is skipped, except under CI=true,
// where it fails. Screenshots of each step go to $SESH_ARTIFACTS, else to a
// new directory under $TMPDIR/browser-artifacts; the test logs the path.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

const (
	// browserTestTimeout bounds the whole test, browser start included.
	browserTestTimeout = 60 * time.Second
	// browserStepTimeout bounds one step (a navigation and its checks).
	browserStepTimeout = 15 * time.Second
)

// findChromium returns the browser to drive, or "" when there is none.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SESH_TEST_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("SESH_TEST_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	if fi, err := os.Stat("/usr/bin/chromium"); err == nil && !fi.IsDir() {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// artifactDir returns the directory for the screenshots: $SESH_ARTIFACTS,
// or a new directory under $TMPDIR/browser-artifacts that outlives the
// test.
func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("SESH_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	root := filepath.Join(os.TempDir(), "browser-artifacts")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := os.MkdirTemp(root, "run-"+time.Now().Format("20060102-150405")+"-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// startBrowserDemo runs the demo on a free loopback port with its data in
// a temporary directory and returns its URL, ending in a slash.
func startBrowserDemo(t *testing.T) string {
	t.Helper()
	t.Setenv("SESH_KEYS", "") // a development key in the temporary data dir
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-data", t.TempDir()}, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the demo's URL: %v", err)
	}
	go io.Copy(io.Discard, pr)
	u := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(line)
	if u == "" {
		t.Fatalf("no http://127.0.0.1:PORT/ URL in %q", line)
	}
	return u
}

// docRequest is a main-frame document request that a tab made.
type docRequest struct {
	Method, URL string
	Status      int64
	Headers     map[string]string // as sent on the wire, lower-case names
}

// tab is one browser context (one device) with its tab.
type tab struct {
	t    *testing.T
	name string
	ctx  context.Context
	dir  string // for screenshots

	mu        sync.Mutex
	committed string        // URL of the main frame's current document
	loads     chan string   // URL of each main-frame document at its load event
	docs      []*docRequest // main-frame document requests, in order
	byID      map[string]*docRequest
	extra     map[string]map[string]string // headers that came before their request
}

// newTab opens a tab in a new browser context of the browser of parent,
// so that it shares no cookies with the other tabs, with its own
// User-Agent so that the devices page can tell the tabs apart.
func newTab(t *testing.T, parent context.Context, name, dir string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tb := &tab{t: t, name: name, ctx: ctx, dir: dir, loads: make(chan string, 64),
		byID: map[string]*docRequest{}, extra: map[string]map[string]string{}}
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		t.Fatalf("%s: opening a tab: %v", name, err)
	}
	if err := chromedp.Listen(ctx, tb.event); err != nil {
		t.Fatalf("%s: listening: %v", name, err)
	}
	ua := "Mozilla/5.0 (X11; Linux x86_64) sesh-browser-test " + name
	if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua}); err != nil {
		t.Fatalf("%s: setting the User-Agent: %v", name, err)
	}
	return tb
}

// setT makes the tab report to t, as in a subtest, and returns a func
// that restores the previous test.
func (tb *tab) setT(t *testing.T) func() {
	old := tb.t
	tb.t = t
	return func() { tb.t = old }
}

// event runs in the tab's message loop: it only records.
func (tb *tab) event(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *page.EventFrameNavigated:
		if ev.Frame.ParentID == "" {
			tb.committed = ev.Frame.URL
		}
	case *page.EventLoadEventFired:
		select {
		case tb.loads <- tb.committed:
		default:
		}
	case *network.EventRequestWillBeSent:
		if ev.Type != network.ResourceTypeDocument || ev.Request == nil {
			return
		}
		d := &docRequest{Method: ev.Request.Method, URL: ev.Request.URL}
		if h, ok := tb.extra[string(ev.RequestID)]; ok {
			d.Headers = h
			delete(tb.extra, string(ev.RequestID))
		}
		tb.docs = append(tb.docs, d)
		tb.byID[string(ev.RequestID)] = d // a redirect replaces the entry
	case *network.EventRequestWillBeSentExtraInfo:
		h := map[string]string{}
		for k, v := range ev.Headers {
			h[strings.ToLower(k)] = fmt.Sprint(v)
		}
		if d, ok := tb.byID[string(ev.RequestID)]; ok && d.Headers == nil {
			d.Headers = h
		} else if !ok {
			tb.extra[string(ev.RequestID)] = h
		}
	case *network.EventResponseReceived:
		if d, ok := tb.byID[string(ev.RequestID)]; ok && ev.Response != nil && d.URL == ev.Response.URL {
			d.Status = ev.Response.Status
		}
	}
}

// lastDoc returns the last main-frame document request for url.
func (tb *tab) lastDoc(url string) *docRequest {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, d := range slices.Backward(tb.docs) {
		if d.URL == url {
			c := *d
			return &c
		}
	}
	return nil
}

// drainLoads forgets the loads seen so far.
func (tb *tab) drainLoads() {
	for {
		select {
		case <-tb.loads:
		default:
			return
		}
	}
}

// waitLoaded waits for the load event of a main-frame document at url.
func (tb *tab) waitLoaded(ctx context.Context, url string) error {
	for {
		select {
		case u := <-tb.loads:
			if u == url {
				return nil
			}
		case <-ctx.Done():
			tb.mu.Lock()
			cur := tb.committed
			tb.mu.Unlock()
			return fmt.Errorf("waiting for %s to load (current document %s): %w", url, cur, ctx.Err())
		}
	}
}

// fail takes a screenshot of the tab's state and ends the test.
func (tb *tab) fail(format string, args ...any) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		name := filepath.Join(tb.dir, "failure-"+tb.name+".png")
		if os.WriteFile(name, png, 0o644) == nil {
			tb.t.Logf("%s: screenshot of the failure: %s", tb.name, name)
		}
	}
	tb.t.Fatalf(tb.name+": "+format, args...)
}

// step returns a context for one step.
func (tb *tab) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(tb.ctx, browserStepTimeout)
}

// do runs actions, failing the test on error.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := tb.step()
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.fail("%s: %v", what, err)
	}
}

// nav runs actions that load a page (a navigation, a click on a link or a
// submit button), waits for the load, and checks the final response.
func (tb *tab) nav(what, wantURL string, wantStatus int64, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := tb.step()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		tb.fail("%s: %v", what, err)
	}
	if resp == nil {
		tb.fail("%s: no response", what)
	}
	if resp.URL != wantURL || resp.Status != wantStatus {
		tb.fail("%s: got %d %s, want %d %s", what, resp.Status, resp.URL, wantStatus, wantURL)
	}
}

// js evaluates expr in the page.
func js[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := tb.step()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.fail("evaluating %s: %v", expr, err)
	}
	return v
}

// text returns the text of the first element that sel matches, waiting
// for it.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	ctx, cancel := tb.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		tb.fail("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// present reports whether sel matches an element now, without waiting.
func (tb *tab) present(sel string) bool {
	tb.t.Helper()
	return js[bool](tb, fmt.Sprintf("document.querySelector(%q) !== null", sel))
}

// shot writes a full-page PNG screenshot.
func (tb *tab) shot(name string) {
	tb.t.Helper()
	ctx, cancel := tb.step()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.fail("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(tb.dir, name), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// login signs in through the login form and checks the home page.
func (tb *tab) login(base, user, password string, remember bool) {
	tb.t.Helper()
	tb.nav("opening the login page", base+"login", 200, chromedp.Navigate(base+"login"))
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.SendKeys(chromedp.ID("login-user"), user, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.ID("login-password"), password, chromedp.NodeVisible),
	}
	if remember {
		steps = append(steps, chromedp.Click(chromedp.ID("login-remember"), chromedp.NodeVisible))
	}
	tb.do("filling the login form", steps...)
	if remember && !js[bool](tb, `document.getElementById("login-remember").checked`) {
		tb.fail("the remember-me box is not checked")
	}
	tb.nav("signing in", base, 200, chromedp.Click(chromedp.ID("login-submit"), chromedp.NodeVisible))
	if got := tb.text("#nav-user"); !strings.HasPrefix(got, user) {
		tb.fail("signed in: #nav-user is %q, want %s", got, user)
	}
	if got := tb.text("#greeting"); got != "Hello, "+user+"!" {
		tb.fail("signed in: #greeting is %q", got)
	}
}

// flashes returns the texts of the flash messages of the page.
func (tb *tab) flashes() []string {
	tb.t.Helper()
	return js[[]string](tb, `[...document.querySelectorAll("#flash p.flash")].map(p => p.textContent.trim())`)
}

// cart returns the cart's lines as "item:qty", sorted.
func (tb *tab) cart() []string {
	tb.t.Helper()
	lines := js[[]string](tb, `[...document.querySelectorAll("#cart-items tr.cart-item")].map(r => r.dataset.item + ":" + r.querySelector(".cart-qty").textContent.trim())`)
	slices.Sort(lines)
	return lines
}

// devRow is a row of the devices page.
type devRow struct {
	Handle    string `json:"handle"`
	Agent     string `json:"agent"`
	Current   bool   `json:"current"`
	Revocable bool   `json:"revocable"`
}

func (tb *tab) devices() []devRow {
	tb.t.Helper()
	return js[[]devRow](tb, `[...document.querySelectorAll("#devices tr.device")].map(r => ({
		handle: r.dataset.handle,
		agent: r.querySelector(".device-agent").textContent.trim(),
		current: r.classList.contains("current"),
		revocable: r.querySelector("form.device-revoke button.device-revoke-button") !== null,
	}))`)
}

// attackPage is a page of another site whose form posts itself to action
// once loaded.
func attackPage(action string, fields map[string]string) string {
	var b strings.Builder
	b.WriteString("<!doctype html><html><head><title>Another site</title></head><body>\n")
	b.WriteString(`<h1 id="evil">A page on another site</h1>` + "\n")
	fmt.Fprintf(&b, `<form id="attack" method="post" action="%s">`, html.EscapeString(action))
	for k, v := range fields {
		fmt.Fprintf(&b, `<input type="hidden" name="%s" value="%s">`, html.EscapeString(k), html.EscapeString(v))
	}
	b.WriteString("</form>\n<script>window.addEventListener(\"load\", () => document.getElementById(\"attack\").submit());</script>\n</body></html>\n")
	return b.String()
}

func TestBrowser(t *testing.T) {
	bin := findChromium(t)
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Chromium: set SESH_TEST_CHROMIUM, or install chromium (/usr/bin/chromium or on PATH)")
		}
		t.Skip("no Chromium: set SESH_TEST_CHROMIUM, or install chromium (/usr/bin/chromium or on PATH)")
	}
	base := startBrowserDemo(t)
	dir := artifactDir(t)
	t.Logf("browser: %s; demo: %s; screenshots: %s", bin, base, dir)

	// Another site: a different origin (localhost, not 127.0.0.1, and
	// another port) that serves pages whose forms post to the demo.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch r.URL.Path {
		case "/cart":
			io.WriteString(w, attackPage(base+"cart/add", map[string]string{"item": "cheese"}))
		case "/api":
			io.WriteString(w, attackPage(base+"api/flash", map[string]string{"message": "pwned"}))
		default:
			http.NotFound(w, r)
		}
	}))
	defer evil.Close()
	_, evilPort, _ := net.SplitHostPort(evil.Listener.Addr().String())
	evilBase := "http://localhost:" + evilPort + "/"

	ctx, cancel := context.WithTimeout(context.Background(), browserTestTimeout)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.WindowSize(1000, 800),
	)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(browserCtx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", bin, err)
	}
	a := newTab(t, browserCtx, "device-A", dir)
	b := newTab(t, browserCtx, "device-B", dir)

	// 1. A signs in through the form, ticking "remember me".
	a.login(base, "alice", "wonderland", true)
	if a.present("#nav-remembered") { // a password login is not restored by remember-me
		a.fail("a fresh login shows #nav-remembered")
	}
	a.shot("01-login.png")

	// 2. The login's flash message shows on the next page, exactly once.
	welcome := "Welcome, alice."
	if got := a.flashes(); !slices.Equal(got, []string{welcome}) {
		a.fail("flash after login: got %q, want [%q]", got, welcome)
	}
	a.do("seeing the flash", chromedp.WaitVisible(chromedp.CSS("#flash p.flash-success")))
	a.nav("reloading home", base, 200, chromedp.Reload())
	if got := a.flashes(); len(got) != 0 || a.present("#flash") {
		a.fail("flash shown again after reload: %q", got)
	}
	if n := js[int](a, `document.body.textContent.split("Welcome, alice.").length - 1`); n != 0 {
		a.fail("the reloaded page still says %q %d time(s)", welcome, n)
	}
	if got := a.text("#greeting"); got != "Hello, alice!" {
		a.fail("after reload: #greeting is %q", got)
	}
	a.shot("02-flash.png")

	// 3. The cart keeps two items across pages.
	a.nav("opening the cart", base+"cart", 200, chromedp.Click(chromedp.ID("nav-cart"), chromedp.NodeVisible))
	if !a.present("#cart-empty") {
		a.fail("a new cart is not empty: %q", a.cart())
	}
	for _, item := range []string{"apple", "bread"} {
		a.nav("adding "+item, base+"cart", 200, chromedp.Click(chromedp.ID("add-"+item), chromedp.NodeVisible))
		if got := a.flashes(); !slices.Equal(got, []string{"Added " + item + " to your cart."}) {
			a.fail("after adding %s: flash %q", item, got)
		}
	}
	want := []string{"apple:1", "bread:1"}
	if got := a.cart(); !slices.Equal(got, want) {
		a.fail("cart: got %q, want %q", got, want)
	}
	a.nav("going home", base, 200, chromedp.Click(chromedp.ID("nav-home"), chromedp.NodeVisible))
	if got := a.text("#home-cart-count"); got != "2" {
		a.fail("home: #home-cart-count is %q, want 2", got)
	}
	a.nav("back to the cart", base+"cart", 200, chromedp.Click(chromedp.ID("nav-cart"), chromedp.NodeVisible))
	if got := a.cart(); !slices.Equal(got, want) {
		a.fail("cart after visiting home: got %q, want %q", got, want)
	}
	if got := a.text("#cart-count"); got != "2" {
		a.fail("#cart-count is %q, want 2", got)
	}
	if got := a.flashes(); len(got) != 0 {
		a.fail("the cart shows an old flash again: %q", got)
	}
	a.shot("03-cart.png")

	// 4. B signs in as alice too: both see two devices, each its own as
	// the current one.
	b.login(base, "alice", "wonderland", false)
	b.shot("04-device-b-login.png")
	if b.present("#cart-items") || b.text("#greeting") != "Hello, alice!" {
		b.fail("B shares A's session")
	}
	checkDevices := func(tb *tab, other string) devRow {
		t.Helper()
		tb.nav("opening the devices", base+"devices", 200, chromedp.Click(chromedp.ID("nav-devices"), chromedp.NodeVisible))
		devs := tb.devices()
		if len(devs) != 2 {
			tb.fail("devices: got %d rows, want 2: %+v", len(devs), devs)
		}
		var cur, oth []devRow
		for _, d := range devs {
			if d.Current {
				cur = append(cur, d)
			} else {
				oth = append(oth, d)
			}
		}
		if len(cur) != 1 || len(oth) != 1 {
			tb.fail("devices: want one current and one other: %+v", devs)
		}
		if !strings.Contains(cur[0].Agent, tb.name) || !strings.Contains(cur[0].Agent, "this device") || cur[0].Revocable {
			tb.fail("devices: the current row is %+v, want %s, marked, with no sign-out button", cur[0], tb.name)
		}
		if !strings.Contains(oth[0].Agent, other) || !oth[0].Revocable || oth[0].Handle == "" || oth[0].Handle == cur[0].Handle {
			tb.fail("devices: the other row is %+v, want %s with a sign-out button", oth[0], other)
		}
		return oth[0]
	}
	checkDevices(b, a.name)
	b.shot("04-devices-b.png")
	devB := checkDevices(a, b.name)
	a.shot("04-devices.png")

	// 5. A signs B out; B's next page load is signed out, A stays in.
	a.nav("signing B out", base+"devices", 200,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#devices tr.device[data-handle=%q] button.device-revoke-button`, devB.Handle)), chromedp.NodeVisible))
	if got := a.flashes(); !slices.Equal(got, []string{"That device is signed out."}) {
		a.fail("after revoking: flash %q", got)
	}
	if devs := a.devices(); len(devs) != 1 || !devs[0].Current {
		a.fail("after revoking: devices %+v, want only the current one", devs)
	}
	a.shot("05-revoked-a.png")
	b.nav("B reloads its devices page", base+"login", 200, chromedp.Reload())
	if got := b.flashes(); !slices.Equal(got, []string{"Please sign in first."}) {
		b.fail("revoked, /devices sent to /login with flash %q", got)
	}
	if b.present("#nav-user") || !b.present("#nav-login") {
		b.fail("revoked, the login page still shows a signed-in user")
	}
	b.shot("05-revoked-b.png")
	b.nav("B opens home", base, 200, chromedp.Click(chromedp.ID("nav-home"), chromedp.NodeVisible))
	if got := b.text("#greeting"); got != "Hello, guest!" {
		b.fail("revoked, home says %q", got)
	}
	a.nav("A reloads home", base, 200, chromedp.Click(chromedp.ID("nav-home"), chromedp.NodeVisible))
	if got := a.text("#greeting"); got != "Hello, alice!" {
		a.fail("A was signed out too: %q", got)
	}

	// 5b. The same for a device that ticked "remember me": revoking its
	// session also ends that device's remember-me token, so its next page
	// load does not sign it in again.
	t.Run("remembered-device", func(st *testing.T) {
		defer a.setT(st)()
		c := newTab(st, browserCtx, "device-C", dir)
		c.login(base, "alice", "wonderland", true)
		a.nav("opening the devices", base+"devices", 200, chromedp.Click(chromedp.ID("nav-devices"), chromedp.NodeVisible))
		var handle string
		for _, d := range a.devices() {
			if strings.Contains(d.Agent, c.name) {
				handle = d.Handle
			}
		}
		if handle == "" {
			a.fail("devices: no row for %s: %+v", c.name, a.devices())
		}
		a.nav("signing C out", base+"devices", 200,
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`#devices tr.device[data-handle=%q] button.device-revoke-button`, handle)), chromedp.NodeVisible))
		if devs := a.devices(); len(devs) != 1 || !devs[0].Current {
			a.fail("after revoking C: devices %+v, want only the current one", devs)
		}
		c.nav("C opens home", base, 200, chromedp.Navigate(base))
		c.shot("05b-revoked-remembered-c.png")
		if c.present("#nav-user") {
			c.fail("a device signed out from /devices that had ticked \"remember me\" is signed in again (%q, #nav-remembered %v) by its remember-me token",
				c.text("#greeting"), c.present("#nav-remembered"))
		}
		if got := c.text("#greeting"); got != "Hello, guest!" {
			c.fail("revoked remembered device: home says %q", got)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// 6. Pages of another site post forms to the demo in A's browser: a
	// page form and the JSON API. The browser marks them cross-site, the
	// demo answers 403, and nothing changes.
	for i, attack := range []struct{ path, target, body string }{
		{"cart", base + "cart/add", "Forbidden"},
		{"api", base + "api/flash", `{"error":"cross-origin request refused"}`},
	} {
		a.drainLoads()
		ctx, cancel := a.step()
		err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			res, err := cdp.Call(ctx, t, page.Navigate, page.NavigateParams{URL: evilBase + attack.path})
			if err == nil && res.ErrorText != "" {
				err = errors.New(res.ErrorText)
			}
			return err
		}))
		if err == nil {
			err = a.waitLoaded(ctx, attack.target)
		}
		cancel()
		if err != nil {
			a.fail("cross-site post from %s: %v", evilBase+attack.path, err)
		}
		d := a.lastDoc(attack.target)
		if d == nil || d.Method != "POST" {
			a.fail("cross-site post: no POST to %s recorded: %+v", attack.target, d)
		}
		if d.Status != 403 {
			a.fail("cross-site POST %s: got %d, want 403", attack.target, d.Status)
		}
		if d.Headers == nil {
			a.fail("cross-site POST %s: the request's headers were not seen", attack.target)
		}
		if got := d.Headers["sec-fetch-site"]; got != "cross-site" {
			a.fail("cross-site POST %s: Sec-Fetch-Site %q, want cross-site", attack.target, got)
		}
		if got, want := d.Headers["origin"], strings.TrimSuffix(evilBase, "/"); got != want {
			a.fail("cross-site POST %s: Origin %q, want %q", attack.target, got, want)
		}
		if got := js[string](a, `document.body.innerText.trim()`); !strings.Contains(got, attack.body) {
			a.fail("cross-site POST %s: page says %q, want %q", attack.target, got, attack.body)
		}
		a.shot(fmt.Sprintf("06-cross-site-%d-%s.png", i+1, attack.path))
	}
	a.nav("A opens the cart after the attacks", base+"cart", 200, chromedp.Navigate(base+"cart"))
	if got := a.cart(); !slices.Equal(got, want) {
		a.fail("cart after the cross-site posts: got %q, want %q", got, want)
	}
	if got := a.flashes(); len(got) != 0 {
		a.fail("flash after the cross-site posts: %q", got)
	}
	if got := a.text("#nav-user"); !strings.HasPrefix(got, "alice") {
		a.fail("A is no longer signed in after the attacks: %q", got)
	}
	a.shot("07-after-cross-site.png")
}
