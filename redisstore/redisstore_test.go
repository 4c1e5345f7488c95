package redisstore_test

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/redisstore"
	"github.com/seshgo/sesh/storetest"
)

// backend is one kind of Redis deployment the tests run against, named by
// the environment variables that scripts/testservers.sh exports.
type backend struct {
	name string
	env  string
	// connect returns a new client, closed when t ends.
	connect func(t *testing.T) redis.UniversalClient
}

var backends = []backend{
	{"Standalone", "SESH_TEST_REDIS", func(t *testing.T) redis.UniversalClient {
		opt, err := redis.ParseURL(os.Getenv("SESH_TEST_REDIS"))
		if err != nil {
			t.Fatalf("SESH_TEST_REDIS: %v", err)
		}
		return redis.NewClient(opt)
	}},
	{"Cluster", "SESH_TEST_REDIS_CLUSTER", func(t *testing.T) redis.UniversalClient {
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: strings.Split(os.Getenv("SESH_TEST_REDIS_CLUSTER"), ","),
		})
	}},
	{"Sentinel", "SESH_TEST_REDIS_SENTINEL", func(t *testing.T) redis.UniversalClient {
		master := os.Getenv("SESH_TEST_REDIS_SENTINEL_MASTER")
		if master == "" {
			needEnv(t, "SESH_TEST_REDIS_SENTINEL_MASTER")
		}
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:    master,
			SentinelAddrs: strings.Split(os.Getenv("SESH_TEST_REDIS_SENTINEL"), ","),
		})
	}},
}

// needEnv skips the test for a missing server, or fails it in CI, where
// every store test must run.
func needEnv(t *testing.T, name string) {
	t.Helper()
	msg := name + " is not set: run the tests under scripts/testservers.sh"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// client connects to b, or skips (fails in CI) if b is not configured.
func (b backend) client(t *testing.T) redis.UniversalClient {
	t.Helper()
	if os.Getenv(b.env) == "" {
		needEnv(t, b.env)
	}
	c := b.connect(t)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("%s: %v", b.env, err)
	}
	return c
}

// forEachBackend runs f as a subtest per backend.
func forEachBackend(t *testing.T, f func(t *testing.T, c redis.UniversalClient)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.client(t)) })
	}
}

// testPrefix returns a fresh random key prefix whose keys are deleted
// when t ends.
func testPrefix(t *testing.T, c redis.UniversalClient) string {
	t.Helper()
	prefix := "seshtest:" + randomHex(8) + ":"
	t.Cleanup(func() {
		if n, err := deleteAll(context.Background(), c, prefix); err != nil {
			t.Errorf("cleaning up %s*: %v (after %d keys)", prefix, err, n)
		}
	})
	return prefix
}

// scanAll returns every key starting with prefix, on every master.
func scanAll(ctx context.Context, c redis.UniversalClient, prefix string) ([]string, error) {
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, n *redis.Client) error {
		iter := n.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	switch c := c.(type) {
	case *redis.ClusterClient:
		return keys, c.ForEachMaster(ctx, scan)
	case *redis.Client:
		return keys, scan(ctx, c)
	}
	panic("unexpected client type")
}

// deleteAll deletes every key starting with prefix (SCAN, then DEL).
func deleteAll(ctx context.Context, c redis.UniversalClient, prefix string) (int, error) {
	keys, err := scanAll(ctx, c, prefix)
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	pipe := c.Pipeline()
	for _, k := range keys {
		pipe.Del(ctx, k)
	}
	_, err = pipe.Exec(ctx)
	return len(keys), err
}

func TestConformance(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c redis.UniversalClient) {
		// Every store gets its own prefix under one run prefix, whose keys
		// are deleted once the whole suite is done: deleting thousands of
		// keys while other subtests run could make Redis shrink its
		// keyspace, and SCAN may then return a key twice (see List).
		run := testPrefix(t, c)
		storetest.Run(t, func(t *testing.T, now func() time.Time) sesh.Store {
			return redisstore.New(c, redisstore.WithPrefix(run+randomHex(8)+":"), redisstore.WithClock(now))
		})
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestTwoInstances checks that two stores over two clients of one server
// see each other's writes: create, compare-and-set, tombstone.
func TestTwoInstances(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			storetest.RunTwoInstances(t, func(t *testing.T, now func() time.Time) (sesh.Store, sesh.Store) {
				c1, c2 := b.client(t), b.client(t)
				prefix := testPrefix(t, c1)
				return redisstore.New(c1, redisstore.WithPrefix(prefix), redisstore.WithClock(now)),
					redisstore.New(c2, redisstore.WithPrefix(prefix), redisstore.WithClock(now))
			})
		})
	}
}

