// Package faulttest runs sesh's store fault scenarios against a real
// server behind a [faultproxy.Proxy]: the server going down while
// sessions load, answering slowly or not at all, failing in the middle of
// a commit, and coming back. Each store module calls [Run] from its tests,
// over real HTTP: an httptest server with the sesh middleware, and
// clients with cookie jars.
//
// What every scenario proves:
//
//   - A request that needs the store while it fails gets 503 and no
//     Set-Cookie (but a failed logout still tells the browser to forget
//     its cookie), and never anything else in the 5xx range.
//   - It gets it within a small multiple of Config.StoreTimeout, however
//     the store fails (down, slow, black-holed, half-open), and the
//     goroutines it started end.
//   - A commit that fails writes nothing half-way: after recovery the
//     stored record is byte for byte the one before (or, where the server
//     may have applied the write before its reply was lost, exactly the
//     attempted one), and the user is still logged in.
//   - No response carries a cookie for a session that was not stored.
//   - Sessions created before an outage are all there after it.
package faulttest

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/internal/faultproxy"
	"github.com/seshgo/sesh/seal"
)

// NewStore returns a store whose client reaches its server at addr (the
// proxy's address) and takes its expiry decisions from now. Every call
// within one test must return a store on the same records (the same key
// prefix or table), kept apart from other runs; the client must be closed
// when t ends. For the timing scenarios, the client must honour context
// deadlines: see each store's package documentation.
type NewStore func(t *testing.T, addr string, now func() time.Time) sesh.Store

// Options configures [Run].
type Options struct {
	// Target is the server's address, host:port, that the proxy forwards to.
	Target string
	// NewStore opens a store through the proxy.
	NewStore NewStore
	// StoreTimeout is the manager's Config.StoreTimeout (default 300 ms).
	StoreTimeout time.Duration
	// Linger is how long a store's client may go on working after a call
	// was cut off by its deadline (memcachedstore's calls run on until the
	// client's socket timeout; pgx closes a connection in the background
	// for up to 15 s). Goroutines must be back to their baseline within
	// Linger plus a margin.
	Linger time.Duration
	// LockAttempt is how long one attempt of the store's Lock may run past
	// its context (mysqlstore and pgstore finish an attempt in flight, up
	// to 5 s, rather than leave a lease taken unseen). An exclusive request
	// on a hung store ends within LockTimeout plus this.
	LockAttempt time.Duration
	// ConnGoroutines is the number of goroutines the store's client keeps
	// for each open connection (go-sql-driver/mysql: one, its watcher).
	// Goroutine counts are compared less these, since a pool may hold more
	// or fewer connections after a fault.
	ConnGoroutines int
}

// DefaultStoreTimeout is the StoreTimeout of the scenarios unless
// Options.StoreTimeout says otherwise.
const DefaultStoreTimeout = 300 * time.Millisecond

// Run runs every scenario as a subtest of t. The subtests must not run in
// parallel with other tests of the process: they count its goroutines.
func Run(t *testing.T, o Options) {
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = DefaultStoreTimeout
	}
	t.Run("Down", func(t *testing.T) {
		for _, m := range []faultproxy.Mode{faultproxy.Drop, faultproxy.Reset} {
			t.Run(m.String(), func(t *testing.T) { testDown(t, o, m) })
		}
	})
	t.Run("Slow", func(t *testing.T) {
		t.Run("WithinTimeout", func(t *testing.T) { testSlowButInTime(t, o) })
		testSlow(t, o)
	})
	t.Run("Commit", func(t *testing.T) {
		for _, m := range []faultproxy.Mode{faultproxy.Reset, faultproxy.BlackHole, faultproxy.LoseReplies} {
			t.Run("Write/"+m.String(), func(t *testing.T) { testCommitWrite(t, o, m) })
		}
		for _, m := range []faultproxy.Mode{faultproxy.Reset, faultproxy.BlackHole} {
			t.Run("LoginCreate/"+m.String(), func(t *testing.T) { testLoginCreate(t, o, m) })
		}
		t.Run("LoginRetire/Reset", func(t *testing.T) { testLoginRetire(t, o, faultproxy.Reset) })
		for _, m := range []faultproxy.Mode{faultproxy.Reset, faultproxy.BlackHole} {
			t.Run("Logout/"+m.String(), func(t *testing.T) { testEnd(t, o, m, "/logout") })
		}
		t.Run("Destroy/Reset", func(t *testing.T) { testEnd(t, o, faultproxy.Reset, "/destroy") })
	})
	t.Run("Exclusive", func(t *testing.T) {
		for _, m := range []faultproxy.Mode{faultproxy.Drop, faultproxy.BlackHole} {
			t.Run(m.String(), func(t *testing.T) { testExclusive(t, o, m) })
		}
	})
	t.Run("Remember", func(t *testing.T) { testRemember(t, o) })
	t.Run("Back", func(t *testing.T) { testBack(t, o) })
}

