package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// browser is a client that behaves like a browser on the demo's pages:
// same-origin requests, forms posted with the page's CSRF token, and
// redirects followed.
type browser struct {
	*client
}

func newBrowser(t *testing.T, base string, tr *http.Transport, ua string) *browser {
	c := newClient(t, base, tr)
	c.ua = ua
	c.header.Set("Sec-Fetch-Site", "same-origin")
	return &browser{c}
}

// follow follows redirects.
func (b *browser) follow(r *response) *response {
	b.t.Helper()
	for i := 0; r.status == http.StatusSeeOther || r.status == http.StatusFound; i++ {
		if i == 10 {
			b.t.Fatalf("%s: too many redirects", r)
		}
		r = b.get(r.header.Get("Location"))
	}
	return r
}

// open loads a page.
func (b *browser) open(path string) *response {
	b.t.Helper()
	return b.follow(b.get(path))
}

// submit posts a form of page to action, with the page's CSRF token.
func (b *browser) submit(page *response, action string, vals url.Values) *response {
	b.t.Helper()
	if vals == nil {
		vals = url.Values{}
	}
	vals.Set("csrf_token", formToken(b.t, string(page.body)))
	return b.follow(b.send("POST", action, "application/x-www-form-urlencoded", vals.Encode()))
}

// signIn signs in through the login form and returns the page it ends on.
func (b *browser) signIn(user, password string, remember bool) *response {
	b.t.Helper()
	vals := url.Values{"user": {user}, "password": {password}}
	if remember {
		vals.Set("remember", "1")
	}
	return b.submit(b.open("/login"), "/login", vals)
}

// has fails the test unless the page contains every string.
func has(t *testing.T, r *response, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(string(r.body), w) {
			t.Fatalf("%s %s: the page lacks %q:\n%s", r.method, r.path, w, r.body)
		}
	}
}

// hasNot fails the test if the page contains any of the strings.
func hasNot(t *testing.T, r *response, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(string(r.body), w) {
			t.Fatalf("%s %s: the page has %q:\n%s", r.method, r.path, w, r.body)
		}
	}
}

func flash(kind, text string) string {
	return `<p class="flash flash-` + kind + `">` + text + `</p>`
}

func startPages(t *testing.T) (string, *http.Transport) {
	t.Setenv("SESH_KEYS", "")
	return startDemo(t, t.TempDir()), newTransport(t)
}

func TestPagesRender(t *testing.T) {
	base, tr := startPages(t)
	b := newBrowser(t, base, tr, "browser")
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/", []string{`data-page="home"`, `id="greeting">Hello, guest!`, `id="visits">1<`, `id="flash-form"`, `id="reset-form"`, `id="nav-login"`}},
		{"/login", []string{`data-page="login"`, `id="login-form"`, `id="login-user"`, `id="login-password" name="password" type="password"`, `id="login-remember" name="remember" type="checkbox"`, `id="login-submit"`}},
		{"/cart", []string{`data-page="cart"`, `id="cart-empty"`, `id="products"`, `id="add-apple"`, `id="add-tea"`}},
	} {
		r := b.open(tc.path).want(t, http.StatusOK)
		has(t, r, tc.want...)
		if forms, tokens := strings.Count(string(r.body), "<form"), len(tokenRE.FindAllString(string(r.body), -1)); forms == 0 || forms != tokens {
			t.Fatalf("%s: %d forms, %d CSRF tokens", tc.path, forms, tokens)
		}
		for name, want := range map[string]string{
			"Content-Type":           "text/html; charset=utf-8",
			"Cache-Control":          "no-store",
			"X-Content-Type-Options": "nosniff",
		} {
			if got := r.header.Get(name); got != want {
				t.Errorf("%s: %s %q, want %q", tc.path, name, got, want)
			}
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", tc.path, csp)
		}
	}
	r := b.get("/static/style.css").want(t, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "text/css; charset=utf-8" {
		t.Fatalf("style sheet: %q", ct)
	}
	// Pages for signed-in users send the others to sign in.
	for _, p := range []string{"/devices", "/password"} {
		r := b.open(p).want(t, http.StatusOK)
		has(t, r, `data-page="login"`, flash("error", "Please sign in first."))
	}
	// /session-ended sends the browser on only to pages of this site.
	for next, want := range map[string]string{
		"/cart?x=1":            "/cart?x=1",
		"//evil.example/":      "/",
		"/\\evil.example/":     "/",
		"https://evil.example": "/",
		"":                     "/",
		"cart":                 "/",
	} {
		r := b.get("/session-ended?next="+url.QueryEscape(next)).want(t, http.StatusSeeOther)
		if got := r.header.Get("Location"); got != want {
			t.Errorf("/session-ended?next=%s: Location %q, want %q", next, got, want)
		}
		r.noCookies(t) // the browser's session is live
	}
	b.get("/nosuch").want(t, http.StatusNotFound)
	b.send("POST", "/login", "", "").want(t, http.StatusForbidden) // no token
	b.get("/logout").want(t, http.StatusMethodNotAllowed)
}

