package memstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) sesh.Store {
		return New(WithClock(now))
	})
}

func TestConformanceOneShard(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) sesh.Store {
		return New(WithClock(now), WithShards(1))
	})
}

func randKey() sesh.Key {
	var k sesh.Key
	rand.Read(k[:])
	return k
}

func TestShards(t *testing.T) {
	for _, tt := range []struct{ in, want int }{{1, 1}, {2, 2}, {3, 4}, {64, 64}, {65, 128}} {
		if got := len(New(WithShards(tt.in)).shards); got != tt.want {
			t.Errorf("WithShards(%d): got %d shards, want %d", tt.in, got, tt.want)
		}
	}
	if got := len(New().shards); got < 64 || got&(got-1) != 0 {
		t.Errorf("default shards: got %d, want a power of two ≥ 64", got)
	}
}

// TestSweepBounded checks that each Sweep call examines at most limit+shards
// records, holds one shard's lock at a time, and leaves the user index
// clean.
func TestSweepBounded(t *testing.T) {
	clock := storetest.NewClock()
	const shards = 8
	s := New(WithClock(clock.Now), WithShards(shards))
	ctx := t.Context()
	s.testHookShardLocked = func(i int) {
		for j := range s.shards {
			if j == i {
				continue
			}
			if !s.shards[j].mu.TryLock() {
				t.Errorf("Sweep holding shard %d: shard %d is locked too", i, j)
				continue
			}
			s.shards[j].mu.Unlock()
		}
	}
	const live, dead = 300, 700
	now := clock.Now()
	for i := range live + dead {
		exp := now.Add(time.Hour)
		if i >= live {
			exp = now.Add(time.Duration(i) * time.Millisecond)
		}
		r := sesh.Record{Data: []byte("x"), Version: 1, Expires: exp, User: fmt.Sprint("user", i%10)}
		if err := s.Save(ctx, randKey(), r, 0); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Duration(live+dead) * time.Millisecond)
	const limit = 10
	total, calls := 0, 0
	for {
		n, examined, err := s.sweep(ctx, limit)
		calls++
		if err != nil {
			t.Fatalf("sweep: got error %v, want nil", err)
		}
		if n > limit {
			t.Fatalf("sweep(%d): deleted %d, want at most %d", limit, n, limit)
		}
		if examined > limit+shards {
			t.Fatalf("sweep(%d): examined %d records, want at most %d", limit, examined, limit+shards)
		}
		total += n
		if n < limit {
			break
		}
	}
	if total != dead {
		t.Errorf("sweeps removed %d in all, want %d", total, dead)
	}
	if calls > dead/limit+1 {
		t.Errorf("sweeps took %d calls, want at most %d", calls, dead/limit+1)
	}
	if got := s.Len(); got != live {
		t.Errorf("Len after sweeping: got %d, want %d", got, live)
	}
	indexed := 0
	for i := range s.users {
		for _, set := range s.users[i].m {
			indexed += set.len()
		}
	}
	if indexed != live {
		t.Errorf("user index after sweeping: got %d entries, want %d", indexed, live)
	}
}

// TestHeapInvariant drives one shard through random saves that move
// expiries both ways, deletes with and without tombstones, takes and
// sweeps, and checks after each step that its heap is a min-heap on
// expiry whose entries know their slot, holding exactly the entries of
// the map. A heap out of order would sweep a live record early, or keep
// a dead one.
func TestHeapInvariant(t *testing.T) {
	clock := storetest.NewClock()
	s := New(WithClock(clock.Now), WithShards(1))
	ctx := t.Context()
	keys := make([]sesh.Key, 64)
	for i := range keys {
		keys[i] = randKey()
	}
	versions := map[sesh.Key]uint64{}
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	for step := range 5000 {
		k := keys[rng.IntN(len(keys))]
		exp := clock.Now().Add(time.Duration(1+rng.IntN(600)) * time.Second)
		switch op := rng.IntN(10); {
		case op < 6:
			v := versions[k]
			if err := s.Save(ctx, k, sesh.Record{Data: []byte("x"), Version: v + 1, Expires: exp}, v); err == nil {
				versions[k] = v + 1
			} else if !errors.Is(err, sesh.ErrConflict) {
				t.Fatalf("step %d: Save: %v", step, err)
			}
		case op < 8:
			if err := s.Delete(ctx, k, exp); err != nil {
				t.Fatalf("step %d: Delete: %v", step, err)
			}
			delete(versions, k)
		case op < 9:
			s.Take(ctx, k)
			delete(versions, k)
		default:
			clock.Advance(time.Duration(rng.IntN(120)) * time.Second)
			if _, err := s.Sweep(ctx, 1+rng.IntN(8)); err != nil {
				t.Fatalf("step %d: Sweep: %v", step, err)
			}
			for k := range versions {
				if _, err := s.Load(ctx, k); err != nil {
					delete(versions, k) // expired: the next save creates it
				}
			}
		}
		checkHeap(t, step, &s.shards[0])
	}
}

