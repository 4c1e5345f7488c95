package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/seshgo/sesh"
)

// newStoreFunc is the type of Run's newStore argument.
type newStoreFunc = func(t *testing.T, now func() time.Time) sesh.Store

// Run checks that stores made by newStore honour the [sesh.Store] contract
// and every optional capability they implement.
//
// newStore is called once per subtest (and once more up front to find the
// store's capabilities). It must return an empty store, or one whose other
// contents do not matter because every subtest uses fresh random keys, and
// the store must take all its expiry decisions from now. Use t.Cleanup in
// newStore to release the store. Run it under -race.
func Run(t *testing.T, newStore func(t *testing.T, now func() time.Time) sesh.Store) {
	t.Helper()
	probe := newStore(t, NewClock().Now)
	if probe == nil {
		t.Fatal("newStore returned nil")
	}
	var caps []string
	_, hasUser := probe.(sesh.UserIndexer)
	_, hasList := probe.(sesh.Lister)
	_, hasSweep := probe.(sesh.Sweeper)
	_, hasLock := probe.(sesh.Locker)
	_, hasTake := probe.(sesh.Taker)
	for _, c := range []struct {
		ok   bool
		name string
	}{{hasUser, "UserIndexer"}, {hasList, "Lister"}, {hasSweep, "Sweeper"}, {hasLock, "Locker"}, {hasTake, "Taker"}} {
		if c.ok {
			caps = append(caps, c.name)
		}
	}
	if len(caps) == 0 {
		caps = append(caps, "none")
	}
	t.Logf("store %T; optional capabilities: %s", probe, strings.Join(caps, ", "))

	s := suite{newStore: newStore, taker: hasTake, userIndexer: hasUser}
	t.Run("Store", s.testStore)
	if hasUser {
		t.Run("UserIndexer", s.testUserIndexer)
	}
	if hasList {
		t.Run("Lister", s.testLister)
	}
	if hasSweep {
		t.Run("Sweeper", s.testSweeper)
	}
	if hasLock {
		t.Run("Locker", s.testLocker)
	}
	if hasTake {
		t.Run("Taker", s.testTaker)
	}
}

type suite struct {
	newStore    newStoreFunc
	taker       bool
	userIndexer bool
}

// env is the state of one subtest: a fresh store on a fresh clock.
type env struct {
	t     *testing.T
	ctx   context.Context
	clock *Clock
	s     sesh.Store
}

func (s suite) setup(t *testing.T) *env {
	t.Helper()
	c := NewClock()
	st := s.newStore(t, c.Now)
	if st == nil {
		t.Fatal("newStore returned nil")
	}
	return &env{t: t, ctx: t.Context(), clock: c, s: st}
}

// parallel marks t parallel and returns a fresh env.
func (s suite) parallel(t *testing.T) *env {
	t.Helper()
	t.Parallel()
	return s.setup(t)
}

func (e *env) userIndexer() sesh.UserIndexer {
	e.t.Helper()
	u, ok := e.s.(sesh.UserIndexer)
	if !ok {
		e.t.Fatalf("store %T does not implement sesh.UserIndexer, unlike the first store newStore returned", e.s)
	}
	return u
}

func (e *env) lister() sesh.Lister {
	e.t.Helper()
	l, ok := e.s.(sesh.Lister)
	if !ok {
		e.t.Fatalf("store %T does not implement sesh.Lister, unlike the first store newStore returned", e.s)
	}
	return l
}

func (e *env) sweeper() sesh.Sweeper {
	e.t.Helper()
	l, ok := e.s.(sesh.Sweeper)
	if !ok {
		e.t.Fatalf("store %T does not implement sesh.Sweeper, unlike the first store newStore returned", e.s)
	}
	return l
}

func (e *env) locker() sesh.Locker {
	e.t.Helper()
	l, ok := e.s.(sesh.Locker)
	if !ok {
		e.t.Fatalf("store %T does not implement sesh.Locker, unlike the first store newStore returned", e.s)
	}
	return l
}

func (e *env) taker() sesh.Taker {
	e.t.Helper()
	l, ok := e.s.(sesh.Taker)
	if !ok {
		e.t.Fatalf("store %T does not implement sesh.Taker, unlike the first store newStore returned", e.s)
	}
	return l
}