// countingHook counts the round trips a client makes: one per command,
// one per pipeline.
type countingHook struct {
	n    atomic.Int64
	mu   sync.Mutex
	cmds []string
}

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.record(cmd.Name())
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.record("pipeline")
		return next(ctx, cmds)
	}
}

func (h *countingHook) record(name string) {
	h.n.Add(1)
	h.mu.Lock()
	h.cmds = append(h.cmds, name)
	h.mu.Unlock()
}

// trips returns the round trips f made and what they were.
func (h *countingHook) trips(f func()) (int64, []string) {
	h.mu.Lock()
	h.cmds = nil
	h.mu.Unlock()
	before := h.n.Load()
	f()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n.Load() - before, h.cmds
}

func TestRoundTrips(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		h := &countingHook{}
		c.AddHook(h)
		clock := storetest.NewClock()
		s := redisstore.New(c, redisstore.WithPrefix(testPrefix(t, c)), redisstore.WithClock(clock.Now))
		rec := func(v uint64, user string) sesh.Record {
			return sesh.Record{Data: []byte("data"), Version: v, Expires: clock.Now().Add(time.Hour), User: user}
		}
		// Warm up: the scripts get cached on the servers (EVALSHA falls
		// back to EVAL once per server), connections get made. A key's
		// first byte picks its hash slot, so one key per first byte
		// reaches every master of a cluster; random keys could miss one.
		for i := range 256 {
			var k sesh.Key
			k[0] = byte(i)
			rand.Read(k[1:])
			s.Save(ctx, k, rec(1, "w"), 0)
			s.Delete(ctx, k, clock.Now().Add(time.Minute))
			s.Save(ctx, k, rec(1, "w"), 0)
			s.Take(ctx, k)
			if unlock, err := s.Lock(ctx, k, time.Second); err == nil {
				unlock(ctx)
			}
		}
		var k sesh.Key
		rand.Read(k[:])
		check := func(op string, want int64, f func() error) {
			t.Helper()
			var err error
			n, cmds := h.trips(func() { err = f() })
			if err != nil {
				t.Fatalf("%s: %v", op, err)
			}
			if n != want {
				t.Errorf("%s: %d round trips %v, want %d", op, n, cmds, want)
			}
		}
		check("Save (create)", 1, func() error { return s.Save(ctx, k, rec(1, "alice"), 0) })
		check("Load", 1, func() error { _, err := s.Load(ctx, k); return err })
		check("Save (same user)", 1, func() error { return s.Save(ctx, k, rec(2, "alice"), 1) })
		check("Save (user changed)", 1, func() error { return s.Save(ctx, k, rec(3, "bob"), 2) })
		check("UserRecords", 2, func() error {
			es, err := s.UserRecords(ctx, "bob")
			if err == nil && len(es) != 1 {
				t.Errorf("UserRecords: got %d entries, want 1", len(es))
			}
			return err
		})
		check("Take", 1, func() error { _, err := s.Take(ctx, k); return err })
		check("Save (recreate)", 1, func() error { return s.Save(ctx, k, rec(1, "bob"), 0) })
		check("Delete", 1, func() error { return s.Delete(ctx, k, clock.Now().Add(time.Minute)) })
		var unlock func(context.Context) error
		check("Lock", 1, func() error {
			var err error
			unlock, err = s.Lock(ctx, k, time.Minute)
			return err
		})
		check("unlock", 1, func() error { return unlock(ctx) })
	})
}