// testExclusive: exclusive read-modify-writes while the store fails
// answer 503 and change nothing; afterwards the counter goes on from the
// last acknowledged value. With a store lock, an unlock lost in the fault
// does not keep the session locked after recovery.
func testExclusive(t *testing.T, o Options, mode faultproxy.Mode) {
	e := newEnv(t, o)
	b := e.browser()
	b.must("POST", "/login?u=ivy")
	for want := 1; want <= 2; want++ {
		if r := b.must("GET", "/incr"); r.body != strconv.Itoa(want) {
			t.Fatalf("increment %d: got %q", want, r.body)
		}
	}
	e.fault(mode)
	// Waiting for the store's lock is bounded by LockTimeout rather than
	// StoreTimeout (another request may hold it), plus an attempt the
	// store finishes.
	b.unavailableWithin(e.bound(2)+lockTimeout+o.LockAttempt, "GET", "/incr")
	e.recover(b, "user=ivy n=2")
	// A client whose pooled connections died in the fault may fail a few
	// more calls (503, no cookie), never lose or repeat an increment.
	e.eventually("increment after recovery", func() response { return b.do("GET", "/incr") }, "3")
	if _, ok := e.store.(sesh.Locker); !ok {
		return
	}
	// The store fails as the lock is released: the increment was saved,
	// the lock stays behind in the store.
	e.tap.arm("unlock", func() { e.proxy.SetMode(faultproxy.Reset) })
	if r := b.do("GET", "/incr"); r.code != http.StatusOK || r.body != "4" {
		t.Fatalf("increment whose unlock fails: got %d %q, want 200 4", r.code, r.body)
	}
	e.proxy.SetMode(faultproxy.Pass)
	// The next exclusive request of this process releases it first,
	// instead of waiting for it to lapse (LockTTL, a minute by default,
	// far beyond recoverTimeout).
	e.eventually("increment after the lost unlock", func() response { return b.do("GET", "/incr") }, "5")
	e.checkIssued()
}

// eventually sends requests with get until one answers 200, which must
// have body want; until then each must be a 503 without cookies (a client
// whose pooled connections died may fail a few more calls), for at most
// recoverTimeout.
func (e *env) eventually(what string, get func() response, want string) {
	e.t.Helper()
	deadline := time.Now().Add(recoverTimeout)
	for {
		r := get()
		if r.code == http.StatusOK {
			if r.body != want {
				e.t.Fatalf("%s: got %q, want %q", what, r.body, want)
			}
			return
		}
		if r.code != http.StatusServiceUnavailable || len(r.cookies) != 0 || time.Now().After(deadline) {
			e.t.Fatalf("%s: got %d %q with cookies %v", what, r.code, strings.TrimSpace(r.body), r.cookieStrings())
		}
	}
}

// testRemember: a browser coming back with only its remember-me cookie
// while the store is down gets 503, and its token is neither used up nor
// revoked: once the store is back it signs the browser in.
func testRemember(t *testing.T, o Options) {
	e := newEnv(t, o)
	b := e.browser()
	r := b.must("POST", "/login?u=kim&remember=1")
	var token *http.Cookie
	for _, c := range r.cookies {
		if strings.Contains(c.Name, "remember") {
			token = c
		}
	}
	if token == nil {
		t.Fatalf("login with remember-me set no remember-me cookie: %v", r.cookieStrings())
	}
	restarted := e.browser()
	u, _ := url.Parse(e.srv.URL)
	restarted.c.Jar.SetCookies(u, []*http.Cookie{{Name: token.Name, Value: token.Value}})
	e.fault(faultproxy.Drop)
	restarted.unavailable("GET", "/state")
	e.faulty.Store(false)
	e.proxy.SetMode(faultproxy.Pass)
	e.eventually("restore after recovery", func() response { return restarted.do("GET", "/state") }, "user=kim")
	b.state("user=kim")
	e.checkIssued()
}

