package sesh_test

// Tests added with docs/SECURITY.md for rows of ATTACKS.md (A…) and
// CHECKLIST.md (CL …) that had no focused test. Each test names its rows.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/seal"
)

// xSend sends a request with an optional urlencoded body and header
// pairs, recording issued cookies for the suite's log check.
func xSend(h *harness, c *http.Client, method, path, body string, hdr ...string) resp {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	recordIssued(res)
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, string(b), res.Header}
}

// xJarSession returns the session cookie value in c's jar.
func xJarSession(h *harness, c *http.Client) string {
	h.t.Helper()
	for _, ck := range c.Jar.Cookies(mustURL(h.srv.URL)) {
		if ck.Name == sesh.DefaultCookieName {
			return ck.Value
		}
	}
	h.t.Fatal("no session cookie in the jar")
	return ""
}

// xOnlyEntry returns the single live record of the harness's store.
func xOnlyEntry(h *harness) sesh.Entry {
	h.t.Helper()
	es, _, err := h.mem.List(h.t.Context(), "", 100)
	if err != nil || len(es) != 1 {
		h.t.Fatalf("store listing: %v, %d entries, want 1", err, len(es))
	}
	return es[0]
}

// xReplaceData overwrites the Data of the record under e.Key.
func xReplaceData(h *harness, e sesh.Entry, data []byte) {
	h.t.Helper()
	rec := e.Record
	rec.Data = data
	rec.Version++
	if err := h.mem.Save(h.t.Context(), e.Key, rec, e.Record.Version); err != nil {
		h.t.Fatal(err)
	}
}

// xServe mounts extra routes before the probe app's.
func xServe(h *harness, extra func(mux *http.ServeMux)) {
	mux := http.NewServeMux()
	extra(mux)
	mux.Handle("/", h.routes())
	h.srv.Config.Handler = h.m.Handler(mux)
}

// A3, CL 1: a session ID in the query, a form body or another header is
// never used, never promoted into the cookie, never authenticated.
func TestIDNeverTakenFromURLOrForm(t *testing.T) {
	h := newHarness(t, nil)
	attacker := h.client()
	h.get(attacker, "/put?k=a&v=planted")
	x := xJarSession(h, attacker)
	raw := h.rawClient()
	names := []string{"sid", "session", "sesh", sesh.DefaultCookieName}
	var q []string
	for _, n := range names {
		q = append(q, n+"="+x)
	}
	params := strings.Join(q, "&")

	r := xSend(h, raw, "GET", "/get?k=a&"+params, "", "X-Session-ID", x, "Authorization", "Bearer "+x)
	if r.body != "" || len(r.header.Values("Set-Cookie")) != 0 {
		t.Fatalf("read with the ID outside the cookie: got %q, cookies %q", r.body, r.header.Values("Set-Cookie"))
	}
	r = xSend(h, raw, "POST", "/login?u=alice&"+params, params, "X-Session-ID", x, "Authorization", "Bearer "+x)
	got, ok := sessionCookie(r)
	if r.code != 200 || !ok || got == x {
		t.Fatalf("login: got %d, cookie %q (planted %q)", r.code, got, x)
	}
	if strings.Contains(strings.Join(r.header.Values("Set-Cookie"), "\n"), x) {
		t.Fatal("the planted ID was echoed in Set-Cookie")
	}
	// The attacker's session was neither logged in nor changed.
	if r := h.get(attacker, "/whoami"); r.body != "anon" {
		t.Fatalf("planted session after the victim's login: got %q, want anon", r.body)
	}
	if r := h.get(attacker, "/get?k=a"); r.body != "planted" {
		t.Fatalf("planted session data: got %q, want planted", r.body)
	}
}

