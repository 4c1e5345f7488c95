package sesh_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memstore"
)

// validLooking returns a well-formed session ID that was never issued.
func validLooking(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestStrictModeNeverAdoptsClientIDs(t *testing.T) {
	h := newHarness(t, nil)
	c := h.rawClient()
	issued := h.do(h.client(), "GET", "/put?k=a&v=1", "")
	real, ok := sessionCookie(issued)
	if !ok {
		t.Fatal("no session cookie issued")
	}
	tampered := []byte(real)
	tampered[10] ^= 1
	cases := []struct{ name, cookie, value string }{
		{"never issued", "", validLooking("planted")},
		{"empty", "__Host-sesh=", ""},
		{"too short", "", real[:len(real)-1]},
		{"too long", "", real + "x"},
		{"padded", "", real + "="},
		{"std alphabet", "", strings.NewReplacer("-", "+", "_", "/").Replace(validLooking("p2")) + "+/"},
		{"bit flipped", "", string(tampered)},
		{"path traversal", "", "../../../../etc/passwd"},
		{"sql", "", "' OR 1=1; --"},
		{"crlf", "", "x%0d%0aflush_all"},
		{"nul", "", "a%00b"},
		{"huge", "", strings.Repeat("A", 8000)},
		{"percent-encoded name", "__%48ost-sesh=" + real, ""},
	}
	before := h.storeCount()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cookie := tc.cookie
			if cookie == "" {
				cookie = sesh.DefaultCookieName + "=" + tc.value
			}
			// Reading stores nothing and sets nothing.
			r := h.do(c, "GET", "/get?k=a", cookie)
			if r.code != 200 || r.body != "" {
				t.Fatalf("read: got %d %q, want 200 and no value", r.code, r.body)
			}
			if _, ok := sessionCookie(r); ok {
				t.Fatal("read with a bad cookie set a cookie")
			}
			// Writing creates a fresh server-made ID, never the client's.
			r = h.do(c, "GET", "/put?k=a&v=2", cookie)
			if r.code != 200 {
				t.Fatalf("write: got %d, want 200", r.code)
			}
			got, ok := sessionCookie(r)
			if !ok {
				t.Fatal("write got no session cookie")
			}
			if got == tc.value || got == real || strings.Contains(r.header.Get("Set-Cookie"), tc.value) && tc.value != "" {
				t.Fatalf("the client's ID was echoed or adopted: %q", got)
			}
		})
	}
	// Each write created exactly one fresh record: never one under a client's ID.
	if got, want := h.storeCount(), before+len(cases); got != want {
		t.Fatalf("store holds %d records, want %d", got, want)
	}
	// The real session was not disturbed by any of it.
	if r := h.do(c, "GET", "/get?k=a", sesh.DefaultCookieName+"="+real); r.body != "1" {
		t.Fatalf("real session: got %q, want 1", r.body)
	}
}

func TestNothingStoredNoCookie(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	for _, path := range []string{"/nothing", "/get?k=a", "/whoami", "/flash/get"} {
		r := h.get(c, path)
		if r.code != 200 {
			t.Fatalf("%s: got %d, want 200", path, r.code)
		}
		if sc := r.header.Values("Set-Cookie"); len(sc) != 0 {
			t.Fatalf("%s: got Set-Cookie %q, want none", path, sc)
		}
	}
	r := h.do(c, "POST", "/logout", "")
	if sc := r.header.Values("Set-Cookie"); len(sc) != 0 {
		t.Fatalf("anonymous logout: got Set-Cookie %q, want none", sc)
	}
	if n := h.store.saves.Load() + h.store.deletes.Load(); n != 0 {
		t.Fatalf("store writes: got %d, want 0", n)
	}
	if n := h.store.loads.Load(); n != 0 {
		t.Fatalf("store loads without a cookie: got %d, want 0", n)
	}
	if n := h.mem.Len(); n != 0 {
		t.Fatalf("store holds %d records, want 0", n)
	}
}

func TestLazyLoad(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.get(c, "/put?k=a&v=1")
	loads := h.store.loads.Load()
	h.get(c, "/nothing")
	if got := h.store.loads.Load(); got != loads {
		t.Fatalf("a handler that never touched the session loaded it %d times", got-loads)
	}
}