// TestTTLFromClock checks that the TTLs sent to Redis are relative to the
// store's clock, not to the real time, and the key layout.
func TestTTLFromClock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		prefix := testPrefix(t, c)
		past := time.Now().Add(-time.Hour) // the store's clock lags an hour
		s := redisstore.New(c, redisstore.WithPrefix(prefix), redisstore.WithClock(func() time.Time { return past }))
		k := sesh.Key{0xab, 0xcd}
		if err := s.Save(ctx, k, sesh.Record{Data: []byte("x"), Version: 1, Expires: past.Add(2 * time.Hour), User: "u"}, 0); err != nil {
			t.Fatal(err)
		}
		name := prefix + "{ab}cd" + strings.Repeat("0", 60)
		ttl, err := c.PTTL(ctx, name).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 2*time.Hour-time.Minute || ttl > 2*time.Hour {
			t.Errorf("PTTL of the record: got %v, want about 2h (Expires − the store's now)", ttl)
		}
		keys, err := scanAll(ctx, c, prefix)
		if err != nil {
			t.Fatal(err)
		}
		index := prefix + "u{ab}" + sha1hex("u")
		if len(keys) != 2 || !(keys[0] == name && keys[1] == index || keys[1] == name && keys[0] == index) {
			t.Errorf("keys: got %q, want %q and %q", keys, name, index)
		}
		if ttl, err := c.PTTL(ctx, index).Result(); err != nil || ttl <= 2*time.Hour-time.Minute {
			t.Errorf("PTTL of the index: got (%v, %v), want at least the record's", ttl, err)
		}
		if err := s.Delete(ctx, k, past.Add(30*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if ttl, err := c.PTTL(ctx, name).Result(); err != nil || ttl <= 29*time.Minute || ttl > 30*time.Minute {
			t.Errorf("PTTL of the tombstone: got (%v, %v), want about 30m", ttl, err)
		}
		if cc, ok := c.(*redis.ClusterClient); ok {
			a, _ := cc.ClusterKeySlot(ctx, name).Result()
			b, _ := cc.ClusterKeySlot(ctx, index).Result()
			l, _ := cc.ClusterKeySlot(ctx, prefix+"l{ab}cd").Result()
			if a != b || a != l {
				t.Errorf("slots: record %d, index %d, lock %d; want one slot", a, b, l)
			}
		}
	})
}

// TestCorruptValue checks that a value the store did not write is a store
// failure, never "no session".
func TestCorruptValue(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		prefix := testPrefix(t, c)
		s := redisstore.New(c, redisstore.WithPrefix(prefix))
		k := sesh.Key{1}
		name := prefix + "{01}" + strings.Repeat("0", 62)
		for _, v := range []string{"", "x", "\x01\x00", "\x02" + strings.Repeat("\xff", 30), "\x01" + strings.Repeat("\xff", 17) + "\xff"} {
			if err := c.Set(ctx, name, v, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			_, err := s.Load(ctx, k)
			if !errors.Is(err, sesh.ErrCorrupt) {
				t.Errorf("Load of corrupt value %q: got %v, want ErrCorrupt", v, err)
			}
			// The manager deletes what it cannot read: that must work.
			if err := s.Delete(ctx, k, time.Time{}); err != nil {
				t.Errorf("Delete of corrupt value %q: %v", v, err)
			}
			if _, err := s.Load(ctx, k); !errors.Is(err, sesh.ErrNotFound) {
				t.Errorf("Load after deleting corrupt value %q: got %v, want ErrNotFound", v, err)
			}
		}
	})
}

func TestNewPanics(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer c.Close()
	for _, p := range []string{"a{", "}", "a b", "tab\t", "nl\n", "\x00", "\x7f", "\xff", strings.Repeat("p", 201)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(WithPrefix(%q)): no panic, want one", p)
				}
			}()
			redisstore.New(c, redisstore.WithPrefix(p))
		}()
	}
	for _, p := range []string{"", "sesh:", "app:sesh:", "a*b?[c]\\", "名前:"} {
		redisstore.New(c, redisstore.WithPrefix(p))
	}
}

func TestTooLarge(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer c.Close()
	s := redisstore.New(c, redisstore.WithMaxRecordSize(1000))
	err := s.Save(t.Context(), sesh.Key{1}, sesh.Record{Data: make([]byte, 1000), Version: 1, Expires: time.Now().Add(time.Hour)}, 0)
	if !errors.Is(err, sesh.ErrTooLarge) {
		t.Fatalf("Save over the limit: got %v, want ErrTooLarge", err)
	}
}

func sha1hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// quietLogger drops go-redis's informational logging (Sentinel
// discovery), which would drown the test output.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}