// A1, CL 9: a well-formed never-issued ID, and an expired one, are never
// adopted, even at login; the login gets a fresh server-made ID.
func TestPlantedOrExpiredIDNeverAdopted(t *testing.T) {
	h := newHarness(t, func(c *sesh.Config) { c.IdleTimeout = 10 * time.Minute })
	old := h.client()
	h.get(old, "/put?k=a&v=1")
	expired := xJarSession(h, old)
	h.clock.Advance(11 * time.Minute)
	raw := h.rawClient()
	for name, id := range map[string]string{"never issued": validLooking("planted-login"), "expired": expired} {
		t.Run(name, func(t *testing.T) {
			cookie := sesh.DefaultCookieName + "=" + id
			r := h.do(raw, "POST", "/login?u=alice", cookie)
			got, ok := sessionCookie(r)
			if r.code != 200 || !ok || got == id {
				t.Fatalf("login with a %s ID: got %d, cookie %q", name, r.code, got)
			}
			if r := h.do(raw, "GET", "/whoami", cookie); r.body != "anon" {
				t.Fatalf("the %s ID after login: got %q, want anon", name, r.body)
			}
			if r := h.do(raw, "GET", "/whoami", sesh.DefaultCookieName+"="+got); r.body != "alice" {
				t.Fatalf("the issued ID: got %q, want alice", r.body)
			}
		})
	}
}

// A25, A28, CL 14: malformed IDs (path, protocol and SQL metacharacters,
// overlong values) are refused before any store call.
func TestMalformedIDsNeverReachStore(t *testing.T) {
	h := newHarness(t, nil)
	raw := h.rawClient()
	before := h.storeCount()
	for _, v := range []string{
		"../../../../tmp/x", "..%2f..%2fx", `a\b`, "/etc/passwd", "x%00y", "x%0d%0aflush_all",
		"a b", "*", "session:other", "' OR '1'='1", strings.Repeat("A", 300), strings.Repeat("A", 4096),
		strings.Repeat("A", 42), strings.Repeat("A", 44),
	} {
		loads := h.store.loads.Load()
		r := h.do(raw, "GET", "/whoami", sesh.DefaultCookieName+"="+v)
		if r.code != 200 || r.body != "anon" {
			t.Errorf("cookie %.40q: got %d %q, want 200 anon", v, r.code, r.body)
		}
		if n := h.store.loads.Load() - loads; n != 0 {
			t.Errorf("cookie %.40q reached the store (%d loads)", v, n)
		}
	}
	// A well-formed ID costs one lookup, under its hash.
	loads := h.store.loads.Load()
	h.do(raw, "GET", "/whoami", sesh.DefaultCookieName+"="+validLooking("well-formed"))
	if n := h.store.loads.Load() - loads; n != 1 {
		t.Errorf("well-formed unknown ID: %d loads, want 1", n)
	}
	if got := h.storeCount(); got != before {
		t.Errorf("store holds %d records, want %d", got, before)
	}
}

// A30, A15: a stored record that does not open (garbage, truncated,
// tampered, oversized) is treated as absent: 200 anonymous, record
// deleted, security event, and the next write gets a fresh session.
func TestCorruptRecordTreatedAsAbsent(t *testing.T) {
	const maxSize = 4096
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"garbage", func([]byte) []byte { return []byte("not a sealed record") }},
		{"half", func(d []byte) []byte { return bytes.Clone(d[:len(d)/2]) }},
		{"tag flipped", func(d []byte) []byte { d = bytes.Clone(d); d[len(d)-1] ^= 1; return d }},
		{"empty", func([]byte) []byte { return []byte{} }},
		{"oversized", func([]byte) []byte { return bytes.Repeat([]byte{1}, maxSize+seal.Overhead+1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *sesh.Config) { c.MaxSize = maxSize })
			c := h.client()
			h.do(c, "POST", "/login?u=alice", "")
			old := xJarSession(h, c)
			e := xOnlyEntry(h)
			xReplaceData(h, e, tc.damage(e.Record.Data))
			for i := range 2 { // never a lasting error for that user
				r := h.get(c, "/whoami")
				if r.code != 200 || r.body != "anon" {
					t.Fatalf("request %d on a corrupt record: got %d %q, want 200 anon", i, r.code, r.body)
				}
			}
			if n := len(h.eventsOf(sesh.EventCorrupt)); n != 1 {
				t.Errorf("corrupt_record events: got %d, want 1", n)
			}
			if _, err := h.mem.Load(t.Context(), e.Key); !errors.Is(err, sesh.ErrNotFound) {
				t.Errorf("corrupt record after the request: got %v, want it deleted", err)
			}
			r := h.get(c, "/put?k=a&v=1")
			if got, ok := sessionCookie(r); r.code != 200 || !ok || got == old {
				t.Fatalf("write after a corrupt record: got %d, cookie %q", r.code, got)
			}
		})
	}
}

