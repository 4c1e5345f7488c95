package sesh_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/seal"
)

// Fuzz targets that send attacker bytes through the public API: cookies
// through the middleware, and session handles to the revoke calls. Each
// input runs against a fresh store whose content the test knows, and
// placeholders in the input ({tok}, {sid}, ...) stand for the values the
// store issued, so that the fuzzer mutates around them.

// fuzzApp is a manager on a fresh memstore at a fixed time.
type fuzzApp struct {
	store *memstore.Store
	m     *sesh.Manager
	h     http.Handler
	clk   *clock
}

func newFuzzApp(t testing.TB, ring *seal.Ring) *fuzzApp {
	t.Helper()
	a := &fuzzApp{clk: newClock()}
	a.store = memstore.New(memstore.WithClock(a.clk.Now))
	m, err := sesh.New(a.store, sesh.Config{Keys: ring, Now: a.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	a.m = m
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		s.Login(r.FormValue("u"))
		if r.FormValue("remember") != "" {
			s.Remember()
		}
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		fmt.Fprintf(w, "%s %v", s.User(), s.Remembered())
	})
	a.h = m.Handler(mux)
	return a
}

// serve sends one request with the raw Cookie header, if any.
func (a *fuzzApp) serve(method, target, cookie string) *http.Response {
	req := httptest.NewRequest(method, "https://example.com"+target, nil)
	if cookie != "" {
		req.Header["Cookie"] = []string{cookie}
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	return rec.Result()
}

// login signs user in on a new device and returns the cookies set.
func (a *fuzzApp) login(t testing.TB, user string, remember bool) map[string]string {
	t.Helper()
	target := "/login?u=" + user
	if remember {
		target += "&remember=1"
	}
	res := a.serve("POST", target, "")
	set := map[string]string{}
	for _, c := range res.Cookies() {
		set[c.Name] = c.Value
	}
	if res.StatusCode != 200 || set[sesh.DefaultCookieName] == "" || remember && set[rememberName] == "" {
		t.Fatalf("login: got %d, cookies %q", res.StatusCode, res.Header.Values("Set-Cookie"))
	}
	return set
}

// live counts the live records of each kind.
func (a *fuzzApp) live(t testing.TB) (sessions, tokens int) {
	t.Helper()
	cursor := ""
	for {
		es, next, err := a.store.List(context.Background(), cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			switch e.Record.Kind {
			case sesh.KindSession:
				sessions++
			case sesh.KindToken:
				tokens++
			}
		}
		if next == "" {
			return sessions, tokens
		}
		cursor = next
	}
}

// canonical reports whether s is the canonical unpadded base64url of n
// bytes, as every ID and token part sesh issues is.
func canonical(s string, n int) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == n && len(s) == base64.RawURLEncoding.EncodedLen(n)
}

// presentedIDs returns what the middleware takes from a Cookie header:
// the first four distinct unquoted session cookies holding a canonical ID.
func presentedIDs(req *http.Request) []string {
	var ids []string
	for _, c := range req.Cookies() {
		if c.Name == sesh.DefaultCookieName && !c.Quoted && canonical(c.Value, 32) && !slices.Contains(ids, c.Value) && len(ids) < 4 {
			ids = append(ids, c.Value)
		}
	}
	return ids
}

// FuzzRememberCookie sends arbitrary Cookie headers, built around a real
// session and remember-me token of alice, through the middleware to a
// handler that only reads the session. It checks that:
//
//   - the response is never 5xx;
//   - alice's session is restored from the remember cookie only when that
//     cookie is exactly the token issued, with a new session and a rotated
//     token;
//   - a well-formed cookie with alice's selector and another validator is
//     theft: her token and sessions are revoked;
//   - anything else creates no record and sets no cookie but the deletion
//     of a bad remember cookie.
func FuzzRememberCookie(f *testing.F) {
	ring := testRing(f)
	for _, s := range []string{
		"{R}={tok}",
		"{R}={sel}.{val}",
		"{S}={sid}; {R}={tok}",
		"{S}=" + validLooking("x") + "; {R}={tok}",
		"{R}={sel}." + validLooking("other"),
		"{R}={sel}.{val}=",
		"{R}=\"{tok}\"",
		"{R}={tok}; {R}=junk",
		"{R}=junk; {R}={tok}",
		"{R}={val}.{sel}",
		"{R}=.",
		"{R}=",
		"{S}={tok}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		a := newFuzzApp(t, ring)
		set := a.login(t, "alice", true)
		sid, tok := set[sesh.DefaultCookieName], set[rememberName]
		sel, val, _ := strings.Cut(tok, ".")
		header = strings.NewReplacer("{tok}", tok, "{sel}", sel, "{val}", val, "{sid}", sid,
			"{R}", rememberName, "{S}", sesh.DefaultCookieName).Replace(header)
		before := a.store.Len()

		res := a.serve("GET", "/whoami", header)
		if res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
		b, _ := io.ReadAll(res.Body)
		body := string(b)
		req := httptest.NewRequest("GET", "/", nil)
		req.Header["Cookie"] = []string{header}
		rc, err := req.Cookie(rememberName)
		presented := ""
		if err == nil {
			presented = rc.Value
		}
		set = map[string]string{}
		for _, c := range res.Cookies() {
			if c.MaxAge >= 0 {
				set[c.Name] = c.Value
			}
		}
		sessions, tokens := a.live(t)

		if body == "alice true" {
			if presented != tok {
				t.Fatalf("restored from remember cookie %q, not the token issued", presented)
			}
			if v := set[sesh.DefaultCookieName]; v == sid || !canonical(v, 32) {
				t.Fatalf("restored session: session cookie %q", v)
			}
			if v := set[rememberName]; v == tok || v == "" {
				t.Fatalf("restored session: remember cookie %q, want a rotated token", v)
			}
			if n := a.store.Len(); n != before+1 {
				t.Fatalf("restored session: %d records, want %d", n, before+1)
			}
			return
		}
		if len(set) != 0 {
			t.Fatalf("not restored, but cookies set: %q", res.Header.Values("Set-Cookie"))
		}
		if n := a.store.Len(); n > before {
			t.Fatalf("not restored, but %d records, %d before", n, before)
		}
		if body != " false" && body != "alice false" {
			t.Fatalf("body %q", body)
		}
		// The middleware finds session cookies by exact name, where
		// net/http trims CR, LF and white space before the "=" (which no
		// browser sends) and ignores a header of over 3000 cookies: the
		// rest is modelled on the other headers.
		if strings.ContainsAny(header, "\r\n") || strings.Contains(header, " =") || strings.Contains(header, "\t=") || strings.Count(header, ";") >= 3000 {
			return
		}
		if slices.Contains(presentedIDs(req), sid) {
			if body != "alice false" || sessions != 1 || tokens != 1 {
				t.Fatalf("alice's session cookie: got %q, %d sessions, %d tokens", body, sessions, tokens)
			}
			return
		}
		if body != " false" {
			t.Fatalf("no session cookie of alice: got %q", body)
		}
		s, v, ok := strings.Cut(presented, ".")
		switch {
		case presented == tok:
			t.Fatalf("the remember cookie is the token, but the session was not restored")
		case ok && s == sel && v != val && canonical(v, 32):
			if sessions != 0 || tokens != 0 {
				t.Fatalf("stale validator: %d sessions and %d tokens left, want 0 and 0", sessions, tokens)
			}
		default:
			if sessions != 1 || tokens != 1 {
				t.Fatalf("bad remember cookie %q: %d sessions and %d tokens, want 1 and 1", presented, sessions, tokens)
			}
		}
		if err == nil && !deletes(res, rememberName) {
			t.Fatalf("a bad remember cookie was not deleted: %q", res.Header.Values("Set-Cookie"))
		}
	})
}