func TestCookieAttributes(t *testing.T) {
	h := newHarness(t, nil)
	r := h.get(h.client(), "/put?k=a&v=1")
	sc := r.header.Values("Set-Cookie")
	if len(sc) != 1 {
		t.Fatalf("got %d Set-Cookie headers, want 1", len(sc))
	}
	raw := sc[0]
	for _, want := range []string{"__Host-sesh=", "Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(raw, want) {
			t.Errorf("Set-Cookie %q lacks %q", raw, want)
		}
	}
	for _, bad := range []string{"Domain", "Max-Age", "Expires"} {
		if strings.Contains(raw, bad) {
			t.Errorf("Set-Cookie %q has %s", raw, bad)
		}
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", got)
	}
	if got := r.header.Get("Vary"); got != "Cookie" {
		t.Errorf("Vary: got %q, want Cookie", got)
	}
	v, _ := sessionCookie(r)
	if len(v) != 43 {
		t.Errorf("ID length: got %d, want 43 (256 bits)", len(v))
	}
	// A read-only response that depends on the session still varies on it.
	r = h.get(h.client(), "/get?k=a")
	if len(r.header.Values("Set-Cookie")) != 0 {
		t.Fatal("anonymous read set a cookie")
	}
}

func TestVaryOnSessionRead(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.get(c, "/put?k=a&v=1")
	r := h.get(c, "/get?k=a")
	if got := r.header.Get("Vary"); got != "Cookie" {
		t.Fatalf("Vary: got %q, want Cookie", got)
	}
	if len(r.header.Values("Set-Cookie")) != 0 {
		t.Fatal("read set a cookie")
	}
}

func TestIDsAreUniqueAndOpaque(t *testing.T) {
	h := newHarness(t, nil)
	seen := map[string]bool{}
	for i := range 200 {
		r := h.get(h.client(), "/put?k=a&v="+strconv.Itoa(i))
		v, _ := sessionCookie(r)
		if len(v) != 43 || strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("ID %q is not 43 base64url characters", v)
		}
		if seen[v] {
			t.Fatal("duplicate ID")
		}
		seen[v] = true
	}
	// The store never holds a raw ID as a key.
	es, _, err := h.mem.List(t.Context(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		for id := range seen {
			if strings.Contains(e.Key.String(), id) || strings.Contains(string(e.Record.Data), id) {
				t.Fatal("a raw session ID is visible in the store")
			}
		}
	}
}

func TestRenewKillsOldID(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	r := h.get(c, "/put?k=a&v=1")
	before, _ := sessionCookie(r)
	r = h.do(c, "POST", "/login?u=alice", "")
	after, ok := sessionCookie(r)
	if !ok || after == before {
		t.Fatalf("login did not renew the ID")
	}
	if r := h.get(c, "/whoami"); r.body != "alice" {
		t.Fatalf("whoami after login: got %q", r.body)
	}
	if r := h.get(c, "/get?k=a"); r.body != "1" {
		t.Fatalf("data after renew: got %q, want 1", r.body)
	}
	raw := h.rawClient()
	old := sesh.DefaultCookieName + "=" + before
	if r := h.do(raw, "GET", "/whoami", old); r.body != "anon" {
		t.Fatalf("old ID after renew: got %q, want anon", r.body)
	}
	// A write on the old ID is refused: it must not replace the new cookie.
	r = h.do(raw, "GET", "/put?k=b&v=2", old)
	if _, ok := sessionCookie(r); ok {
		t.Fatal("a write on a renewed ID set a cookie")
	}
	if r.code != http.StatusConflict {
		t.Fatalf("write on renewed ID: got %d, want 409", r.code)
	}
	if got := h.storeCount(); got != 1 {
		t.Fatalf("live records: got %d, want 1", got)
	}
}