// A59: a record that authenticates but whose content is of an unknown
// format version (or undecodable) gives a fresh session and an event,
// never a panic or an error.
func TestUnknownRecordFormatTreatedAsAbsent(t *testing.T) {
	for name, pt := range map[string][]byte{
		"format 0":         {0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0},
		"format 2":         {2, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0},
		"format 1, cut":    {1, 1},
		"empty plaintext":  {},
		"json, not binary": []byte(`{"user":"admin"}`),
	} {
		t.Run(name, func(t *testing.T) {
			ring := testRing(t)
			h := newHarness(t, func(c *sesh.Config) { c.Keys = ring })
			c := h.client()
			h.do(c, "POST", "/login?u=alice", "")
			e := xOnlyEntry(h)
			data, err := ring.Box("session").Seal(nil, pt, e.Key[:])
			if err != nil {
				t.Fatal(err)
			}
			xReplaceData(h, e, data)
			if r := h.get(c, "/whoami"); r.code != 200 || r.body != "anon" {
				t.Fatalf("got %d %q, want 200 anon", r.code, r.body)
			}
			if n := len(h.eventsOf(sesh.EventCorrupt)); n != 1 {
				t.Errorf("corrupt_record events: got %d, want 1", n)
			}
			if got := h.storeCount(); got != 0 {
				t.Errorf("records: got %d, want the undecodable one deleted", got)
			}
		})
	}
}

// xSpyCodec counts Decode calls.
type xSpyCodec struct {
	sesh.JSONCodec
	decodes atomic.Int64
}

func (c *xSpyCodec) Decode(b []byte, v any) error {
	c.decodes.Add(1)
	return c.JSONCodec.Decode(b, v)
}

// A14: the codec never sees bytes that were not authenticated: random
// and tampered cookies, and a tampered record, decode nothing.
func TestCodecNeverSeesUnauthenticatedInput(t *testing.T) {
	codec := &xSpyCodec{}
	h := newHarness(t, func(c *sesh.Config) { c.Codec = codec })
	c := h.client()
	h.get(c, "/put?k=a&v=1")
	if r := h.get(c, "/get?k=a"); r.body != "1" || codec.decodes.Load() != 1 {
		t.Fatalf("sanity: got %q with %d decodes, want 1 and 1", r.body, codec.decodes.Load())
	}
	real := xJarSession(h, c)
	raw := h.rawClient()
	var b [32]byte
	for i := range 200 {
		rand.Read(b[:])
		v := base64.RawURLEncoding.EncodeToString(b[:])
		if i%2 == 1 { // one character of the real ID changed
			j, c := i%42, byte('A')
			if real[j] == c {
				c = 'B'
			}
			v = real[:j] + string(c) + real[j+1:]
		}
		if r := h.do(raw, "GET", "/get?k=a", sesh.DefaultCookieName+"="+v); r.code != 200 || r.body != "" {
			t.Fatalf("cookie %q: got %d %q", v, r.code, r.body)
		}
	}
	xReplaceData(h, xOnlyEntry(h), bytes.Repeat([]byte("A"), 200))
	if r := h.get(c, "/get?k=a"); r.body != "" {
		t.Fatalf("tampered record: got %q, want nothing", r.body)
	}
	if n := codec.decodes.Load(); n != 1 {
		t.Fatalf("codec Decode calls: got %d, want 1 (only the sanity check)", n)
	}
}

