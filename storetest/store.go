package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/seshgo/sesh"
)

func (s suite) testStore(t *testing.T) {
	t.Run("LoadNeverWritten", func(t *testing.T) {
		e := s.parallel(t)
		e.wantLoadErr(newKey(), sesh.ErrNotFound)
	})
	t.Run("RoundTrip", s.testRoundTrip)
	t.Run("DataNotAliased", s.testDataNotAliased)
	t.Run("Replace", func(t *testing.T) {
		e := s.parallel(t)
		k := newKey()
		e.save(k, e.rec("one", 1), 0)
		r2 := e.rec("two", 2)
		r2.User = randomName(t, "u-")
		e.save(k, r2, 1)
		e.wantLoad(k, r2)
		// Versions may jump; Expires may shrink; User and Kind may change.
		r3 := sesh.Record{Data: []byte("three"), Version: 10, Expires: e.clock.Now().Add(time.Minute), Kind: sesh.KindToken}
		e.save(k, r3, 2)
		e.wantLoad(k, r3)
	})
	t.Run("Expiry", s.testExpiry)
	t.Run("Conflicts", s.testConflicts)
	t.Run("Delete", s.testDelete)
	t.Run("Tombstone", s.testTombstone)
	t.Run("TombstoneNeverShortened", s.testTombstoneNeverShortened)
	t.Run("NearKeys", s.testNearKeys)
	t.Run("ConcurrentIncrements", s.testConcurrentIncrements)
	t.Run("ConcurrentCreate", s.testConcurrentCreate)
	t.Run("ConcurrentKeys", s.testConcurrentKeys)
	t.Run("LargeRecord", func(t *testing.T) {
		e := s.parallel(t)
		k := newKey()
		for i, size := range []int{256 << 10, 256<<10 - 1} {
			r := e.rec("", uint64(i+1))
			r.Data = make([]byte, size)
			rand.Read(r.Data)
			if err := e.s.Save(e.ctx, k, r, uint64(i)); err != nil {
				t.Fatalf("Save of %d bytes of Data: got error %v, want nil (stores must hold 256 KiB)", size, err)
			}
			e.wantLoad(k, r)
		}
	})
	t.Run("HostileKeys", s.testHostileKeys)
	t.Run("FarFutureExpires", func(t *testing.T) {
		e := s.parallel(t)
		k := newKey()
		r := e.rec("far", 1)
		r.Expires = e.clock.Now().AddDate(10, 0, 0)
		e.save(k, r, 0)
		e.wantLoad(k, r)
		e.clock.Advance(365 * 24 * time.Hour)
		e.wantLoad(k, r)
	})
	t.Run("CanceledContext", s.testCanceledContext)
}

func (s suite) testRoundTrip(t *testing.T) {
	allBytes := make([]byte, 512)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	tests := []struct {
		name string
		rec  func(now time.Time) sesh.Record
	}{
		{"Basic", func(now time.Time) sesh.Record {
			return sesh.Record{Data: []byte("hello"), Version: 2, Expires: now.Add(time.Hour), User: "alice", Kind: sesh.KindSession}
		}},
		{"ZeroBytes", func(now time.Time) sesh.Record {
			return sesh.Record{Data: []byte{0, 0, 0, 1, 0, 0}, Version: 2, Expires: now.Add(time.Hour)}
		}},
		{"AllByteValues", func(now time.Time) sesh.Record {
			return sesh.Record{Data: allBytes, Version: 3, Expires: now.Add(time.Hour), User: "bob"}
		}},
		{"EmptyData", func(now time.Time) sesh.Record {
			return sesh.Record{Data: []byte{}, Version: 2, Expires: now.Add(time.Hour)}
		}},
		{"UnicodeUser", func(now time.Time) sesh.Record {
			return sesh.Record{Data: []byte("x"), Version: 2, Expires: now.Add(time.Hour), User: "Zoë 👩‍💻 ユーザー\u00a0ß"}
		}},
		{"KindToken", func(now time.Time) sesh.Record {
			return sesh.Record{Data: []byte("token"), Version: 2, Expires: now.Add(30 * 24 * time.Hour), User: "carol", Kind: sesh.KindToken}
		}},
		{"KindUnknown", func(now time.Time) sesh.Record {
			return sesh.Record{Data: []byte("k"), Version: 2, Expires: now.Add(time.Hour), Kind: sesh.Kind(255)}
		}},
		{"MaxVersion", func(now time.Time) sesh.Record {
			return sesh.Record{Data: []byte("v"), Version: math.MaxInt64, Expires: now.Add(time.Hour)}
		}},
		{"SubMillisecondExpires", func(now time.Time) sesh.Record {
			return sesh.Record{Data: []byte("ms"), Version: 2, Expires: now.Add(time.Hour + 123456789*time.Nanosecond)}
		}},
		{"ExpiresInOtherLocation", func(now time.Time) sesh.Record {
			return sesh.Record{Data: []byte("loc"), Version: 2, Expires: now.Add(time.Hour).In(time.FixedZone("X", -7*3600))}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := s.parallel(t)
			k := newKey()
			want := tt.rec(e.clock.Now())
			// Through the create path...
			first := want
			first.Version = 1
			e.save(k, first, 0)
			e.wantLoad(k, first)
			// ...and through the replace path.
			e.save(k, want, 1)
			e.wantLoad(k, want)
		})
	}
}