func TestDestroyKillsID(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.do(c, "POST", "/login?u=alice", "")
	id, _ := sessionCookie(h.get(c, "/put?k=a&v=1"))
	var jarID string
	for _, ck := range c.Jar.Cookies(mustURL(h.srv.URL)) {
		jarID = ck.Value
	}
	if id == "" {
		id = jarID
	}
	r := h.do(c, "POST", "/logout", "")
	sc := r.header.Get("Set-Cookie")
	if !strings.Contains(sc, "__Host-sesh=;") || !strings.Contains(sc, "Max-Age=0") || !strings.Contains(sc, "Secure") || !strings.Contains(sc, "Path=/") {
		t.Fatalf("deletion cookie: got %q", sc)
	}
	if r := h.do(h.rawClient(), "GET", "/whoami", sesh.DefaultCookieName+"="+jarID); r.body != "anon" {
		t.Fatalf("replayed cookie after logout: got %q, want anon", r.body)
	}
	if got := h.storeCount(); got != 0 {
		t.Fatalf("live records after logout: got %d, want 0", got)
	}
}

func TestParallelWritersLoseNothing(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.get(c, "/put?k=seed&v=1")
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			r := h.get(c, fmt.Sprintf("/put?k=k%d&v=%d", i, i))
			if r.code != 200 {
				t.Errorf("writer %d: got %d", i, r.code)
			}
		})
	}
	wg.Wait()
	for i := range 100 {
		if r := h.get(c, fmt.Sprintf("/get?k=k%d", i)); r.body != strconv.Itoa(i) {
			t.Fatalf("key k%d: got %q, want %d", i, r.body, i)
		}
	}
}

func TestExclusiveIncrementsAreExact(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	if r := h.get(c, "/incr"); r.body != "1" {
		t.Fatalf("first incr: got %q", r.body)
	}
	var wg sync.WaitGroup
	for range 199 {
		wg.Go(func() {
			if r := h.get(c, "/incr"); r.code != 200 {
				t.Errorf("incr: got %d", r.code)
			}
		})
	}
	wg.Wait()
	if r := h.get(c, "/incr"); r.body != "201" {
		t.Fatalf("after 200 parallel increments: got %q, want 201", r.body)
	}
}

func TestInFlightRequestCannotResurrect(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.do(c, "POST", "/login?u=alice", "")
	var id string
	for _, ck := range c.Jar.Cookies(mustURL(h.srv.URL)) {
		id = ck.Value
	}
	cookie := sesh.DefaultCookieName + "=" + id
	done := make(chan resp)
	go func() { done <- h.do(h.rawClient(), "GET", "/slow?k=x&v=1", cookie) }()
	<-h.entered // the slow request has loaded the session
	if r := h.do(h.rawClient(), "POST", "/logout", cookie); r.code != 200 {
		t.Fatalf("logout: got %d", r.code)
	}
	close(h.release)
	r := <-done
	if _, ok := sessionCookie(r); ok {
		t.Fatal("the in-flight request set a session cookie after logout")
	}
	if r.code != http.StatusConflict {
		t.Fatalf("in-flight write after logout: got %d, want 409", r.code)
	}
	if r := h.do(h.rawClient(), "GET", "/whoami", cookie); r.body != "anon" {
		t.Fatalf("old cookie after logout: got %q, want anon", r.body)
	}
	if got := h.storeCount(); got != 0 {
		t.Fatalf("live records: got %d, want 0", got)
	}
}

func TestInFlightRequestDuringRenew(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.get(c, "/put?k=a&v=1")
	var id string
	for _, ck := range c.Jar.Cookies(mustURL(h.srv.URL)) {
		id = ck.Value
	}
	cookie := sesh.DefaultCookieName + "=" + id
	done := make(chan resp)
	go func() { done <- h.do(h.rawClient(), "GET", "/slow?k=x&v=1", cookie) }()
	<-h.entered
	h.do(c, "POST", "/login?u=alice", "")
	close(h.release)
	r := <-done
	if _, ok := sessionCookie(r); ok {
		t.Fatal("the in-flight request replaced the renewed cookie")
	}
	if r := h.get(c, "/whoami"); r.body != "alice" {
		t.Fatalf("renewed session: got %q, want alice", r.body)
	}
	if got := h.storeCount(); got != 1 {
		t.Fatalf("live records: got %d, want exactly 1", got)
	}
}

