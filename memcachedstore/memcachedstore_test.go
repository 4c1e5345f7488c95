package memcachedstore_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memcachedstore"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/storetest"
)

// server returns the address of the memcached server the tests use, from
// SESH_TEST_MEMCACHED (set by scripts/testservers.sh). Without it the test
// is skipped, or fails in CI, where every store test must run.
func server(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("SESH_TEST_MEMCACHED")
	if addr == "" {
		msg := "SESH_TEST_MEMCACHED is not set: run the tests under scripts/testservers.sh"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return addr
}

// newClient returns a client of the test server that pings it first.
func newClient(t *testing.T, addr string) *memcache.Client {
	t.Helper()
	c := memcache.New(addr)
	c.Timeout = 5 * time.Second // the race detector slows everything
	c.MaxIdleConns = 32
	if err := c.Ping(); err != nil {
		t.Fatalf("memcached at %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testPrefix returns a fresh random key prefix. memcached cannot list
// keys, so nothing is cleaned up: the test server is a throwaway cache,
// and every item expires.
func testPrefix() string {
	var b [8]byte
	rand.Read(b[:])
	return "seshtest:" + hex.EncodeToString(b[:]) + ":"
}

func TestConformance(t *testing.T) {
	c := newClient(t, server(t))
	storetest.Run(t, func(t *testing.T, now func() time.Time) sesh.Store {
		return memcachedstore.New(c, memcachedstore.WithPrefix(testPrefix()), memcachedstore.WithClock(now))
	})
}

// TestConformanceIndexed runs the suite on a memcached store indexed by a
// memstore, so it covers UserIndexer too.
func TestConformanceIndexed(t *testing.T) {
	c := newClient(t, server(t))
	storetest.Run(t, func(t *testing.T, now func() time.Time) sesh.Store {
		records := memcachedstore.New(c, memcachedstore.WithPrefix(testPrefix()), memcachedstore.WithClock(now))
		return memcachedstore.NewIndexed(records, memstore.New(memstore.WithClock(now)))
	})
}

// TestTwoInstances checks that two stores over two clients of one server
// see each other's writes: create, compare-and-set, tombstone, lock.
func TestTwoInstances(t *testing.T) {
	addr := server(t)
	storetest.RunTwoInstances(t, func(t *testing.T, now func() time.Time) (sesh.Store, sesh.Store) {
		prefix := testPrefix()
		return memcachedstore.New(newClient(t, addr), memcachedstore.WithPrefix(prefix), memcachedstore.WithClock(now)),
			memcachedstore.New(newClient(t, addr), memcachedstore.WithPrefix(prefix), memcachedstore.WithClock(now))
	})
}

// recorder keeps every byte the client writes to memcached.
type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

type recordingConn struct {
	net.Conn
	r *recorder
}

func (c recordingConn) Write(p []byte) (int, error) {
	c.r.mu.Lock()
	c.r.buf.Write(p)
	c.r.mu.Unlock()
	return c.Conn.Write(p)
}

// commandKeys parses the memcached text protocol a client wrote and
// returns the keys of its commands.
func commandKeys(t *testing.T, stream []byte) []string {
	t.Helper()
	var keys []string
	r := bufio.NewReader(bytes.NewReader(stream))
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF && line == "" {
			return keys
		}
		if err != nil || !strings.HasSuffix(line, "\r\n") {
			t.Fatalf("unterminated command line %q", line)
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			t.Fatalf("empty command line")
		}
		switch f[0] {
		case "get", "gets", "gat", "gats":
			keys = append(keys, f[1:]...)
		case "delete", "touch", "incr", "decr":
			keys = append(keys, f[1])
		case "set", "add", "replace", "append", "prepend", "cas":
			keys = append(keys, f[1])
			n, err := strconv.Atoi(f[4])
			if err != nil {
				t.Fatalf("bad length in %q", line)
			}
			if _, err := r.Discard(n + 2); err != nil {
				t.Fatalf("short data block after %q", line)
			}
		case "version", "flush_all", "stats":
		default:
			t.Fatalf("unexpected command %q", line)
		}
	}
}

// TestHostileKeysOnTheWire checks that whatever bytes a key holds, the
// store only ever sends memcached its prefix and hex digits.
func TestHostileKeysOnTheWire(t *testing.T) {
	addr := server(t)
	rec := &recorder{}
	c := memcache.New(addr)
	c.Timeout = 5 * time.Second
	c.DialContext = func(ctx context.Context, network, address string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		return recordingConn{conn, rec}, nil
	}
	defer c.Close()
	prefix := testPrefix()
	s := memcachedstore.New(c, memcachedstore.WithPrefix(prefix))
	ctx := t.Context()

	fill := func(pattern string) sesh.Key {
		var k sesh.Key
		for i := range k {
			k[i] = pattern[i%len(pattern)]
		}
		return k
	}
	var keys []sesh.Key
	for _, p := range []string{" ", "\r\n", "\n", "\x00", "\x00\x01", "get x\r\n", "\xff", "A", "*", "%", "'", "{}", ":"} {
		keys = append(keys, fill(p))
	}
	for i, k := range keys {
		r := sesh.Record{Data: []byte(fmt.Sprint("record ", i)), Version: 1, Expires: time.Now().Add(time.Hour), User: "u"}
		if err := s.Save(ctx, k, r, 0); err != nil {
			t.Fatalf("Save(%q): %v", k, err)
		}
		if got, err := s.Load(ctx, k); err != nil || string(got.Data) != string(r.Data) {
			t.Fatalf("Load(%q): got (%q, %v)", k, got.Data, err)
		}
		r.Version = 2
		if err := s.Save(ctx, k, r, 1); err != nil {
			t.Fatalf("Save(%q, prev 1): %v", k, err)
		}
		unlock, err := s.Lock(ctx, k, time.Second)
		if err != nil {
			t.Fatalf("Lock(%q): %v", k, err)
		}
		if err := unlock(ctx); err != nil {
			t.Fatalf("unlock(%q): %v", k, err)
		}
		if i%2 == 0 {
			if _, err := s.Take(ctx, k); err != nil {
				t.Fatalf("Take(%q): %v", k, err)
			}
		}
		if err := s.Delete(ctx, k, time.Now().Add(time.Minute)); err != nil {
			t.Fatalf("Delete(%q): %v", k, err)
		}
	}

	rec.mu.Lock()
	stream := bytes.Clone(rec.buf.Bytes())
	rec.mu.Unlock()
	valid := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `(lock:)?[0-9a-f]{64}$`)
	sent := commandKeys(t, stream)
	if len(sent) < 5*len(keys) {
		t.Fatalf("saw %d keys on the wire, want at least %d", len(sent), 5*len(keys))
	}
	for _, name := range sent {
		if !valid.MatchString(name) {
			t.Errorf("key %q sent to memcached, want prefix and hex only", name)
		}
	}
	for _, k := range keys {
		if bytes.Contains(stream, k[:]) {
			t.Errorf("the raw bytes of key %q reached memcached", k)
		}
	}
}

func TestTooLarge(t *testing.T) {
	c := newClient(t, server(t))
	ctx := t.Context()
	big := sesh.Record{Data: make([]byte, 2<<20), Version: 1, Expires: time.Now().Add(time.Hour)}
	// Refused by the store, without a round trip...
	s := memcachedstore.New(c, memcachedstore.WithPrefix(testPrefix()))
	if err := s.Save(ctx, sesh.Key{1}, big, 0); !errors.Is(err, sesh.ErrTooLarge) {
		t.Fatalf("Save of 2 MiB: got %v, want ErrTooLarge", err)
	}
	// ...and by the server (1 MiB items), when the store is told more.
	s = memcachedstore.New(c, memcachedstore.WithPrefix(testPrefix()), memcachedstore.WithMaxItemSize(8<<20))
	if err := s.Save(ctx, sesh.Key{1}, big, 0); !errors.Is(err, sesh.ErrTooLarge) {
		t.Fatalf("Save of 2 MiB refused by the server: got %v, want ErrTooLarge", err)
	}
	if _, err := s.Load(ctx, sesh.Key{1}); !errors.Is(err, sesh.ErrNotFound) {
		t.Fatalf("Load after a refused Save: got %v, want ErrNotFound", err)
	}
}

// TestCorruptValue checks that a value the store did not write is a store
// failure, never "no session".
func TestCorruptValue(t *testing.T) {
	c := newClient(t, server(t))
	prefix := testPrefix()
	s := memcachedstore.New(c, memcachedstore.WithPrefix(prefix))
	k := sesh.Key{1}
	for _, v := range []string{"", "x", "\x01\x00", "\x02" + strings.Repeat("\xff", 30), "\x01" + strings.Repeat("\xff", 18)} {
		if err := c.Set(&memcache.Item{Key: prefix + k.String(), Value: []byte(v), Expiration: 60}); err != nil {
			t.Fatal(err)
		}
		_, err := s.Load(t.Context(), k)
		if !errors.Is(err, sesh.ErrCorrupt) {
			t.Errorf("Load of corrupt value %q: got %v, want ErrCorrupt", v, err)
		}
		// The manager deletes what it cannot read: that must work.
		if err := s.Delete(t.Context(), k, time.Time{}); err != nil {
			t.Errorf("Delete of corrupt value %q: %v", v, err)
		}
		if _, err := s.Load(t.Context(), k); !errors.Is(err, sesh.ErrNotFound) {
			t.Errorf("Load after deleting corrupt value %q: got %v, want ErrNotFound", v, err)
		}
	}
}

// TestFarFutureExpiration checks records beyond memcached's 30-day
// relative limit, which take absolute expiration times.
func TestFarFutureExpiration(t *testing.T) {
	c := newClient(t, server(t))
	prefix := testPrefix()
	s := memcachedstore.New(c, memcachedstore.WithPrefix(prefix))
	ctx := t.Context()
	for i, d := range []time.Duration{29 * 24 * time.Hour, 31 * 24 * time.Hour, 365 * 24 * time.Hour} {
		k := sesh.Key{byte(i + 1)}
		if err := s.Save(ctx, k, sesh.Record{Data: []byte("x"), Version: 1, Expires: time.Now().Add(d)}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(ctx, k); err != nil {
			t.Fatalf("Load of a record expiring in %v: %v", d, err)
		}
	}
}

func TestNewPanics(t *testing.T) {
	c := memcache.New("127.0.0.1:1") // never dialled
	for _, p := range []string{"a b", "tab\t", "nl\n", "\x00", "\x7f", "é", strings.Repeat("p", 182)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(WithPrefix(%q)): no panic, want one", p)
				}
			}()
			memcachedstore.New(c, memcachedstore.WithPrefix(p))
		}()
	}
	for _, p := range []string{"", "sesh:", "app:{sesh}*", strings.Repeat("p", 181)} {
		memcachedstore.New(c, memcachedstore.WithPrefix(p))
	}
}
