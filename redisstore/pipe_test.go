package redisstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/internal/faultproxy"
	"github.com/seshgo/sesh/redisstore"
	"github.com/seshgo/sesh/storetest"
)

// gate holds the next GET sent on its own at the hook until released,
// so that the calls after it queue; and it records each pipeline's
// command names.
type gate struct {
	mu        sync.Mutex
	armed     bool
	entered   chan struct{}
	release   chan struct{}
	pipelines [][]string

	// With holdPipes set, every pipeline waits at the hook until pipeOpen
	// is closed, after signalling pipeEntered.
	holdPipes   bool
	pipeEntered chan struct{}
	pipeOpen    chan struct{}
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}), release: make(chan struct{})}
}

// arm makes the next GET wait for open.
func (g *gate) arm() {
	g.mu.Lock()
	g.armed = true
	g.mu.Unlock()
}

func (g *gate) open() { close(g.release) }

func (g *gate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		g.mu.Lock()
		hold := g.armed && cmd.Name() == "get"
		if hold {
			g.armed = false
		}
		g.mu.Unlock()
		if hold {
			close(g.entered)
			<-g.release
		}
		return next(ctx, cmd)
	}
}

func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name()
		}
		g.mu.Lock()
		g.pipelines = append(g.pipelines, names)
		hold := g.holdPipes && slices.Contains(names, "get")
		g.mu.Unlock()
		if hold {
			g.pipeEntered <- struct{}{}
			<-g.pipeOpen
		}
		return next(ctx, cmds)
	}
}

// sent returns how many pipelines the store sent and their commands,
// counted by name. (go-redis's own pipelines that set up new connections,
// CLIENT SETINFO, are not the store's.)
func (g *gate) sent() (pipelines int, cmds map[string]int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	cmds = map[string]int{}
	for _, p := range g.pipelines {
		if !slices.ContainsFunc(p, func(n string) bool { return n != "client" && n != "hello" }) {
			continue
		}
		pipelines++
		for _, n := range p {
			cmds[n]++
		}
	}
	return pipelines, cmds
}

// waitQueued waits until n calls of s are queued.
func waitQueued(t *testing.T, s *redisstore.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for redisstore.Queued(s) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", redisstore.Queued(s), n)
		}
		runtime.Gosched()
	}
}

func randomKey() sesh.Key {
	var k sesh.Key
	rand.Read(k[:])
	return k
}

// TestPipelineSharesRoundTrips: with its one lane busy, a store's calls
// queue and then go out as one pipeline, each caller getting its own
// result, scripts included after the server lost them (NOSCRIPT, then
// EVAL).
func TestPipelineSharesRoundTrips(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		g := newGate()
		c.AddHook(g)
		clock := storetest.NewClock()
		s := redisstore.New(c, redisstore.WithPrefix(testPrefix(t, c)), redisstore.WithClock(clock.Now),
			redisstore.WithPipelining(1))
		rec := func(i int, v uint64) sesh.Record {
			return sesh.Record{Data: fmt.Appendf(nil, "record %d v%d", i, v), Version: v,
				Expires: clock.Now().Add(time.Hour), User: fmt.Sprint("user", i%3)}
		}
		const n = 12
		keys := make([]sesh.Key, n)
		for i := range keys {
			keys[i] = randomKey()
			if err := s.Save(ctx, keys[i], rec(i, 1), 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}

		g.arm()
		errs := make([]error, n)
		loaded := make([]sesh.Record, n)
		var wg sync.WaitGroup
		wg.Go(func() { loaded[0], errs[0] = s.Load(ctx, keys[0]) })
		<-g.entered
		for i := 1; i < n; i++ {
			wg.Go(func() {
				if i%2 == 0 {
					loaded[i], errs[i] = s.Load(ctx, keys[i])
				} else {
					errs[i] = s.Save(ctx, keys[i], rec(i, 2), 1)
				}
			})
		}
		waitQueued(t, s, n-1)
		g.open()
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("call %d: %v", i, errs[i])
			}
			if i%2 == 0 && !bytes.Equal(loaded[i].Data, rec(i, 1).Data) {
				t.Errorf("Load %d got %q, want %q", i, loaded[i].Data, rec(i, 1).Data)
			}
		}
		pipelines, cmds := g.sent()
		if cmds["get"] != n/2-1 || cmds["evalsha"] != n/2 {
			t.Errorf("pipelines sent %v, want %d GET and %d EVALSHA", cmds, n/2-1, n/2)
		}
		if _, ok := c.(*redis.Client); ok && pipelines != 1 {
			t.Errorf("%d pipelines, want 1", pipelines)
		}
		for i := 1; i < n; i += 2 {
			got, err := s.Load(ctx, keys[i])
			if err != nil || !bytes.Equal(got.Data, rec(i, 2).Data) || got.Version != 2 {
				t.Errorf("after the shared Save %d: %q v%d, %v", i, got.Data, got.Version, err)
			}
		}
	})
}