func TestStoreDownOnLoad(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.do(c, "POST", "/login?u=alice", "")
	h.store.failLoad.Store(true)
	for _, path := range []string{"/whoami", "/put?k=a&v=1", "/incr"} {
		r := h.get(c, path)
		if r.code != http.StatusServiceUnavailable {
			t.Fatalf("%s with store down: got %d, want 503", path, r.code)
		}
		if len(r.header.Values("Set-Cookie")) != 0 {
			t.Fatalf("%s with store down set a cookie", path)
		}
		if strings.Contains(r.body, "10.0.0.1") || strings.Contains(r.body, "refused") {
			t.Fatalf("error body leaks store details: %q", r.body)
		}
	}
	h.store.failLoad.Store(false)
	if r := h.get(c, "/whoami"); r.body != "alice" {
		t.Fatalf("after recovery: got %q, want alice (user was logged out)", r.body)
	}
}

func TestStoreFailsOnCommit(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.get(c, "/put?k=a&v=1")
	h.store.failSave.Store(true)
	r := h.get(c, "/put?k=a&v=2")
	if r.code != http.StatusServiceUnavailable || r.body == "ok" {
		t.Fatalf("commit failure: got %d %q, want 503 without the handler's body", r.code, r.body)
	}
	if len(r.header.Values("Set-Cookie")) != 0 {
		t.Fatal("failed commit set a cookie")
	}
	// A new session that cannot be stored gets no cookie either.
	r = h.get(h.client(), "/put?k=a&v=1")
	if r.code != http.StatusServiceUnavailable || len(r.header.Values("Set-Cookie")) != 0 {
		t.Fatalf("new session with failing store: got %d, cookies %q", r.code, r.header.Values("Set-Cookie"))
	}
	h.store.failSave.Store(false)
	if r := h.get(c, "/get?k=a"); r.body != "1" {
		t.Fatalf("after recovery: got %q, want the last committed 1", r.body)
	}
}

// A commit that fails leaves the pending changes to the next one, which
// applies them to the same record again: nothing is lost, doubled or
// resurrected.
func TestCommitAfterFailedCommit(t *testing.T) {
	for _, clear := range []bool{false, true} {
		t.Run(fmt.Sprintf("clear=%v", clear), func(t *testing.T) {
			h := newHarness(t, nil)
			c := h.client()
			h.get(c, "/put?k=a&v=1")
			h.get(c, "/put?k=c&v=3")
			path, keys := "/commit-retry", "[b c d]"
			if clear {
				path, keys = "/commit-retry?clear=1", "[b d]"
			}
			if r := h.get(c, path); r.code != http.StatusOK || r.body != "true <nil> "+keys {
				t.Fatalf("got %d %q, want 200 %q", r.code, r.body, "true <nil> "+keys)
			}
			want := map[string]string{"a": "", "b": "2", "c": "3", "d": "4"}
			if clear {
				want["c"] = ""
			}
			for k, v := range want {
				if r := h.get(c, "/get?k="+k); r.body != v {
					t.Errorf("%s: got %q, want %q", k, r.body, v)
				}
			}
		})
	}
}

func TestLoginWithFailingDeleteKeepsOldSession(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.get(c, "/put?k=a&v=1")
	h.store.failDelete.Store(true)
	r := h.do(c, "POST", "/login?u=alice", "")
	if r.code != http.StatusServiceUnavailable || len(r.header.Values("Set-Cookie")) != 0 {
		t.Fatalf("login with failing delete: got %d, cookies %q", r.code, r.header.Values("Set-Cookie"))
	}
	// The undo of the new session failed too: it is still stored, for
	// now, under alice.
	if n := h.storeCount(); n != 2 {
		t.Fatalf("records during the outage: got %d, want 2 (old session, undone new one)", n)
	}
	h.store.failDelete.Store(false)
	// The browser keeps its old session, not logged in, with its data.
	if r := h.get(c, "/whoami"); r.body != "anon" {
		t.Fatalf("whoami: got %q, want anon", r.body)
	}
	if r := h.get(c, "/get?k=a"); r.body != "1" {
		t.Fatalf("old session data: got %q, want 1", r.body)
	}
	// The first request after the outage deleted the session the failed
	// login created: no device nobody holds is listed under alice.
	if n := h.storeCount(); n != 1 {
		t.Fatalf("records after recovery: got %d, want 1", n)
	}
	if devs, err := h.m.Sessions(t.Context(), "alice"); err != nil || len(devs) != 0 {
		t.Fatalf("alice's sessions after recovery: %v, %v; want none", devs, err)
	}
	// Once the store is back, login works and kills the old ID.
	if r := h.do(c, "POST", "/login?u=alice", ""); r.code != 200 {
		t.Fatalf("login after recovery: got %d", r.code)
	}
	if r := h.get(c, "/whoami"); r.body != "alice" {
		t.Fatalf("whoami after login: got %q", r.body)
	}
}

