package redisstore_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/redisstore"
	"github.com/seshgo/sesh/seal"
)

const (
	causeStore       = "store-unavailable"
	causeLockTimeout = "lock-timeout"
)

const (
	failoverClients = 40
	failoverPrefix  = "failover:"
	// failoverStoreTimeout is Config.StoreTimeout and the client's I/O
	// timeout: short, but not so short that a healthy call on a loaded
	// machine runs out of it.
	failoverStoreTimeout = time.Second
)

// Phases of the failover run, as a request sees them when it starts.
const (
	phaseHealthy   int32 = iota // before the kill
	phaseOutage                 // from the kill until the client routes to the promoted replica
	phaseRecovered              // after that
)

var phaseNames = [...]string{"healthy", "outage", "recovered"}

// TestClusterFailover kills a master of a Redis Cluster (3 masters, 3
// replicas, of the test's own) under load, and checks that sesh degrades
// and recovers as promised: while the master is down, requests whose
// session lives on it get 503 with no cookie, never a new session; once a
// replica is promoted, every user is still logged in and no acknowledged
// write is lost; the killed node then rejoins as a replica.
//
// Redis replicates asynchronously: a master acknowledges a write before
// its replica has it, so a write acknowledged just before a crash can be
// lost when the replica takes over. The test closes that window on
// purpose: it quiesces the load and has every master confirm with WAIT
// that its replica holds everything before killing it. What is tested is
// sesh's part (no 200 for a write it could not make, no logout, no
// resurrected session), not Redis's durability, which sesh cannot add.
func TestClusterFailover(t *testing.T) {
	if os.Getenv("SESH_TEST_REDIS_CLUSTER") == "" {
		needEnv(t, "SESH_TEST_REDIS_CLUSTER")
	}
	needRedisBinaries(t)
	// With cluster-require-full-coverage no, the other masters serve their
	// slots throughout: only sessions on the killed master see 503.
	t.Run("PartialCoverage", func(t *testing.T) { testClusterFailover(t, false) })
	// With Redis's default (yes), every node answers CLUSTERDOWN from the
	// moment the master is marked failed until its replica is promoted, so
	// every request gets 503 for that while. An exclusive request that took
	// its lock just before and could not release it leaves the lock behind;
	// the next exclusive request on that session releases it once the
	// store answers, so none answers 503 after recovery.
	t.Run("RequireFullCoverage", func(t *testing.T) { testClusterFailover(t, true) })
}