func TestPagesLogin(t *testing.T) {
	base, tr := startPages(t)
	b := newBrowser(t, base, tr, "browser")
	login := b.open("/login")
	// Without the token, or with a token of another session.
	b.send("POST", "/login", "application/x-www-form-urlencoded", url.Values{"user": {"alice"}, "password": {"wonderland"}}.Encode()).want(t, http.StatusForbidden)
	other := newBrowser(t, base, tr, "other")
	b.send("POST", "/login", "application/x-www-form-urlencoded", url.Values{
		"user": {"alice"}, "password": {"wonderland"}, "csrf_token": {formToken(t, string(other.open("/login").body))},
	}.Encode()).want(t, http.StatusForbidden)
	// A cross-site post is refused even with a valid token.
	b.send("POST", "/login", "application/x-www-form-urlencoded", url.Values{
		"user": {"alice"}, "password": {"wonderland"}, "csrf_token": {formToken(t, string(login.body))},
	}.Encode(), "Sec-Fetch-Site", "cross-site").want(t, http.StatusForbidden)
	b.wantUser("")

	r := b.submit(login, "/login", url.Values{"user": {"alice"}, "password": {"nope"}})
	has(t, r, `data-page="login"`, flash("error", "Wrong user name or password."))
	b.wantUser("")

	r = b.signIn("alice", "wonderland", true)
	has(t, r, `data-page="home"`, flash("success", "Welcome, alice."), `id="greeting">Hello, <strong>alice</strong>`, `id="nav-user"`, `id="logout-form"`, `id="nav-devices"`)
	hasNot(t, r, `id="nav-remembered"`)
	remembered := ""
	for name := range b.jar() {
		if strings.Contains(name, "remember") {
			remembered = name
		}
	}
	if remembered == "" {
		t.Fatalf("no remember-me cookie after signing in with the box ticked: %v", b.jar())
	}
	// The flash message shows once.
	r = b.open("/")
	hasNot(t, r, "Welcome, alice.")
	// The token of the page before login is dead: login rotates it.
	b.send("POST", "/flash", "application/x-www-form-urlencoded", url.Values{"message": {"x"}, "csrf_token": {formToken(t, string(login.body))}}.Encode()).want(t, http.StatusForbidden)
	// Flash through the form.
	r = b.submit(r, "/flash", url.Values{"message": {"<script>alert(1)</script>"}})
	has(t, r, flash("info", "&lt;script&gt;alert(1)&lt;/script&gt;"))

	// Remember me: the browser restarts without its session cookie.
	j := b.jar()
	for name := range j {
		if name != remembered {
			delete(j, name)
		}
	}
	b.setJar(j)
	r = b.open("/")
	has(t, r, `id="nav-user"`, `id="nav-remembered"`, `id="visits">1<`)

	// Sign out.
	r = b.submit(r, "/logout", nil)
	has(t, r, `id="signed-out"`, `id="greeting">Hello, guest!`, `id="nav-login"`)
	if _, ok := b.jar()[remembered]; ok {
		t.Fatal("the remember-me cookie survived signing out")
	}
	b.wantUser("")
}