func TestServerErrorDropsChanges(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.get(c, "/put?k=x&v=1")
	r := h.get(c, "/status?code=503")
	if r.code != 503 {
		t.Fatalf("got %d", r.code)
	}
	if r := h.get(c, "/get?k=k"); r.body != "" {
		t.Fatalf("change made by a 5xx response was saved: %q", r.body)
	}
	h.get(c, "/status?code=404")
	if r := h.get(c, "/get?k=k"); r.body != "v" {
		t.Fatalf("change made by a 404 response: got %q, want v", r.body)
	}
}

func TestIdleAndAbsoluteTimeouts(t *testing.T) {
	h := newHarness(t, func(c *sesh.Config) {
		c.IdleTimeout = 10 * time.Minute
		c.AbsoluteTimeout = time.Hour
	})
	c := h.client()
	h.do(c, "POST", "/login?u=alice", "")
	h.clock.Advance(9 * time.Minute)
	if r := h.get(c, "/whoami"); r.body != "alice" {
		t.Fatalf("within idle: got %q", r.body)
	}
	h.clock.Advance(10*time.Minute + time.Second)
	if r := h.get(c, "/whoami"); r.body != "anon" {
		t.Fatalf("past idle: got %q, want anon", r.body)
	}
	// Activity every few minutes does not pass the absolute deadline.
	h.do(c, "POST", "/login?u=bob", "")
	for range 12 {
		h.clock.Advance(5 * time.Minute)
		h.get(c, "/whoami")
	}
	if r := h.get(c, "/whoami"); r.body != "anon" {
		t.Fatalf("past absolute: got %q, want anon", r.body)
	}
	// A backwards jump does not bring the session back.
	h.clock.Advance(-2 * time.Hour)
	if r := h.get(c, "/whoami"); r.body != "anon" {
		t.Fatalf("after clock went back: got %q, want anon", r.body)
	}
}

func TestTouchThrottling(t *testing.T) {
	h := newHarness(t, func(c *sesh.Config) {
		c.IdleTimeout = 10 * time.Minute
		c.TouchInterval = time.Minute
	})
	c := h.client()
	h.get(c, "/put?k=a&v=1")
	saves := h.store.saves.Load()
	h.clock.Advance(30 * time.Second)
	h.get(c, "/get?k=a")
	if got := h.store.saves.Load() - saves; got != 0 {
		t.Fatalf("read within the touch interval wrote %d times, want 0", got)
	}
	h.clock.Advance(time.Minute)
	h.get(c, "/get?k=a")
	if got := h.store.saves.Load() - saves; got != 1 {
		t.Fatalf("read past the touch interval wrote %d times, want 1", got)
	}
	// Touches keep an active session alive past the idle timeout.
	for range 5 {
		h.clock.Advance(5 * time.Minute)
		if r := h.get(c, "/get?k=a"); r.body != "1" {
			t.Fatalf("active session expired: got %q", r.body)
		}
	}
}

func TestPerSessionTimeouts(t *testing.T) {
	h := newHarness(t, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("/admin", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		s.Login("root")
		s.SetTimeouts(time.Minute, 5*time.Minute)
	})
	mux.Handle("/", h.routes())
	h.srv.Config.Handler = h.m.Handler(mux)
	c := h.client()
	h.get(c, "/admin")
	h.clock.Advance(50 * time.Second)
	if r := h.get(c, "/whoami"); r.body != "root" {
		t.Fatalf("within short idle: got %q", r.body)
	}
	h.clock.Advance(61 * time.Second)
	if r := h.get(c, "/whoami"); r.body != "anon" {
		t.Fatalf("past the session's own idle timeout: got %q, want anon", r.body)
	}
}

