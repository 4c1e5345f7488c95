package memcachedstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/internal/faultproxy"
	"github.com/seshgo/sesh/internal/faulttest"
	"github.com/seshgo/sesh/memcachedstore"
	"github.com/seshgo/sesh/memstore"
)

// socketTimeout is the client's Timeout in TestFaults: longer than the
// manager's StoreTimeout, as with gomemcache's default (500 ms) and a
// tighter StoreTimeout, so the store must give up on a call by itself.
const socketTimeout = 2 * time.Second

// TestFaults runs the fault scenarios against the test server, through a
// fault proxy, on a store indexed by a memstore (so that the user index
// is checked too).
func TestFaults(t *testing.T) {
	addr := server(t)
	prefix := testPrefix()
	faulttest.Run(t, faulttest.Options{
		Target: addr,
		Linger: socketTimeout,
		NewStore: func(t *testing.T, addr string, now func() time.Time) sesh.Store {
			c := memcache.New(addr)
			c.Timeout = socketTimeout
			t.Cleanup(func() { c.Close() })
			records := memcachedstore.New(c, memcachedstore.WithPrefix(prefix), memcachedstore.WithClock(now))
			return memcachedstore.NewIndexed(records, memstore.New(memstore.WithClock(now)))
		},
	})
}

// TestLockWonLateIsReleased checks that a lock whose add reaches memcached
// after Lock gave up on it is released at once, rather than blocking the
// key until its lease lapses.
func TestLockWonLateIsReleased(t *testing.T) {
	addr := server(t)
	p, err := faultproxy.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	slow := memcache.New(p.Addr())
	slow.Timeout = 5 * time.Second
	defer slow.Close()
	prefix := testPrefix()
	s := memcachedstore.New(slow, memcachedstore.WithPrefix(prefix))
	directClient := newClient(t, addr)
	direct := memcachedstore.New(directClient, memcachedstore.WithPrefix(prefix))
	var key sesh.Key
	rand.Read(key[:])

	p.SetDelay(300 * time.Millisecond) // each way
	p.SetMode(faultproxy.Delay)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	start := time.Now()
	_, err = s.Lock(ctx, key, time.Minute)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock through a slow server: got %v, want the context's deadline", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Lock gave up after %v, want about its context's 100 ms", took)
	}
	// The add lands after Lock gave up...
	eventually(t, "the late add to take the lock", func() bool {
		_, err := directClient.Get(prefix + "lock:" + key.String())
		return err == nil
	})
	// ...and the lock is released long before its one-minute lease ends.
	eventually(t, "the late lock to be released", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		unlock, err := direct.Lock(ctx, key, time.Minute)
		if err != nil {
			return false
		}
		return unlock(t.Context()) == nil
	})
}

// eventually polls cond for up to 5 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