// testDown: the server goes away (Drop) or resets every connection while
// sessions are loaded.
func testDown(t *testing.T, o Options, mode faultproxy.Mode) {
	e := newEnv(t, o)
	b := e.browser()
	b.must("POST", "/login?u=alice")
	b.must("GET", "/put?k=color&v=blue")
	key, want := e.tap.lastCreated(t)
	anon := e.browser()
	anon.must("GET", "/put?k=cart&v=1")
	anonKey, anonWant := e.tap.lastCreated(t)

	e.fault(mode)
	for _, req := range []string{"GET /get?k=color", "GET /put?k=color&v=red", "POST /logout"} {
		method, path, _ := strings.Cut(req, " ")
		b.unavailable(method, path)
	}
	anon.unavailable("GET", "/get?k=cart")
	fresh := e.browser()
	fresh.unavailable("GET", "/put?k=x&v=1")
	// A request that does not touch the session does not notice.
	if r := fresh.do("GET", "/nothing"); r.code != http.StatusOK || len(r.cookies) != 0 {
		t.Errorf("GET /nothing during the outage: got %d with %d cookies, want 200 and none", r.code, len(r.cookies))
	}

	e.recover(b, "user=alice color=blue")
	e.sameRecord(key, want)
	e.sameRecord(anonKey, anonWant)
	anon.state("user= cart=1")
	fresh.state("new")
	e.checkIssued()
}

// testSlowButInTime: a store slower than usual but within StoreTimeout
// serves every request.
func testSlowButInTime(t *testing.T, o Options) {
	e := newEnv(t, o)
	b := e.browser()
	b.must("POST", "/login?u=ann")
	e.proxy.SetDelay(o.StoreTimeout / 30)
	e.fault(faultproxy.Delay)
	b.must("GET", "/put?k=a&v=1")
	b.state("user=ann a=1")
	e.browser().must("GET", "/put?k=b&v=2")
	b.must("POST", "/logout")
	b.state("new")
	e.faulty.Store(false)
	e.checkIssued()
}

// testSlow: the store answers too late (Delay) or never (BlackHole), or
// the client's pooled connections died without a word (HalfOpen: the
// server restarted, or a firewall forgot the flows). Requests end in time
// with 503, and once the store is back every goroutine they started ends.
// The faults run one after the other on one store, so that the goroutines
// that drivers leave to finish in the background (for up to 15 s with
// pgx) are waited for once.
func testSlow(t *testing.T, o Options) {
	e := newEnv(t, o)
	b := e.browser()
	b.must("POST", "/login?u=bob")
	b.must("GET", "/put?k=k&v=v")
	key, want := e.tap.lastCreated(t)
	e.browser().must("GET", "/put?k=warm&v=1")
	base := e.baseline()
	e.proxy.SetDelay(10 * o.StoreTimeout)
	bound := e.bound(1)

	for _, mode := range []faultproxy.Mode{faultproxy.Delay, faultproxy.BlackHole, faultproxy.HalfOpen} {
		e.run(t, mode.String(), func(t *testing.T) {
			e.fault(mode)
			if mode == faultproxy.HalfOpen {
				// The server is there for new connections: a client that
				// notices its dead connection and makes a new one may
				// serve the request.
				start := time.Now()
				r := b.do("GET", "/get?k=k")
				if took := time.Since(start); took > bound {
					t.Errorf("GET /get took %v, want at most %v (Config.StoreTimeout is %v)", took, bound, o.StoreTimeout)
				}
				switch {
				case r.code == http.StatusServiceUnavailable && len(r.cookies) == 0:
				case r.code == http.StatusOK && r.body == "v" && len(r.cookies) == 0:
					t.Log("the client served the request on a new connection")
				default:
					t.Errorf("GET /get on a dead connection: got %d %q with cookies %v, want 503, or 200 \"v\", and no cookie",
						r.code, r.body, r.cookieStrings())
				}
			} else {
				b.unavailableWithin(bound, "GET", "/get?k=k")
				b.unavailableWithin(bound, "GET", "/put?k=k&v=w")
				e.browser().unavailableWithin(bound, "GET", "/put?k=x&v=1")
			}
			e.recover(b, "user=bob k=v")
			e.sameRecord(key, want)
			e.checkIssued()
		})
	}
	e.settled(base) // at the depth of subtests where base was counted
}

// run runs f as a subtest of t on e: e reports to the subtest meanwhile.
func (e *env) run(t *testing.T, name string, f func(t *testing.T)) {
	t.Run(name, func(st *testing.T) {
		e.t = st
		defer func() { e.t = t }()
		f(st)
	})
}