func TestFlashOnce(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.get(c, "/flash/set?m=saved")
	h.get(c, "/get?k=x") // a request that does not read flash keeps it
	if r := h.get(c, "/flash/get"); r.body != "saved" {
		t.Fatalf("first read: got %q, want saved", r.body)
	}
	if r := h.get(c, "/flash/get"); r.body != "" {
		t.Fatalf("second read: got %q, want nothing", r.body)
	}
	// Parallel readers: exactly one sees the message.
	h.get(c, "/flash/set?m=once")
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := 0
	for range 10 {
		wg.Go(func() {
			if r := h.get(c, "/flash/get"); r.body == "once" {
				mu.Lock()
				seen++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if seen != 1 {
		t.Fatalf("parallel readers saw the message %d times, want 1", seen)
	}
}

func TestDuplicateValidCookiesFailClosed(t *testing.T) {
	h := newHarness(t, nil)
	a, b := h.client(), h.client()
	h.do(a, "POST", "/login?u=attacker", "")
	h.do(b, "POST", "/login?u=victim", "")
	var ida, idb string
	for _, ck := range a.Jar.Cookies(mustURL(h.srv.URL)) {
		ida = ck.Value
	}
	for _, ck := range b.Jar.Cookies(mustURL(h.srv.URL)) {
		idb = ck.Value
	}
	cookie := "__Host-sesh=" + ida + "; __Host-sesh=" + idb
	if r := h.do(h.rawClient(), "GET", "/whoami", cookie); r.body != "anon" {
		t.Fatalf("two valid sessions: got %q, want anon", r.body)
	}
	// One valid among garbage is fine.
	cookie = "__Host-sesh=junk; __Host-sesh=" + idb
	if r := h.do(h.rawClient(), "GET", "/whoami", cookie); r.body != "victim" {
		t.Fatalf("one valid session among junk: got %q, want victim", r.body)
	}
	// Thousands of cookies are cheap and harmless.
	var sb strings.Builder
	for i := range 4000 {
		fmt.Fprintf(&sb, "__Host-sesh=%s; ", validLooking(strconv.Itoa(i)))
	}
	loads := h.store.loads.Load()
	if r := h.do(h.rawClient(), "GET", "/whoami", sb.String()); r.code != 200 || r.body != "anon" {
		t.Fatalf("cookie flood: got %d %q", r.code, r.body)
	}
	if n := h.store.loads.Load() - loads; n > 4 {
		t.Fatalf("cookie flood caused %d store loads, want at most 4", n)
	}
}

func TestSizeLimit(t *testing.T) {
	h := newHarness(t, func(c *sesh.Config) { c.MaxSize = 1024 })
	c := h.client()
	h.get(c, "/put?k=a&v=small")
	r := h.get(c, "/put?k=b&v="+strings.Repeat("x", 2000))
	if r.code != http.StatusBadRequest || !strings.Contains(r.body, "too large") {
		t.Fatalf("oversized value: got %d %q", r.code, r.body)
	}
	if r := h.get(c, "/get?k=a"); r.body != "small" {
		t.Fatalf("previous data: got %q, want small", r.body)
	}
}

func TestFlushAndHijackKept(t *testing.T) {
	h := newHarness(t, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		s.Set("streamed", true)
		if err := s.Commit(); err != nil {
			t.Errorf("Commit: %v", err)
		}
		if _, ok := w.(http.Flusher); !ok {
			t.Error("writer is not a Flusher")
		}
		w.Write([]byte("a"))
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush via ResponseController: %v", err)
		}
	})
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Set("h", 1)
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		buf.Flush()
	})
	srv := httptest.NewServer(h.m.Handler(mux))
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if len(res.Header.Values("Set-Cookie")) != 1 {
		t.Fatalf("streamed response: got cookies %q, want 1", res.Header.Values("Set-Cookie"))
	}
	res, err = srv.Client().Get(srv.URL + "/hijack")
	if err != nil {
		t.Fatal(err)
	}
	b := bufio.NewReader(res.Body)
	line, _ := b.ReadString('\n')
	res.Body.Close()
	if line != "hi" {
		t.Fatalf("hijacked body: got %q", line)
	}
}

