package sqlitestore_test

// Tests shared by the SQL stores; this file is the same in pgstore,
// mysqlstore and sqlitestore (modules share no test code).

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/storetest"
)

// nearKeys are keys that a case-insensitive, accent-insensitive or
// PAD SPACE collation, or a NUL-terminated string, would take for equal.
func nearKeys() map[string]sesh.Key {
	key := func(s string) sesh.Key {
		if len(s) != 32 {
			panic("key of " + s + " is not 32 bytes")
		}
		var k sesh.Key
		copy(k[:], s)
		return k
	}
	base := "sesh-collation-test-key-abcdefgh"
	return map[string]sesh.Key{
		"base":          key(base),
		"upper":         key(strings.ToUpper(base)),
		"last upper":    key(base[:31] + "H"),
		"spaces":        key(base[:28] + "    "),
		"nuls":          key(base[:28] + "\x00\x00\x00\x00"),
		"tab":           key(base[:28] + "   \t"),
		"nul inside":    key(base[:10] + "\x00" + base[11:]),
		"nul at end":    key(base[:31] + "\x00"),
		"accent":        key(base[:30] + "\xc3\xa9"), // "é"
		"accent folded": key(base[:30] + "e "),
	}
}

// testBinaryKeys checks that keys are compared as bytes (A27).
func testBinaryKeys(t *testing.T, s sesh.Store) {
	ctx := context.Background()
	keys := nearKeys()
	exp := time.Now().Add(time.Hour)
	if err := s.Save(ctx, keys["base"], sesh.Record{Data: []byte("base"), Version: 1, Expires: exp}, 0); err != nil {
		t.Fatalf("Save(base): %v", err)
	}
	for name, k := range keys {
		if name == "base" {
			continue
		}
		if _, err := s.Load(ctx, k); !errors.Is(err, sesh.ErrNotFound) {
			t.Errorf("Load(%s key %q) with only the base key saved: got error %v, want ErrNotFound", name, k[:], err)
		}
	}
	for name, k := range keys {
		if name == "base" {
			continue
		}
		if err := s.Save(ctx, k, sesh.Record{Data: []byte(name), Version: 1, Expires: exp}, 0); err != nil {
			t.Errorf("Save(%s key) beside the base key: got error %v, want nil", name, err)
		}
	}
	for name, k := range keys {
		got, err := s.Load(ctx, k)
		if err != nil || string(got.Data) != name {
			t.Errorf("Load(%s key): got (%q, %v), want (%q, nil)", name, got.Data, err, name)
		}
	}
	if err := s.Delete(ctx, keys["upper"], time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx, keys["base"]); err != nil || string(got.Data) != "base" {
		t.Errorf("Load(base) after deleting the upper-case key: got (%q, %v)", got.Data, err)
	}
}

type fullStore interface {
	sesh.Store
	sesh.Locker
	sesh.Taker
	sesh.UserIndexer
}

// testTwoInstances checks that two stores over separate connections to one
// table see each other's writes and honour each other's versions, locks
// and tombstones.
func testTwoInstances(t *testing.T, clock *storetest.Clock, a, b fullStore) {
	ctx := context.Background()
	k := sesh.Key{0xab, 0xcd}
	rand.Read(k[2:])
	r1 := sesh.Record{Data: []byte("one"), Version: 1, Expires: clock.Now().Add(time.Hour), User: "alice"}
	if err := a.Save(ctx, k, r1, 0); err != nil {
		t.Fatalf("A.Save: %v", err)
	}
	got, err := b.Load(ctx, k)
	if err != nil || string(got.Data) != "one" || got.Version != 1 || got.User != "alice" {
		t.Fatalf("B.Load: got (%+v, %v), want A's record", got, err)
	}
	if err := b.Save(ctx, k, r1, 0); !errors.Is(err, sesh.ErrConflict) {
		t.Fatalf("B.Save(prev 0) over A's record: got %v, want ErrConflict", err)
	}
	r2 := sesh.Record{Data: []byte("two"), Version: 2, Expires: clock.Now().Add(time.Hour), User: "alice"}
	if err := b.Save(ctx, k, r2, 1); err != nil {
		t.Fatalf("B.Save(prev 1): %v", err)
	}
	if err := a.Save(ctx, k, sesh.Record{Data: []byte("stale"), Version: 2, Expires: clock.Now().Add(time.Hour)}, 1); !errors.Is(err, sesh.ErrConflict) {
		t.Fatalf("A.Save(prev 1) after B replaced it: got %v, want ErrConflict", err)
	}
	if got, err := a.Load(ctx, k); err != nil || string(got.Data) != "two" || got.Version != 2 {
		t.Fatalf("A.Load: got (%q v%d, %v), want B's version 2", got.Data, got.Version, err)
	}
	if es, err := a.UserRecords(ctx, "alice"); err != nil || len(es) != 1 || es[0].Key != k {
		t.Fatalf("A.UserRecords: got (%v, %v), want the one record", es, err)
	}

	// A lock taken through A holds B off until A releases it.
	unlock, err := a.Lock(ctx, k, time.Minute)
	if err != nil {
		t.Fatalf("A.Lock: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	if u, err := b.Lock(wctx, k, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			u(ctx)
		}
		t.Fatalf("B.Lock while A holds it: got %v, want DeadlineExceeded", err)
	}
	cancel()
	if err := unlock(ctx); err != nil {
		t.Fatalf("A unlock: %v", err)
	}
	wctx, cancel = context.WithTimeout(ctx, 5*time.Second)
	u, err := b.Lock(wctx, k, time.Minute)
	cancel()
	if err != nil {
		t.Fatalf("B.Lock after A unlocked: %v", err)
	}
	u(ctx)

	// B deletes with a tombstone; A sees it gone and cannot write.
	if err := b.Delete(ctx, k, clock.Now().Add(time.Minute)); err != nil {
		t.Fatalf("B.Delete: %v", err)
	}
	if _, err := a.Load(ctx, k); !errors.Is(err, sesh.ErrGone) {
		t.Fatalf("A.Load after B's Delete: got %v, want ErrGone", err)
	}
	if err := a.Save(ctx, k, r1, 0); !errors.Is(err, sesh.ErrConflict) {
		t.Fatalf("A.Save(prev 0) under B's tombstone: got %v, want ErrConflict", err)
	}
	clock.Advance(time.Minute)
	if err := a.Save(ctx, k, r1, 0); err != nil {
		t.Fatalf("A.Save after the tombstone lapsed: %v", err)
	}
	if got, err := b.Take(ctx, k); err != nil || string(got.Data) != "one" {
		t.Fatalf("B.Take: got (%q, %v), want A's record", got.Data, err)
	}
	if _, err := a.Load(ctx, k); !errors.Is(err, sesh.ErrNotFound) {
		t.Fatalf("A.Load after B took it: got %v, want ErrNotFound", err)
	}
}