// deletes reports whether res deletes the named cookie.
func deletes(res *http.Response, name string) bool {
	for _, c := range res.Cookies() {
		if c.Name == name && c.MaxAge < 0 && c.Value == "" {
			return true
		}
	}
	return false
}

// FuzzRevokeHandle sends arbitrary handles, built around the real handles
// of alice's two devices ({a1}, {a2}, the second remembered) and bob's
// ({b}), to Manager.Revoke on behalf of alice or bob, and to the
// administrator's FindSession and RevokeSession. A handle ends a session
// only if it is exactly the handle of a live session of that user (any
// user, for the administrator), and then only that session and its
// device's remember-me token; anything else is ErrNoSuchSession and
// changes nothing.
func FuzzRevokeHandle(f *testing.F) {
	ring := testRing(f)
	for _, s := range []string{"{a1}", "{a2}", "{b}", "{a1}{a2}", "{a1} ", "{A1}", "", "revoke-others", "../{b}", strings.Repeat("0", 24)} {
		for op := range uint8(3) {
			f.Add(s, op)
		}
	}
	f.Fuzz(func(t *testing.T, handle string, op uint8) {
		a := newFuzzApp(t, ring)
		ctx := context.Background()
		a.login(t, "alice", false)
		a.clk.Advance(time.Second)
		a.login(t, "alice", true)
		a.login(t, "bob", false)
		handles := func(user string) []string {
			devs, err := a.m.Sessions(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			var hs []string
			for _, d := range devs {
				hs = append(hs, d.Handle)
			}
			return hs
		}
		alice, bob := handles("alice"), handles("bob")
		if len(alice) != 2 || len(bob) != 1 {
			t.Fatalf("setup: %d sessions of alice, %d of bob", len(alice), len(bob))
		}
		a1, a2, b := alice[1], alice[0], bob[0] // most recent first
		owner := map[string]string{a1: "alice", a2: "alice", b: "bob"}
		handle = strings.NewReplacer("{a1}", a1, "{a2}", a2, "{b}", b, "{A1}", strings.ToUpper(a1)).Replace(handle)
		_, tokensBefore := a.live(t)

		var err error
		want := owner[handle]
		switch op % 3 {
		case 0, 1:
			user := [2]string{"alice", "bob"}[op%3]
			if want != user {
				want = ""
			}
			err = a.m.Revoke(ctx, user, handle)
		case 2:
			info, ferr := a.m.FindSession(ctx, handle)
			if (ferr == nil) != (want != "") || ferr == nil && (info.Handle != handle || info.User != want) {
				t.Fatalf("FindSession(%q): got %+v, %v; owner %q", handle, info, ferr, want)
			}
			err = a.m.RevokeSession(ctx, handle)
		}
		if want == "" {
			if !errors.Is(err, sesh.ErrNoSuchSession) {
				t.Fatalf("revoke %q: got %v, want ErrNoSuchSession", handle, err)
			}
		} else if err != nil {
			t.Fatalf("revoke %q: %v", handle, err)
		}
		after := append(handles("alice"), handles("bob")...)
		for h, user := range owner {
			if gone := !slices.Contains(after, h); gone != (h == handle && want != "") {
				t.Fatalf("revoke %q as op %d: session of %s gone=%v", handle, op%3, user, gone)
			}
		}
		_, tokens := a.live(t)
		if wantTokens := tokensBefore - btoi(want != "" && handle == a2); tokens != wantTokens {
			t.Fatalf("revoke %q: %d remember-me tokens, want %d", handle, tokens, wantTokens)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