func TestDetachedSession(t *testing.T) {
	s := sesh.FromContext(t.Context())
	if err := s.Set("a", 1); err == nil {
		t.Fatal("Set outside the middleware: got nil error")
	}
	if _, ok := sesh.Get[int](s, "a"); ok {
		t.Fatal("Get outside the middleware found a value")
	}
	if err := s.Err(); err != sesh.ErrNoMiddleware {
		t.Fatalf("Err: got %v, want ErrNoMiddleware", err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  sesh.Config
	}{
		{"no keys", sesh.Config{}},
		{"host prefix over http", sesh.Config{Keys: testRing(t), Cookie: sesh.CookieConfig{Name: "__Host-x", InsecureHTTP: true}}},
		{"host prefix with domain", sesh.Config{Keys: testRing(t), Cookie: sesh.CookieConfig{Domain: "example.com"}}},
		{"bad name", sesh.Config{Keys: testRing(t), Cookie: sesh.CookieConfig{Name: "a b"}}},
		{"touch above idle", sesh.Config{Keys: testRing(t), IdleTimeout: time.Minute, TouchInterval: time.Hour}},
		{"negative", sesh.Config{Keys: testRing(t), IdleTimeout: -1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := sesh.New(newMem(), tc.cfg); err == nil {
				t.Fatal("got nil error")
			}
		})
	}
}

func TestSweepRemovesExpiredAndReports(t *testing.T) {
	h := newHarness(t, nil)
	for range 5 {
		h.get(h.client(), "/put?k=a&v=1")
	}
	live := h.client()
	h.clock.Advance(sesh.DefaultIdleTimeout - time.Minute)
	h.get(live, "/put?k=a&v=1")
	h.clock.Advance(2 * time.Minute)
	total := 0
	for {
		n, err := h.m.Sweep(t.Context(), 2)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n < 2 {
			break
		}
	}
	if total != 5 {
		t.Fatalf("swept %d records, want 5", total)
	}
	if got := h.mem.Len(); got != 1 {
		t.Fatalf("records left: got %d, want the 1 live one", got)
	}
	if r := h.get(live, "/get?k=a"); r.body != "1" {
		t.Fatalf("live session after sweep: got %q", r.body)
	}
	if n := len(h.eventsOf(sesh.EventExpired)); n == 0 {
		t.Fatal("sweeping reported no expired event")
	}
}

func TestCorruptStoreEntryNeverLocksOut(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.do(c, "POST", "/login?u=alice", "")
	h.store.corruptLoad.Store(true)
	deletes := h.store.deletes.Load()
	r := h.get(c, "/whoami")
	h.store.corruptLoad.Store(false)
	if r.code != 200 || r.body != "anon" {
		t.Fatalf("unparseable store entry: got %d %q, want 200 anon (not a 5xx)", r.code, r.body)
	}
	if h.store.deletes.Load() == deletes {
		t.Fatal("the unparseable entry was not deleted")
	}
	if len(h.eventsOf(sesh.EventCorrupt)) == 0 {
		t.Fatal("no corrupt event")
	}
	// A fresh session works at once.
	if r := h.get(c, "/put?k=a&v=1"); r.code != 200 {
		t.Fatalf("new session after corruption: got %d", r.code)
	}
}

// TestRequestContext: the context the middleware gives next carries the
// session, keeps the request context's values, and passes its
// cancellation on to contexts derived from it.
func TestRequestContext(t *testing.T) {
	m := newMemManager(t)
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(t.Context(), key{}, "kept"))
	var (
		derived context.Context
		stop    context.CancelFunc
		s       *sesh.Session
	)
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s = sesh.FromContext(r.Context())
		derived, stop = context.WithTimeout(r.Context(), time.Hour)
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(parent, "GET", "https://example.com/", nil))
	defer stop()
	if s == nil || sesh.FromContext(derived) != s {
		t.Fatalf("FromContext of a derived context = %p, want the request's session %p", sesh.FromContext(derived), s)
	}
	if v := derived.Value(key{}); v != "kept" {
		t.Errorf("the request context's value = %v, want kept", v)
	}
	if derived.Err() != nil {
		t.Fatalf("derived context done before the request's: %v", derived.Err())
	}
	cancel()
	<-derived.Done()
	if !errors.Is(derived.Err(), context.Canceled) {
		t.Errorf("derived context after the request's was cancelled: %v", derived.Err())
	}
}