func TestPagesCart(t *testing.T) {
	base, tr := startPages(t)
	b := newBrowser(t, base, tr, "browser")
	r := b.open("/cart")
	has(t, r, `id="cart-empty"`)
	r = b.submit(r, "/cart/add", url.Values{"item": {"apple"}})
	has(t, r, `data-page="cart"`, flash("success", "Added apple to your cart."))
	r = b.submit(r, "/cart/add", url.Values{"item": {"apple"}})
	r = b.submit(r, "/cart/add", url.Values{"item": {"bread"}})
	cartRow := func(item, qty string) string {
		return `<tr class="cart-item" data-item="` + item + `">` + "\n" + `<td class="cart-name">` + item + `</td>` + "\n" + `<td class="cart-qty">` + qty + `</td>`
	}
	has(t, r, cartRow("apple", "2"), cartRow("bread", "1"), `id="cart-count">3<`)
	hasNot(t, r, `id="cart-empty"`)
	b.send("POST", "/cart/add", "application/x-www-form-urlencoded", url.Values{"item": {"caviar"}, "csrf_token": {formToken(t, string(r.body))}}.Encode()).want(t, http.StatusBadRequest)
	// The cart persists across pages, and through signing in.
	has(t, b.open("/"), `id="home-cart-count">3<`)
	b.signIn("bob", "builder", false)
	r = b.open("/cart")
	has(t, r, cartRow("apple", "2"), cartRow("bread", "1"))
	r = b.submit(r, "/cart/remove", url.Values{"item": {"apple"}})
	has(t, r, flash("info", "Removed apple from your cart."), cartRow("bread", "1"), `id="cart-count">1<`)
	hasNot(t, r, `data-item="apple">`+"\n"+`<td class="cart-name">`)
	r = b.submit(r, "/cart/clear", nil)
	has(t, r, `id="cart-empty"`)
	// Another browser has its own cart.
	has(t, newBrowser(t, base, tr, "other").open("/cart"), `id="cart-empty"`)
}

var deviceRow = regexp.MustCompile(`<tr class="device( current)?" data-handle="([^"]+)">`)

func TestPagesDevices(t *testing.T) {
	base, tr := startPages(t)
	b1, b2, b3 := newBrowser(t, base, tr, "browser-1"), newBrowser(t, base, tr, "browser-2"), newBrowser(t, base, tr, "browser-3")
	b1.signIn("alice", "wonderland", false)
	b2.signIn("alice", "wonderland", true) // remembered: it must not come back
	r := b1.open("/devices").want(t, http.StatusOK)
	has(t, r, `data-page="devices"`, `id="devices"`, `id="revoke-others-form"`, "browser-1", "browser-2", `class="device-current badge"`)
	rows := deviceRow.FindAllStringSubmatch(string(r.body), -1)
	if len(rows) != 2 || (rows[0][1] == "") == (rows[1][1] == "") {
		t.Fatalf("want two devices, one current: %q", rows)
	}
	otherHandle := rows[0][2]
	if rows[0][1] != "" {
		otherHandle = rows[1][2]
	}
	if n := strings.Count(string(r.body), `class="device-revoke inline"`); n != 1 {
		t.Fatalf("%d revoke buttons, want one (not for this device)", n)
	}
	r = b1.submit(r, "/devices/revoke", url.Values{"handle": {otherHandle}})
	has(t, r, flash("success", "That device is signed out."))
	if rows := deviceRow.FindAllStringSubmatch(string(r.body), -1); len(rows) != 1 || rows[0][1] == "" {
		t.Fatalf("after revoking: %q", rows)
	}
	// The revoked browser, remembered or not, is signed out at once, and
	// its pages work.
	b2.wantUser("")
	has(t, b2.open("/devices"), `data-page="login"`, flash("error", "Please sign in first."))
	has(t, b2.open("/"), `id="greeting">Hello, guest!`, `id="visits">1<`)
	r = b1.submit(r, "/devices/revoke", url.Values{"handle": {otherHandle}})
	has(t, r, flash("error", "That device is not signed in."))

	b2.signIn("alice", "wonderland", false)
	b3.signIn("alice", "wonderland", false)
	r = b1.submit(b1.open("/devices"), "/devices/revoke-others", nil)
	has(t, r, flash("success", "2 other devices are signed out."))
	b2.wantUser("")
	b3.wantUser("")
	b1.wantUser("alice")
}

