package bench_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/bench/workload"
)

// counter is a go-redis hook that records every round trip: each command
// sent on its own, and each pipeline (one round trip however many
// commands it holds).
type counter struct {
	mu    sync.Mutex
	trips [][]string // command names of each round trip
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.record(cmd)
		return next(ctx, cmd)
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.record(cmds...)
		return next(ctx, cmds)
	}
}

func (c *counter) record(cmds ...redis.Cmder) {
	names := make([]string, len(cmds))
	for i, cmd := range cmds {
		names[i] = strings.ToLower(cmd.Name())
	}
	c.mu.Lock()
	c.trips = append(c.trips, names)
	c.mu.Unlock()
}

// take returns and forgets the round trips recorded so far.
func (c *counter) take() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.trips
	c.trips = nil
	return t
}

// writes counts the commands of trips that may write: anything but a
// read-only command.
func writes(trips [][]string) int {
	n := 0
	for _, t := range trips {
		for _, name := range t {
			if !slices.Contains([]string{"get", "mget", "exists", "pttl", "ttl", "zrange", "zrangebyscore", "scan", "ping"}, name) {
				n++
			}
		}
	}
	return n
}

// clock is a settable clock shared by the manager and the store.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

// TestRedisRoundTrips counts what sesh sends to Redis per request, with
// a go-redis hook: a read is one round trip, a read-modify-write at most
// two, a new session one, and a read-only request within the touch
// threshold writes nothing. These are assertions. scs's counts are logged
// for comparison.
func TestRedisRoundTrips(t *testing.T) {
	cnt := &counter{}
	clk := &clock{}
	app := open(t, workload.SeshRedis, workload.Options{RedisHook: cnt, Now: clk.now})
	touch := sesh.DefaultTouchInterval

	do := func(path, cookie string) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest("GET", "http://127.0.0.1"+path, nil)
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		w := httptest.NewRecorder()
		app.Handler.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", path, w.Code, w.Body)
		}
		return w
	}
	// Warm up: the first script call on a server that has not cached the
	// script adds an EVAL after the EVALSHA's NOSCRIPT.
	cookie, err := app.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	do("/rmw", cookie)
	do("/incr", cookie)
	cnt.take()

	check := func(what string, trips [][]string, maxTrips, wantWrites int) {
		t.Helper()
		t.Logf("%s: %d round trips %v, %d writes", what, len(trips), trips, writes(trips))
		if len(trips) > maxTrips {
			t.Errorf("%s: %d round trips %v, want at most %d", what, len(trips), trips, maxTrips)
		}
		if wantWrites >= 0 && writes(trips) != wantWrites {
			t.Errorf("%s: %d writes in %v, want %d", what, writes(trips), trips, wantWrites)
		}
	}

	do("/read", cookie)
	trips := cnt.take()
	check("read", trips, 1, 0)
	if len(trips) != 1 || !slices.Equal(trips[0], []string{"get"}) {
		t.Errorf("read: round trips %v, want exactly one GET", trips)
	}

	do("/rmw", cookie)
	check("read-modify-write", cnt.take(), 2, 1)

	// Read-only requests within the touch threshold write nothing; the
	// first one after it writes once (the touch), and the next ones are
	// within the threshold again.
	for range 5 {
		clk.advance(touch / 10)
		do("/read", cookie)
	}
	check("5 reads within the touch threshold", cnt.take(), 5, 0)
	clk.advance(touch)
	do("/read", cookie)
	check("read after the touch threshold", cnt.take(), 2, 1)
	do("/read", cookie)
	check("read right after a touch", cnt.take(), 1, 0)

	w := do("/new", "")
	if len(w.Result().Cookies()) != 1 {
		t.Errorf("new: %d cookies, want 1", len(w.Result().Cookies()))
	}
	check("new", cnt.take(), 1, 1)

	// Exclusive: lock (SET NX), load, save, unlock.
	do("/incr", cookie)
	check("exclusive read-modify-write", cnt.take(), 4, 3)
}

// TestRedisRoundTripsSCS logs what scs+goredisstore sends, for the table.
func TestRedisRoundTripsSCS(t *testing.T) {
	cnt := &counter{}
	app := open(t, workload.SCSRedis, workload.Options{RedisHook: cnt})
	cookie, err := app.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	cnt.take()
	for _, path := range []string{"/read", "/rmw", "/new"} {
		r := httptest.NewRequest("GET", "http://127.0.0.1"+path, nil)
		if path != "/new" {
			r.Header.Set("Cookie", cookie)
		}
		w := httptest.NewRecorder()
		app.Handler.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: status %d", path, w.Code)
		}
		trips := cnt.take()
		t.Logf("scs %s: %d round trips %v, %d writes", path, len(trips), trips, writes(trips))
	}
}
