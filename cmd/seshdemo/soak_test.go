package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// Settings of TestSoak.
const (
	// defaultSoak is how long each store is loaded when SESH_SOAK is not
	// set: short enough for every CI run.
	defaultSoak = 10 * time.Second
	// soakClients is the number of concurrent browsers.
	soakClients = 32
	// soakHeapSlack is how far above its baseline the heap in use may
	// stay once the demos have stopped and the browsers are dropped.
	// Measured: 0.2 to 0.9 MiB above after 10-second and 3-minute runs
	// alike, under race detection. The bound leaves room for the
	// runtime's caches, and is still exceeded by a leak of 150 bytes per
	// request in a 3-minute run (about 100,000 requests on Redis), or of
	// 3 KiB per request in a 10-second one (about 5,000).
	soakHeapSlack = 16 << 20
	// soakFailureLogs bounds the failures described in full; the others
	// are only counted.
	soakFailureLogs = 10
)

// TestSoak runs two demo instances on one store, Redis and then
// PostgreSQL, under soakClients concurrent browsers for SESH_SOAK per
// store (a Go duration, default 10s; `make soak` runs it for minutes).
// Each browser has its own cookies, sends each request to either instance
// at random, and picks its next action at random with fixed weights:
// signing in (with or without remember-me; as the same user, keeping the
// session's data, or as the other, dropping it) and failing to, reading
// who it is, counter increments (exclusive) and reads, key-value writes
// and reads, flash messages, signing out, bursts of parallel writes on its
// session, browser restarts restored by the remember-me cookie (alone or
// by parallel requests), listing its devices, and ending another device
// or every other one.
//
// Each browser keeps a model of what must be true and checks every
// response against it:
//
//   - no lost write: an increment returns the previous value plus one,
//     parallel increments return each value once, reads return the last
//     value written; the data is kept or dropped exactly as Login,
//     Logout, revocation and restoration say;
//   - no resurrected session: a cookie that was signed out, renewed or
//     revoked, and a remember-me cookie that was signed out or revoked,
//     never again give a signed-in session (each is probed with
//     GET /api/me and nothing else), and a write with a signed-out or
//     renewed cookie is answered 409;
//   - the user index is right: every listing of a user's devices shows
//     exactly the sessions the models say are live;
//   - no 5xx (no fault is injected), and no status but the expected one.
//
// Revocations are coordinated through the browsers' locks: a browser
// ends another's session only while that one waits, and "sign out the
// others" waits for everybody, so that each model knows exactly what
// ended. A browser whose check fails is described (its seed, its last
// requests), counted, and starts over signed out, so that one failure
// does not hide the others.
//
// At the end of each store, once the demos have stopped and the
// connections are closed, the number of goroutines must come back to
// what it was before, and the heap in use to within soakHeapSlack of it.
// The report is logged, and also written to the file SESH_SOAK_REPORT
// names, if set. SESH_SOAK_SEED replays the browsers' choices (which
// still depend on the order in which the browsers run).
func TestSoak(t *testing.T) {
	d := defaultSoak
	if v := os.Getenv("SESH_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			t.Fatalf("SESH_SOAK=%q: want a positive Go duration, such as 3m", v)
		}
	}
	seed := rand.Uint64()
	if v := os.Getenv("SESH_SOAK_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SESH_SOAK_SEED=%q: %v", v, err)
		}
	}
	t.Logf("seed %d: replay with SESH_SOAK_SEED=%d", seed, seed)
	reportPath := os.Getenv("SESH_SOAK_REPORT")
	if reportPath != "" {
		if err := os.WriteFile(reportPath, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("SESH_KEYS", "")
	run := randomName()
	for _, st := range []struct {
		name string
		url  func(*testing.T) string
	}{
		{"redis", func(t *testing.T) string { return soakRedisURL(t, run) }},
		{"postgres", func(t *testing.T) string { return soakPostgresURL(t, run) }},
	} {
		t.Run(st.name, func(t *testing.T) {
			report := soak(t, st.name, st.url(t), d, seed, run)
			t.Logf("report:\n%s", report)
			if reportPath == "" {
				return
			}
			f, err := os.OpenFile(reportPath, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := io.WriteString(f, report+"\n"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRestoredCounterAcrossInstances is the smallest case of a lost write
// that TestSoak found: a browser restarts, and opens several pages at
// once that each increment the counter, on two instances. The requests
// carry only the remember-me cookie; they share the session that the
// first of them restores, and each increment is exclusive, so they must
// return 1 to n once each.
func TestRestoredCounterAcrossInstances(t *testing.T) {
	t.Setenv("SESH_KEYS", "")
	dir := t.TempDir()
	bases := []string{startDemo(t, dir), startDemo(t, dir)}
	tr := newTransport(t)
	const n = 6
	for round := range 5 {
		c := newClient(t, bases[0], tr)
		c.login("alice", "wonderland", true)
		j := onlyRemember(c.jar())
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			values []int
		)
		for i := range n {
			b := newClient(t, bases[i%2], tr)
			b.setJar(j)
			wg.Go(func() {
				r := b.post("/api/counter", nil)
				var v valueBody
				if r.status != http.StatusOK || json.Unmarshal(r.body, &v) != nil {
					t.Errorf("%s", r)
					return
				}
				mu.Lock()
				values = append(values, v.Value)
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.Sort(values)
		for i, v := range values {
			if v != i+1 {
				t.Fatalf("round %d: %d parallel increments by a restarted browser returned %v, want 1 to %d once each", round, n, values, n)
			}
		}
	}
}

// soakRedisURL gives the run its own key prefix, and deletes its keys at
// the end.
func soakRedisURL(t *testing.T, run string) string {
	base := needEnv(t, "SESH_TEST_REDIS")
	prefix := "seshdemo-soak-" + run + ":"
	opts, err := redis.ParseURL(base)
	if err != nil {
		t.Fatalf("SESH_TEST_REDIS: %v", err)
	}
	t.Cleanup(func() {
		client := redis.NewClient(opts)
		defer client.Close()
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := client.Del(ctx, iter.Val()).Err(); err != nil {
				t.Errorf("cleaning up: %v", err)
				return
			}
		}
		if err := iter.Err(); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})
	return withQuery(base, "prefix", prefix)
}

// soakPostgresURL gives the run its own table, and drops it at the end.
func soakPostgresURL(t *testing.T, run string) string {
	base := needEnv(t, "SESH_TEST_POSTGRES")
	table := "seshdemo_soak_" + run
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("cleaning up: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+table+", "+table+"_locks"); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})
	return withQuery(base, "table", table)
}

// soak loads two demos on the store at url for d, and returns the report.
func soak(t *testing.T, store, url string, d time.Duration, seed uint64, run string) string {
	goBefore, heapBefore := settle()
	h := &soakHarness{run: run}
	var elapsed time.Duration
	t.Run("load", func(t *testing.T) {
		// Nothing may expire during the run: listings must match the
		// models exactly.
		life := (d + time.Hour).String()
		dir := t.TempDir() // one development key for both instances
		args := []string{"-store", url, "-idle", life, "-absolute", life, "-remember", life}
		h.bases = [2]string{startSoakDemo(t, dir, args), startSoakDemo(t, dir, args)}
		tr := &http.Transport{MaxIdleConnsPerHost: 4 * soakClients}
		t.Cleanup(tr.CloseIdleConnections) // before the demos stop
		h.t = t
		h.hc = &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Timeout:       time.Minute,
		}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		h.ctx = ctx
		for i := range soakClients {
			h.clients = append(h.clients, &soakClient{
				h:           h,
				id:          i,
				rng:         rand.New(rand.NewPCG(seed, uint64(i))),
				jar:         map[string]string{},
				kv:          map[string]string{},
				nextLineage: 1,
				nextS:       1,
				stats:       newSoakStats(),
			})
		}
		start := time.Now()
		var wg sync.WaitGroup
		for _, c := range h.clients {
			wg.Go(c.run)
		}
		wg.Wait()
		elapsed = time.Since(start)
	})
	goAfter := waitGoroutines(t, goBefore)
	var b strings.Builder
	fmt.Fprintf(&b, "store %s: 2 demo instances, %d clients, %v (seed %d)\n", store, soakClients, d, seed)
	total := newSoakStats()
	for _, c := range h.clients {
		total.merge(c.stats)
	}
	total.write(&b, elapsed)
	h = nil // the browsers' models and traces are not the demos' heap
	_, heapAfter := settle()
	if heapAfter > heapBefore+soakHeapSlack {
		t.Errorf("heap in use %s after the run, more than %s above the %s before", mib(heapAfter), mib(soakHeapSlack), mib(heapBefore))
	}
	fmt.Fprintf(&b, "goroutines: %d before, %d after\n", goBefore, goAfter)
	fmt.Fprintf(&b, "heap in use: %s before, %s after (bound: before + %s)", mib(heapBefore), mib(heapAfter), mib(soakHeapSlack))
	return b.String()
}

// startSoakDemo runs the demo like startDemo, but keeps only the log
// lines above INFO (one line per event would be megabytes), shown if the
// test fails.
func startSoakDemo(t *testing.T, dir string, args []string) string {
	t.Helper()
	return startDemoLogging(t, dir, &warnings{}, args...)
}

// warnings keeps the first 64 KiB of the log lines that are not INFO,
// nor expected. slog writes each line with one Write.
type warnings struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *warnings) Write(p []byte) (int, error) {
	// The probes' writes with ended session IDs are refused with a
	// warning each.
	if bytes.Contains(p, []byte("level=INFO")) || bytes.Contains(p, []byte("destroyed or renewed concurrently")) {
		return len(p), nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() < 64<<10 {
		w.buf.Write(p)
	}
	return len(p), nil
}

func (w *warnings) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// settle collects garbage and returns the number of goroutines and the
// heap in use.
func settle() (int, uint64) {
	runtime.GC()
	runtime.GC() // the second frees what the first one's finalizers released
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse
}

// waitGoroutines waits until there are no more goroutines than before,
// and returns how many there are; it fails the test after 30 seconds.
func waitGoroutines(t *testing.T, before int) int {
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return n
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("%d goroutines 30s after the run, %d before:\n%s", n, before, buf)
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// soakHarness is what the browsers of one run share.
type soakHarness struct {
	t       *testing.T
	ctx     context.Context // done when the run is over
	run     string          // the run's name, in every user agent
	bases   [2]string       // the instances' URLs
	hc      *http.Client
	clients []*soakClient
	logged  atomic.Int32 // failures described so far
}

// lockAll waits until every browser is idle. Browsers are always locked
// in the order of their ids, so that no two waiters wait for each other.
func (h *soakHarness) lockAll() {
	for _, c := range h.clients {
		c.busy.Lock()
	}
}

func (h *soakHarness) unlockAll() {
	for _, c := range h.clients {
		c.release()
	}
}

// soakSession is a session that a model knows to be live. Its user agent
// names its browser, device and number: the demo lists it with the user
// agent of the request that created it, which a renewal keeps.
type soakSession struct {
	s       int    // its number, unique in its browser
	lineage int    // its device (a renewal and a restore keep it)
	user    string // "" when anonymous
}

// soakToken is a live remember-me token, as the model knows it: the core
// keeps the device of the session it was issued for.
type soakToken struct {
	user    string
	lineage int
}

// soakClient is a browser and its model of the server.
type soakClient struct {
	h     *soakHarness
	id    int
	rng   *rand.Rand
	stats *soakStats

	// busy is held by the browser while it acts, and by a browser that
	// ends its sessions. It guards all the fields below.
	busy sync.Mutex

	jar        map[string]string
	cur        *soakSession      // the live session the jar names, or nil
	remembered bool              // cur was restored from a remember-me token
	counter    int               // the session's counter
	kv         map[string]string // the session's key-value bag, as raw JSON
	flash      []string          // the session's flash messages
	rem        *soakToken        // the live token of the jar's remember-me cookie, or nil
	// orphans are the live signed-in sessions whose cookie this browser
	// dropped (a browser restart): they are still listed, and can be
	// revoked.
	orphans     []soakSession
	nextS       int // the number of the next session created or restored
	nextLineage int // the number of the next new device
	trace       []string
	doing       string // the action under way, for the report
	failed      bool
}

// Kinds of failures.
const (
	failLostWrite    = "lost write"
	failResurrection = "resurrection"
	failServer       = "5xx"
	failStatus       = "unexpected status"
	failTransport    = "transport"
	failIndex        = "device listing"
	failModel        = "other"
)

// soakOp is one kind of action, picked with probability weight/total.
type soakOp struct {
	name   string
	weight int
	do     func(*soakClient)
	// all: the action locks every browser itself.
	all bool
}

var soakOps = []soakOp{
	{name: "me", weight: 140, do: (*soakClient).me},
	{name: "counter+", weight: 150, do: (*soakClient).increment},
	{name: "counter", weight: 70, do: (*soakClient).readCounter},
	{name: "kv put", weight: 100, do: (*soakClient).putKV},
	{name: "kv get", weight: 80, do: (*soakClient).getKV},
	{name: "flash add", weight: 50, do: (*soakClient).addFlash},
	{name: "flash pop", weight: 50, do: (*soakClient).popFlash},
	{name: "login", weight: 70, do: (*soakClient).login},
	{name: "bad login", weight: 10, do: (*soakClient).badLogin},
	{name: "logout", weight: 35, do: (*soakClient).logout},
	{name: "restart", weight: 40, do: (*soakClient).restart},
	{name: "restart, parallel reads", weight: 10, do: func(c *soakClient) { c.parallelRestore(false) }},
	{name: "restart, parallel increments", weight: 10, do: func(c *soakClient) { c.parallelRestore(true) }},
	{name: "parallel writes", weight: 50, do: (*soakClient).parallelWrites},
	{name: "devices", weight: 30, do: (*soakClient).devices},
	{name: "revoke", weight: 20, do: (*soakClient).revoke},
	{name: "revoke others", weight: 3, do: (*soakClient).revokeOthers, all: true},
}

var soakWeights = func() int {
	n := 0
	for _, op := range soakOps {
		n += op.weight
	}
	return n
}()

// run acts until the run is over.
func (c *soakClient) run() {
	for c.h.ctx.Err() == nil {
		n := c.rng.IntN(soakWeights)
		op := soakOps[0]
		for _, o := range soakOps {
			if n -= o.weight; n < 0 {
				op = o
				break
			}
		}
		c.stats.count(op.name)
		if op.all {
			op.do(c)
			continue
		}
		c.busy.Lock()
		c.doing = op.name
		op.do(c)
		c.release()
	}
}

// release unlocks a browser, which starts over signed out if a check of
// its model failed.
func (c *soakClient) release() {
	if c.failed {
		c.startOver()
	}
	c.busy.Unlock()
}

// startOver signs out whatever the jar holds and forgets it.
func (c *soakClient) startOver() {
	c.failed = false
	c.call(http.MethodPost, "/api/logout", nil)
	clear(c.jar)
	c.cur, c.rem, c.remembered = nil, nil, false
	c.dropData()
}

// fail records a failed check and describes the first ones.
func (c *soakClient) fail(kind, format string, args ...any) {
	c.failed = true
	c.stats.fail(kind, c.doing)
	if c.h.logged.Add(1) > soakFailureLogs {
		return
	}
	c.h.t.Errorf("%s: client %d (its random source: PCG(seed, %d)): %s\nits last requests:\n\t%s",
		kind, c.id, c.id, fmt.Sprintf(format, args...), strings.Join(c.trace, "\n\t"))
}

func (c *soakClient) note(s string) {
	if len(c.trace) == 16 {
		c.trace = slices.Delete(c.trace, 0, 1)
	}
	c.trace = append(c.trace, s)
}

// userAgent is the user agent of the browser's next request. It names the
// session that the request would create or restore, and is what the demo
// lists for it.
func (c *soakClient) userAgent() string {
	s, lineage := c.nextS, c.nextLineage
	switch {
	case c.cur != nil:
		s, lineage = c.cur.s, c.cur.lineage
	case c.rem != nil:
		lineage = c.rem.lineage
	}
	return fmt.Sprintf("soak/%s/c%d/L%d/s%d", c.h.run, c.id, lineage, s)
}

// parseUserAgent reads a user agent made by userAgent.
func (h *soakHarness) parseUserAgent(ua string) (client, lineage, s int, ok bool) {
	f := strings.Split(ua, "/")
	if len(f) != 5 || f[0] != "soak" || f[1] != h.run {
		return 0, 0, 0, false
	}
	var err [3]error
	client, err[0] = strconv.Atoi(strings.TrimPrefix(f[2], "c"))
	lineage, err[1] = strconv.Atoi(strings.TrimPrefix(f[3], "L"))
	s, err[2] = strconv.Atoi(strings.TrimPrefix(f[4], "s"))
	ok = err[0] == nil && err[1] == nil && err[2] == nil && client >= 0 && client < len(h.clients)
	return client, lineage, s, ok
}

// send sends a request to instance inst with the given cookies, and
// reads the response. A transport error gives status 0.
func (c *soakClient) send(inst int, method, path string, body any, jar map[string]string, ua string) *response {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			panic(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.h.bases[inst]+strings.TrimPrefix(path, "/"), rd)
	if err != nil {
		panic(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", ua)
	var cookies []string
	for _, name := range slices.Sorted(maps.Keys(jar)) {
		cookies = append(cookies, name+"="+jar[name])
	}
	if len(cookies) > 0 {
		req.Header.Set("Cookie", strings.Join(cookies, "; "))
	}
	r := &response{method: method, path: path}
	start := time.Now()
	res, err := c.h.hc.Do(req)
	if err == nil {
		r.body, err = io.ReadAll(res.Body)
		res.Body.Close()
		r.status, r.header = res.StatusCode, res.Header
	}
	if err != nil {
		r.status, r.body = 0, []byte(err.Error())
	}
	c.stats.request(method, path, r.status, time.Since(start))
	return r
}

// call sends a request with the browser's cookies to either instance,
// and keeps the cookies of the response.
func (c *soakClient) call(method, path string, body any) *response {
	inst := c.rng.IntN(2)
	r := c.send(inst, method, path, body, c.jar, c.userAgent())
	c.keep(r)
	c.note(fmt.Sprintf("%s @%d -> %d %s %s", c.userAgent(), inst, r.status, r.String(), cookieNames(r)))
	return r
}

// keep applies the Set-Cookie lines of r to the jar.
func (c *soakClient) keep(r *response) {
	for name, k := range r.setCookies() {
		if k.Value == "" || k.MaxAge < 0 {
			delete(c.jar, name)
		} else {
			c.jar[name] = k.Value
		}
	}
}

func cookieNames(r *response) string {
	var out []string
	for name, k := range r.setCookies() {
		if k.Value == "" || k.MaxAge < 0 {
			name = "-" + name
		}
		out = append(out, name)
	}
	slices.Sort(out)
	if len(out) == 0 {
		return ""
	}
	return "sets " + strings.Join(out, ",")
}

// expect checks the status of r.
func (c *soakClient) expect(r *response, code int) bool {
	if r.status == code {
		return true
	}
	switch {
	case r.status == 0:
		c.fail(failTransport, "%s", r)
	case r.status >= 500:
		c.fail(failServer, "%s: got %d, want %d", r, r.status, code)
	default:
		c.fail(failStatus, "%s: got %d, want %d", r, r.status, code)
	}
	return false
}

// decode decodes the JSON body of r into v.
func (c *soakClient) decode(r *response, v any) bool {
	if err := json.Unmarshal(r.body, v); err != nil {
		c.fail(failModel, "%s: %v", r, err)
		return false
	}
	return true
}

func (c *soakClient) signedIn() bool { return c.cur != nil && c.cur.user != "" }

func (c *soakClient) dropData() {
	c.counter, c.flash = 0, nil
	clear(c.kv)
}

// restores reports whether the next request that loads the session
// restores one from the remember-me cookie: the jar names no live
// session, but a live token. (The jar never holds a signed-out or
// renewed cookie, which would not be restored: the demo deletes those.)
func (c *soakClient) restores() bool { return c.cur == nil && c.rem != nil }

// restored updates the model for a session restored by the response r:
// a new session of the token's user and device, with no data, and both
// cookies sent again.
func (c *soakClient) restored(r *response, oldRemember string) {
	set := r.setCookies()
	if k := set[sessionCookie]; k == nil || k.Value == "" {
		c.fail(failModel, "%s: restored from the remember-me cookie, but no session cookie was set", r)
	}
	if k := set[rememberCookie]; k == nil || k.Value == "" || k.Value == oldRemember {
		c.fail(failModel, "%s: restored from the remember-me cookie, but it was not rotated", r)
	}
	c.cur = &soakSession{s: c.nextS, lineage: c.rem.lineage, user: c.rem.user}
	c.nextS++
	c.remembered = true
	c.dropData()
	c.stats.add(&c.stats.restores, 1)
}

// load updates the model for a request that loaded the session: a
// restore, if it was to happen.
func (c *soakClient) load(r *response, restore bool, oldRemember string) {
	if restore {
		c.restored(r, oldRemember)
	}
}

// write updates the model for a request that wrote to the session: a new
// anonymous session, if there was none.
func (c *soakClient) write(r *response, restore bool, oldRemember string) {
	c.load(r, restore, oldRemember)
	if c.cur != nil {
		return
	}
	if k := r.setCookies()[sessionCookie]; k == nil || k.Value == "" {
		c.fail(failModel, "%s: a new session, but no session cookie was set", r)
	}
	c.cur = &soakSession{s: c.nextS, lineage: c.nextLineage}
	c.nextS++
	c.nextLineage++
	c.remembered = false
	c.dropData()
}

// before returns what the model needs to know before a request that
// loads the session.
func (c *soakClient) before() (restore bool, oldRemember string) {
	return c.restores(), c.jar[rememberCookie]
}

func (c *soakClient) me() {
	restore, oldRem := c.before()
	r := c.call(http.MethodGet, "/api/me", nil)
	if !c.expect(r, http.StatusOK) {
		return
	}
	c.load(r, restore, oldRem)
	c.checkMe(r)
}

// checkMe checks a GET /api/me response against the model.
func (c *soakClient) checkMe(r *response) {
	var got me
	if !c.decode(r, &got) {
		return
	}
	want := "anonymous"
	if c.signedIn() {
		want = c.cur.user
		if c.remembered {
			want += " (remembered)"
		}
	}
	if got.String() != want {
		c.fail(failModel, "%s: signed in as %s, want %s", r, got, want)
	}
}

func (c *soakClient) increment() {
	restore, oldRem := c.before()
	r := c.call(http.MethodPost, "/api/counter", nil)
	if !c.expect(r, http.StatusOK) {
		return
	}
	c.write(r, restore, oldRem)
	var v valueBody
	if !c.decode(r, &v) {
		return
	}
	c.stats.add(&c.stats.increments, 1)
	if v.Value != c.counter+1 {
		c.fail(failLostWrite, "%s: counter %d after %d", r, v.Value, c.counter)
	}
	c.counter = v.Value
}

func (c *soakClient) readCounter() {
	restore, oldRem := c.before()
	r := c.call(http.MethodGet, "/api/counter", nil)
	if !c.expect(r, http.StatusOK) {
		return
	}
	c.load(r, restore, oldRem)
	var v valueBody
	if !c.decode(r, &v) {
		return
	}
	c.stats.add(&c.stats.reads, 1)
	if v.Value != c.counter {
		c.fail(failLostWrite, "%s: counter %d, want %d", r, v.Value, c.counter)
		c.counter = v.Value
	}
}

// soakKeys are the keys of the key-value bag that the browsers use.
var soakKeys = []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}

func (c *soakClient) putKV() {
	key := soakKeys[c.rng.IntN(len(soakKeys))]
	val := c.randomValue()
	restore, oldRem := c.before()
	r := c.call(http.MethodPut, "/api/kv/"+key, map[string]json.RawMessage{"value": json.RawMessage(val)})
	if !c.expect(r, http.StatusNoContent) {
		return
	}
	c.write(r, restore, oldRem)
	c.kv[key] = val
}

// randomValue returns a JSON value: a number or a string.
func (c *soakClient) randomValue() string {
	if c.rng.IntN(2) == 0 {
		return strconv.Itoa(c.rng.IntN(1e9))
	}
	return strconv.Quote(fmt.Sprintf("v%d-%x", c.id, c.rng.Uint32()))
}

func (c *soakClient) getKV() {
	c.readKV(soakKeys[c.rng.IntN(len(soakKeys))])
}

// readKV reads key and checks it against the model.
func (c *soakClient) readKV(key string) {
	restore, oldRem := c.before()
	r := c.call(http.MethodGet, "/api/kv/"+key, nil)
	want, ok := c.kv[key]
	if restore {
		ok = false // a restored session starts empty
	}
	if !ok {
		if c.expect(r, http.StatusNotFound) {
			c.load(r, restore, oldRem)
		}
		return
	}
	if !c.expect(r, http.StatusOK) {
		return
	}
	var v struct{ Value json.RawMessage }
	if !c.decode(r, &v) {
		return
	}
	c.stats.add(&c.stats.reads, 1)
	if string(v.Value) != want {
		c.fail(failLostWrite, "%s: %s is %s, want %s", r, key, v.Value, want)
	}
}

func (c *soakClient) addFlash() {
	msg := fmt.Sprintf("m%d-%x", c.id, c.rng.Uint32())
	restore, oldRem := c.before()
	r := c.call(http.MethodPost, "/api/flash", map[string]string{"message": msg})
	if !c.expect(r, http.StatusNoContent) {
		return
	}
	c.write(r, restore, oldRem)
	c.flash = append(c.flash, msg)
}

func (c *soakClient) popFlash() {
	restore, oldRem := c.before()
	r := c.call(http.MethodGet, "/api/flash", nil)
	if !c.expect(r, http.StatusOK) {
		return
	}
	c.load(r, restore, oldRem)
	var v struct{ Messages []string }
	if !c.decode(r, &v) {
		return
	}
	c.stats.add(&c.stats.flashPops, 1)
	if !slices.Equal(v.Messages, c.flash) {
		c.fail(failLostWrite, "%s: flash messages %q, want %q", r, v.Messages, c.flash)
	}
	c.flash = nil
}

var soakPasswords = map[string]string{"alice": "wonderland", "bob": "builder"}

func (c *soakClient) login() {
	// Mostly ask for a token only when the browser has none: each token
	// it replaces stays in the user's index until it expires.
	c.signIn(c.rng.IntN(2) == 0 && (c.rem == nil || c.rng.IntN(10) == 0))
}

// signIn signs in as alice or bob.
func (c *soakClient) signIn(remember bool) {
	user := "alice"
	if c.rng.IntN(2) == 0 {
		user = "bob"
	}
	oldSession, wasLive := c.jar[sessionCookie], c.cur != nil
	restore, oldRem := c.before()
	r := c.call(http.MethodPost, "/api/login", map[string]any{"user": user, "password": soakPasswords[user], "remember": remember})
	if !c.expect(r, http.StatusOK) {
		return
	}
	var body struct{ User string }
	if c.decode(r, &body) && body.User != user {
		c.fail(failModel, "%s: signed in as %q, want %q", r, body.User, user)
	}
	set := r.setCookies()
	if k := set[sessionCookie]; k == nil || k.Value == "" || k.Value == oldSession {
		c.fail(failModel, "%s: the session ID was not renewed", r)
	}
	switch {
	case restore:
		// Login loads the session first: the token restores one, which
		// the login then renews.
		c.restored(r, oldRem)
	case c.cur == nil:
		c.cur = &soakSession{s: c.nextS, lineage: c.nextLineage}
		c.nextS++
		c.nextLineage++
		c.dropData()
	}
	// Signing in keeps the data of an anonymous session or of the same
	// user's, and drops another user's.
	if c.cur.user != "" && c.cur.user != user {
		c.dropData()
	}
	c.cur.user, c.remembered = user, false
	if remember {
		if k := set[rememberCookie]; k == nil || k.Value == "" || k.Value == oldRem {
			c.fail(failModel, "%s: no new remember-me cookie", r)
		}
		c.rem = &soakToken{user: user, lineage: c.cur.lineage}
	}
	if wasLive {
		c.probeEnded("the session ID replaced at login", oldSession, true)
	}
}

func (c *soakClient) badLogin() {
	r := c.call(http.MethodPost, "/api/login", map[string]any{"user": "alice", "password": "builder"})
	if c.expect(r, http.StatusUnauthorized) && len(r.setCookies()) > 0 {
		c.fail(failModel, "%s: a refused login sets cookies", r)
	}
}

func (c *soakClient) logout() {
	oldSession, wasLive := c.jar[sessionCookie], c.cur != nil
	oldRem, hadToken := c.jar[rememberCookie], c.rem != nil
	restore, _ := c.before()
	r := c.call(http.MethodPost, "/api/logout", nil)
	if !c.expect(r, http.StatusNoContent) {
		return
	}
	if restore {
		c.nextS++ // restored, then ended at once
	}
	c.cur, c.rem, c.remembered = nil, nil, false
	c.dropData()
	if wasLive {
		if _, ok := c.jar[sessionCookie]; ok {
			c.fail(failModel, "%s: the session cookie was not deleted", r)
		}
		c.probeEnded("a signed-out session", oldSession, true)
	}
	if oldRem != "" {
		if _, ok := c.jar[rememberCookie]; ok {
			c.fail(failModel, "%s: the remember-me cookie was not deleted", r)
		}
		if hadToken {
			c.probeToken(c, "a signed-out remember-me cookie", oldRem)
		}
	}
}

// probeEnded checks that a session cookie that was signed out or renewed
// names nobody, and, if write, that a write with it is refused (its
// tombstone).
func (c *soakClient) probeEnded(what, cookie string, write bool) {
	c.probe(c, what, map[string]string{sessionCookie: cookie})
	if !write {
		return
	}
	jar := map[string]string{sessionCookie: cookie}
	r := c.send(c.rng.IntN(2), http.MethodPut, "/api/kv/zombie", map[string]int{"value": 1}, jar, c.probeAgent())
	c.stats.add(&c.stats.probes, 1)
	switch {
	case r.status == http.StatusNoContent:
		c.fail(failResurrection, "%s: %s took a write", r, what)
	case c.expect(r, http.StatusConflict) && len(r.setCookies()) > 0:
		c.fail(failModel, "%s: the refused write with %s sets cookies", r, what)
	}
}

// probeToken checks that a remember-me cookie of victim signs nobody in.
func (c *soakClient) probeToken(victim *soakClient, what, cookie string) {
	c.probe(victim, what, map[string]string{rememberCookie: cookie})
}

// probe checks that GET /api/me with only the given cookies is
// anonymous; a failure is victim's.
func (c *soakClient) probe(victim *soakClient, what string, jar map[string]string) {
	r := c.send(c.rng.IntN(2), http.MethodGet, "/api/me", nil, jar, c.probeAgent())
	c.stats.add(&c.stats.probes, 1)
	if !victim.expect(r, http.StatusOK) {
		return
	}
	var got me
	if victim.decode(r, &got) && got.User != nil {
		victim.fail(failResurrection, "%s: %s is signed in again, as %s", r, what, got)
	}
}

// probeAgent is the user agent of probes: a session they create by
// mistake is not taken for one of a browser's.
func (c *soakClient) probeAgent() string { return fmt.Sprintf("soak/%s/probe", c.h.run) }

// dropSession forgets the session cookie, as a browser does when it is
// restarted; the session itself lives on, an orphan.
func (c *soakClient) dropSession() {
	if c.signedIn() {
		c.orphans = append(c.orphans, *c.cur)
	}
	c.cur = nil
	c.dropData()
	delete(c.jar, sessionCookie)
}

// restart restarts the browser: the remember-me cookie, if live, signs it
// in again.
func (c *soakClient) restart() {
	c.dropSession()
	c.me()
}

// parallelRestore restarts the browser, then sends parallel requests,
// which share the session restored by the first one: reads, or exclusive
// increments, which are exact.
func (c *soakClient) parallelRestore(increments bool) {
	if c.rem == nil {
		c.signIn(true) // next time
		return
	}
	c.dropSession()
	n := 2 + c.rng.IntN(5)
	insts := make([]int, n)
	for i := range insts {
		insts[i] = c.rng.IntN(2)
	}
	jar, ua, oldRem := maps.Clone(c.jar), c.userAgent(), c.jar[rememberCookie]
	method, path := http.MethodGet, "/api/me"
	if increments {
		method, path = http.MethodPost, "/api/counter"
	}
	rs := make([]*response, n)
	var wg sync.WaitGroup
	for i, inst := range insts {
		wg.Go(func() { rs[i] = c.send(inst, method, path, nil, jar, ua) })
	}
	wg.Wait()
	for i, r := range rs {
		c.note(fmt.Sprintf("parallel %s @%d -> %d %s %s", ua, insts[i], r.status, r, cookieNames(r)))
	}
	var values []int
	for _, r := range rs {
		if !c.expect(r, http.StatusOK) {
			return
		}
		// Every request must be given the same session and the same
		// successor token.
		for _, name := range []string{sessionCookie, rememberCookie} {
			a, b := r.setCookies()[name], rs[0].setCookies()[name]
			if a == nil || b == nil || a.Value != b.Value {
				c.fail(failModel, "parallel restores were given different %s cookies: %s, %s", name, cookieNames(r), cookieNames(rs[0]))
				return
			}
		}
		if increments {
			var v valueBody
			if !c.decode(r, &v) {
				return
			}
			values = append(values, v.Value)
		}
	}
	c.keep(rs[0])
	c.restored(rs[0], oldRem)
	c.stats.add(&c.stats.parallelRestores, 1)
	if !increments {
		for _, r := range rs {
			c.checkMe(r)
		}
		return
	}
	c.stats.add(&c.stats.increments, n)
	slices.Sort(values)
	for i, v := range values {
		if v != i+1 {
			c.fail(failLostWrite, "%d parallel increments of a session restored by them returned %v, want 1 to %d once each", n, values, n)
			return
		}
	}
	c.counter = n
	c.readCounter()
}

// parallelWrites sends parallel increments and writes of distinct keys to
// the live session; none is lost.
func (c *soakClient) parallelWrites() {
	if c.cur == nil {
		c.increment()
		return
	}
	n := 2 + c.rng.IntN(7)
	keys := c.rng.Perm(len(soakKeys))
	type job struct {
		inst     int
		key, val string // no key: an increment
		r        *response
	}
	jobs := make([]job, n)
	for i := range jobs {
		jobs[i].inst = c.rng.IntN(2)
		if c.rng.IntN(2) == 0 {
			jobs[i].key, jobs[i].val = soakKeys[keys[i]], c.randomValue()
		}
	}
	jar, ua := maps.Clone(c.jar), c.userAgent()
	var wg sync.WaitGroup
	for i := range jobs {
		j := &jobs[i]
		wg.Go(func() {
			if j.key == "" {
				j.r = c.send(j.inst, http.MethodPost, "/api/counter", nil, jar, ua)
			} else {
				j.r = c.send(j.inst, http.MethodPut, "/api/kv/"+j.key, map[string]json.RawMessage{"value": json.RawMessage(j.val)}, jar, ua)
			}
		})
	}
	wg.Wait()
	var values []int
	for _, j := range jobs {
		c.note(fmt.Sprintf("parallel %s @%d -> %d %s %s", ua, j.inst, j.r.status, j.r, cookieNames(j.r)))
		if len(j.r.setCookies()) > 0 {
			c.fail(failModel, "%s: a write to a live session sets cookies", j.r)
		}
		if j.key != "" {
			if c.expect(j.r, http.StatusNoContent) {
				c.kv[j.key] = j.val
			}
			continue
		}
		var v valueBody
		if c.expect(j.r, http.StatusOK) && c.decode(j.r, &v) {
			values = append(values, v.Value)
		}
	}
	if c.failed {
		return
	}
	c.stats.add(&c.stats.increments, len(values))
	slices.Sort(values)
	for i, v := range values {
		if v != c.counter+1+i {
			c.fail(failLostWrite, "%d parallel increments from %d returned %v", len(values), c.counter, values)
			return
		}
	}
	c.counter += len(values)
	c.readCounter()
	for _, j := range jobs {
		if j.key != "" && !c.failed {
			c.readKV(j.key)
		}
	}
}

// devices lists the user's devices.
func (c *soakClient) devices() {
	restore, oldRem := c.before()
	r := c.call(http.MethodGet, "/api/sessions", nil)
	if !c.signedIn() && !restore {
		c.expect(r, http.StatusUnauthorized)
		return
	}
	if !c.expect(r, http.StatusOK) {
		return
	}
	c.load(r, restore, oldRem)
	c.checkListing(r)
}

// listing lists the user's devices, for a signed-in browser.
func (c *soakClient) listing() ([]device, bool) {
	r := c.call(http.MethodGet, "/api/sessions", nil)
	if !c.expect(r, http.StatusOK) {
		return nil, false
	}
	return c.checkListing(r)
}

// checkListing checks a listing of the user's devices: the current
// session is the browser's, and the browser's sessions are those its
// model says are live.
func (c *soakClient) checkListing(r *response) ([]device, bool) {
	var body struct{ Sessions []device }
	if !c.decode(r, &body) {
		return nil, false
	}
	c.stats.add(&c.stats.listings, 1)
	var current []string
	for _, d := range body.Sessions {
		if d.Current {
			current = append(current, d.UserAgent)
		}
	}
	if len(current) != 1 || current[0] != c.userAgent() {
		c.fail(failIndex, "%s: current sessions %q, want [%q]", r, current, c.userAgent())
		return nil, false
	}
	return body.Sessions, c.checkDevices(c, body.Sessions, c.cur.user)
}

// checkDevices checks that the sessions of v in a listing of user's
// devices are those its model says are live; a failure is v's, whose
// model then takes the listing's word.
func (c *soakClient) checkDevices(v *soakClient, list []device, user string) bool {
	var got, want []string
	var orphans []soakSession
	for _, d := range list {
		id, lineage, s, ok := c.h.parseUserAgent(d.UserAgent)
		if ok && id == v.id {
			got = append(got, fmt.Sprintf("L%d/s%d", lineage, s))
			if v.cur == nil || s != v.cur.s {
				orphans = append(orphans, soakSession{s: s, lineage: lineage, user: user})
			}
		}
	}
	for _, s := range v.live(user) {
		want = append(want, fmt.Sprintf("L%d/s%d", s.lineage, s.s))
	}
	slices.Sort(got)
	slices.Sort(want)
	if slices.Equal(got, want) {
		return true
	}
	v.fail(failIndex, "the devices of %s list client %d's sessions %q, want %q", user, v.id, got, want)
	v.orphans = slices.DeleteFunc(v.orphans, func(o soakSession) bool { return o.user == user })
	v.orphans = append(v.orphans, orphans...)
	return false
}

// live returns the live sessions of user that the browser knows.
func (c *soakClient) live(user string) []soakSession {
	var out []soakSession
	if c.cur != nil && c.cur.user == user {
		out = append(out, *c.cur)
	}
	for _, o := range c.orphans {
		if o.user == user {
			out = append(out, o)
		}
	}
	return out
}

// revoke signs out one of the user's other sessions: another browser's,
// or one this browser left behind.
func (c *soakClient) revoke() {
	if !c.signedIn() {
		c.me()
		return
	}
	user := c.cur.user
	list, ok := c.listing()
	if !ok {
		return
	}
	list = slices.DeleteFunc(list, func(d device) bool {
		_, _, _, ok := c.h.parseUserAgent(d.UserAgent)
		return d.Current || !ok
	})
	if len(list) == 0 {
		return
	}
	pick := list[c.rng.IntN(len(list))]
	id, lineage, s, _ := c.h.parseUserAgent(pick.UserAgent)
	v := c.h.clients[id]
	if v != c {
		// Wait for v. Browsers are locked in the order of their ids, so
		// that two revokers cannot wait for each other: this one lets go
		// of itself to wait for a lower one, and may come back changed.
		if v.id < c.id {
			c.release()
			v.busy.Lock()
			c.busy.Lock()
		} else {
			v.busy.Lock()
		}
		defer v.release()
		v.doing = fmt.Sprintf("revoked by client %d", c.id)
		if !c.signedIn() || c.cur.user != user {
			return
		}
	}
	// v is idle: list again, and v's sessions must be what its model
	// says. The handle listed first may be stale by now (v signed in
	// again, or out): that one must be refused.
	if list, ok = c.listing(); !ok || !c.checkDevices(v, list, user) {
		return
	}
	target := soakSession{s: s, lineage: lineage, user: user}
	live := slices.Contains(v.live(user), target)
	if live {
		for _, d := range list {
			if d.UserAgent == pick.UserAgent {
				pick = d
			}
		}
	}
	r := c.call(http.MethodDelete, "/api/sessions/"+pick.Handle, nil)
	if !live {
		c.expect(r, http.StatusNotFound)
		return
	}
	if !c.expect(r, http.StatusNoContent) {
		return
	}
	c.stats.add(&c.stats.revocations, 1)
	c.ended(v, user, []soakSession{target})
}

// revokeOthers signs out every other session of the user, while every
// browser waits.
func (c *soakClient) revokeOthers() {
	c.h.lockAll()
	defer c.h.unlockAll()
	for _, v := range c.h.clients {
		v.doing = fmt.Sprintf("revoke others by client %d", c.id)
	}
	c.doing = "revoke others"
	if !c.signedIn() {
		return
	}
	user := c.cur.user
	list, ok := c.listing()
	if !ok {
		return
	}
	for _, v := range c.h.clients {
		if v != c && !c.checkDevices(v, list, user) {
			return
		}
	}
	r := c.call(http.MethodPost, "/api/sessions/revoke-others", nil)
	if !c.expect(r, http.StatusNoContent) {
		return
	}
	c.stats.add(&c.stats.revokeOthers, 1)
	for _, v := range c.h.clients {
		var ended []soakSession
		for _, s := range v.live(user) {
			if v != c || s.s != c.cur.s {
				ended = append(ended, s)
			}
		}
		c.stats.add(&c.stats.revokedByOthers, len(ended))
		c.ended(v, user, ended)
	}
	if list, ok = c.listing(); ok && len(list) != 1 {
		c.fail(failIndex, "%d sessions of %s listed after revoke-others, want 1", len(list), user)
	}
}

// ended updates v's model for its sessions of user that were revoked by
// c, and probes them. A revocation also ends the remember-me tokens of the
// revoked sessions' devices, for that user, except the device of c's own
// session when that one stays: a session c left behind (a browser restart
// keeps the device) is revoked, c's token is not.
func (c *soakClient) ended(v *soakClient, user string, sessions []soakSession) {
	devices := map[int]bool{}
	for _, s := range sessions {
		devices[s.lineage] = true
	}
	if v == c && c.cur != nil && !slices.Contains(sessions, *c.cur) {
		delete(devices, c.cur.lineage) // lineages are numbered per browser
	}
	for _, s := range sessions {
		if v.cur != nil && *v.cur == s {
			// The browser still holds the dead cookie: its next request
			// starts anonymous, or is restored by a live token.
			v.cur, v.remembered = nil, false
			v.dropData()
			c.probe(v, fmt.Sprintf("client %d's revoked session", v.id), map[string]string{sessionCookie: v.jar[sessionCookie]})
			continue
		}
		v.orphans = slices.DeleteFunc(v.orphans, func(o soakSession) bool { return o == s })
	}
	if v.rem != nil && v.rem.user == user && devices[v.rem.lineage] {
		v.rem = nil
		c.probeToken(v, fmt.Sprintf("client %d's revoked device's remember-me cookie", v.id), v.jar[rememberCookie])
	}
}

// soakStats counts what a browser did and checked.
type soakStats struct {
	mu       sync.Mutex
	ops      map[string]int
	requests map[string]int // by route
	statuses map[int]int
	failures map[string]int // by kind
	failedIn map[string]int // by kind and action
	latency  latencies

	increments, reads, flashPops, listings     int
	restores, parallelRestores                 int
	revocations, revokeOthers, revokedByOthers int
	probes                                     int
}

func newSoakStats() *soakStats {
	return &soakStats{ops: map[string]int{}, requests: map[string]int{}, statuses: map[int]int{}, failures: map[string]int{}, failedIn: map[string]int{}}
}

func (s *soakStats) count(op string) {
	s.mu.Lock()
	s.ops[op]++
	s.mu.Unlock()
}

func (s *soakStats) add(n *int, k int) {
	s.mu.Lock()
	*n += k
	s.mu.Unlock()
}

func (s *soakStats) fail(kind, doing string) {
	s.mu.Lock()
	s.failures[kind]++
	s.failedIn[kind+" in "+doing]++
	s.mu.Unlock()
}

var handleRE = regexp.MustCompile(`^/api/sessions/[^/]+$`)

func (s *soakStats) request(method, path string, status int, d time.Duration) {
	route := path
	switch {
	case strings.HasPrefix(path, "/api/kv/"):
		route = "/api/kv/{key}"
	case path != "/api/sessions/revoke-others" && handleRE.MatchString(path):
		route = "/api/sessions/{handle}"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[method+" "+route]++
	s.statuses[status]++
	s.latency.add(d)
}

func (s *soakStats) merge(o *soakStats) {
	for _, m := range []struct{ dst, src map[string]int }{{s.ops, o.ops}, {s.requests, o.requests}, {s.failures, o.failures}, {s.failedIn, o.failedIn}} {
		for k, v := range m.src {
			m.dst[k] += v
		}
	}
	for k, v := range o.statuses {
		s.statuses[k] += v
	}
	s.latency.merge(&o.latency)
	s.increments += o.increments
	s.reads += o.reads
	s.flashPops += o.flashPops
	s.listings += o.listings
	s.restores += o.restores
	s.parallelRestores += o.parallelRestores
	s.revocations += o.revocations
	s.revokeOthers += o.revokeOthers
	s.revokedByOthers += o.revokedByOthers
	s.probes += o.probes
}

// write writes the report of a run that took elapsed.
func (s *soakStats) write(w io.Writer, elapsed time.Duration) {
	total := 0
	for _, n := range s.requests {
		total += n
	}
	fmt.Fprintf(w, "requests: %d in %v, %.0f/s\n", total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
	fmt.Fprintf(w, "  by route: %s\n", countList(s.requests))
	fmt.Fprintf(w, "  by status: %s\n", countList(s.statuses))
	fmt.Fprintf(w, "operations: %s\n", countList(s.ops))
	fmt.Fprintf(w, "latency: p50 %v, p99 %v, max %v (within 1/8)\n", s.latency.quantile(0.50), s.latency.quantile(0.99), s.latency.max)
	fmt.Fprintf(w, "checked: %d increments, %d reads of written values, %d flash pops, %d device listings\n", s.increments, s.reads, s.flashPops, s.listings)
	fmt.Fprintf(w, "  %d remember-me restores (%d by parallel requests); sessions revoked: %d one by one, %d by %d revoke-others\n",
		s.restores, s.parallelRestores, s.revocations, s.revokedByOthers, s.revokeOthers)
	fmt.Fprintf(w, "  %d probes of ended sessions and tokens\n", s.probes)
	other := 0
	for k, n := range s.failures {
		if k != failLostWrite && k != failResurrection && k != failServer {
			other += n
		}
	}
	fmt.Fprintf(w, "failures: %d lost writes, %d resurrections, %d 5xx, %d other\n", s.failures[failLostWrite], s.failures[failResurrection], s.failures[failServer], other)
	if len(s.failedIn) > 0 {
		fmt.Fprintf(w, "  by action: %s\n", countList(s.failedIn))
	}
}

// countList formats counts as "key n, key n", by key.
func countList[K int | string](m map[K]int) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, fmt.Sprintf("%v %d", k, m[k]))
	}
	return strings.Join(out, ", ")
}

// latencies is a histogram of durations with 8 buckets per power of two,
// so that a quantile is known within 1/8.
type latencies struct {
	counts [64 * 8]int
	n      int
	max    time.Duration
}

func latencyBucket(d time.Duration) int {
	ns := uint64(max(d, 1))
	e := bits.Len64(ns) - 1
	if e < 3 {
		return int(ns)
	}
	return e*8 + int(ns>>(e-3))&7
}

// upper returns the upper bound of bucket i.
func latencyUpper(i int) time.Duration {
	e, sub := i/8, i%8
	if e < 3 {
		return time.Duration(i + 1)
	}
	return time.Duration(uint64(8+sub+1) << (e - 3))
}

func (l *latencies) add(d time.Duration) {
	l.counts[latencyBucket(d)]++
	l.n++
	l.max = max(l.max, d)
}

func (l *latencies) merge(o *latencies) {
	for i, n := range o.counts {
		l.counts[i] += n
	}
	l.n += o.n
	l.max = max(l.max, o.max)
}

// quantile returns the upper bound of the bucket holding quantile q.
func (l *latencies) quantile(q float64) time.Duration {
	rank := int(q*float64(l.n) + 0.5)
	seen := 0
	for i, n := range l.counts {
		if seen += n; n > 0 && seen >= rank {
			return min(latencyUpper(i), l.max).Round(10 * time.Microsecond)
		}
	}
	return l.max
}
