package sesh_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
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

// clock is a manual clock shared by the manager and the store.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func testRing(t testing.TB) *seal.Ring {
	t.Helper()
	k, err := seal.GenerateKey(1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := seal.NewRing(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// faultStore wraps a real store and injects failures on demand.
type faultStore struct {
	sesh.Store
	failLoad, failSave, failDelete atomic.Bool
	corruptLoad                    atomic.Bool // Load reports an unparseable entry
	saves, loads, deletes          atomic.Int64
	locking, maxLocking            atomic.Int64 // store Lock calls in flight
	failUnlock                     atomic.Bool  // unlock functions fail, keeping the lock
}

var errInjected = errors.New("injected store fault: dial tcp 10.0.0.1:6379: connection refused")

func (f *faultStore) Load(ctx context.Context, k sesh.Key) (sesh.Record, error) {
	f.loads.Add(1)
	if f.failLoad.Load() {
		return sesh.Record{}, errInjected
	}
	if f.corruptLoad.Load() {
		return sesh.Record{}, fmt.Errorf("teststore: bad framing: %w", sesh.ErrCorrupt)
	}
	return f.Store.Load(ctx, k)
}

func (f *faultStore) Save(ctx context.Context, k sesh.Key, r sesh.Record, prev uint64) error {
	f.saves.Add(1)
	if f.failSave.Load() {
		return errInjected
	}
	return f.Store.Save(ctx, k, r, prev)
}

func (f *faultStore) Delete(ctx context.Context, k sesh.Key, tomb time.Time) error {
	f.deletes.Add(1)
	if f.failDelete.Load() {
		return errInjected
	}
	return f.Store.Delete(ctx, k, tomb)
}

// The wrapper keeps the wrapped store's capabilities.
func (f *faultStore) UserRecords(ctx context.Context, user string) ([]sesh.Entry, error) {
	if f.failLoad.Load() {
		return nil, errInjected
	}
	return f.Store.(sesh.UserIndexer).UserRecords(ctx, user)
}

func (f *faultStore) Lock(ctx context.Context, k sesh.Key, ttl time.Duration) (func(context.Context) error, error) {
	n := f.locking.Add(1)
	defer f.locking.Add(-1)
	for {
		m := f.maxLocking.Load()
		if n <= m || f.maxLocking.CompareAndSwap(m, n) {
			break
		}
	}
	unlock, err := f.Store.(sesh.Locker).Lock(ctx, k, ttl)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		if f.failUnlock.Load() {
			return errInjected
		}
		return unlock(ctx)
	}, nil
}

func (f *faultStore) List(ctx context.Context, cursor string, limit int) ([]sesh.Entry, string, error) {
	return f.Store.(sesh.Lister).List(ctx, cursor, limit)
}

func (f *faultStore) Sweep(ctx context.Context, limit int) (int, error) {
	return f.Store.(sesh.Sweeper).Sweep(ctx, limit)
}

// harness is the probe app of ATTACKS.md behind the middleware, on a TLS
// test server.
type harness struct {
	t     *testing.T
	clock *clock
	mem   *memstore.Store
	store *faultStore
	m     *sesh.Manager
	srv   *httptest.Server
	// release unblocks /slow requests.
	release chan struct{}
	entered chan struct{}

	evMu   sync.Mutex
	events []sesh.Event
}

// eventsOf returns the recorded events of kind k.
func (h *harness) eventsOf(k sesh.EventKind) []sesh.Event {
	h.evMu.Lock()
	defer h.evMu.Unlock()
	var out []sesh.Event
	for _, e := range h.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

func newHarness(t *testing.T, mod func(*sesh.Config)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock(), release: make(chan struct{}), entered: make(chan struct{}, 16)}
	h.mem = memstore.New(memstore.WithClock(h.clock.Now))
	h.store = &faultStore{Store: h.mem}
	logged := sesh.NewSlogObserver(suiteLogger)
	cfg := sesh.Config{Keys: testRing(t), Now: h.clock.Now, Logger: suiteLogger,
		Observer: sesh.ObserverFunc(func(ctx context.Context, e sesh.Event) {
			h.evMu.Lock()
			h.events = append(h.events, e)
			h.evMu.Unlock()
			logged.Observe(ctx, e)
		})}
	if mod != nil {
		mod(&cfg)
	}
	m, err := sesh.New(h.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	h.srv = httptest.NewUnstartedServer(m.Handler(h.routes()))
	h.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // clients left idle at close
	h.srv.StartTLS()
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /put", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		if err := s.Set(r.FormValue("k"), r.FormValue("v")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, "ok")
	})
	// A handler that commits while the store fails, then again once it
	// is back: the changes of both commits must land, once each.
	mux.HandleFunc("GET /commit-retry", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		if r.FormValue("clear") == "1" {
			s.Clear()
		}
		s.Set("b", "2")
		s.Delete("a")
		h.store.failSave.Store(true)
		err1 := s.Commit()
		h.store.failSave.Store(false)
		s.Set("d", "4")
		err2 := s.Commit()
		fmt.Fprintf(w, "%v %v %v", errors.Is(err1, sesh.ErrStoreUnavailable), err2, s.Keys())
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		v, _ := sesh.Get[string](sesh.FromContext(r.Context()), r.FormValue("k"))
		io.WriteString(w, v)
	})
	mux.Handle("GET /incr", h.m.Exclusive(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		n, _ := sesh.Get[int](s, "n")
		n++
		s.Set("n", n)
		fmt.Fprint(w, n)
	})))
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		s.Login(r.FormValue("u"))
		if r.FormValue("remember") == "1" {
			s.Remember()
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /remembered", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		fmt.Fprintf(w, "%s %v", s.User(), s.Remembered())
	})
	mux.HandleFunc("GET /sessions", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		devs, err := h.m.Sessions(r.Context(), s.User())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(devs)
	})
	mux.HandleFunc("POST /sessions/{h}/revoke", func(w http.ResponseWriter, r *http.Request) {
		err := h.m.Revoke(r.Context(), sesh.FromContext(r.Context()).User(), r.PathValue("h"))
		if errors.Is(err, sesh.ErrNoSuchSession) {
			http.NotFound(w, r)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("POST /revoke-others", func(w http.ResponseWriter, r *http.Request) {
		n, err := h.m.RevokeOthers(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("POST /password", func(w http.ResponseWriter, r *http.Request) {
		if err := h.m.PasswordChanged(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Logout()
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		u := sesh.FromContext(r.Context()).User()
		if u == "" {
			u = "anon"
		}
		io.WriteString(w, u)
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		s.Has("x") // load before blocking, as a handler reading first would
		h.entered <- struct{}{}
		<-h.release
		if err := s.Set(r.FormValue("k"), r.FormValue("v")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /flash/set", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Flash().Add("info", r.FormValue("m"))
	})
	mux.HandleFunc("GET /flash/get", func(w http.ResponseWriter, r *http.Request) {
		var out []string
		for _, m := range sesh.FromContext(r.Context()).Flash().Pop() {
			out = append(out, m.Text)
		}
		io.WriteString(w, strings.Join(out, ","))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		s.Set("k", "v")
		code, _ := strconv.Atoi(r.FormValue("code"))
		w.WriteHeader(code)
	})
	mux.HandleFunc("GET /nothing", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})
	return mux
}

// client returns an HTTPS client with its own cookie jar.
func (h *harness) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := *h.srv.Client() // a copy: the server's client is shared
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// rawClient returns an HTTPS client without a jar, for hand-made cookies.
func (h *harness) rawClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

type resp struct {
	code   int
	body   string
	header http.Header
}

// do sends a request; cookie, if not empty, is sent as the raw Cookie header.
func (h *harness) do(c *http.Client, method, path, cookie string) resp {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
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

func (h *harness) get(c *http.Client, path string) resp { return h.do(c, "GET", path, "") }

// sessionCookie returns the value of the session cookie set by r, if any.
func sessionCookie(r resp) (string, bool) {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == sesh.DefaultCookieName {
			return c.Value, true
		}
	}
	return "", false
}

// storeCount returns the number of live session records.
func (h *harness) storeCount() int {
	h.t.Helper()
	n := 0
	cursor := ""
	for {
		es, next, err := h.mem.List(h.t.Context(), cursor, 100)
		if err != nil {
			h.t.Fatal(err)
		}
		n += len(es)
		if next == "" {
			return n
		}
		cursor = next
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func newMem() *memstore.Store { return memstore.New() }

// Every log line of the suite goes to suiteLog, and every cookie value
// the probe app issued to issued; TestMain checks that no token was ever
// logged.
var (
	suiteLogMu  sync.Mutex
	suiteLog    bytes.Buffer
	suiteLogger = slog.New(slog.NewJSONHandler(lockedWriter{}, &slog.HandlerOptions{Level: slog.LevelDebug}))

	issuedMu sync.Mutex
	issued   = map[string]bool{}
)

type lockedWriter struct{}

func (lockedWriter) Write(p []byte) (int, error) {
	suiteLogMu.Lock()
	defer suiteLogMu.Unlock()
	return suiteLog.Write(p)
}

func recordIssued(res *http.Response) {
	issuedMu.Lock()
	defer issuedMu.Unlock()
	for _, c := range res.Cookies() {
		if c.Value != "" {
			issued[c.Value] = true
			if sel, val, ok := strings.Cut(c.Value, "."); ok {
				issued[sel], issued[val] = true, true
			}
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	suiteLogMu.Lock()
	logs := suiteLog.String()
	suiteLogMu.Unlock()
	issuedMu.Lock()
	n := len(issued)
	for tok := range issued {
		if strings.Contains(logs, tok) {
			fmt.Fprintf(os.Stderr, "FAIL: an issued token appears in the logs\n")
			code = 1
			break
		}
	}
	issuedMu.Unlock()
	if code == 0 && testing.Verbose() {
		fmt.Printf("log check: %d issued tokens, none in %d bytes of logs\n", n, len(logs))
	}
	os.Exit(code)
}