// testCommitWrite: the session loads, then the store fails as the
// request's change is saved.
func testCommitWrite(t *testing.T, o Options, mode faultproxy.Mode) {
	e := newEnv(t, o)
	b := e.browser()
	b.must("POST", "/login?u=cid")
	b.must("GET", "/put?k=k&v=old")
	key, want := e.tap.lastCreated(t)
	e.armOn("save", mode)
	b.unavailableWithin(e.bound(1), "GET", "/put?k=k&v=new")

	if mode != faultproxy.LoseReplies {
		e.recover(b, "user=cid k=old")
		e.sameRecord(key, want)
		e.checkIssued()
		return
	}
	// The server may have applied the write before its reply was lost:
	// then the record must be exactly the attempted one, and the session
	// shows the new value under the same cookie.
	tried, ok := e.tap.attempted(key)
	if !ok {
		t.Fatal("no save was attempted")
	}
	e.proxy.SetMode(faultproxy.Pass)
	got := e.rawLoad(key)
	switch {
	case sameRec(got, want):
		e.recover(b, "user=cid k=old")
	case sameRec(got, tried):
		e.recover(b, "user=cid k=new")
		t.Logf("the lost-reply write was applied (version %d)", got.Version)
	default:
		t.Fatalf("stored record is neither the old (version %d) nor the attempted one (version %d): version %d",
			want.Version, tried.Version, got.Version)
	}
	e.checkIssued()
}

// testLoginCreate: an anonymous session logs in, and the store fails as
// the renewed session is created. The browser keeps its anonymous session
// and nothing is indexed under the user.
func testLoginCreate(t *testing.T, o Options, mode faultproxy.Mode) {
	e := newEnv(t, o)
	b := e.browser()
	b.must("GET", "/put?k=cart&v=3")
	key, want := e.tap.lastCreated(t)
	e.armOn("save", mode)
	b.unavailableWithin(e.bound(1), "POST", "/login?u=dave")

	e.recover(b, "user= cart=3")
	e.sameRecord(key, want)
	e.noSessionsOf("dave")
	e.checkIssued()
}

// testLoginRetire: an anonymous session logs in; the renewed session is
// created, then the store fails as the old one is retired. Afterwards
// either nothing happened (the old session is intact and nothing is
// indexed under the user) or the login fully did; the browser is never
// left without its session.
func testLoginRetire(t *testing.T, o Options, mode faultproxy.Mode) {
	e := newEnv(t, o)
	b := e.browser()
	b.must("GET", "/put?k=cart&v=4")
	key, want := e.tap.lastCreated(t)
	e.armOn("delete", mode)
	r := b.do("POST", "/login?u=erin")
	e.faulty.Store(false)
	e.proxy.SetMode(faultproxy.Pass)
	switch r.code {
	case http.StatusServiceUnavailable:
		if len(r.cookies) != 0 {
			t.Errorf("503 for the failed login came with cookies %v, want none", r.cookieStrings())
		}
		e.recover(b, "user= cart=4")
		e.sameRecord(key, want)
		e.noSessionsOf("erin")
	case http.StatusOK:
		// The login completed: the browser has the new session, and the
		// old one is gone.
		e.recover(b, "user=erin cart=4")
		if rec, err := e.rawLoadErr(key); err == nil {
			t.Errorf("the login completed, but the old session is still stored (version %d)", rec.Version)
		}
	default:
		t.Fatalf("login while the store failed: got %d, want 503 or 200", r.code)
	}
	e.checkIssued()
}

// testEnd: a logged-in session logs out (or is destroyed), and the store
// fails as it is deleted. The stored session is unchanged; the response
// may tell the browser to forget its cookie (the user asked to end the
// session), but never sets a new one.
func testEnd(t *testing.T, o Options, mode faultproxy.Mode, path string) {
	e := newEnv(t, o)
	b := e.browser()
	b.must("POST", "/login?u=carol")
	b.must("GET", "/put?k=k&v=v")
	key, want := e.tap.lastCreated(t)
	cookie := b.cookie()
	e.armOn("delete", mode)
	start := time.Now()
	r := b.do("POST", path)
	if took := time.Since(start); took > e.bound(2) {
		t.Errorf("POST %s took %v, want at most %v", path, took, e.bound(2))
	}
	if r.code != http.StatusServiceUnavailable {
		t.Fatalf("POST %s while the store failed: got %d, want 503", path, r.code)
	}
	for _, c := range r.cookies {
		if c.Value != "" || c.MaxAge >= 0 {
			t.Errorf("POST %s answered 503 with cookie %q, want at most a deletion", path, c.String())
		}
	}
	e.recoverRaw(cookie, "user=carol k=v")
	e.sameRecord(key, want)
	e.checkIssued()
}