// newKey returns a random key, never the zero key. (crypto/rand.Read
// never fails.)
func newKey() sesh.Key {
	var k sesh.Key
	for k.IsZero() {
		rand.Read(k[:])
	}
	return k
}

// randomName returns prefix followed by random hex, for user names that no
// other subtest uses.
func randomName(t testing.TB, prefix string) string {
	t.Helper()
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// rec returns a live session record expiring in an hour.
func (e *env) rec(data string, version uint64) sesh.Record {
	return sesh.Record{
		Data:    []byte(data),
		Version: version,
		Expires: e.clock.Now().Add(time.Hour),
		Kind:    sesh.KindSession,
	}
}

func (e *env) save(key sesh.Key, rec sesh.Record, prev uint64) {
	e.t.Helper()
	if err := e.s.Save(e.ctx, key, rec, prev); err != nil {
		e.t.Fatalf("Save(%s, version %d, prev %d): got error %v, want nil", short(key), rec.Version, prev, err)
	}
}

func (e *env) load(key sesh.Key) sesh.Record {
	e.t.Helper()
	got, err := e.s.Load(e.ctx, key)
	if err != nil {
		e.t.Fatalf("Load(%s): got error %v, want nil", short(key), err)
	}
	return got
}

// wantLoad checks that key holds exactly want.
func (e *env) wantLoad(key sesh.Key, want sesh.Record) {
	e.t.Helper()
	checkRecord(e.t, fmt.Sprintf("Load(%s)", short(key)), e.load(key), want)
}

func (e *env) wantLoadErr(key sesh.Key, target error) {
	e.t.Helper()
	got, err := e.s.Load(e.ctx, key)
	if !errors.Is(err, target) {
		e.t.Fatalf("Load(%s): got (version %d, error %v), want error %v", short(key), got.Version, err, target)
	}
}

func (e *env) wantSaveErr(key sesh.Key, rec sesh.Record, prev uint64, target error) {
	e.t.Helper()
	err := e.s.Save(e.ctx, key, rec, prev)
	if !errors.Is(err, target) {
		e.t.Fatalf("Save(%s, version %d, prev %d): got error %v, want %v", short(key), rec.Version, prev, err, target)
	}
}

func (e *env) delete(key sesh.Key, tombstone time.Time) {
	e.t.Helper()
	if err := e.s.Delete(e.ctx, key, tombstone); err != nil {
		e.t.Fatalf("Delete(%s): got error %v, want nil", short(key), err)
	}
}

// checkRecord reports every field in which got differs from want. Expires
// may be truncated to the millisecond.
func checkRecord(t testing.TB, op string, got, want sesh.Record) {
	t.Helper()
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("%s: Data: got %s, want %s", op, showBytes(got.Data), showBytes(want.Data))
	}
	if got.Version != want.Version {
		t.Errorf("%s: Version: got %d, want %d", op, got.Version, want.Version)
	}
	if !sameExpires(got.Expires, want.Expires) {
		t.Errorf("%s: Expires: got %v, want %v (or that truncated to the millisecond)", op, got.Expires, want.Expires)
	}
	if got.User != want.User {
		t.Errorf("%s: User: got %q, want %q", op, got.User, want.User)
	}
	if got.Kind != want.Kind {
		t.Errorf("%s: Kind: got %d, want %d", op, got.Kind, want.Kind)
	}
}

// sameExpires reports whether a store returning got kept want with at least
// millisecond precision, never rounding up.
func sameExpires(got, want time.Time) bool {
	lo := want.Truncate(time.Millisecond)
	return !got.Before(lo) && !got.After(want)
}

func showBytes(b []byte) string {
	if len(b) <= 48 {
		return fmt.Sprintf("%q", b)
	}
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%d bytes (sha256 %x…)", len(b), sum[:6])
}

func short(k sesh.Key) string { return k.String()[:12] + "…" }

// entriesByKey indexes entries by key, failing on duplicates.
func entriesByKey(t testing.TB, op string, entries []sesh.Entry) map[sesh.Key]sesh.Record {
	t.Helper()
	m := make(map[sesh.Key]sesh.Record, len(entries))
	for _, e := range entries {
		if _, dup := m[e.Key]; dup {
			t.Errorf("%s: key %s returned twice", op, short(e.Key))
		}
		m[e.Key] = e.Record
	}
	return m
}