func checkHeap(t *testing.T, step int, sh *shard) {
	t.Helper()
	if len(sh.heap) != len(sh.m) {
		t.Fatalf("step %d: heap holds %d entries, map %d", step, len(sh.heap), len(sh.m))
	}
	for i, e := range sh.heap {
		switch {
		case e == nil || sh.m[e.key] != e:
			t.Fatalf("step %d: heap slot %d holds an entry the map does not", step, i)
		case int(e.idx) != i:
			t.Fatalf("step %d: entry in heap slot %d says it is in slot %d", step, i, e.idx)
		case i > 0 && sh.heap[(i-1)/2].exp > e.exp:
			t.Fatalf("step %d: heap slot %d expires before its parent", step, i)
		}
	}
}

// sweepable returns a one-shard store holding dead expired records and
// one live record, whose key it returns.
func sweepable(t *testing.T, dead int) (*Store, sesh.Key) {
	t.Helper()
	clock := storetest.NewClock()
	s := New(WithClock(clock.Now), WithShards(1))
	for range dead {
		if err := s.Save(t.Context(), randKey(), sesh.Record{Data: []byte("x"), Version: 1, Expires: clock.Now().Add(time.Second)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	live := randKey()
	if err := s.Save(t.Context(), live, sesh.Record{Data: []byte("live"), Version: 1, Expires: clock.Now().Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	return s, live
}

// TestSweepLetsGoBetweenRuns checks that a long sweep of one shard lets
// go of its lock every sweepRun records, so that a load of that shard
// waits for one run at most, not for the whole batch.
func TestSweepLetsGoBetweenRuns(t *testing.T) {
	const dead = 10*sweepRun + 3
	s, live := sweepable(t, dead)
	ctx := t.Context()
	breaks := 0
	s.testHookBetweenRuns = func(int) {
		breaks++
		if !s.shards[0].mu.TryLock() {
			t.Fatalf("break %d: the shard is still locked", breaks)
		}
		s.shards[0].mu.Unlock()
		// A load in the break finds the live record.
		if rec, err := s.Load(ctx, live); err != nil || string(rec.Data) != "live" {
			t.Errorf("break %d: Load = %q, %v; want the live record", breaks, rec.Data, err)
		}
	}
	n, err := s.Sweep(ctx, 2*dead)
	if err != nil || n != dead {
		t.Fatalf("Sweep: %d, %v; want %d, nil", n, err, dead)
	}
	if want := dead / sweepRun; breaks != want {
		t.Errorf("Sweep of %d records let go of the shard %d times, want %d (every %d)", dead, breaks, want, sweepRun)
	}
}

// TestSweepMakesWay checks that a request spinning for a shard that a
// sweep holds gets the lock at the sweep's first break, before the sweep
// can take it back.
func TestSweepMakesWay(t *testing.T) {
	const dead = 4 * sweepRun
	s, live := sweepable(t, dead)
	ctx := t.Context()
	// The load spins until it has the lock, on any machine: while it
	// waits, waiting stays above zero.
	defer func(d time.Duration, m bool) { spinFor, multicore = d, m }(spinFor, multicore)
	spinFor, multicore = time.Hour, true
	sh := &s.shards[0]
	loaded := make(chan struct{})
	started := false
	s.testHookShardLocked = func(int) {
		if started {
			return
		}
		started = true
		// The sweep holds the shard: a load now has to wait for it.
		go func() {
			defer close(loaded)
			rec, err := s.Load(ctx, live)
			if err != nil || string(rec.Data) != "live" {
				t.Errorf("Load during the sweep = %q, %v; want the live record", rec.Data, err)
			}
		}()
		for sh.waiting.Load() == 0 {
			runtime.Gosched() // until the load spins for the lock
		}
	}
	breaks := 0
	s.testHookBetweenRuns = func(int) {
		if breaks++; breaks == 1 && sh.waiting.Load() != 0 {
			t.Error("the sweep's first break is over, and the load is still waiting for the shard")
		}
	}
	n, err := s.Sweep(ctx, 2*dead)
	if err != nil || n != dead {
		t.Fatalf("Sweep: %d, %v; want %d, nil", n, err, dead)
	}
	<-loaded
}

func TestSpinUntil(t *testing.T) {
	calls := 0
	if !spinUntil(func() bool { calls++; return calls == 3 }) || calls != 3 {
		t.Errorf("spinUntil: %d calls, want true on the 3rd", calls)
	}
	defer func(d time.Duration) { spinFor = d }(spinFor)
	spinFor = time.Microsecond
	if spinUntil(func() bool { return false }) {
		t.Error("spinUntil(never) = true, want false once spinFor has passed")
	}
}

// TestIndexCleanup checks that deleting, taking and re-saving under another
// user leave no empty sets or stale members behind.
func TestIndexCleanup(t *testing.T) {
	s := New()
	ctx := t.Context()
	now := time.Now()
	k1, k2, k3 := randKey(), randKey(), randKey()
	rec := func(user string, v uint64) sesh.Record {
		return sesh.Record{Data: []byte("x"), Version: v, Expires: now.Add(time.Hour), User: user}
	}
	for _, k := range []sesh.Key{k1, k2, k3} {
		if err := s.Save(ctx, k, rec("alice", 1), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Save(ctx, k1, rec("bob", 2), 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, k2, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Take(ctx, k3); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, k1, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for i := range s.users {
		if n := len(s.users[i].m); n != 0 {
			t.Errorf("user shard %d: got %d sets, want 0", i, n)
		}
	}
	// Users share one string per name.
	a, b := randKey(), randKey()
	s.Save(ctx, a, rec(string([]byte("carol")), 1), 0)
	s.Save(ctx, b, rec(string([]byte("carol")), 1), 0)
	ea := s.shards[s.shardIndex(&a)].m[a]
	eb := s.shards[s.shardIndex(&b)].m[b]
	if ea.user != eb.user || unsafeStringData(ea.userName()) != unsafeStringData(eb.userName()) {
		t.Errorf("two records of one user hold two copies of the name, want one shared string")
	}
}

func TestLockNoLeak(t *testing.T) {
	s := New()
	ctx := t.Context()
	k := randKey()
	before := runtime.NumGoroutine()
	unlock, err := s.Lock(ctx, k, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		c, cancel := context.WithTimeout(ctx, time.Millisecond)
		if _, err := s.Lock(c, k, time.Minute); err == nil {
			t.Fatal("Lock on a held key: got nil error")
		}
		cancel()
	}
	unlock(ctx)
	if n := len(s.locks[s.shardIndex(&k)].m); n != 0 {
		t.Errorf("after unlock: %d leases held, want 0", n)
	}
	// A lapsed lease is forgotten by Sweep.
	if _, err := s.Lock(ctx, k, time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	for lapse := time.Now().Add(time.Microsecond); time.Now().Before(lapse); {
		runtime.Gosched()
	}
	if _, err := s.Sweep(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if n := len(s.locks[s.shardIndex(&k)].m); n != 0 {
		t.Errorf("after Sweep: %d lapsed leases held, want 0", n)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("goroutines: %d before, %d after", before, after)
	}
}

func TestListCursorErrors(t *testing.T) {
	s := New()
	for _, c := range []string{"x", "00", string(make([]byte, 64)), "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"} {
		if _, _, err := s.List(t.Context(), c, 1); err == nil {
			t.Errorf("List(%q): got nil error, want one", c)
		}
	}
}

func benchRecord(size int) sesh.Record {
	data := make([]byte, size)
	rand.Read(data)
	return sesh.Record{Data: data, Version: 1, Expires: time.Now().Add(time.Hour), User: "user"}
}

func BenchmarkLoad(b *testing.B) {
	s := New()
	ctx := context.Background()
	keys := make([]sesh.Key, 1024)
	for i := range keys {
		keys[i] = randKey()
		s.Save(ctx, keys[i], benchRecord(256), 0)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Load(ctx, keys[i&1023]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkSave(b *testing.B) {
	s := New()
	ctx := context.Background()
	keys := make([]sesh.Key, 1024)
	rec := benchRecord(256)
	for i := range keys {
		keys[i] = randKey()
		s.Save(ctx, keys[i], rec, 0)
	}
	versions := make([]uint64, len(keys))
	for i := range versions {
		versions[i] = 1
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		j := i & 1023
		rec.Version = versions[j] + 1
		if err := s.Save(ctx, keys[j], rec, versions[j]); err != nil {
			b.Fatal(err)
		}
		versions[j]++
		i++
	}
}

// BenchmarkCreate saves new records into a store of a million, as a
// server creating sessions does: the map and the heap are far larger than
// the caches, and each new record is the latest to expire.
func BenchmarkCreate(b *testing.B) {
	s := New()
	ctx := context.Background()
	rec := benchRecord(100)
	rec.User = ""
	for range 1_000_000 {
		s.Save(ctx, randKey(), rec, 0)
	}
	keys := make([]sesh.Key, 1<<16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		j := i & (len(keys) - 1)
		if j == 0 {
			b.StopTimer()
			for k := range keys {
				keys[k] = randKey()
			}
			b.StartTimer()
		}
		rec.Expires = rec.Expires.Add(time.Millisecond)
		if err := s.Save(ctx, keys[j], rec, 0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSweep removes expired records from a store of a million; an
// op is one Sweep(1000).
func BenchmarkSweep(b *testing.B) {
	clock := storetest.NewClock()
	s := New(WithClock(clock.Now))
	ctx := context.Background()
	rec := benchRecord(100)
	rec.User = ""
	fill := func(n int) {
		for i := range n {
			rec.Expires = clock.Now().Add(time.Duration(1+i%3600) * time.Second)
			s.Save(ctx, randKey(), rec, 0)
		}
		clock.Advance(2 * time.Hour)
	}
	fill(1_000_000)
	b.ReportAllocs()
	for b.Loop() {
		if s.Len() == 0 {
			b.StopTimer()
			fill(1_000_000)
			b.StartTimer()
		}
		if _, err := s.Sweep(ctx, 1000); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSaveParallel(b *testing.B) {
	s := New()
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		k := randKey()
		rec := benchRecord(256)
		prev := uint64(0)
		for pb.Next() {
			rec.Version = prev + 1
			if err := s.Save(ctx, k, rec, prev); err != nil {
				b.Fatal(err)
			}
			prev++
		}
	})
}

func BenchmarkLoadParallel(b *testing.B) {
	s := New()
	ctx := context.Background()
	keys := make([]sesh.Key, 1024)
	for i := range keys {
		keys[i] = randKey()
		s.Save(ctx, keys[i], benchRecord(256), 0)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Load(ctx, keys[i&1023]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkBytesPerRecord reports the heap held per record, besides Data,
// with 100k records: all of one user, spread over 1000 users, or each of
// its own user (user names are 16 bytes).
func BenchmarkBytesPerRecord(b *testing.B) {
	for _, users := range []int{1, 1000, 100_000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) { benchBytesPerRecord(b, users) })
	}
}

func benchBytesPerRecord(b *testing.B, nusers int) {
	const n = 100_000
	users := make([]string, nusers)
	for i := range users {
		users[i] = fmt.Sprintf("user-%011d", i)
	}
	keys := make([]sesh.Key, n)
	for i := range keys {
		keys[i] = randKey()
	}
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	var perRecord float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := New()
		for i, k := range keys {
			s.Save(ctx, k, sesh.Record{Version: 1, Expires: exp, User: users[i%len(users)]}, 0)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perRecord = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(s)
	}
	b.ReportMetric(perRecord, "bytes/record")
}

func unsafeStringData(s string) *byte { return unsafe.StringData(s) }