// testBack: sessions created before an outage are all there after it.
func testBack(t *testing.T, o Options) {
	e := newEnv(t, o)
	const n = 50
	type sess struct {
		b    *browser
		key  sesh.Key
		want sesh.Record
		st   string
	}
	all := make([]sess, n)
	for i := range all {
		b := e.browser()
		st := "user="
		if i%2 == 0 {
			u := "user" + strconv.Itoa(i)
			b.must("POST", "/login?u="+u)
			st += u
		}
		b.must("GET", "/put?k=n&v="+strconv.Itoa(i))
		st += " n=" + strconv.Itoa(i)
		key, want := e.tap.lastCreated(t)
		all[i] = sess{b, key, want, st}
	}

	e.fault(faultproxy.Drop)
	for i := 0; i < n; i += 10 {
		all[i].b.unavailable("GET", "/get?k=n")
		all[i+1].b.unavailable("GET", "/put?k=n&v=changed")
	}
	e.browser().unavailable("GET", "/put?k=n&v=new")
	e.fault(faultproxy.Reset)
	all[2].b.unavailable("POST", "/logout")

	e.recover(all[0].b, all[0].st)
	for i, s := range all {
		s.b.state(s.st)
		e.sameRecord(s.key, s.want)
		if t.Failed() {
			t.Fatalf("session %d of %d lost", i, n)
		}
	}
	e.checkIssued()
}

// env is one scenario's world: a proxy, a store behind it, a manager on
// the store and an HTTP server.
type env struct {
	t     *testing.T
	o     Options
	proxy *faultproxy.Proxy
	store sesh.Store // through the proxy
	tap   *tap       // the store as the manager sees it
	srv   *httptest.Server

	faulty atomic.Bool // a fault is on: responses are checked for it

	mu     sync.Mutex
	issued []string // session cookies that came with a success during a fault
}

func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	p, err := faultproxy.New(o.Target)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Millisecond)
	clock := func() time.Time { return now }
	store := o.NewStore(t, p.Addr(), clock)
	// Cleanups run last first: the proxy closes before the store's client,
	// which then need not wait for calls still lingering on dead
	// connections.
	t.Cleanup(func() { p.Close() })
	// Open a connection before the scenario starts: the first dial (a
	// MySQL handshake, say) can take longer than StoreTimeout on a busy
	// machine, and the healthy phase must not fail for it.
	wctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	_, _ = store.Load(wctx, sesh.Key{})
	cancel()
	e := &env{t: t, o: o, proxy: p, store: store, tap: newTap(store)}
	var managed sesh.Store = e.tap
	if l, ok := store.(sesh.Locker); ok {
		managed = lockingTap{e.tap, l}
	}
	key, err := seal.GenerateKey(1)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := seal.NewRing(key)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sesh.New(managed, sesh.Config{
		Keys:         ring,
		Now:          clock,
		StoreTimeout: o.StoreTimeout,
		LockTimeout:  lockTimeout,
		Cookie:       sesh.CookieConfig{InsecureHTTP: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(m.Handler(routes(m)))
	e.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

// routes is the application under test.
func routes(m *sesh.Manager) http.Handler {
	mux := http.NewServeMux()
	// incr is an exclusive read-modify-write of the counter n.
	mux.Handle("GET /incr", m.Exclusive(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		v, _ := sesh.Get[string](s, "n") // a string, as /state shows values
		n, _ := strconv.Atoi(v)
		if err := s.Set("n", strconv.Itoa(n+1)); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, strconv.Itoa(n+1))
	})))
	mux.HandleFunc("GET /put", func(w http.ResponseWriter, r *http.Request) {
		if err := sesh.FromContext(r.Context()).Set(r.FormValue("k"), r.FormValue("v")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		v, _ := sesh.Get[string](sesh.FromContext(r.Context()), r.FormValue("k"))
		io.WriteString(w, v)
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, sesh.FromContext(r.Context()).User())
	})
	// state describes the session: "new" for none, else its user and
	// values, sorted.
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		if s.IsNew() {
			io.WriteString(w, "new")
			return
		}
		out := []string{"user=" + s.User()}
		keys := s.Keys()
		slices.Sort(keys)
		for _, k := range keys {
			v, _ := sesh.Get[string](s, k)
			out = append(out, k+"="+v)
		}
		io.WriteString(w, strings.Join(out, " "))
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		s.Login(r.FormValue("u"))
		if r.FormValue("remember") == "1" {
			s.Remember()
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Logout()
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("POST /destroy", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Destroy()
		io.WriteString(w, "gone")
	})
	mux.HandleFunc("GET /nothing", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})
	return mux
}