// A21: cookie attributes come from the configuration, never from the
// request: forwarded headers claiming another scheme or host change
// nothing, over TLS or plain HTTP, and Partitioned is off by default.
func TestCookieAttributesIgnoreForwardedHeaders(t *testing.T) {
	spoof := []string{"X-Forwarded-Proto", "http", "X-Forwarded-Host", "evil.example",
		"Forwarded", "proto=http;host=evil.example", "X-Forwarded-Ssl", "off"}
	check := func(t *testing.T, sc []string, name string, secure bool) {
		t.Helper()
		if len(sc) != 1 || !strings.HasPrefix(sc[0], name+"=") {
			t.Fatalf("Set-Cookie: got %q, want one %s cookie", sc, name)
		}
		for _, want := range []string{"Path=/", "HttpOnly", "SameSite=Lax"} {
			if !strings.Contains(sc[0], want) {
				t.Errorf("Set-Cookie %q lacks %s", sc[0], want)
			}
		}
		for _, bad := range []string{"Domain", "Partitioned", "evil", "Max-Age", "Expires"} {
			if strings.Contains(sc[0], bad) {
				t.Errorf("Set-Cookie %q has %s", sc[0], bad)
			}
		}
		if got := strings.Contains(sc[0], "; Secure"); got != secure {
			t.Errorf("Set-Cookie %q: Secure is %v, want %v", sc[0], got, secure)
		}
	}
	h := newHarness(t, nil)
	r := xSend(h, h.client(), "GET", "/put?k=a&v=1", "", spoof...)
	check(t, r.header.Values("Set-Cookie"), sesh.DefaultCookieName, true)

	// Plain HTTP claiming https, and claiming http: Secure either way.
	plain := httptest.NewServer(h.m.Handler(h.routes()))
	defer plain.Close()
	for _, proto := range []string{"https", "http"} {
		req, _ := http.NewRequest("GET", plain.URL+"/put?k=a&v=1", nil)
		req.Header.Set("X-Forwarded-Proto", proto)
		res, err := plain.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		recordIssued(res)
		check(t, res.Header.Values("Set-Cookie"), sesh.DefaultCookieName, true)
	}

	// Development mode stays insecure whatever a header claims.
	dev := newHarness(t, func(c *sesh.Config) { c.Cookie.InsecureHTTP = true })
	r = xSend(dev, dev.client(), "GET", "/put?k=a&v=1", "", "X-Forwarded-Proto", "https", "Forwarded", "proto=https")
	check(t, r.header.Values("Set-Cookie"), sesh.DefaultInsecureName, false)
}

// A8, A57: the manager enforces idle and absolute deadlines itself, even
// over a store that returns records it should consider expired (cleanup
// lag, or a store clock behind the application's).
func TestManagerChecksExpiryWhateverTheStore(t *testing.T) {
	clk := newClock()
	frozen := clk.Now()
	store := memstore.New(memstore.WithClock(func() time.Time { return frozen }))
	m, err := sesh.New(store, sesh.Config{Keys: testRing(t), Now: clk.Now,
		IdleTimeout: 10 * time.Minute, AbsoluteTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Set("k", "v")
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		v, _ := sesh.Get[string](sesh.FromContext(r.Context()), "k")
		io.WriteString(w, v)
	})
	h := m.Handler(mux)

	var b browser
	b.do(h, "GET", "/put")
	clk.Advance(11 * time.Minute)
	if got := b.do(h, "GET", "/get").Body.String(); got != "" {
		t.Fatalf("past the idle deadline, store still serving the record: got %q, want nothing", got)
	}

	// Absolute: activity every 5 minutes, past one hour.
	var b2 browser
	b2.do(h, "GET", "/put")
	for range 11 {
		clk.Advance(5 * time.Minute)
		if got := b2.do(h, "GET", "/get").Body.String(); got != "v" {
			t.Fatalf("active session within the absolute deadline: got %q", got)
		}
	}
	clk.Advance(6 * time.Minute)
	if got := b2.do(h, "GET", "/get").Body.String(); got != "" {
		t.Fatalf("past the absolute deadline: got %q, want nothing", got)
	}
}