func testClusterFailover(t *testing.T, fullCoverage bool) {
	began := time.Now()
	coverage := "no"
	if fullCoverage {
		coverage = "yes"
	}
	pc := startProcCluster(t, 3, 1, "--cluster-require-full-coverage", coverage)
	t.Logf("cluster of 3 masters and 3 replicas up in %v", time.Since(began).Round(time.Millisecond))

	// Fail fast on a dead node: a refused dial is not retried with backoff,
	// and every call is bounded by the context sesh gives it
	// (StoreTimeout). The slot map keeps go-redis's default reload interval
	// (60 s): a dead master sends no MOVED, and the store asks the client
	// to reload its layout when a call fails, so the sessions of the
	// killed master get their successor within the recovery deadline
	// below, not a minute after the promotion.
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 pc.addrs(),
		DialTimeout:           failoverStoreTimeout,
		DialerRetries:         1,
		ReadTimeout:           failoverStoreTimeout,
		WriteTimeout:          failoverStoreTimeout,
		ContextTimeoutEnabled: true,
		MaxRedirects:          3,
		PoolSize:              2 * failoverClients,
	})
	t.Cleanup(func() { cc.Close() })
	store := redisstore.New(cc, redisstore.WithPrefix(failoverPrefix))
	app := newFailoverApp(t, store)

	// Every client makes an anonymous session, then logs in, which renews
	// its ID and leaves a tombstone under the old one.
	ctx := t.Context()
	clients := make([]*failoverClient, failoverClients)
	for i := range clients {
		c := app.newClient(t, fmt.Sprintf("user%02d", i))
		c.signIn(t)
		entries, err := store.UserRecords(ctx, c.user)
		if err != nil || len(entries) != 1 {
			t.Fatalf("UserRecords(%s): got %d entries, %v; want 1", c.user, len(entries), err)
		}
		c.tag = hex.EncodeToString(entries[0].Key[:1])
		clients[i] = c
	}

	// Kill the master holding the most sessions.
	bySlotOwner := make(map[string][]*failoverClient)
	for _, c := range clients {
		m, err := cc.MasterForKey(ctx, failoverPrefix+"{"+c.tag+"}")
		if err != nil {
			t.Fatal(err)
		}
		a := m.Options().Addr
		bySlotOwner[a] = append(bySlotOwner[a], c)
	}
	var victimAddr string
	for a, cs := range bySlotOwner {
		if len(cs) > len(bySlotOwner[victimAddr]) {
			victimAddr = a
		}
	}
	victim := pc.byAddr(victimAddr)
	if victim == nil || len(bySlotOwner) != 3 {
		t.Fatalf("sessions are on masters %v; want 3 masters of this cluster", slices.Collect(maps.Keys(bySlotOwner)))
	}
	var victimTags []string
	for _, c := range bySlotOwner[victimAddr] {
		c.victim = true
		victimTags = append(victimTags, c.tag)
	}
	successor := pc.replicaOf(t, victim)
	t.Logf("%d sessions on the master to kill (%s, replica %s), %d on the other two",
		len(victimTags), victimAddr, successor.addr(), failoverClients-len(victimTags))

	// A key on each master, written and then waited for with WAIT on one
	// connection: the replication stream is ordered, so once the replica
	// acknowledges it, it holds every write made before.
	markers := make(map[string]string)
	for i := 0; len(markers) < 3; i++ {
		k := fmt.Sprintf("%swait:{%d}", failoverPrefix, i)
		m, err := cc.MasterForKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := markers[m.Options().Addr]; !ok {
			markers[m.Options().Addr] = k
		}
	}

	run := &failoverRun{fullCoverage: fullCoverage, stats: newFailoverStats()}
	var (
		gate sync.RWMutex // workers hold it for reading per round; held for writing, the load is quiesced
		stop = make(chan struct{})
		warm = make(chan struct{}, failoverClients) // a worker made 3 rounds
		done = make(chan struct{}, failoverClients) // a worker had 2 increments answered after recovery
		wg   sync.WaitGroup
	)
	stopWorkers := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	t.Cleanup(stopWorkers)
	for _, c := range clients {
		wg.Go(func() {
			signalled := false
			for round := 0; ; round++ {
				select {
				case <-stop:
					return
				default:
				}
				gate.RLock()
				c.round(round, run)
				gate.RUnlock()
				if round == 2 {
					warm <- struct{}{}
				}
				if c.recovered >= 2 && !signalled {
					signalled = true
					done <- struct{}{}
				}
			}
		})
	}
	awaitSignals(t, warm, failoverClients, 30*time.Second, "every client to make 3 rounds")

	var killedAt time.Time
	func() {
		gate.Lock()
		defer gate.Unlock()
		masters := atomic.Int32{}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := cc.ForEachMaster(wctx, func(ctx context.Context, m *redis.Client) error {
			key, ok := markers[m.Options().Addr]
			if !ok {
				return fmt.Errorf("no marker key for master %s", m.Options().Addr)
			}
			conn := m.Conn()
			defer conn.Close()
			if err := conn.Set(ctx, key, "1", time.Minute).Err(); err != nil {
				return err
			}
			n, err := conn.Wait(ctx, 1, 5*time.Second).Result()
			if err != nil {
				return fmt.Errorf("WAIT 1 5000 on %s: %w", m.Options().Addr, err)
			}
			if n != 1 {
				return fmt.Errorf("WAIT 1 5000 on %s: %d replicas acknowledged, want 1", m.Options().Addr, n)
			}
			masters.Add(1)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := masters.Load(); n != 3 {
			t.Fatalf("WAIT ran on %d masters, want 3", n)
		}
		victim.kill()
		killedAt = time.Now()
		run.phase.Store(phaseOutage)
	}()

	live := slices.DeleteFunc(slices.Clone(pc.nodes), func(p *redisProc) bool { return p == victim })
	promoted := pc.waitUntil(30*time.Second, "the replica of the killed master to be promoted", func(ctx context.Context) (bool, string) {
		view, err := successor.view(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range view {
			if n.has("myself") && (!n.has("master") || len(n.slots) == 0) {
				return false, fmt.Sprintf("%s is still %v", successor.addr(), n.flags)
			}
		}
		return pc.healthy(ctx, live, 3, 0)
	})
	routed := pc.waitUntil(30*time.Second, "the client to reach the killed master's slots again", func(ctx context.Context) (bool, string) {
		for _, tag := range victimTags {
			pctx, cancel := context.WithTimeout(ctx, failoverStoreTimeout)
			err := cc.Exists(pctx, failoverPrefix+"{"+tag+"}probe").Err()
			cancel()
			if err != nil {
				return false, err.Error()
			}
		}
		return true, ""
	})
	run.phase.Store(phaseRecovered)
	t.Logf("replica promoted %v after the kill; client routed to it %v later", promoted.Round(time.Millisecond), routed.Round(time.Millisecond))
	awaitSignals(t, done, failoverClients, 30*time.Second, "every client to have 2 increments answered after recovery")
	stopWorkers()
	t.Logf("load ran %v after the kill", time.Since(killedAt).Round(time.Millisecond))

	// What the requests saw.
	run.stats.report(t)
	if n := run.stats.count(phaseOutage, true, http.StatusServiceUnavailable); n == 0 {
		t.Error("no request on the killed master's sessions answered 503 during the outage")
	}
	if n := run.stats.count(phaseOutage, false, http.StatusOK); n == 0 {
		t.Error("no request on the other masters was answered during the outage")
	}

	// Every user is still logged in, with every acknowledged write.
	applied := 0
	for _, c := range clients {
		applied += c.checkFinal(t)
		devs, err := app.m.Sessions(ctx, c.user)
		if err != nil || len(devs) != 1 {
			t.Errorf("%s: Sessions: got %d devices, %v; want 1", c.user, len(devs), err)
		}
		c.checkOldCookie(t)
	}
	t.Logf("%d increments answered 503 had been applied (a store timeout after the write), allowed and counted", applied)

	// The killed node comes back with its nodes.conf and rejoins as a
	// replica of its successor.
	victim.start(t)
	successorID, err := successor.myID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rejoined := pc.waitUntil(30*time.Second, "the restarted node to rejoin as a replica", func(ctx context.Context) (bool, string) {
		role, err := victim.admin.Do(ctx, "ROLE").Slice()
		if err != nil {
			return false, err.Error()
		}
		if len(role) == 0 || role[0] != "slave" {
			return false, fmt.Sprintf("%s has role %v", victim.addr(), role)
		}
		info, err := victim.admin.Info(ctx, "replication").Result()
		if err != nil {
			return false, err.Error()
		}
		if st := infoFields(info)["master_link_status"]; st != "up" {
			return false, "master_link_status:" + st
		}
		view, err := victim.view(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range view {
			if n.has("myself") && n.master != successorID {
				return false, fmt.Sprintf("%s replicates %s, want %s", victim.addr(), n.master, successorID)
			}
		}
		return pc.healthy(ctx, pc.nodes, 3, 1)
	})
	t.Logf("restarted node rejoined as a replica in %v", rejoined.Round(time.Millisecond))
	for _, c := range clients {
		c.checkFinal(t)
	}
	t.Logf("wall time %v", time.Since(began).Round(time.Millisecond))
}

// awaitSignals waits for n signals on ch, failing t after timeout.
func awaitSignals(t *testing.T, ch <-chan struct{}, n int, timeout time.Duration, what string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for i := range n {
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("waited %v for %s: %d of %d", timeout, what, i, n)
		}
	}
}

// replicaOf returns the replica of master p.
func (pc *procCluster) replicaOf(t *testing.T, p *redisProc) *redisProc {
	t.Helper()
	ctx := t.Context()
	id, err := p.myID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	view, err := p.view(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range view {
		if n.master == id {
			if r := pc.byAddr(n.addr); r != nil {
				return r
			}
		}
	}
	t.Fatalf("master %s has no replica", p.addr())
	return nil
}

// failoverApp is a sesh application over HTTP on a store.
type failoverApp struct {
	m   *sesh.Manager
	srv *httptest.Server
	tr  *http.Transport
}

func newFailoverApp(t *testing.T, store sesh.Store) *failoverApp {
	t.Helper()
	key, err := seal.GenerateKey(1)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := seal.NewRing(key)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sesh.New(store, sesh.Config{
		Keys:         ring,
		StoreTimeout: failoverStoreTimeout,
		LockTimeout:  2 * time.Second,
		LockTTL:      5 * time.Second,
		Cookie:       sesh.CookieConfig{InsecureHTTP: true},
		// The default handler, telling the test why it answered.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			cause := "other"
			switch {
			case errors.Is(err, sesh.ErrLockTimeout):
				cause = causeLockTimeout
			case errors.Is(err, sesh.ErrStoreUnavailable):
				cause = causeStore
			}
			w.Header().Set("X-Sesh-Error", cause)
			sesh.DefaultErrorHandler(w, r, err)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A handler that finds no user answers 401; one whose session failed
	// to load is answered by sesh's error handler instead, whatever it
	// writes.
	user := func(w http.ResponseWriter, s *sesh.Session) (string, bool) {
		u := s.User()
		if u == "" {
			http.Error(w, "logged out", http.StatusUnauthorized)
		}
		return u, u != ""
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /start", func(w http.ResponseWriter, r *http.Request) {
		if err := sesh.FromContext(r.Context()).Set("cart", "1 book"); err == nil {
			io.WriteString(w, "ok")
		}
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Login(r.FormValue("u"))
		io.WriteString(w, "ok")
	})
	mux.Handle("GET /incr", m.Exclusive(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		u, ok := user(w, s)
		if !ok {
			return
		}
		n, _ := sesh.Get[int](s, "n")
		n++
		if err := s.Set("n", n); err == nil {
			fmt.Fprintf(w, "%s %d", u, n)
		}
	})))
	mux.HandleFunc("GET /put", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		u, ok := user(w, s)
		if !ok {
			return
		}
		if err := s.Set("v", r.FormValue("v")); err == nil {
			io.WriteString(w, u)
		}
	})
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		n, _ := sesh.Get[int](s, "n")
		v, _ := sesh.Get[string](s, "v")
		cart, _ := sesh.Get[string](s, "cart")
		fmt.Fprintf(w, "%s|%d|%s|%s", s.User(), n, v, cart)
	})
	srv := httptest.NewServer(m.Handler(mux))
	t.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * failoverClients}
	t.Cleanup(tr.CloseIdleConnections)
	return &failoverApp{m: m, srv: srv, tr: tr}
}