// TestPipelineQueuedCallGivesUp: a queued call whose context ends leaves
// the queue at once with the context's error, and is never sent.
func TestPipelineQueuedCallGivesUp(t *testing.T) {
	c := backends[0].client(t)
	ctx := t.Context()
	g := newGate()
	c.AddHook(g)
	s := redisstore.New(c, redisstore.WithPrefix(testPrefix(t, c)), redisstore.WithPipelining(1))
	g.arm()
	done := make(chan error, 1)
	go func() {
		_, err := s.Load(ctx, randomKey())
		done <- err
	}()
	<-g.entered
	qctx, cancel := context.WithCancel(ctx)
	queued := make(chan error, 1)
	go func() {
		_, err := s.Load(qctx, randomKey())
		queued <- err
	}()
	waitQueued(t, s, 1)
	cancel()
	if err := <-queued; !errors.Is(err, context.Canceled) {
		t.Errorf("queued Load after its context ended: %v, want context.Canceled", err)
	}
	if n := redisstore.Queued(s); n != 0 {
		t.Errorf("%d calls queued after the only queued one gave up", n)
	}
	g.open()
	if err := <-done; !errors.Is(err, sesh.ErrNotFound) {
		t.Errorf("the held Load: %v, want ErrNotFound", err)
	}
	if p, cmds := g.sent(); p != 0 {
		t.Errorf("%d pipelines sent (%v), want none", p, cmds)
	}
}

// TestPipelineSentCallGivesUp: a call sent in another caller's pipeline
// returns its context's error as soon as its context ends, without
// waiting for the pipeline; the caller running it still gets its result.
func TestPipelineSentCallGivesUp(t *testing.T) {
	c := backends[0].client(t)
	ctx := t.Context()
	g := newGate()
	g.holdPipes, g.pipeEntered, g.pipeOpen = true, make(chan struct{}, 1), make(chan struct{})
	c.AddHook(g)
	clock := storetest.NewClock()
	s := redisstore.New(c, redisstore.WithPrefix(testPrefix(t, c)), redisstore.WithClock(clock.Now),
		redisstore.WithPipelining(1))
	k := randomKey()
	rec := sesh.Record{Data: []byte("held"), Version: 1, Expires: clock.Now().Add(time.Hour)}
	if err := s.Save(ctx, k, rec, 0); err != nil {
		t.Fatal(err)
	}

	g.arm()
	first := make(chan error, 1)
	go func() {
		_, err := s.Load(ctx, k)
		first <- err
	}()
	<-g.entered
	type result struct {
		rec sesh.Record
		err error
	}
	leader := make(chan result, 1)
	go func() {
		r, err := s.Load(ctx, k)
		leader <- result{r, err}
	}()
	waitQueued(t, s, 1)
	mctx, cancel := context.WithCancel(ctx)
	member := make(chan error, 1)
	go func() {
		_, err := s.Load(mctx, k)
		member <- err
	}()
	waitQueued(t, s, 2)
	g.open()
	if err := <-first; err != nil {
		t.Fatalf("the first Load: %v", err)
	}
	<-g.pipeEntered // the two queued calls are in one pipeline, held
	cancel()
	if err := <-member; !errors.Is(err, context.Canceled) {
		t.Errorf("the cancelled call: %v, want context.Canceled", err)
	}
	close(g.pipeOpen)
	if r := <-leader; r.err != nil || !bytes.Equal(r.rec.Data, rec.Data) {
		t.Errorf("the call running the pipeline: %q, %v", r.rec.Data, r.err)
	}
	if p, cmds := g.sent(); p != 1 || cmds["get"] != 2 {
		t.Errorf("%d pipelines %v, want one with 2 GET", p, cmds)
	}
}