// A57: when the clock goes back beyond the skew tolerance (5 minutes), a
// record last written "in the future" is dead, and stays dead when the
// clock comes forward again; small skew is tolerated.
func TestClockGoingBackEndsSession(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.do(c, "POST", "/login?u=alice", "")
	h.clock.Advance(-time.Minute)
	if r := h.get(c, "/whoami"); r.body != "alice" {
		t.Fatalf("one minute of skew: got %q, want alice", r.body)
	}
	h.clock.Advance(-9 * time.Minute)
	if r := h.get(c, "/whoami"); r.body != "anon" {
		t.Fatalf("ten minutes back: got %q, want anon", r.body)
	}
	if n := len(h.eventsOf(sesh.EventExpired)); n != 1 {
		t.Errorf("expired events: got %d, want 1", n)
	}
	h.clock.Advance(10 * time.Minute)
	if r := h.get(c, "/whoami"); r.body != "anon" {
		t.Fatalf("clock forward again: got %q, want anon", r.body)
	}
	if got := h.storeCount(); got != 0 {
		t.Fatalf("records: got %d, want 0", got)
	}
}

// A44 (with "password" revocation), CL 21–22: a request in flight on a
// session revoked by a password change elsewhere cannot write it back.
func TestInFlightRequestCannotResurrectAfterPasswordChange(t *testing.T) {
	h := newHarness(t, nil)
	a, b := h.client(), h.client()
	h.do(a, "POST", "/login?u=alice", "")
	h.do(b, "POST", "/login?u=alice", "")
	cookie := sesh.DefaultCookieName + "=" + xJarSession(h, b)
	done := make(chan resp)
	go func() { done <- h.do(h.rawClient(), "GET", "/slow?k=x&v=1", cookie) }()
	<-h.entered
	if r := h.do(a, "POST", "/password", ""); r.code != 200 {
		t.Fatalf("password change: got %d", r.code)
	}
	close(h.release)
	r := <-done
	if _, ok := sessionCookie(r); ok {
		t.Fatal("the in-flight request set a session cookie after revocation")
	}
	if r.code != http.StatusConflict {
		t.Fatalf("in-flight write after revocation: got %d, want 409", r.code)
	}
	if r := h.do(h.rawClient(), "GET", "/whoami", cookie); r.body != "anon" {
		t.Fatalf("revoked cookie: got %q, want anon", r.body)
	}
	if r := h.get(a, "/whoami"); r.body != "alice" {
		t.Fatalf("the changing session: got %q, want alice", r.body)
	}
	if got := h.storeCount(); got != 1 {
		t.Fatalf("live records: got %d, want 1", got)
	}
}

// A47: one session used by many goroutines of one request (run with
// -race).
func TestSessionSafeForHandlerGoroutines(t *testing.T) {
	h := newHarness(t, nil)
	xServe(h, func(mux *http.ServeMux) {
		mux.HandleFunc("/fanout", func(w http.ResponseWriter, r *http.Request) {
			s := sesh.FromContext(r.Context())
			var wg sync.WaitGroup
			for i := range 100 {
				wg.Go(func() {
					k := "g" + strconv.Itoa(i)
					if err := s.Set(k, i); err != nil {
						t.Errorf("Set: %v", err)
					}
					sesh.Get[int](s, k)
					s.Has(k)
					s.Keys()
					s.Bag("b").Set(k, i)
					s.Flash().Add("info", k)
					s.Flash().Peek()
					s.User()
					s.IsNew()
					if i%2 == 0 {
						sesh.Pop[int](s, k)
					}
				})
			}
			wg.Wait()
			fmt.Fprint(w, len(s.Keys()), len(s.Bag("b").Keys()), len(s.Flash().Peek()))
		})
		mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
			s := sesh.FromContext(r.Context())
			fmt.Fprint(w, len(s.Keys()), len(s.Bag("b").Keys()), len(s.Flash().Peek()))
		})
	})
	c := h.client()
	if r := h.get(c, "/fanout"); r.body != "50 100 100" {
		t.Fatalf("fanout: got %q, want 50 keys, 100 bag keys, 100 messages", r.body)
	}
	if r := h.get(c, "/count"); r.body != "50 100 100" {
		t.Fatalf("stored: got %q, want 50 keys, 100 bag keys, 100 messages", r.body)
	}
}

// xCtxStore records whether Save ran with a live context.
type xCtxStore struct {
	sesh.Store
	saves, canceled atomic.Int64
}

func (s *xCtxStore) Save(ctx context.Context, k sesh.Key, r sesh.Record, prev uint64) error {
	s.saves.Add(1)
	if ctx.Err() != nil {
		s.canceled.Add(1)
	}
	return s.Store.Save(ctx, k, r, prev)
}

