package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/seshgo/sesh"
)

// nearKeys returns keys that a case-insensitive, accent-insensitive or
// PAD SPACE collation, or a NUL-terminated string, would take for equal,
// built on a random base so that subtests sharing a database never meet.
func nearKeys() map[string]sesh.Key {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	var b [32]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	base := string(b[:])
	key := func(s string) sesh.Key {
		var k sesh.Key
		copy(k[:], s)
		return k
	}
	return map[string]sesh.Key{
		"base":          key(base),
		"upper":         key(strings.ToUpper(base)),
		"last upper":    key(base[:31] + strings.ToUpper(base[31:])),
		"spaces":        key(base[:28] + "    "),
		"nuls":          key(base[:28] + "\x00\x00\x00\x00"),
		"tab":           key(base[:28] + "   \t"),
		"nul inside":    key(base[:10] + "\x00" + base[11:]),
		"nul at end":    key(base[:31] + "\x00"),
		"accent":        key(base[:30] + "\xc3\xa9"), // "é"
		"accent folded": key(base[:30] + "e "),
	}
}

// testNearKeys checks that keys are compared as bytes (A27: no collation
// may make two keys equal).
func (s suite) testNearKeys(t *testing.T) {
	e := s.parallel(t)
	keys := nearKeys()
	e.save(keys["base"], e.rec("base", 1), 0)
	for name, k := range keys {
		if name != "base" {
			e.wantLoadErr(k, sesh.ErrNotFound)
		}
	}
	for name, k := range keys {
		if name != "base" {
			e.save(k, e.rec(name, 1), 0)
		}
	}
	for name, k := range keys {
		got, err := e.s.Load(e.ctx, k)
		if err != nil || string(got.Data) != name {
			t.Errorf("Load(%s key): got (%q, %v), want (%q, nil)", name, got.Data, err, name)
		}
	}
	e.delete(keys["upper"], time.Time{})
	if got, err := e.s.Load(e.ctx, keys["base"]); err != nil || string(got.Data) != "base" {
		t.Errorf("Load(base) after deleting the upper-case key: got (%q, %v)", got.Data, err)
	}
}

// testTombstoneNeverShortened checks that Delete only ever lengthens a
// live tombstone: a shorter tombstone, or none, leaves it as it is; and
// that a tombstone shorter than the record it replaces lapses on time.
func (s suite) testTombstoneNeverShortened(t *testing.T) {
	e := s.parallel(t)
	k := newKey()
	e.save(k, e.rec("x", 1), 0)
	e.delete(k, e.clock.Now().Add(time.Minute))
	e.clock.Advance(time.Minute)
	e.wantLoadErr(k, sesh.ErrNotFound)

	k = newKey()
	user := randomName(t, "kept-")
	r := e.rec("x", 1)
	r.User = user
	e.save(k, r, 0)
	for _, ts := range []time.Time{e.clock.Now().Add(10 * time.Minute), e.clock.Now().Add(time.Minute), {}, e.clock.Now().Add(-time.Minute)} {
		e.delete(k, ts)
		e.wantLoadErr(k, sesh.ErrGone)
	}
	e.clock.Advance(10*time.Minute - time.Millisecond)
	e.wantLoadErr(k, sesh.ErrGone)
	e.delete(k, e.clock.Now().Add(time.Hour))
	e.clock.Advance(30 * time.Minute)
	e.wantLoadErr(k, sesh.ErrGone)
	e.clock.Advance(30 * time.Minute)
	e.wantLoadErr(k, sesh.ErrNotFound)
	if s.userIndexer {
		if es, err := e.userIndexer().UserRecords(e.ctx, user); err != nil || len(es) != 0 {
			t.Fatalf("UserRecords of a deleted record's user: got (%d, %v), want none", len(es), err)
		}
	}
}