func (s suite) testDataNotAliased(t *testing.T) {
	e := s.parallel(t)
	k := newKey()
	in := []byte("original")
	r := e.rec("", 1)
	r.Data = in
	e.save(k, r, 0)
	copy(in, "XXXXXXXX")
	got := e.load(k)
	if string(got.Data) != "original" {
		t.Fatalf("after the caller reused its Data slice: Load got %q, want %q", got.Data, "original")
	}
	for i := range got.Data {
		got.Data[i] = 'Y'
	}
	if got := e.load(k); string(got.Data) != "original" {
		t.Fatalf("after the caller changed a loaded Data slice: Load got %q, want %q", got.Data, "original")
	}

	in2 := []byte("replaced")
	r2 := e.rec("", 2)
	r2.Data = in2
	e.save(k, r2, 1)
	copy(in2, "ZZZZZZZZ")
	if got := e.load(k); string(got.Data) != "replaced" {
		t.Fatalf("after the caller reused the Data slice of a replace: Load got %q, want %q", got.Data, "replaced")
	}
}

func (s suite) testExpiry(t *testing.T) {
	t.Run("SavedAlreadyExpired", func(t *testing.T) {
		e := s.parallel(t)
		for _, d := range []time.Duration{-time.Hour, -time.Millisecond, 0} {
			k := newKey()
			r := e.rec("dead", 1)
			r.Expires = e.clock.Now().Add(d)
			if err := e.s.Save(e.ctx, k, r, 0); err != nil {
				t.Fatalf("Save with Expires now%+v: got error %v, want nil", d, err)
			}
			e.wantLoadErr(k, sesh.ErrNotFound)
		}
	})
	t.Run("ExpiresAtClock", func(t *testing.T) {
		e := s.parallel(t)
		k := newKey()
		r := e.rec("soon", 1)
		e.save(k, r, 0)
		e.clock.Advance(time.Hour - time.Millisecond)
		e.wantLoad(k, r)
		e.clock.Advance(time.Millisecond) // now == Expires: dead
		e.wantLoadErr(k, sesh.ErrNotFound)
		e.clock.Advance(time.Hour)
		e.wantLoadErr(k, sesh.ErrNotFound)
	})
	t.Run("ReplaceExpiredConflicts", func(t *testing.T) {
		e := s.parallel(t)
		k := newKey()
		e.save(k, e.rec("old", 1), 0)
		e.clock.Advance(2 * time.Hour)
		e.wantSaveErr(k, e.rec("new", 2), 1, sesh.ErrConflict)
		e.wantLoadErr(k, sesh.ErrNotFound)
	})
	t.Run("CreateOverExpired", func(t *testing.T) {
		e := s.parallel(t)
		k := newKey()
		e.save(k, e.rec("old", 7), 0)
		e.clock.Advance(2 * time.Hour)
		r := e.rec("new", 1)
		e.save(k, r, 0)
		e.wantLoad(k, r)
	})
	t.Run("CreateOverSavedExpired", func(t *testing.T) {
		e := s.parallel(t)
		k := newKey()
		dead := e.rec("dead", 3)
		dead.Expires = e.clock.Now().Add(-time.Second)
		e.save(k, dead, 0)
		r := e.rec("live", 1)
		e.save(k, r, 0)
		e.wantLoad(k, r)
	})
}