// fault switches the proxy to mode; responses are checked from now on.
func (e *env) fault(mode faultproxy.Mode) {
	e.faulty.Store(true)
	e.proxy.SetMode(mode)
}

// armOn makes the proxy switch to mode just before the manager's next
// call of op ("load", "save" or "delete") reaches the store.
func (e *env) armOn(op string, mode faultproxy.Mode) {
	e.faulty.Store(true)
	e.tap.arm(op, func() { e.proxy.SetMode(mode) })
}

// lockTimeout is the manager's Config.LockTimeout in the scenarios.
const lockTimeout = time.Second

// bound is how long a request making ops store calls that time out may
// take: ops × StoreTimeout, and a second for everything else (the race
// detector, a busy machine).
func (e *env) bound(ops int) time.Duration {
	return time.Duration(ops)*e.o.StoreTimeout + time.Second
}

// recoverTimeout bounds the wait for the store to serve again.
const recoverTimeout = 15 * time.Second

// recover lets traffic pass again and waits until b's session reads as
// want. Until then every answer must be a 503 without cookies: a client
// whose pooled connections died in the fault may fail a few more times.
func (e *env) recover(b *browser, want string) {
	e.t.Helper()
	e.recoverWith(want, func() response { return b.do("GET", "/state") })
}

// recoverRaw is recover for a cookie value presented by hand.
func (e *env) recoverRaw(cookie, want string) {
	e.t.Helper()
	e.recoverWith(want, func() response { return e.raw("GET", "/state", cookie) })
}

func (e *env) recoverWith(want string, get func() response) {
	t := e.t
	t.Helper()
	e.faulty.Store(false)
	e.proxy.SetMode(faultproxy.Pass)
	deadline := time.Now().Add(recoverTimeout)
	failures := 0
	for {
		r := get()
		if r.code == http.StatusOK {
			if r.body != want {
				t.Fatalf("after recovery: got %q, want %q", r.body, want)
			}
			if len(r.cookies) != 0 {
				t.Errorf("after recovery: reading the session set cookies %v", r.cookieStrings())
			}
			if failures > 0 {
				t.Logf("%d request(s) failed with 503 after the store was back", failures)
			}
			return
		}
		if r.code != http.StatusServiceUnavailable || len(r.cookies) != 0 {
			t.Fatalf("after recovery: got %d with cookies %v, want 200, or 503 without cookies", r.code, r.cookieStrings())
		}
		failures++
		if time.Now().After(deadline) {
			t.Fatalf("the store did not serve again within %v (%d failures)", recoverTimeout, failures)
		}
	}
}

// rawLoad reads key from the store through the proxy, retrying transport
// errors (pooled connections that died in the fault) for a while.
func (e *env) rawLoad(key sesh.Key) sesh.Record {
	e.t.Helper()
	rec, err := e.rawLoadErr(key)
	if err != nil {
		e.t.Fatalf("loading the record: %v", err)
	}
	return rec
}

func (e *env) rawLoadErr(key sesh.Key) (sesh.Record, error) {
	deadline := time.Now().Add(recoverTimeout)
	for {
		ctx, cancel := context.WithTimeout(e.t.Context(), 5*time.Second)
		rec, err := e.store.Load(ctx, key)
		cancel()
		if err == nil || errors.Is(err, sesh.ErrNotFound) || errors.Is(err, sesh.ErrGone) || time.Now().After(deadline) {
			return rec, err
		}
	}
}

// sameRecord checks that the store holds exactly want under key.
func (e *env) sameRecord(key sesh.Key, want sesh.Record) {
	e.t.Helper()
	got, err := e.rawLoadErr(key)
	if err != nil {
		e.t.Errorf("record %s: %v, want version %d", key, err, want.Version)
		return
	}
	if !sameRec(got, want) {
		e.t.Errorf("record %s changed: got version %d, user %q, %d bytes; want version %d, user %q, %d bytes (the same bytes)",
			key, got.Version, got.User, len(got.Data), want.Version, want.User, len(want.Data))
	}
}

func sameRec(a, b sesh.Record) bool {
	return a.Version == b.Version && a.User == b.User && a.Kind == b.Kind &&
		a.Expires.Equal(b.Expires) && string(a.Data) == string(b.Data)
}