// RunTwoInstances checks that two stores over separate connections to one
// backing server (two application instances behind a load balancer) see
// each other's writes and honour each other's versions, tombstones and,
// where the stores have them, user index, locks and takes. newPair returns
// the two stores, both taking their expiry decisions from now.
func RunTwoInstances(t *testing.T, newPair func(t *testing.T, now func() time.Time) (a, b sesh.Store)) {
	t.Helper()
	clock := NewClock()
	a, b := newPair(t, clock.Now)
	ctx := t.Context()
	k := newKey()
	user := randomName(t, "two-")
	rec := func(data string, v uint64) sesh.Record {
		return sesh.Record{Data: []byte(data), Version: v, Expires: clock.Now().Add(time.Hour), User: user}
	}
	if err := a.Save(ctx, k, rec("one", 1), 0); err != nil {
		t.Fatalf("A.Save: %v", err)
	}
	got, err := b.Load(ctx, k)
	if err != nil || string(got.Data) != "one" || got.Version != 1 || got.User != user {
		t.Fatalf("B.Load: got (%+v, %v), want A's record", got, err)
	}
	if err := b.Save(ctx, k, rec("one", 1), 0); !errors.Is(err, sesh.ErrConflict) {
		t.Fatalf("B.Save(prev 0) over A's record: got %v, want ErrConflict", err)
	}
	if err := b.Save(ctx, k, rec("two", 2), 1); err != nil {
		t.Fatalf("B.Save(prev 1): %v", err)
	}
	if err := a.Save(ctx, k, rec("stale", 2), 1); !errors.Is(err, sesh.ErrConflict) {
		t.Fatalf("A.Save(prev 1) after B replaced it: got %v, want ErrConflict", err)
	}
	if got, err := a.Load(ctx, k); err != nil || string(got.Data) != "two" || got.Version != 2 {
		t.Fatalf("A.Load: got (%q v%d, %v), want B's version 2", got.Data, got.Version, err)
	}
	if ui, ok := a.(sesh.UserIndexer); ok {
		if es, err := ui.UserRecords(ctx, user); err != nil || len(es) != 1 || es[0].Key != k {
			t.Fatalf("A.UserRecords: got (%d entries, %v), want B's one record", len(es), err)
		}
	}
	la, okA := a.(sesh.Locker)
	lb, okB := b.(sesh.Locker)
	if okA && okB {
		unlock, err := la.Lock(ctx, k, time.Minute)
		if err != nil {
			t.Fatalf("A.Lock: %v", err)
		}
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		if u, err := lb.Lock(wctx, k, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
			if err == nil {
				u(ctx)
			}
			cancel()
			t.Fatalf("B.Lock while A holds it: got %v, want DeadlineExceeded", err)
		}
		cancel()
		if err := unlock(ctx); err != nil {
			t.Fatalf("A unlock: %v", err)
		}
		wctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		u, err := lb.Lock(wctx, k, time.Minute)
		cancel()
		if err != nil {
			t.Fatalf("B.Lock after A unlocked: %v", err)
		}
		u(ctx)
	}
	if err := b.Delete(ctx, k, clock.Now().Add(time.Minute)); err != nil {
		t.Fatalf("B.Delete: %v", err)
	}
	if _, err := a.Load(ctx, k); !errors.Is(err, sesh.ErrGone) {
		t.Fatalf("A.Load after B's Delete: got %v, want ErrGone", err)
	}
	if err := a.Save(ctx, k, rec("one", 1), 0); !errors.Is(err, sesh.ErrConflict) {
		t.Fatalf("A.Save(prev 0) under B's tombstone: got %v, want ErrConflict", err)
	}
	clock.Advance(time.Minute)
	if err := a.Save(ctx, k, rec("three", 1), 0); err != nil {
		t.Fatalf("A.Save after the tombstone lapsed: %v", err)
	}
	if tb, ok := b.(sesh.Taker); ok {
		if got, err := tb.Take(ctx, k); err != nil || string(got.Data) != "three" {
			t.Fatalf("B.Take: got (%q, %v), want A's record", got.Data, err)
		}
		if _, err := a.Load(ctx, k); !errors.Is(err, sesh.ErrNotFound) {
			t.Fatalf("A.Load after B took it: got %v, want ErrNotFound", err)
		}
	}
}