// TestSessionHeadersMergeWithHandlers: a new session's cookie headers go
// along with what the handler set itself: its own cookies and Vary
// fields are kept, its Cache-Control is made no-store.
func TestSessionHeadersMergeWithHandlers(t *testing.T) {
	m := newMemManager(t)
	for _, tc := range []struct {
		name       string
		set        map[string]string
		wantVary   []string
		wantCookie int
	}{
		{"none", nil, []string{"Cookie"}, 1},
		{"vary", map[string]string{"Vary": "Accept"}, []string{"Accept", "Cookie"}, 1},
		{"cache-control", map[string]string{"Cache-Control": "public, max-age=60"}, []string{"Cookie"}, 1},
		{"cookie", map[string]string{"Set-Cookie": "theme=dark"}, []string{"Cookie"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.set {
					w.Header().Set(k, v)
				}
				if err := sesh.FromContext(r.Context()).Set("a", 1); err != nil {
					t.Fatal(err)
				}
				w.Header().Add("Vary", "Accept-Language") // after the session's commit is still possible
				io.WriteString(w, "ok")
			})).ServeHTTP(w, httptest.NewRequest("GET", "https://example.com/", nil))
			h := w.Result().Header
			if got := h.Values("Set-Cookie"); len(got) != tc.wantCookie || !strings.HasPrefix(got[len(got)-1], "__Host-sesh=") && !strings.HasPrefix(got[0], "__Host-sesh=") {
				t.Errorf("Set-Cookie %q, want %d with the session's", got, tc.wantCookie)
			}
			if got := h.Values("Cache-Control"); len(got) != 1 || got[0] != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			vary := strings.Join(h.Values("Vary"), ",")
			for _, f := range append(tc.wantVary, "Accept-Language") {
				if !strings.Contains(vary, f) {
					t.Errorf("Vary %q lacks %s", vary, f)
				}
			}
			if strings.Count(vary, "Cookie") != 1 {
				t.Errorf("Vary %q names Cookie %d times", vary, strings.Count(vary, "Cookie"))
			}
		})
	}
}

// TestManyValuesInOneRequest: values of every kind set in one request,
// enough to outgrow the buffer scalars are encoded into, some overwritten
// and one deleted, read back in the same request and in the next.
func TestManyValuesInOneRequest(t *testing.T) {
	m := newMemManager(t)
	want := map[string]any{}
	for i := range 30 {
		k := fmt.Sprintf("k%02d", i)
		switch i % 4 {
		case 0:
			want[k] = i * 1000003
		case 1:
			want[k] = i%3 == 0
		case 2:
			want[k] = strings.Repeat("v", i)
		default:
			want[k] = fmt.Sprintf("<not plain \"%d\">", i) // takes encoding/json
		}
	}
	check := func(t *testing.T, s *sesh.Session) {
		t.Helper()
		for k, v := range want {
			var got any
			switch v.(type) {
			case int:
				got, _ = sesh.Get[int](s, k)
			case bool:
				got, _ = sesh.Get[bool](s, k)
			default:
				got, _ = sesh.Get[string](s, k)
			}
			if got != v {
				t.Errorf("%s = %v, want %v", k, got, v)
			}
		}
		if s.Has("gone") {
			t.Error("deleted key still there")
		}
	}
	var cookie string
	serve := func(f func(s *sesh.Session)) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "https://example.com/", nil)
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f(sesh.FromContext(r.Context()))
		})).ServeHTTP(w, r)
		for _, c := range w.Result().Cookies() {
			cookie = c.Name + "=" + c.Value
		}
	}
	serve(func(s *sesh.Session) {
		s.Set("gone", 1)
		n := 0
		for k, v := range want {
			if err := s.Set(k, "overwritten"); err != nil {
				t.Fatal(err)
			}
			if err := s.Set(k, v); err != nil {
				t.Fatal(err)
			}
			if n++; n == len(want)/2 {
				if err := s.Commit(); err != nil { // the rest are set on a committed record
					t.Fatal(err)
				}
			}
		}
		s.Delete("gone")
		check(t, s)
	})
	serve(func(s *sesh.Session) { check(t, s) })
}

// newMemManager returns a manager on a fresh memory store with default
// configuration.
func newMemManager(t *testing.T) *sesh.Manager {
	t.Helper()
	m, err := sesh.New(memstore.New(), sesh.Config{Keys: testRing(t), Logger: suiteLogger})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