// A48: the commit after the handler uses a context the request's
// cancellation does not reach, before and after the response started.
func TestCommitSurvivesCanceledRequest(t *testing.T) {
	store := &xCtxStore{Store: memstore.New()}
	m, err := sesh.New(store, sesh.Config{Keys: testRing(t)})
	if err != nil {
		t.Fatal(err)
	}
	var cancel context.CancelFunc
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		switch r.URL.Path {
		case "/set":
			s.Set("a", "1")
			cancel() // the client went away
		case "/stream":
			io.WriteString(w, "body first")
			s.Set("b", "2")
			cancel()
		case "/get":
			a, _ := sesh.Get[string](s, "a")
			b, _ := sesh.Get[string](s, "b")
			io.WriteString(w, a+b)
		}
	}))
	send := func(path string, cookies []*http.Cookie) *http.Response {
		req := httptest.NewRequest("GET", "https://example.com"+path, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		ctx, c := context.WithCancel(req.Context())
		cancel = c
		defer c()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(ctx))
		return rec.Result()
	}
	res := send("/set", nil)
	cookies := res.Cookies()
	if res.StatusCode != 200 || len(cookies) != 1 {
		t.Fatalf("/set: got %d with %d cookies, want 200 and 1", res.StatusCode, len(cookies))
	}
	send("/stream", cookies)
	res = send("/get", cookies)
	if b, _ := io.ReadAll(res.Body); string(b) != "12" {
		t.Fatalf("values after canceled requests: got %q, want 12", b)
	}
	if store.saves.Load() < 2 || store.canceled.Load() != 0 {
		t.Fatalf("saves: %d, with a canceled context: %d; want at least 2 and 0", store.saves.Load(), store.canceled.Load())
	}
}

// A53: the wait for an exclusive session is bounded (503 after
// LockTimeout), non-exclusive requests never wait, and a panicking
// handler releases the lock at once.
func TestExclusiveWaitBoundedAndReleasedOnPanic(t *testing.T) {
	h := newHarness(t, func(c *sesh.Config) { c.LockTimeout = 200 * time.Millisecond })
	entered, release := make(chan struct{}), make(chan struct{})
	xServe(h, func(mux *http.ServeMux) {
		mux.Handle("GET /x/hold", h.m.Exclusive(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sesh.FromContext(r.Context()).Set("held", true)
			entered <- struct{}{}
			<-release
		})))
		mux.Handle("GET /x/read", h.m.Exclusive(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v, _ := sesh.Get[string](sesh.FromContext(r.Context()), "a")
			io.WriteString(w, v)
		})))
		mux.Handle("GET /x/panic", h.m.Exclusive(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sesh.FromContext(r.Context()).Set("p", 1)
			panic(http.ErrAbortHandler)
		})))
	})
	c := h.client()
	h.get(c, "/put?k=a&v=1")
	cookie := sesh.DefaultCookieName + "=" + xJarSession(h, c)
	raw := h.rawClient()
	done := make(chan resp)
	go func() { done <- h.do(h.rawClient(), "GET", "/x/hold", cookie) }()
	<-entered
	start := time.Now()
	r := h.do(raw, "GET", "/x/read", cookie)
	if r.code != http.StatusServiceUnavailable || len(r.header.Values("Set-Cookie")) != 0 {
		t.Fatalf("exclusive request while the lock is held: got %d, cookies %q; want 503 and none", r.code, r.header.Values("Set-Cookie"))
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 10*time.Second {
		t.Errorf("waited %v for the lock, want about LockTimeout (200ms)", d)
	}
	if r := h.do(raw, "GET", "/get?k=a", cookie); r.code != 200 || r.body != "1" {
		t.Fatalf("non-exclusive read while the lock is held: got %d %q, want 200 1", r.code, r.body)
	}
	close(release)
	if r := <-done; r.code != 200 {
		t.Fatalf("holder: got %d", r.code)
	}

	req, _ := http.NewRequest("GET", h.srv.URL+"/x/panic", nil)
	req.Header.Set("Cookie", cookie)
	if res, err := raw.Do(req); err == nil {
		res.Body.Close()
	}
	if r := h.do(raw, "GET", "/x/read", cookie); r.code != 200 || r.body != "1" {
		t.Fatalf("exclusive request after a panic: got %d %q, want 200 1 (lock released)", r.code, r.body)
	}
}