// noSessionsOf checks that the store indexes no live session under user,
// if it keeps a user index.
func (e *env) noSessionsOf(user string) {
	e.t.Helper()
	idx, ok := e.store.(sesh.UserIndexer)
	if !ok {
		e.t.Logf("the store keeps no user index: not checked")
		return
	}
	ctx, cancel := context.WithTimeout(e.t.Context(), 5*time.Second)
	defer cancel()
	entries, err := idx.UserRecords(ctx, user)
	if err != nil {
		e.t.Fatalf("UserRecords(%q): %v", user, err)
	}
	for _, en := range entries {
		e.t.Errorf("user %q has a live %v record %s (version %d) that no browser holds", user, kindName(en.Record.Kind), en.Key, en.Record.Version)
	}
}

func kindName(k sesh.Kind) string {
	if k == sesh.KindSession {
		return "session"
	}
	return "token"
}

// checkIssued checks that every session cookie sent with a success during
// a fault names a stored session.
func (e *env) checkIssued() {
	e.t.Helper()
	e.mu.Lock()
	issued := slices.Clone(e.issued)
	e.mu.Unlock()
	for _, c := range issued {
		if r := e.raw("GET", "/state", c); r.code != http.StatusOK || r.body == "new" {
			e.t.Errorf("a cookie issued during the fault names no stored session: got %d %q", r.code, r.body)
		}
	}
}

// baseline returns the number of the application's goroutines (all but
// the proxy's, and those the store's client keeps per open connection)
// once the HTTP clients' connections are closed.
func (e *env) baseline() int {
	e.srv.CloseClientConnections()
	settle()
	return e.goroutines()
}

// goroutines returns the number of goroutines but the proxy's and those
// that the store's client keeps per open connection (a pool may hold more
// or fewer connections after a fault).
func (e *env) goroutines() int {
	return runtime.NumGoroutine() - e.proxy.Goroutines() - e.o.ConnGoroutines*e.proxy.Open()
}

// settled checks that the application's goroutines are back to base
// within Linger and a margin, and reports the connections that the fault
// killed and the store's client still holds (idle in its pool, they fail
// the requests that use them later).
func (e *env) settled(base int) {
	e.t.Helper()
	e.srv.CloseClientConnections()
	limit := e.o.Linger + 5*time.Second
	deadline := time.Now().Add(limit)
	for e.goroutines() > base {
		if time.Now().After(deadline) {
			var sb strings.Builder
			pprof.Lookup("goroutine").WriteTo(&sb, 1)
			e.t.Fatalf("%v after recovery: %d goroutines besides the proxy's, want at most %d as before the fault:\n%s",
				limit, e.goroutines(), base, sb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := e.proxy.Silent(); n > 0 {
		e.t.Logf("the client still holds %d connections that the fault killed", n)
	}
}

// settle polls the goroutine count until it has not changed for a few
// polls (or a second has passed), and returns it.
func settle() int {
	deadline := time.Now().Add(time.Second)
	n, same := runtime.NumGoroutine(), 0
	for same < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}

// browser is an HTTP client with its own cookie jar.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, Transport: &http.Transport{}}}
}

type response struct {
	code    int
	body    string
	cookies []*http.Cookie
}

func (r response) cookieStrings() []string {
	var out []string
	for _, c := range r.cookies {
		out = append(out, c.String())
	}
	return out
}

func (b *browser) do(method, path string) response {
	b.e.t.Helper()
	return b.e.send(b.c, method, path, "")
}

// raw sends a request with the session cookie value given, and no jar.
func (e *env) raw(method, path, cookie string) response {
	e.t.Helper()
	return e.send(http.DefaultClient, method, path, cookie)
}

func (e *env) send(c *http.Client, method, path, cookie string) response {
	t := e.t
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: sesh.DefaultInsecureName, Value: cookie})
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	r := response{code: res.StatusCode, body: string(body), cookies: res.Cookies()}
	if e.faulty.Load() {
		if r.code >= 500 && r.code != http.StatusServiceUnavailable {
			t.Errorf("%s %s during a fault: got %d, want 503 for any server error", method, path, r.code)
		}
		if r.code < 300 {
			e.mu.Lock()
			for _, c := range r.cookies {
				if c.Name == sesh.DefaultInsecureName && c.Value != "" && c.MaxAge >= 0 {
					e.issued = append(e.issued, c.Value)
				}
			}
			e.mu.Unlock()
		}
	}
	return r
}