// testTombstoneKept checks that Delete only ever lengthens a live
// tombstone: a shorter tombstone, or none, leaves it as it is.
func testTombstoneKept(t *testing.T, clock *storetest.Clock, s sesh.Store) {
	ctx := context.Background()
	var k sesh.Key
	// A tombstone shorter than the record it replaces lapses on time.
	rand.Read(k[:])
	if err := s.Save(ctx, k, sesh.Record{Data: []byte("x"), Version: 1, Expires: clock.Now().Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, k, clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if _, err := s.Load(ctx, k); !errors.Is(err, sesh.ErrNotFound) {
		t.Fatalf("Load after a one-minute tombstone over an hour-long record lapsed: got %v, want ErrNotFound", err)
	}

	rand.Read(k[:])
	if err := s.Save(ctx, k, sesh.Record{Data: []byte("x"), Version: 1, Expires: clock.Now().Add(time.Hour), User: "kept"}, 0); err != nil {
		t.Fatal(err)
	}
	for _, ts := range []time.Time{clock.Now().Add(10 * time.Minute), clock.Now().Add(time.Minute), {}, clock.Now().Add(-time.Minute)} {
		if err := s.Delete(ctx, k, ts); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Load(ctx, k); !errors.Is(err, sesh.ErrGone) {
			t.Fatalf("Load after Delete(tombstone %v): got %v, want ErrGone", ts, err)
		}
	}
	clock.Advance(10*time.Minute - time.Millisecond)
	if _, err := s.Load(ctx, k); !errors.Is(err, sesh.ErrGone) {
		t.Fatalf("Load just before the longest tombstone lapses: got %v, want ErrGone", err)
	}
	if err := s.Delete(ctx, k, clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Minute)
	if _, err := s.Load(ctx, k); !errors.Is(err, sesh.ErrGone) {
		t.Fatalf("Load after lengthening the tombstone: got %v, want ErrGone", err)
	}
	clock.Advance(30 * time.Minute)
	if _, err := s.Load(ctx, k); !errors.Is(err, sesh.ErrNotFound) {
		t.Fatalf("Load after the tombstone lapsed: got %v, want ErrNotFound", err)
	}
	if ui, ok := s.(sesh.UserIndexer); ok {
		if es, err := ui.UserRecords(ctx, "kept"); err != nil || len(es) != 0 {
			t.Fatalf("UserRecords of a deleted record's user: got (%d, %v), want none", len(es), err)
		}
	}
}

// testUnlockLapsed checks that an unlock whose lease lapsed, though no one
// took the key since, reports ErrLockLost, as does a second unlock.
func testUnlockLapsed(t *testing.T, clock *storetest.Clock, l sesh.Locker) {
	ctx := context.Background()
	var k sesh.Key
	rand.Read(k[:])
	unlock, err := l.Lock(ctx, k, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if err := unlock(ctx); !errors.Is(err, sesh.ErrLockLost) {
		t.Fatalf("unlock of a lapsed lease: got %v, want ErrLockLost", err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	unlock, err = l.Lock(wctx, k, time.Minute)
	if err != nil {
		t.Fatalf("Lock after a lapsed lease was unlocked: %v", err)
	}
	if err := unlock(ctx); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if err := unlock(ctx); !errors.Is(err, sesh.ErrLockLost) {
		t.Fatalf("second unlock: got %v, want ErrLockLost", err)
	}
}
