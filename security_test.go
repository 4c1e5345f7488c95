package sesh_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seshgo/sesh"
)

const rememberName = sesh.DefaultCookieName + "-remember"

// cookieValue returns the value of the named cookie set by r.
func cookieValue(r resp, name string) (string, bool) {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c.Value, true
		}
	}
	return "", false
}

// loginRemember logs a fresh client in with remember-me and returns the
// remember cookie.
func (h *harness) loginRemember(user string) (*http.Client, string) {
	h.t.Helper()
	c := h.client()
	r := h.do(c, "POST", "/login?u="+user+"&remember=1", "")
	tok, ok := cookieValue(r, rememberName)
	if !ok {
		h.t.Fatalf("login with remember set no remember cookie: %q", r.header.Values("Set-Cookie"))
	}
	return c, tok
}

func TestRememberMeRotatesAndDetectsTheft(t *testing.T) {
	h := newHarness(t, nil)
	_, r1 := h.loginRemember("alice")
	raw := h.rawClient()

	// The session cookie is gone (browser restart): the token restores it.
	r := h.do(raw, "GET", "/remembered", rememberName+"="+r1)
	if r.body != "alice true" {
		t.Fatalf("restore: got %q, want alice remembered", r.body)
	}
	r2, ok := cookieValue(r, rememberName)
	if !ok || r2 == r1 {
		t.Fatal("the token was not rotated on use")
	}
	if _, ok := cookieValue(r, sesh.DefaultCookieName); !ok {
		t.Fatal("no session cookie for the restored session")
	}
	if n := len(h.eventsOf(sesh.EventRememberUsed)); n != 1 {
		t.Fatalf("remember_used events: got %d, want 1", n)
	}
	// The store holds no raw validator.
	es, _, _ := h.mem.List(t.Context(), "", 1000)
	for _, e := range es {
		for _, tok := range []string{r1, r2} {
			_, val, _ := strings.Cut(tok, ".")
			if strings.Contains(string(e.Record.Data), val) || strings.Contains(e.Key.String(), val) {
				t.Fatal("a raw validator is in the store")
			}
		}
	}

	// Replaying the old token after the grace period is theft.
	h.clock.Advance(time.Minute)
	r = h.do(raw, "GET", "/remembered", rememberName+"="+r1)
	if r.body != " false" {
		t.Fatalf("stale token: got %q, want anonymous", r.body)
	}
	if n := len(h.eventsOf(sesh.EventTheftSuspected)); n != 1 {
		t.Fatalf("theft events: got %d, want 1", n)
	}
	// Every token and session of the user is gone, the thief's and the owner's.
	if r := h.do(raw, "GET", "/remembered", rememberName+"="+r2); r.body != " false" {
		t.Fatalf("current token after theft: got %q, want anonymous", r.body)
	}
	if got := h.storeCount(); got != 0 {
		t.Fatalf("records after theft: got %d, want 0", got)
	}
}