// xSlowStore hangs every Load until its context ends, when slow is set.
type xSlowStore struct {
	sesh.Store
	slow     atomic.Bool
	inflight atomic.Int64
}

func (s *xSlowStore) Load(ctx context.Context, k sesh.Key) (sesh.Record, error) {
	if s.slow.Load() {
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		<-ctx.Done()
		return sesh.Record{}, ctx.Err()
	}
	return s.Store.Load(ctx, k)
}

// A55: a hung store is cut off after StoreTimeout: 503, no cookie, no
// store call left running, and the session intact afterwards.
func TestHungStoreTimesOut(t *testing.T) {
	store := &xSlowStore{Store: memstore.New()}
	m, err := sesh.New(store, sesh.Config{Keys: testRing(t), StoreTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		if r.URL.Path == "/put" {
			s.Set("k", "v")
		}
		v, _ := sesh.Get[string](s, "k")
		io.WriteString(w, v)
	}))
	var b browser
	b.do(h, "GET", "/put")
	store.slow.Store(true)
	start := time.Now()
	rec := b.do(h, "GET", "/get")
	d := time.Since(start)
	if rec.Code != http.StatusServiceUnavailable || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("hung store: got %d, cookies %v; want 503 and none", rec.Code, rec.Result().Cookies())
	}
	if d > 5*time.Second {
		t.Errorf("hung store held the request %v, want about StoreTimeout (100ms)", d)
	}
	if n := store.inflight.Load(); n != 0 {
		t.Errorf("store calls still running: %d", n)
	}
	store.slow.Store(false)
	if got := b.do(h, "GET", "/get").Body.String(); got != "v" {
		t.Fatalf("after the store recovered: got %q, want v", got)
	}
}

// CL 11: Renew, for privilege changes without a login, gives a new ID,
// keeps the data, and ends the old ID.
func TestRenewOnPrivilegeChange(t *testing.T) {
	h := newHarness(t, nil)
	xServe(h, func(mux *http.ServeMux) {
		mux.HandleFunc("/elevate", func(w http.ResponseWriter, r *http.Request) {
			s := sesh.FromContext(r.Context())
			s.Renew()
			s.Set("role", "admin")
		})
	})
	c := h.client()
	h.do(c, "POST", "/login?u=alice", "")
	before := xJarSession(h, c)
	r := h.get(c, "/elevate")
	after, ok := sessionCookie(r)
	if !ok || after == before {
		t.Fatal("Renew did not issue a new ID")
	}
	if r := h.get(c, "/get?k=role"); r.body != "admin" {
		t.Fatalf("new ID: got role %q, want admin", r.body)
	}
	if r := h.get(c, "/whoami"); r.body != "alice" {
		t.Fatalf("new ID: got user %q, want alice", r.body)
	}
	old := sesh.DefaultCookieName + "=" + before
	if r := h.do(h.rawClient(), "GET", "/whoami", old); r.body != "anon" {
		t.Fatalf("old ID after Renew: got %q, want anon", r.body)
	}
}

// A41, CL 40: logout revokes this device's remember-me token only.
func TestLogoutRevokesOnlyThisDevicesToken(t *testing.T) {
	h := newHarness(t, nil)
	a, ra := h.loginRemember("alice")
	_, rb := h.loginRemember("alice")
	h.do(a, "POST", "/logout", "")
	raw := h.rawClient()
	if r := h.do(raw, "GET", "/remembered", rememberName+"="+ra); r.body != " false" {
		t.Fatalf("logged-out device's token: got %q, want anonymous", r.body)
	}
	if r := h.do(raw, "GET", "/remembered", rememberName+"="+rb); r.body != "alice true" {
		t.Fatalf("other device's token: got %q, want alice remembered", r.body)
	}
	if n := len(h.eventsOf(sesh.EventTheftSuspected)); n != 0 {
		t.Fatalf("theft events: got %d, want 0", n)
	}
}