// failoverClient is one browser: a cookie jar and a user.
type failoverClient struct {
	app  *failoverApp
	user string
	hc   *http.Client
	old  string // the anonymous session's cookie value, renewed away at login
	tag  string // the hash tag of the logged-in session's keys

	// victim is set when the session lives on the master that is killed.
	victim bool

	// Touched by the client's worker only, then by the test once the
	// workers are stopped.
	ok200     int      // increments answered 200
	acked     int      // the counter in the last increment answered 200
	unacked   int      // increments answered 503 since then
	applied   int      // increments answered 503 that were applied all the same
	value     string   // the value of the last put answered 200
	maybe     []string // values of puts answered 503 since then
	recovered int      // increments answered 200 that started after recovery
}

func (app *failoverApp) newClient(t *testing.T, user string) *failoverClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &failoverClient{app: app, user: user, hc: &http.Client{Transport: app.tr, Jar: jar, Timeout: 30 * time.Second}}
}

// failoverResp is what a test request got.
type failoverResp struct {
	status     int
	body       string
	setCookie  bool
	retryAfter string
	cause      string // why sesh's error handler answered
	took       time.Duration
}

func (c *failoverClient) do(method, path string) (failoverResp, error) {
	req, err := http.NewRequest(method, c.app.srv.URL+path, nil)
	if err != nil {
		return failoverResp{}, err
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return failoverResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return failoverResp{resp.StatusCode, string(b), len(resp.Header.Values("Set-Cookie")) > 0,
		resp.Header.Get("Retry-After"), resp.Header.Get("X-Sesh-Error"), time.Since(start)}, err
}

// cookie returns the session cookie the client holds.
func (c *failoverClient) cookie() string {
	u, _ := url.Parse(c.app.srv.URL)
	for _, ck := range c.hc.Jar.Cookies(u) {
		if ck.Name == sesh.DefaultInsecureName {
			return ck.Value
		}
	}
	return ""
}

// signIn makes an anonymous session with a cart, then logs in.
func (c *failoverClient) signIn(t *testing.T) {
	t.Helper()
	if r, err := c.do("GET", "/start"); err != nil || r.status != http.StatusOK || !r.setCookie {
		t.Fatalf("%s: /start: got %+v, %v; want 200 with a cookie", c.user, r, err)
	}
	c.old = c.cookie()
	if r, err := c.do("POST", "/login?u="+c.user); err != nil || r.status != http.StatusOK || !r.setCookie {
		t.Fatalf("%s: /login: got %+v, %v; want 200 with a cookie", c.user, r, err)
	}
	if c.old == "" || c.cookie() == c.old {
		t.Fatalf("%s: login did not renew the session ID", c.user)
	}
}

// failoverRun is the state of one failover run that the workers share.
type failoverRun struct {
	fullCoverage bool
	phase        atomic.Int32
	stats        *failoverStats
}

// round makes one increment (exclusive) and one put, and checks each
// answer as it comes.
func (c *failoverClient) round(i int, run *failoverRun) {
	ph := run.phase.Load()
	r, err := c.do("GET", "/incr")
	if c.check("/incr", run, ph, r, err) {
		user, ns, _ := strings.Cut(r.body, " ")
		n, err := strconv.Atoi(ns)
		switch {
		case user != c.user || err != nil:
			run.stats.problem("%s: /incr answered %q", c.user, r.body)
		case n <= c.acked:
			run.stats.problem("%s: lost write: /incr answered %d after %d had been acknowledged", c.user, n, c.acked)
		case n > c.acked+1+c.unacked:
			run.stats.problem("%s: /incr answered %d after %d acknowledged and %d failed increments", c.user, n, c.acked, c.unacked)
		default:
			c.applied += n - c.acked - 1
			c.ok200++
			c.acked, c.unacked = n, 0
			if ph == phaseRecovered {
				c.recovered++
			}
		}
	} else if r.status == http.StatusServiceUnavailable {
		c.unacked++
	}

	v := fmt.Sprintf("%s-%d", c.user, i)
	ph = run.phase.Load()
	r, err = c.do("GET", "/put?v="+v)
	if c.check("/put", run, ph, r, err) {
		c.value, c.maybe = v, nil
	} else if r.status == http.StatusServiceUnavailable {
		c.maybe = append(c.maybe, v)
	}
}

// check records a response to a request that started in phase ph, and
// reports whether it was a well-formed 200 for this client's user.
func (c *failoverClient) check(path string, run *failoverRun, ph int32, r failoverResp, err error) bool {
	st := run.stats
	if err != nil {
		st.problem("%s: %s: %v", c.user, path, err)
		return false
	}
	st.add(failoverKey{ph, c.victim, r.status, r.cause}, r.took)
	switch r.status {
	case http.StatusOK:
		if r.setCookie {
			st.problem("%s: %s answered 200 with a Set-Cookie in phase %s: the session was replaced", c.user, path, phaseNames[ph])
			return false
		}
		if !strings.HasPrefix(r.body, c.user) {
			st.problem("%s: %s answered 200 for another user: %q", c.user, path, r.body)
			return false
		}
		return true
	case http.StatusServiceUnavailable:
		if r.setCookie {
			st.problem("%s: %s answered 503 with a Set-Cookie", c.user, path)
		}
		if r.retryAfter == "" {
			st.problem("%s: %s answered 503 without Retry-After", c.user, path)
		}
		switch {
		case ph == phaseOutage && c.victim:
			// Its master is down.
		case ph == phaseOutage && run.fullCoverage:
			// CLUSTERDOWN, or a lock left behind by it.
		default:
			st.problem("%s: %s answered 503 (%s) in phase %s on a session on a live master (victim %v)",
				c.user, path, r.cause, phaseNames[ph], c.victim)
		}
	default:
		st.problem("%s: %s answered %d %q in phase %s", c.user, path, r.status, strings.TrimSpace(r.body), phaseNames[ph])
	}
	return false
}

// checkFinal checks that the client is still logged in with its cart, its
// counter counts every acknowledged increment and its value is the last
// one acknowledged; it returns how many increments answered 503 had been
// applied all the same. It is called once the workers are stopped.
func (c *failoverClient) checkFinal(t *testing.T) int {
	t.Helper()
	r, err := c.do("GET", "/state")
	if err != nil || r.status != http.StatusOK || r.setCookie {
		t.Errorf("%s: /state: got %+v, %v; want 200 with no cookie", c.user, r, err)
		return 0
	}
	f := strings.Split(r.body, "|")
	if len(f) != 4 || f[0] != c.user || f[3] != "1 book" {
		t.Errorf("%s: /state: got %q, want the user logged in with the cart", c.user, r.body)
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	if n < c.acked || n > c.acked+c.unacked {
		t.Errorf("%s: counter is %d; %d increments were acknowledged, the last one as %d, and %d failed after it",
			c.user, n, c.ok200, c.acked, c.unacked)
	}
	trailing := n - c.acked
	c.acked, c.unacked, c.applied = n, 0, c.applied+trailing
	if n != c.ok200+c.applied {
		t.Errorf("%s: counter is %d, want %d answered 200 + %d applied though answered 503", c.user, n, c.ok200, c.applied)
	}
	if f[2] != c.value && !slices.Contains(c.maybe, f[2]) {
		t.Errorf("%s: value is %q, want %q (the last acknowledged) or one of the failed puts after it %q", c.user, f[2], c.value, c.maybe)
	}
	c.value, c.maybe = f[2], nil
	return c.applied
}

// checkOldCookie checks that the ID renewed away at login is still dead
// after the failover: a request presenting it gets no session and no
// cookie.
func (c *failoverClient) checkOldCookie(t *testing.T) {
	t.Helper()
	req, err := http.NewRequest("GET", c.app.srv.URL+"/state", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: sesh.DefaultInsecureName, Value: c.old})
	resp, err := (&http.Client{Transport: c.app.tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(b) != "|0||" || len(resp.Header.Values("Set-Cookie")) > 0 {
		t.Errorf("%s: the pre-login session ID: got %d %q %q, want 200 %q and no cookie (resurrected?)",
			c.user, resp.StatusCode, b, resp.Header.Values("Set-Cookie"), "|0||")
	}
}

// failoverStats counts responses and their latency by phase, victim,
// status and cause, and keeps the first problems seen by the workers.
type failoverStats struct {
	mu       sync.Mutex
	n        map[failoverKey]*latencies
	problems []string
	more     int
}

// latencies sums up the durations of some responses.
type latencies struct {
	n        int
	sum, max time.Duration
}

type failoverKey struct {
	phase  int32
	victim bool
	status int
	cause  string
}

func newFailoverStats() *failoverStats {
	return &failoverStats{n: make(map[failoverKey]*latencies)}
}

func (s *failoverStats) add(k failoverKey, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.n[k]
	if l == nil {
		l = new(latencies)
		s.n[k] = l
	}
	l.n++
	l.sum += took
	l.max = max(l.max, took)
}

// count returns how many responses of phase had status, on the killed
// master's sessions or on the others.
func (s *failoverStats) count(phase int32, victim bool, status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, v := range s.n {
		if k.phase == phase && k.victim == victim && k.status == status {
			n += v.n
		}
	}
	return n
}

func (s *failoverStats) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.problems) < 30 {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
	} else {
		s.more++
	}
}

// report logs the counts and fails t with the problems.
func (s *failoverStats) report(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := slices.SortedFunc(maps.Keys(s.n), func(a, b failoverKey) int {
		if a.phase != b.phase {
			return int(a.phase - b.phase)
		}
		if a.victim != b.victim {
			if a.victim {
				return 1
			}
			return -1
		}
		if a.status != b.status {
			return a.status - b.status
		}
		return strings.Compare(a.cause, b.cause)
	})
	var b strings.Builder
	for _, k := range keys {
		where := "other masters"
		if k.victim {
			where = "killed master"
		}
		l := s.n[k]
		fmt.Fprintf(&b, "\n  %-9s %-13s %d %-17s %5d  mean %4dms  max %4dms", phaseNames[k.phase], where, k.status, k.cause,
			l.n, (l.sum / time.Duration(l.n)).Milliseconds(), l.max.Milliseconds())
	}
	t.Logf("responses by phase, session's master, status and cause:%s", b.String())
	for _, p := range s.problems {
		t.Error(p)
	}
	if s.more > 0 {
		t.Errorf("and %d more problems", s.more)
	}
}