func TestRememberMeParallelUseShareOneSuccessor(t *testing.T) {
	h := newHarness(t, nil)
	_, r1 := h.loginRemember("alice")
	before := h.storeCount()
	var wg sync.WaitGroup
	var mu sync.Mutex
	successors := map[string]bool{}
	sessions := map[string]bool{}
	for range 10 {
		wg.Go(func() {
			r := h.do(h.rawClient(), "GET", "/remembered", rememberName+"="+r1)
			if r.body != "alice true" {
				t.Errorf("parallel restore: got %d %q", r.code, r.body)
			}
			next, _ := cookieValue(r, rememberName)
			sid, _ := cookieValue(r, sesh.DefaultCookieName)
			mu.Lock()
			successors[next] = true
			sessions[sid] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(successors) != 1 || len(sessions) != 1 {
		t.Fatalf("got %d successors and %d sessions, want 1 and 1", len(successors), len(sessions))
	}
	if n := len(h.eventsOf(sesh.EventTheftSuspected)); n != 0 {
		t.Fatalf("parallel use raised %d theft alarms", n)
	}
	if got := h.storeCount(); got != before+1 {
		t.Fatalf("records: got %d, want %d (one new session)", got, before+1)
	}
}

func TestLogoutRevokesPresentedTokenWithoutSession(t *testing.T) {
	h := newHarness(t, nil)
	_, r1 := h.loginRemember("alice")
	r := h.do(h.rawClient(), "POST", "/logout", rememberName+"="+r1)
	if v, ok := cookieValue(r, rememberName); !ok || v != "" {
		t.Fatalf("logout did not clear the remember cookie: %q", r.header.Values("Set-Cookie"))
	}
	if got := r.header.Get("Clear-Site-Data"); got != `"cookies"` {
		t.Fatalf("Clear-Site-Data: got %q", got)
	}
	if r := h.do(h.rawClient(), "GET", "/remembered", rememberName+"="+r1); r.body != " false" {
		t.Fatalf("token after logout: got %q, want anonymous", r.body)
	}
}

func TestRememberMeHardExpiry(t *testing.T) {
	h := newHarness(t, func(c *sesh.Config) { c.RememberTTL = 24 * time.Hour })
	_, r1 := h.loginRemember("alice")
	h.clock.Advance(25 * time.Hour)
	if r := h.do(h.rawClient(), "GET", "/remembered", rememberName+"="+r1); r.body != " false" {
		t.Fatalf("expired token: got %q, want anonymous", r.body)
	}
}

func TestRememberCookieAttributes(t *testing.T) {
	h := newHarness(t, nil)
	r := h.do(h.client(), "POST", "/login?u=alice&remember=1", "")
	for _, sc := range r.header.Values("Set-Cookie") {
		if !strings.HasPrefix(sc, rememberName+"=") {
			continue
		}
		for _, want := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age="} {
			if !strings.Contains(sc, want) {
				t.Errorf("remember cookie %q lacks %q", sc, want)
			}
		}
		return
	}
	t.Fatal("no remember cookie")
}

func TestRememberValueInSessionCookieRejected(t *testing.T) {
	h := newHarness(t, nil)
	_, r1 := h.loginRemember("alice")
	if r := h.do(h.rawClient(), "GET", "/whoami", sesh.DefaultCookieName+"="+r1); r.body != "anon" {
		t.Fatalf("remember value as session cookie: got %q", r.body)
	}
}

func TestPasswordChangeRevokesEverythingElse(t *testing.T) {
	h := newHarness(t, nil)
	a := h.client()
	h.do(a, "POST", "/login?u=alice", "")
	b, rb := h.loginRemember("alice")
	if r := h.do(a, "POST", "/password", ""); r.code != 200 {
		t.Fatalf("password change: got %d %q", r.code, r.body)
	}
	if r := h.get(b, "/whoami"); r.body != "anon" {
		t.Fatalf("other session after password change: got %q", r.body)
	}
	if r := h.do(h.rawClient(), "GET", "/whoami", rememberName+"="+rb); r.body != "anon" {
		t.Fatalf("remember token after password change: got %q", r.body)
	}
	if r := h.get(a, "/whoami"); r.body != "alice" {
		t.Fatalf("current session after password change: got %q", r.body)
	}
}

type deviceJSON struct {
	Handle    string
	Current   bool
	IP        string
	UserAgent string
}

func (h *harness) devices(c *http.Client) ([]deviceJSON, string) {
	h.t.Helper()
	r := h.get(c, "/sessions")
	var ds []deviceJSON
	if err := json.Unmarshal([]byte(r.body), &ds); err != nil {
		h.t.Fatalf("sessions: %v in %q", err, r.body)
	}
	return ds, r.body
}

func TestDevicesListAndRevoke(t *testing.T) {
	h := newHarness(t, nil)
	a1, a2, bob := h.client(), h.client(), h.client()
	h.do(a1, "POST", "/login?u=alice", "")
	h.do(a2, "POST", "/login?u=alice", "")
	h.do(bob, "POST", "/login?u=bob", "")

	ds, body := h.devices(a1)
	if len(ds) != 2 {
		t.Fatalf("alice's devices: got %d, want 2", len(ds))
	}
	current := 0
	for _, d := range ds {
		if d.Current {
			current++
		}
		if d.Handle == "" || d.IP == "" {
			t.Fatalf("device lacks handle or IP: %+v", d)
		}
	}
	if current != 1 {
		t.Fatalf("current markers: got %d, want 1", current)
	}
	issuedMu.Lock()
	for tok := range issued {
		if len(tok) > 8 && strings.Contains(body, tok) {
			t.Fatal("a session token appears in the device listing")
		}
	}
	issuedMu.Unlock()

	// Alice cannot revoke bob's session.
	bobs, _ := h.devices(bob)
	if r := h.do(a1, "POST", "/sessions/"+bobs[0].Handle+"/revoke", ""); r.code != http.StatusNotFound {
		t.Fatalf("revoking another user's session: got %d, want 404", r.code)
	}
	if r := h.get(bob, "/whoami"); r.body != "bob" {
		t.Fatalf("bob after alice's attempt: got %q", r.body)
	}
	// Alice revokes her other device.
	var other string
	for _, d := range ds {
		if !d.Current {
			other = d.Handle
		}
	}
	if r := h.do(a1, "POST", "/sessions/"+other+"/revoke", ""); r.code != 200 {
		t.Fatalf("revoke: got %d", r.code)
	}
	if r := h.get(a2, "/whoami"); r.body != "anon" {
		t.Fatalf("revoked device: got %q, want anon", r.body)
	}
	if n := len(h.eventsOf(sesh.EventRevoked)); n != 1 {
		t.Fatalf("revoked events: got %d, want 1", n)
	}
	// Renewal replaces the entry rather than adding one.
	h.do(a1, "POST", "/login?u=alice", "")
	if ds, _ := h.devices(a1); len(ds) != 1 {
		t.Fatalf("devices after renew: got %d, want 1", len(ds))
	}
	// Expiry removes it.
	h.clock.Advance(sesh.DefaultIdleTimeout + time.Minute)
	if n := countDevices(t, h, "alice"); n != 0 {
		t.Fatalf("devices after expiry: got %d, want 0", n)
	}
}

func countDevices(t *testing.T, h *harness, user string) int {
	t.Helper()
	ds, err := h.m.Sessions(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	return len(ds)
}

func TestRevokeOthersKeepsCurrent(t *testing.T) {
	h := newHarness(t, nil)
	a, b, c := h.client(), h.client(), h.client()
	for _, cl := range []*http.Client{a, b, c} {
		h.do(cl, "POST", "/login?u=alice", "")
	}
	if r := h.do(a, "POST", "/revoke-others", ""); r.body != "2" {
		t.Fatalf("revoke-others: got %q, want 2", r.body)
	}
	for _, cl := range []*http.Client{b, c} {
		if r := h.get(cl, "/whoami"); r.body != "anon" {
			t.Fatalf("other device: got %q", r.body)
		}
	}
	if r := h.get(a, "/whoami"); r.body != "alice" {
		t.Fatalf("current device: got %q", r.body)
	}
}

func TestRevokeAllByAdmin(t *testing.T) {
	h := newHarness(t, nil)
	a, _ := h.loginRemember("alice")
	b := h.client()
	h.do(b, "POST", "/login?u=alice", "")
	n, err := h.m.RevokeAll(t.Context(), "alice")
	if err != nil || n != 2 {
		t.Fatalf("RevokeAll: got %d, %v; want 2", n, err)
	}
	for _, cl := range []*http.Client{a, b} {
		if r := h.get(cl, "/whoami"); r.body != "anon" {
			t.Fatalf("after RevokeAll: got %q", r.body)
		}
	}
}

func TestUserAgentBinding(t *testing.T) {
	for _, tc := range []struct {
		policy sesh.Policy
		want   string
	}{{sesh.PolicyOff, "alice"}, {sesh.PolicyLog, "alice"}, {sesh.PolicyEnforce, "anon"}} {
		h := newHarness(t, func(c *sesh.Config) { c.BindUserAgent = tc.policy })
		c := h.client()
		h.do(c, "POST", "/login?u=alice", "")
		req, _ := http.NewRequest("GET", h.srv.URL+"/whoami", nil)
		req.Header.Set("User-Agent", "stolen-cookie-bot/1.0")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, 16)
		n, _ := res.Body.Read(body)
		res.Body.Close()
		if got := string(body[:n]); got != tc.want {
			t.Errorf("policy %d: got %q, want %q", tc.policy, got, tc.want)
		}
		wantEvents := 1
		if tc.policy == sesh.PolicyOff {
			wantEvents = 0
		}
		if n := len(h.eventsOf(sesh.EventBindingMismatch)); n != wantEvents {
			t.Errorf("policy %d: %d mismatch events, want %d", tc.policy, n, wantEvents)
		}
		// The owner keeps the session.
		if r := h.get(c, "/whoami"); r.body != "alice" {
			t.Errorf("policy %d: owner lost the session: %q", tc.policy, r.body)
		}
	}
}

func TestEventsNeverCarryTokens(t *testing.T) {
	h := newHarness(t, nil)
	c, r1 := h.loginRemember("alice")
	h.do(h.rawClient(), "GET", "/whoami", rememberName+"="+r1)
	h.do(c, "POST", "/logout", "")
	h.evMu.Lock()
	defer h.evMu.Unlock()
	if len(h.events) < 3 {
		t.Fatalf("got %d events, want login, remember_used, logout at least", len(h.events))
	}
	issuedMu.Lock()
	defer issuedMu.Unlock()
	for _, e := range h.events {
		s := strings.Join([]string{e.User, e.Handle, e.IP, e.UserAgent, e.Detail}, "|")
		for tok := range issued {
			if len(tok) > 8 && strings.Contains(s, tok) {
				t.Fatalf("event %s carries a token", e.Kind)
			}
		}
	}
}

// getFrom sends GET path with the given X-Forwarded-For.
func (h *harness) getFrom(c *http.Client, path, xff string) resp {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
	req.Header.Set("X-Forwarded-For", xff)
	res, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp{res.StatusCode, b.String(), res.Header}
}

func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	req, _ := http.NewRequest("POST", h.srv.URL+"/login?u=alice", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	ds, _ := h.devices(c)
	if len(ds) != 1 || ds[0].IP != "127.0.0.1" {
		t.Fatalf("untrusted X-Forwarded-For was believed: %+v", ds)
	}
}

func TestNetworkHopEvents(t *testing.T) {
	h := newHarness(t, func(c *sesh.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.BindIP = sesh.PolicyLog
	})
	c := h.client()
	h.getFrom(c, "/put?k=a&v=1", "198.51.100.7")
	// Spoofed entries left of the proxy's own are not the client.
	h.getFrom(c, "/get?k=a", "10.9.9.9, 198.51.100.99") // same /24
	if n := len(h.eventsOf(sesh.EventNetworkChanged)); n != 0 {
		t.Fatalf("same network: %d events", n)
	}
	if r := h.getFrom(c, "/get?k=a", "203.0.113.5"); r.body != "1" {
		t.Fatalf("log mode must keep the session: got %q", r.body)
	}
	h.getFrom(c, "/get?k=a", "203.0.113.6")
	if n := len(h.eventsOf(sesh.EventNetworkChanged)); n != 1 {
		t.Fatalf("one hop: got %d events, want 1", n)
	}
}

func TestIPBindingEnforced(t *testing.T) {
	h := newHarness(t, func(c *sesh.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.BindIP = sesh.PolicyEnforce
	})
	c := h.client()
	h.getFrom(c, "/put?k=a&v=1", "198.51.100.7")
	if r := h.getFrom(c, "/get?k=a", "198.51.100.8"); r.body != "1" {
		t.Fatalf("same network: got %q", r.body)
	}
	if r := h.getFrom(c, "/get?k=a", "203.0.113.5"); r.body != "" {
		t.Fatalf("other network with enforcement: got %q, want nothing", r.body)
	}
	if r := h.getFrom(c, "/get?k=a", "198.51.100.9"); r.body != "1" {
		t.Fatalf("owner lost the session: got %q", r.body)
	}
}

func TestLoginAsAnotherUserDropsData(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.get(c, "/put?k=cart&v=anon-cart")
	h.do(c, "POST", "/login?u=alice", "")
	if r := h.get(c, "/get?k=cart"); r.body != "anon-cart" {
		t.Fatalf("anonymous data after login: got %q, want it kept", r.body)
	}
	h.get(c, "/put?k=secret&v=alice-only")
	h.get(c, "/flash/set?m=for-alice")
	h.do(c, "POST", "/login?u=alice", "") // same user again: kept
	if r := h.get(c, "/get?k=secret"); r.body != "alice-only" {
		t.Fatalf("same user re-login: got %q, want data kept", r.body)
	}
	h.do(c, "POST", "/login?u=bob", "")
	for _, path := range []string{"/get?k=secret", "/get?k=cart", "/flash/get"} {
		if r := h.get(c, path); r.body != "" {
			t.Fatalf("bob sees alice's %s: %q", path, r.body)
		}
	}
	if r := h.get(c, "/whoami"); r.body != "bob" {
		t.Fatalf("whoami: got %q", r.body)
	}
}

func TestLogoutWithFailingDeleteStillClearsBrowser(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.do(c, "POST", "/login?u=alice", "")
	h.store.failDelete.Store(true)
	r := h.do(c, "POST", "/logout", "")
	if r.code != http.StatusServiceUnavailable {
		t.Fatalf("logout with failing store: got %d, want 503 (never report success)", r.code)
	}
	if v, ok := cookieValue(r, sesh.DefaultCookieName); !ok || v != "" {
		t.Fatalf("no deletion cookie on failed logout: %q", r.header.Values("Set-Cookie"))
	}
	if got := r.header.Get("Clear-Site-Data"); got != `"cookies"` {
		t.Fatalf("Clear-Site-Data on failed logout: got %q", got)
	}
	if n := h.store.deletes.Load(); n < 2 {
		t.Fatalf("delete attempts: got %d, want a retry", n)
	}
}

func TestUnknownSessionIsReported(t *testing.T) {
	h := newHarness(t, nil)
	raw := h.rawClient()
	for i := range 3 {
		h.do(raw, "GET", "/whoami", sesh.DefaultCookieName+"="+validLooking(fmt.Sprint("guess", i)))
	}
	h.do(raw, "GET", "/whoami", sesh.DefaultCookieName+"=not-even-well-formed")
	h.do(raw, "GET", "/whoami", "")
	evs := h.eventsOf(sesh.EventUnknownSession)
	if len(evs) != 3 {
		t.Fatalf("unknown_session events: got %d, want 3 (one per well-formed guess)", len(evs))
	}
	if evs[0].IP == "" {
		t.Fatal("unknown_session event lacks the client IP needed to throttle")
	}
}

// TestRevokedRememberedDeviceStaysOut: revoking a device's session also
// revokes that device's remember-me token (found by the browser test), and
// only that device's: a revoked browser cannot sign itself back in, and
// gets a plain anonymous session rather than an error.
func TestRevokedRememberedDeviceStaysOut(t *testing.T) {
	h := newHarness(t, nil)
	a := h.client()
	h.do(a, "POST", "/login?u=alice", "")
	c, rc := h.loginRemember("alice")
	d, rd := h.loginRemember("alice")
	var victim string
	ds, _ := h.devices(c)
	for _, dv := range ds {
		if dv.Current {
			victim = dv.Handle
		}
	}
	if r := h.do(a, "POST", "/sessions/"+victim+"/revoke", ""); r.code != 200 {
		t.Fatalf("revoke: got %d", r.code)
	}
	// The revoked browser, cookies and all, is signed out for good.
	if r := h.get(c, "/whoami"); r.body != "anon" {
		t.Fatalf("revoked remembered device: got %q, want anon", r.body)
	}
	if r := h.do(h.rawClient(), "GET", "/whoami", rememberName+"="+rc); r.body != "anon" {
		t.Fatalf("revoked device's token: got %q, want anon", r.body)
	}
	if r := h.get(c, "/put?k=a&v=1"); r.code != 200 {
		t.Fatalf("write from a revoked device: got %d, want 200 (a fresh session)", r.code)
	}
	// The other remembered device keeps its token.
	if r := h.do(h.rawClient(), "GET", "/whoami", rememberName+"="+rd); r.body != "alice" {
		t.Fatalf("another device's token: got %q, want alice", r.body)
	}
	if r := h.get(d, "/whoami"); r.body != "alice" {
		t.Fatalf("another device: got %q", r.body)
	}
}

// TestRevokeOthersKeepsOwnToken: a browser restarted and signed in again
// by its remember-me token leaves its older session behind, under the same
// device. "Sign out everywhere else" ends that session, but not the
// browser's own token. Found by the demo's soak test.
func TestRevokeOthersKeepsOwnToken(t *testing.T) {
	h := newHarness(t, nil)
	old, r1 := h.loginRemember("alice")
	other, ro := h.loginRemember("alice") // another browser
	raw := h.rawClient()
	// Restart: only the token.
	r := h.do(raw, "GET", "/remembered", rememberName+"="+r1)
	s2, ok := sessionCookie(r)
	r2, ok2 := cookieValue(r, rememberName)
	if r.body != "alice true" || !ok || !ok2 {
		t.Fatalf("restore: got %q (cookies %q)", r.body, r.header.Values("Set-Cookie"))
	}
	jar := sesh.DefaultCookieName + "=" + s2 + "; " + rememberName + "=" + r2
	if r := h.do(raw, "POST", "/revoke-others", jar); r.code != 200 || r.body != "2" {
		t.Fatalf("revoke-others: got %d %q, want 200 and 2 sessions ended", r.code, r.body)
	}
	// The older session of this browser and the other browser are out.
	// (The older session's cookie alone: its jar's remember-me cookie is
	// the one rotated above, which shares the new session during the
	// grace period.)
	u, _ := url.Parse(h.srv.URL)
	found := false
	for _, c := range old.Jar.Cookies(u) {
		if c.Name == sesh.DefaultCookieName {
			found = true
			if r := h.do(raw, "GET", "/whoami", c.Name+"="+c.Value); r.body != "anon" {
				t.Fatalf("older session of this browser: got %q, want anon", r.body)
			}
		}
	}
	if !found {
		t.Fatal("no session cookie in the older session's jar")
	}
	if r := h.get(other, "/whoami"); r.body != "anon" {
		t.Fatalf("other browser: got %q, want anon", r.body)
	}
	if r := h.do(raw, "GET", "/whoami", rememberName+"="+ro); r.body != "anon" {
		t.Fatalf("other browser's token: got %q, want anon", r.body)
	}
	// This browser's token still signs it in after its next restart.
	if r := h.do(raw, "GET", "/remembered", rememberName+"="+r2); r.body != "alice true" {
		t.Fatalf("own token after revoke-others: got %q, want alice remembered", r.body)
	}
}