// must sends a request that must succeed.
func (b *browser) must(method, path string) response {
	b.e.t.Helper()
	r := b.do(method, path)
	if r.code != http.StatusOK {
		b.e.t.Fatalf("%s %s: got %d %q, want 200", method, path, r.code, r.body)
	}
	return r
}

// state checks what the session holds.
func (b *browser) state(want string) {
	b.e.t.Helper()
	if r := b.must("GET", "/state"); r.body != want {
		b.e.t.Errorf("session: got %q, want %q", r.body, want)
	}
}

// unavailable sends a request that must get 503 without cookies.
func (b *browser) unavailable(method, path string) {
	b.e.t.Helper()
	r := b.do(method, path)
	if r.code != http.StatusServiceUnavailable || len(r.cookies) != 0 {
		b.e.t.Errorf("%s %s while the store fails: got %d with cookies %v, want 503 and none", method, path, r.code, r.cookieStrings())
	}
}

// unavailableWithin is unavailable for a request that must end within
// bound.
func (b *browser) unavailableWithin(bound time.Duration, method, path string) {
	b.e.t.Helper()
	start := time.Now()
	b.unavailable(method, path)
	if took := time.Since(start); took > bound {
		b.e.t.Errorf("%s %s took %v, want at most %v (Config.StoreTimeout is %v)", method, path, took, bound, b.e.o.StoreTimeout)
	}
}

// cookie returns the value of b's session cookie.
func (b *browser) cookie() string {
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sesh.DefaultInsecureName {
			return c.Value
		}
	}
	b.e.t.Fatal("the browser has no session cookie")
	return ""
}

// lockingTap is the tap of a store that is also a [sesh.Locker], so that
// exclusive requests take the store's lock through the proxy. An unlock
// runs the "unlock" hook first.
type lockingTap struct {
	*tap
	l sesh.Locker
}

func (t lockingTap) Lock(ctx context.Context, key sesh.Key, ttl time.Duration) (func(context.Context) error, error) {
	unlock, err := t.l.Lock(ctx, key, ttl)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		t.fire("unlock")
		return unlock(ctx)
	}, nil
}

// tap is the store as the manager sees it: it records what was saved and
// runs armed actions just before a call. It implements only [sesh.Store],
// which is all the scenarios use.
type tap struct {
	sesh.Store
	mu      sync.Mutex
	hooks   map[string]func()
	acked   map[sesh.Key]sesh.Record // last acknowledged save of each key
	tried   map[sesh.Key]sesh.Record // last failed save of each key
	created []sesh.Key               // keys created with an acknowledged save
}

func newTap(s sesh.Store) *tap {
	return &tap{Store: s, hooks: map[string]func(){}, acked: map[sesh.Key]sesh.Record{}, tried: map[sesh.Key]sesh.Record{}}
}

// arm runs f once, just before the next call of op.
func (t *tap) arm(op string, f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hooks[op] = f
}

func (t *tap) fire(op string) {
	t.mu.Lock()
	f := t.hooks[op]
	delete(t.hooks, op)
	t.mu.Unlock()
	if f != nil {
		f()
	}
}

func (t *tap) Load(ctx context.Context, key sesh.Key) (sesh.Record, error) {
	t.fire("load")
	return t.Store.Load(ctx, key)
}

func (t *tap) Save(ctx context.Context, key sesh.Key, rec sesh.Record, prev uint64) error {
	t.fire("save")
	cp := rec
	cp.Data = slices.Clone(rec.Data)
	cp.Expires = rec.Expires.Truncate(time.Millisecond)
	err := t.Store.Save(ctx, key, rec, prev)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.tried[key] = cp
		return err
	}
	t.acked[key] = cp
	if prev == 0 {
		t.created = append(t.created, key)
	}
	return nil
}

func (t *tap) Delete(ctx context.Context, key sesh.Key, tombstone time.Time) error {
	t.fire("delete")
	return t.Store.Delete(ctx, key, tombstone)
}

// lastCreated returns the key last created and the last record saved
// under it with an acknowledgement.
func (t *tap) lastCreated(tb testing.TB) (sesh.Key, sesh.Record) {
	tb.Helper()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.created) == 0 {
		tb.Fatal("no session was created")
	}
	k := t.created[len(t.created)-1]
	return k, t.acked[k]
}

// attempted returns the last failed save of key.
func (t *tap) attempted(key sesh.Key) (sesh.Record, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec, ok := t.tried[key]
	return rec, ok
}