// TestPipelineConnectionLost: when the connection fails under a shared
// pipeline, every call in it fails (none hangs, none reads as a
// success), and the store works again once the server is back.
func TestPipelineConnectionLost(t *testing.T) {
	if os.Getenv("SESH_TEST_REDIS") == "" {
		needEnv(t, "SESH_TEST_REDIS")
	}
	opt, err := redis.ParseURL(os.Getenv("SESH_TEST_REDIS"))
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.New(opt.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	prefix := testPrefix(t, backends[0].client(t))
	o := *opt
	o.Addr, o.ContextTimeoutEnabled, o.MaxRetries = proxy.Addr(), true, -1
	c := redis.NewClient(&o)
	t.Cleanup(func() { c.Close() })
	g := newGate()
	c.AddHook(g)
	clock := storetest.NewClock()
	s := redisstore.New(c, redisstore.WithPrefix(prefix), redisstore.WithClock(clock.Now), redisstore.WithPipelining(1))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	k := randomKey()
	rec := sesh.Record{Data: []byte("kept"), Version: 1, Expires: clock.Now().Add(time.Hour)}
	if err := s.Save(ctx, k, rec, 0); err != nil {
		t.Fatal(err)
	}

	g.arm()
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	wg.Go(func() { _, errs[0] = s.Load(ctx, k) })
	<-g.entered
	for i := 1; i < n; i++ {
		wg.Go(func() {
			if i%2 == 0 {
				_, errs[i] = s.Load(ctx, k)
			} else {
				errs[i] = s.Save(ctx, randomKey(), rec, 0)
			}
		})
	}
	waitQueued(t, s, n-1)
	proxy.SetMode(faultproxy.Reset)
	g.open()
	wg.Wait()
	for i, err := range errs {
		if err == nil || errors.Is(err, sesh.ErrNotFound) || errors.Is(err, sesh.ErrConflict) {
			t.Errorf("call %d with the connection reset: %v, want a store failure", i, err)
		}
	}
	if p, _ := g.sent(); p != 1 {
		t.Errorf("%d pipelines, want 1", p)
	}

	proxy.SetMode(faultproxy.Pass)
	got, err := s.Load(ctx, k)
	if err != nil || !bytes.Equal(got.Data, rec.Data) {
		t.Fatalf("Load after the server is back: %q, %v", got.Data, err)
	}
}

// TestPipelineParallel: many goroutines saving and loading their own
// keys through two lanes each read back exactly what they wrote.
func TestPipelineParallel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		clock := storetest.NewClock()
		s := redisstore.New(c, redisstore.WithPrefix(testPrefix(t, c)), redisstore.WithClock(clock.Now))
		var wg sync.WaitGroup
		for w := range 32 {
			wg.Go(func() {
				k := randomKey()
				for v := uint64(1); v <= 25; v++ {
					data := fmt.Appendf(nil, "worker %d version %d", w, v)
					rec := sesh.Record{Data: data, Version: v, Expires: clock.Now().Add(time.Hour)}
					if err := s.Save(ctx, k, rec, v-1); err != nil {
						t.Errorf("worker %d: Save v%d: %v", w, v, err)
						return
					}
					got, err := s.Load(ctx, k)
					if err != nil || got.Version != v || !bytes.Equal(got.Data, data) {
						t.Errorf("worker %d: Load after v%d: v%d %q, %v", w, v, got.Version, got.Data, err)
						return
					}
				}
				if err := s.Delete(ctx, k, time.Time{}); err != nil {
					t.Errorf("worker %d: Delete: %v", w, err)
				}
			})
		}
		wg.Wait()
	})
}