func (s suite) testConflicts(t *testing.T) {
	tests := []struct {
		name string
		// prepare writes to k and returns what k must hold afterwards
		// (nil: nothing), then the failing save.
		prepare func(e *env, k sesh.Key) (want *sesh.Record, rec sesh.Record, prev uint64)
	}{
		{"CreateTwice", func(e *env, k sesh.Key) (*sesh.Record, sesh.Record, uint64) {
			r := e.rec("first", 1)
			e.save(k, r, 0)
			return &r, e.rec("second", 2), 0
		}},
		{"StalePrev", func(e *env, k sesh.Key) (*sesh.Record, sesh.Record, uint64) {
			e.save(k, e.rec("v1", 1), 0)
			r := e.rec("v2", 2)
			e.save(k, r, 1)
			return &r, e.rec("stale", 3), 1
		}},
		{"FuturePrev", func(e *env, k sesh.Key) (*sesh.Record, sesh.Record, uint64) {
			r := e.rec("v1", 1)
			e.save(k, r, 0)
			return &r, e.rec("v3", 3), 2
		}},
		{"ReplaceAbsent", func(e *env, k sesh.Key) (*sesh.Record, sesh.Record, uint64) {
			return nil, e.rec("v2", 2), 1
		}},
		{"ReplaceDeleted", func(e *env, k sesh.Key) (*sesh.Record, sesh.Record, uint64) {
			e.save(k, e.rec("v1", 1), 0)
			e.delete(k, time.Time{})
			return nil, e.rec("v2", 2), 1
		}},
		{"ReplaceTaken", func(e *env, k sesh.Key) (*sesh.Record, sesh.Record, uint64) {
			e.save(k, e.rec("v1", 1), 0)
			if tk, ok := e.s.(sesh.Taker); ok {
				if _, err := tk.Take(e.ctx, k); err != nil {
					e.t.Fatalf("Take: got error %v, want nil", err)
				}
			} else {
				e.delete(k, time.Time{})
			}
			return nil, e.rec("v2", 2), 1
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := s.parallel(t)
			k := newKey()
			want, r, prev := tt.prepare(e, k)
			e.wantSaveErr(k, r, prev, sesh.ErrConflict)
			if want == nil {
				e.wantLoadErr(k, sesh.ErrNotFound)
			} else {
				e.wantLoad(k, *want)
			}
		})
	}
}

func (s suite) testDelete(t *testing.T) {
	tests := []struct {
		name      string
		exists    bool
		tombstone func(now time.Time) time.Time
	}{
		{"Absent", false, func(time.Time) time.Time { return time.Time{} }},
		{"Present", true, func(time.Time) time.Time { return time.Time{} }},
		{"TombstoneInPast", true, func(now time.Time) time.Time { return now.Add(-time.Second) }},
		{"TombstoneAtNow", true, func(now time.Time) time.Time { return now }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := s.parallel(t)
			k := newKey()
			if tt.exists {
				r := e.rec("x", 1)
				r.User = randomName(t, "del-")
				e.save(k, r, 0)
			}
			ts := tt.tombstone(e.clock.Now())
			e.delete(k, ts)
			e.wantLoadErr(k, sesh.ErrNotFound)
			e.delete(k, ts) // idempotent
			e.wantLoadErr(k, sesh.ErrNotFound)
			r := e.rec("again", 1)
			e.save(k, r, 0)
			e.wantLoad(k, r)
		})
	}
	t.Run("ExpiredRecord", func(t *testing.T) {
		e := s.parallel(t)
		k := newKey()
		e.save(k, e.rec("x", 1), 0)
		e.clock.Advance(2 * time.Hour)
		e.delete(k, time.Time{})
		e.wantLoadErr(k, sesh.ErrNotFound)
	})
}

func (s suite) testTombstone(t *testing.T) {
	// Each case deletes a record (or nothing) with a tombstone a minute
	// ahead, then checks a property.
	tests := []struct {
		name   string
		exists bool
		check  func(e *env, k sesh.Key)
	}{
		{"Gone", true, func(e *env, k sesh.Key) {
			e.wantLoadErr(k, sesh.ErrGone)
		}},
		{"BlocksCreate", true, func(e *env, k sesh.Key) {
			e.wantSaveErr(k, e.rec("new", 2), 0, sesh.ErrConflict)
			e.wantLoadErr(k, sesh.ErrGone)
		}},
		{"BlocksReplace", true, func(e *env, k sesh.Key) {
			e.wantSaveErr(k, e.rec("new", 2), 1, sesh.ErrConflict)
			e.wantLoadErr(k, sesh.ErrGone)
		}},
		{"OnAbsentKey", false, func(e *env, k sesh.Key) {
			e.wantLoadErr(k, sesh.ErrGone)
			e.wantSaveErr(k, e.rec("new", 1), 0, sesh.ErrConflict)
		}},
		{"DeleteAgain", true, func(e *env, k sesh.Key) {
			e.delete(k, time.Time{})
			e.delete(k, e.clock.Now().Add(time.Minute))
			e.wantLoadErr(k, sesh.ErrGone)
		}},
		{"Lapses", true, func(e *env, k sesh.Key) {
			e.clock.Advance(time.Minute - time.Millisecond)
			e.wantLoadErr(k, sesh.ErrGone)
			e.clock.Advance(time.Millisecond) // now == tombstone: lapsed
			e.wantLoadErr(k, sesh.ErrNotFound)
			e.wantSaveErr(k, e.rec("replace", 2), 1, sesh.ErrConflict)
			r := e.rec("create", 2)
			e.save(k, r, 0)
			e.wantLoad(k, r)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := s.parallel(t)
			k := newKey()
			if tt.exists {
				e.save(k, e.rec("old", 1), 0)
			}
			e.delete(k, e.clock.Now().Add(time.Minute))
			tt.check(e, k)
		})
	}
}