// CL 41: rotating a remember-me token does not extend its hard expiry.
func TestRememberRotationKeepsHardExpiry(t *testing.T) {
	h := newHarness(t, func(c *sesh.Config) { c.RememberTTL = 24 * time.Hour })
	_, r1 := h.loginRemember("alice")
	raw := h.rawClient()
	h.clock.Advance(20 * time.Hour)
	r := h.do(raw, "GET", "/remembered", rememberName+"="+r1)
	r2, ok := cookieValue(r, rememberName)
	if r.body != "alice true" || !ok || r2 == r1 {
		t.Fatalf("use at 20h: got %q, rotated %v", r.body, ok && r2 != r1)
	}
	h.clock.Advance(5 * time.Hour)
	if r := h.do(raw, "GET", "/remembered", rememberName+"="+r2); r.body != " false" {
		t.Fatalf("rotated token past the original 24h: got %q, want anonymous", r.body)
	}
}

// CL 6: a persistent session cookie never outlives the session's absolute
// deadline, and the remember-me cookie never outlives its token.
func TestCookieLifetimesWithinServerValidity(t *testing.T) {
	h := newHarness(t, func(c *sesh.Config) {
		c.Cookie.Persistent = true
		c.AbsoluteTimeout = time.Hour
		c.RememberTTL = 48 * time.Hour
	})
	maxAges := func(r resp, name string) []int {
		var out []int
		for _, c := range (&http.Response{Header: r.header}).Cookies() {
			if c.Name == name {
				out = append(out, c.MaxAge)
			}
		}
		return out
	}
	c := h.client()
	r := h.do(c, "POST", "/login?u=alice&remember=1", "")
	if got := maxAges(r, sesh.DefaultCookieName); len(got) != 1 || got[0] <= 0 || got[0] > 3600 {
		t.Errorf("session cookie Max-Age: got %v, want one in 1..3600", got)
	}
	if got := maxAges(r, rememberName); len(got) != 1 || got[0] <= 0 || got[0] > 48*3600 {
		t.Errorf("remember cookie Max-Age: got %v, want one in 1..%d", got, 48*3600)
	}
	// Later writes never push the cookie past the absolute deadline.
	h.clock.Advance(20 * time.Minute)
	r = h.get(c, "/put?k=a&v=1")
	for _, got := range maxAges(r, sesh.DefaultCookieName) {
		if got <= 0 || got > 2400 {
			t.Errorf("session cookie Max-Age after 20 minutes: got %d, want 1..2400", got)
		}
	}
	h.do(c, "POST", "/login?u=alice", "") // a renewal keeps the deadline
	if r := h.get(c, "/whoami"); r.body != "alice" {
		t.Fatalf("whoami: got %q", r.body)
	}
}

// CL 20, CL 46: lifecycle events are reported with an opaque handle, and
// logout sends the deletion cookie and Clear-Site-Data. (Expiry is
// reported only when the manager, not the store, finds a session dead:
// see TestClockGoingBackEndsSession.)
func TestLifecycleEventsAndLogoutHeaders(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	h.get(c, "/put?k=a&v=1")
	h.do(c, "POST", "/login?u=alice", "")
	id := xJarSession(h, c)
	r := h.do(c, "POST", "/logout", "")
	if got := r.header.Get("Clear-Site-Data"); got != `"cookies"` {
		t.Errorf("logout Clear-Site-Data: got %q, want \"cookies\"", got)
	}
	if sc := r.header.Get("Set-Cookie"); !strings.Contains(sc, sesh.DefaultCookieName+"=;") || !strings.Contains(sc, "Max-Age=0") {
		t.Errorf("logout deletion cookie: got %q", sc)
	}
	for _, k := range []sesh.EventKind{sesh.EventCreated, sesh.EventRenewed, sesh.EventLogin, sesh.EventLogout} {
		es := h.eventsOf(k)
		if len(es) == 0 {
			t.Errorf("no %s event", k)
			continue
		}
		for _, e := range es {
			if e.Handle == "" || e.Handle == id || strings.Contains(id, e.Handle) {
				t.Errorf("%s event handle %q: want an opaque non-empty handle", k, e.Handle)
			}
		}
	}
}