// TestPagesSessionEnded: a page loaded with a cookie that a login or a
// logout has just ended (a tab racing another) is not an error page.
func TestPagesSessionEnded(t *testing.T) {
	base, tr := startPages(t)
	b := newBrowser(t, base, tr, "browser")
	b.open("/")
	old := b.jar()[sessionCookie]
	b.signIn("alice", "wonderland", false) // the ID is renewed
	// A tab's request sent with the old cookie is redirected; the browser
	// follows with the cookie it holds by then, which is kept.
	r := b.send("GET", "/cart", "", "", "Cookie", sessionCookie+"="+old).want(t, http.StatusSeeOther)
	if loc := r.header.Get("Location"); loc != "/session-ended?next=%2Fcart" {
		t.Fatalf("a page with the renewed ID redirects to %q", loc)
	}
	r = b.follow(r)
	has(t, r, `data-page="cart"`, `id="nav-user"`)
	b.wantUser("alice")
	// A browser left with only the dead cookie is told to forget it.
	b.setJar(map[string]string{sessionCookie: old})
	r = b.get("/session-ended?next=%2Fcart").want(t, http.StatusSeeOther)
	if k := r.setCookies()[sessionCookie]; k == nil || k.MaxAge >= 0 {
		t.Fatalf("/session-ended does not delete the dead cookie: %q", r.header.Values("Set-Cookie"))
	}
	has(t, b.follow(r), `data-page="cart"`, `id="nav-login"`)
	// The API answers 409 to a write with the dead ID, and sets no cookie.
	api := newClient(t, base, tr)
	api.setJar(map[string]string{sessionCookie: old})
	api.post("/api/counter", nil).want(t, http.StatusConflict).noCookies(t)
	api.wantUser("")
}

func TestPagesPassword(t *testing.T) {
	base, tr := startPages(t)
	b1, b2 := newBrowser(t, base, tr, "browser-1"), newBrowser(t, base, tr, "browser-2")
	b1.signIn("alice", "wonderland", false)
	b2.signIn("alice", "wonderland", true)
	r := b1.open("/password")
	has(t, r, `data-page="password"`, `id="password-form"`, `id="password-old"`, `id="password-new"`, `id="password-confirm"`)
	r = b1.submit(r, "/password", url.Values{"old": {"wonderland"}, "new": {"looking-glass"}, "confirm": {"looking-glas"}})
	has(t, r, `data-page="password"`, flash("error", "The new passwords differ."))
	r = b1.submit(r, "/password", url.Values{"old": {"builder"}, "new": {"looking-glass"}, "confirm": {"looking-glass"}})
	has(t, r, flash("error", "Wrong password."))
	b2.wantUser("alice")
	r = b1.submit(r, "/password", url.Values{"old": {"wonderland"}, "new": {"looking-glass"}, "confirm": {"looking-glass"}})
	has(t, r, `data-page="home"`, flash("success", "Your password is changed; your other devices are signed out."))
	b1.wantUser("alice")
	b2.wantUser("") // its session and its remember-me token are gone
	has(t, b2.signIn("alice", "wonderland", false), flash("error", "Wrong user name or password."))
	has(t, b2.signIn("alice", "looking-glass", false), flash("success", "Welcome, alice."))
}