// increment does a load/modify/save-with-prev loop on k, retrying on
// ErrConflict. It reports errors with t.Errorf so goroutines may call it.
func (e *env) increment(k sesh.Key) bool {
	for attempt := 0; attempt < 100000; attempt++ {
		cur, err := e.s.Load(e.ctx, k)
		if err != nil {
			e.t.Errorf("Load: got error %v, want nil", err)
			return false
		}
		n, err := strconv.Atoi(string(cur.Data))
		if err != nil {
			e.t.Errorf("Load: got Data %q, want a decimal counter", cur.Data)
			return false
		}
		next := e.rec(strconv.Itoa(n+1), cur.Version+1)
		err = e.s.Save(e.ctx, k, next, cur.Version)
		if err == nil {
			return true
		}
		if !errors.Is(err, sesh.ErrConflict) {
			e.t.Errorf("Save(prev %d): got error %v, want nil or ErrConflict", cur.Version, err)
			return false
		}
	}
	e.t.Errorf("increment: no progress after 100000 conflicts")
	return false
}

func (s suite) testConcurrentIncrements(t *testing.T) {
	e := s.parallel(t)
	k := newKey()
	e.save(k, e.rec("0", 1), 0)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range workers {
		wg.Go(func() {
			<-start
			for range each {
				if !e.increment(k) {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	got := e.load(k)
	if string(got.Data) != strconv.Itoa(workers*each) {
		t.Fatalf("after %d×%d concurrent increments: got counter %q, want %d", workers, each, got.Data, workers*each)
	}
	if got.Version != workers*each+1 {
		t.Fatalf("after %d×%d concurrent increments: got Version %d, want %d", workers, each, got.Version, workers*each+1)
	}
}

func (s suite) testConcurrentCreate(t *testing.T) {
	e := s.parallel(t)
	k := newKey()
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = e.s.Save(e.ctx, k, e.rec(fmt.Sprint("creator ", i), 1), 0)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("concurrent creates: creators %d and %d both succeeded, want exactly one", winner, i)
			}
			winner = i
		case !errors.Is(err, sesh.ErrConflict):
			t.Errorf("concurrent create %d: got error %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("concurrent creates: got no success, want exactly one")
	}
	if got := e.load(k); string(got.Data) != fmt.Sprint("creator ", winner) {
		t.Fatalf("after concurrent creates: got Data %q, want %q (the winner's)", got.Data, fmt.Sprint("creator ", winner))
	}
}

func (s suite) testConcurrentKeys(t *testing.T) {
	e := s.parallel(t)
	const workers, each = 8, 16
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				k := newKey()
				r := e.rec(fmt.Sprintf("w%d-%d", w, i), 1)
				if err := e.s.Save(e.ctx, k, r, 0); err != nil {
					t.Errorf("Save: got error %v, want nil", err)
					return
				}
				got, err := e.s.Load(e.ctx, k)
				if err != nil || !bytes.Equal(got.Data, r.Data) {
					t.Errorf("Load: got (%q, %v), want (%q, nil)", got.Data, err, r.Data)
					return
				}
				r2 := e.rec(fmt.Sprintf("w%d-%d'", w, i), 2)
				if err := e.s.Save(e.ctx, k, r2, 1); err != nil {
					t.Errorf("Save(prev 1): got error %v, want nil", err)
					return
				}
				var ts time.Time
				want := sesh.ErrNotFound
				if i%2 == 1 {
					ts, want = e.clock.Now().Add(time.Minute), sesh.ErrGone
				}
				if err := e.s.Delete(e.ctx, k, ts); err != nil {
					t.Errorf("Delete: got error %v, want nil", err)
					return
				}
				if _, err := e.s.Load(e.ctx, k); !errors.Is(err, want) {
					t.Errorf("Load after Delete: got error %v, want %v", err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// hostileKeys are keys made of bytes that mean something in paths, URLs,
// globs, SQL, Redis or text protocols, plus keys that differ only in case
// or in one trailing byte.
func hostileKeys() []sesh.Key {
	fill := func(pattern string) sesh.Key {
		var k sesh.Key
		for i := range k {
			k[i] = pattern[i%len(pattern)]
		}
		return k
	}
	keys := []sesh.Key{
		fill("/"), fill("."), fill("\\"), fill("../"), fill("..\\"),
		fill("\r"), fill("\n"), fill("\r\n"), fill(" "), fill("\t"),
		fill("*"), fill("?"), fill("%"), fill("%00"), fill("%2e%2f"),
		fill("\xff"), fill("\xfe\xff"), fill("\x80"), fill("'"), fill("\""),
		fill(";--"), fill("{}"), fill(":"), fill("$"), fill("~"),
		fill("A"), fill("a"), fill("AbC"), fill("aBc"),
		fill("\x00\x01"), fill("\x01"),
	}
	// NUL bytes with a final non-zero byte (the all-zero key is never used).
	var k sesh.Key
	k[31] = 1
	keys = append(keys, k)
	k[31] = 2
	keys = append(keys, k)
	k = sesh.Key{}
	k[0] = 1
	keys = append(keys, k)
	// Keys that differ from a hostile key in their last byte only.
	slash := fill("/")
	slash[31] = '.'
	keys = append(keys, slash)
	slash[31] = 0
	keys = append(keys, slash)
	return keys
}

func (s suite) testHostileKeys(t *testing.T) {
	e := s.parallel(t)
	keys := hostileKeys()
	seen := make(map[sesh.Key]bool)
	for _, k := range keys {
		if seen[k] {
			t.Fatalf("internal error: hostile key %x listed twice", k)
		}
		seen[k] = true
	}
	// The keys are fixed, so clear leftovers of earlier runs against a
	// shared database, before and after.
	cleanup := func() {
		for _, k := range keys {
			if err := e.s.Delete(context.WithoutCancel(e.ctx), k, time.Time{}); err != nil {
				t.Errorf("Delete(%x): got error %v, want nil", k, err)
			}
		}
	}
	cleanup()
	t.Cleanup(cleanup)

	recs := make([]sesh.Record, len(keys))
	for i, k := range keys {
		recs[i] = e.rec(fmt.Sprintf("record %d for key %x", i, k), 1)
		if err := e.s.Save(e.ctx, k, recs[i], 0); err != nil {
			t.Fatalf("Save(key %x): got error %v, want nil", k, err)
		}
	}
	for i, k := range keys {
		checkRecord(t, fmt.Sprintf("Load(key %x)", k), e.load(k), recs[i])
	}
	// Deleting every other key must leave the rest alone.
	for i, k := range keys {
		if i%2 == 0 {
			e.delete(k, time.Time{})
		}
	}
	for i, k := range keys {
		got, err := e.s.Load(e.ctx, k)
		if i%2 == 0 {
			if !errors.Is(err, sesh.ErrNotFound) {
				t.Errorf("Load(deleted key %x): got error %v, want ErrNotFound", k, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Load(key %x): got error %v, want nil", k, err)
			continue
		}
		checkRecord(t, fmt.Sprintf("Load(key %x)", k), got, recs[i])
	}
}

func (s suite) testCanceledContext(t *testing.T) {
	e := s.parallel(t)
	k := newKey()
	r := e.rec("before", 1)
	e.save(k, r, 0)
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()

	// A store may or may not notice the cancellation, but it must never
	// report it as one of the sentinel outcomes, and a Save or Delete that
	// fails must not have written.
	got, err := e.s.Load(ctx, k)
	switch {
	case err == nil:
		checkRecord(t, "Load(canceled ctx)", got, r)
	case !errors.Is(err, context.Canceled):
		t.Errorf("Load(canceled ctx): got error %v, want nil or one wrapping context.Canceled", err)
	}

	r2 := e.rec("after", 2)
	err = e.s.Save(ctx, k, r2, 1)
	switch {
	case err == nil:
		e.wantLoad(k, r2)
		r = r2
	case errors.Is(err, context.Canceled):
		e.wantLoad(k, r)
	default:
		t.Errorf("Save(canceled ctx): got error %v, want nil or one wrapping context.Canceled", err)
	}

	err = e.s.Delete(ctx, k, time.Time{})
	switch {
	case err == nil:
		e.wantLoadErr(k, sesh.ErrNotFound)
	case errors.Is(err, context.Canceled):
		e.wantLoad(k, r)
	default:
		t.Errorf("Delete(canceled ctx): got error %v, want nil or one wrapping context.Canceled", err)
	}
}
