// Package memstore is an in-memory [sesh.Store]: the fastest store, for a
// single process, for tests, and wherever losing the sessions on a restart
// is acceptable.
//
// A [Store] implements [sesh.Store], [sesh.UserIndexer], [sesh.Lister],
// [sesh.Sweeper], [sesh.Locker] and [sesh.Taker]. It is safe for
// concurrent use by any number of goroutines. Records are sharded by key,
// each shard under its own lock, and no operation ever holds more than one
// shard's lock, so no lock covers all sessions. The user index has its own
// sharded locks.
//
// Save copies Data, and Load returns a fresh copy, so callers may reuse
// their buffers. Expires is kept as whole Unix milliseconds (truncated),
// and a record is live while that is after the clock's now.
//
// Dead records and lapsed tombstones stay in memory, invisible, until
// [Store.Sweep] removes them: New starts no goroutines, so call Sweep
// periodically (directly, or through the manager's Sweep from a ticker).
// Each shard keeps its records in a min-heap by expiry, so a Sweep call
// examines only what it removes plus at most one record per shard. A sweep
// holds a shard's lock for a few microseconds at a time; a request for
// that shard waits for it by spinning, and the sweep lets it in before it
// goes on.
//
// Leases of [Store.Lock] are in-process and run on real time (time.Now and
// timers), not on the clock given with [WithClock], because waiting for a
// lease to lapse needs real timers.
//
// Errors are the sesh sentinels ([sesh.ErrNotFound], [sesh.ErrGone],
// [sesh.ErrConflict]) or, for a done context, the context's error; a
// misuse (a Save whose rec.Version is not above prev, a Lock with a ttl
// that is not positive, a List cursor the store did not make or a limit
// that is not positive) gets a plain error. Data of any size is accepted; memstore never returns
// [sesh.ErrTooLarge].
//
// The zero Store is not usable; call [New].
package memstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seshgo/sesh"
)

// Compile-time checks of the capabilities.
var (
	_ sesh.Store       = (*Store)(nil)
	_ sesh.UserIndexer = (*Store)(nil)
	_ sesh.Lister      = (*Store)(nil)
	_ sesh.Sweeper     = (*Store)(nil)
	_ sesh.Locker      = (*Store)(nil)
	_ sesh.Taker       = (*Store)(nil)
	_ sesh.Nonblocking = (*Store)(nil)
)

// Nonblocking implements [sesh.Nonblocking]: no operation of a Store waits
// on I/O, so the manager needs no timeout for it.
func (*Store) Nonblocking() {}

// Store is an in-memory session store. Make one with [New].
type Store struct {
	now    func() time.Time
	mask   uint64
	shards []shard
	users  []userShard
	locks  []lockShard
	seed   maphash.Seed

	sweepNext atomic.Uint64 // shard at which the next Sweep starts

	// testHookShardLocked, if set, is called by Sweep with the index of
	// the shard whose lock it holds; testHookBetweenRuns when it has let
	// go of that shard's lock between two runs.
	testHookShardLocked func(i int)
	testHookBetweenRuns func(i int)
}

// entry is one record or tombstone. It is kept small: at a million records
// every byte here is a megabyte.
//
// Data is kept as a string (a 16-byte header against a slice's 24) and the
// user as a pointer to its index set, which holds the name: that makes 80
// bytes, a size class below 96.
type entry struct {
	key     sesh.Key
	data    string   // a private copy of Record.Data
	user    *userSet // nil when the record has no user (or is a tombstone)
	version uint64
	exp     int64 // Unix ms: expiry of the record, or of the tombstone
	idx     int32 // position in the shard's heap
	kind    sesh.Kind
	tomb    bool
}

type shard struct {
	mu      sync.RWMutex
	waiting atomic.Int32 // requests spinning for mu; Sweep makes way for them
	m       map[sesh.Key]*entry
	heap    []*entry // min-heap on exp
	_       [64]byte // keep shards on separate cache lines
}

// spinFor is how long a request spins for a shard's lock before it
// parks, and how long Sweep waits between runs for the requests spinning.
// A run takes a few microseconds, so a request that meets a sweep gets
// the lock by spinning. Parking would cost more than the wait: the
// unlock must wake the parked goroutine, and on a small machine the
// thread woken for it can take the CPU of a running request.
//
// multicore reports whether spinning can help: with one P, the holder of
// the lock cannot run while a request spins. Both are variables for tests.
var (
	spinFor   = 20 * time.Microsecond
	multicore = runtime.GOMAXPROCS(0) > 1
)

// rlock read-locks the shard, spinning first if a sweep holds it.
func (sh *shard) rlock() {
	if !sh.mu.TryRLock() {
		sh.wait(sh.mu.TryRLock, sh.mu.RLock)
	}
}

// lock locks the shard, spinning first if it is held.
func (sh *shard) lock() {
	if !sh.mu.TryLock() {
		sh.wait(sh.mu.TryLock, sh.mu.Lock)
	}
}

// wait takes the lock that try and block take, spinning on try (counted
// in waiting) before it blocks.
func (sh *shard) wait(try func() bool, block func()) {
	if multicore {
		sh.waiting.Add(1)
		ok := spinUntil(try)
		sh.waiting.Add(-1)
		if ok {
			return
		}
	}
	block()
}

// spinUntil calls try until it returns true, for at most spinFor.
func spinUntil(try func() bool) bool {
	var start time.Time
	for i := 0; ; i++ {
		for range 32 {
			if try() {
				return true
			}
		}
		if i == 0 {
			start = time.Now()
		} else if time.Since(start) > spinFor {
			return false
		}
	}
}

// makeWay, called by Sweep between two runs with the lock released, waits
// (at most spinFor) until no request is spinning for the shard.
func (sh *shard) makeWay() {
	if sh.waiting.Load() == 0 {
		return
	}
	spinUntil(func() bool { return sh.waiting.Load() == 0 })
}

type userShard struct {
	mu sync.Mutex
	m  map[string]*userSet
	_  [64]byte
}

// userSet is the set of entries that carry one user. Entries, not keys,
// are the members: a pointer is a quarter of a key's size. Most users have
// one or two sessions, so the first member is kept outside the map, which
// is only made for a second.
type userSet struct {
	name string
	one  *entry
	more map[*entry]struct{}
}

func (u *userSet) add(e *entry) {
	switch {
	case u.one == nil:
		u.one = e
	case u.more == nil:
		u.more = map[*entry]struct{}{e: {}}
	default:
		u.more[e] = struct{}{}
	}
}

// remove removes e and reports whether the set is now empty.
func (u *userSet) remove(e *entry) bool {
	if u.one == e {
		u.one = nil
		for x := range u.more {
			u.one = x
			delete(u.more, x)
			break
		}
	} else {
		delete(u.more, e)
	}
	if len(u.more) == 0 {
		u.more = nil
	}
	return u.one == nil
}

func (u *userSet) len() int {
	if u.one == nil {
		return 0
	}
	return 1 + len(u.more)
}

type lockShard struct {
	mu sync.Mutex
	m  map[sesh.Key]*lease
}

type lease struct {
	expires time.Time     // real time, with a monotonic reading
	done    chan struct{} // closed when the lease is released or replaced
}

type options struct {
	now    func() time.Time
	shards int
}

// Option configures a [Store].
type Option func(*options)

// WithClock makes the store take all its expiry decisions from now instead
// of time.Now. Tests pass a controllable clock.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithShards sets the number of shards, rounded up to a power of two. The
// default is 16×GOMAXPROCS rounded up, and at least 64. n < 1 means the
// default.
func WithShards(n int) Option {
	return func(o *options) { o.shards = n }
}

// New returns an empty store. It starts no goroutines.
func New(opts ...Option) *Store {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.now == nil {
		o.now = time.Now
	}
	n := o.shards
	if n < 1 {
		n = max(64, 16*runtime.GOMAXPROCS(0))
	}
	n = min(n, 1<<16)
	n = 1 << bits.Len(uint(n-1)) // round up to a power of two
	s := &Store{
		now:    o.now,
		mask:   uint64(n - 1),
		shards: make([]shard, n),
		users:  make([]userShard, n),
		locks:  make([]lockShard, n),
		seed:   maphash.MakeSeed(),
	}
	for i := range s.shards {
		s.shards[i].m = make(map[sesh.Key]*entry)
		s.users[i].m = make(map[string]*userSet)
		s.locks[i].m = make(map[sesh.Key]*lease)
	}
	return s
}

// shardIndex spreads keys over shards. Session keys are hashes already,
// but a Key may hold any bytes, so mix all of them.
func (s *Store) shardIndex(k *sesh.Key) uint64 {
	h := binary.LittleEndian.Uint64(k[0:])
	h = (h ^ binary.LittleEndian.Uint64(k[8:])) * 0x9e3779b97f4a7c15
	h = (h ^ binary.LittleEndian.Uint64(k[16:])) * 0x9e3779b97f4a7c15
	h = (h ^ binary.LittleEndian.Uint64(k[24:])) * 0x9e3779b97f4a7c15
	return (h ^ h>>32) & s.mask
}

func (s *Store) userShard(user string) *userShard {
	return &s.users[maphash.String(s.seed, user)&s.mask]
}

// Len returns the number of records and tombstones held, live or dead
// (dead ones until Sweep removes them). It is meant for tests and metrics;
// it locks each shard in turn.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// Load returns the live record under key, a copy of its Data included.
func (s *Store) Load(ctx context.Context, key sesh.Key) (sesh.Record, error) {
	if err := ctx.Err(); err != nil {
		return sesh.Record{}, err
	}
	now := s.now().UnixMilli()
	sh := &s.shards[s.shardIndex(&key)]
	sh.rlock()
	e := sh.m[key]
	if e == nil || e.exp <= now {
		sh.mu.RUnlock()
		return sesh.Record{}, sesh.ErrNotFound
	}
	if e.tomb {
		sh.mu.RUnlock()
		return sesh.Record{}, sesh.ErrGone
	}
	rec := e.record()
	sh.mu.RUnlock()
	return rec, nil
}

// record returns e as a Record, with a fresh copy of its data.
func (e *entry) record() sesh.Record {
	return sesh.Record{
		Data:    []byte(e.data),
		Version: e.version,
		Expires: time.UnixMilli(e.exp),
		User:    e.userName(),
		Kind:    e.kind,
	}
}

func (e *entry) userName() string {
	if e.user == nil {
		return ""
	}
	return e.user.name
}

// errVersion is returned by Save when the caller breaks the rule that
// rec.Version exceeds prev.
var errVersion = errors.New("memstore: rec.Version must be greater than prev")

// Save writes rec under key with compare-and-set on the version; see
// [sesh.Store]. It copies rec.Data.
func (s *Store) Save(ctx context.Context, key sesh.Key, rec sesh.Record, prev uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rec.Version <= prev {
		return fmt.Errorf("%w (version %d, prev %d)", errVersion, rec.Version, prev)
	}
	now := s.now().UnixMilli()
	exp := rec.Expires.UnixMilli()
	sh := &s.shards[s.shardIndex(&key)]
	sh.lock()
	defer sh.mu.Unlock()
	e := sh.m[key]
	live := e != nil && e.exp > now // a live record or a live tombstone
	if prev == 0 {
		if live {
			return sesh.ErrConflict
		}
	} else if !live || e.tomb || e.version != prev {
		return sesh.ErrConflict
	}
	if e == nil {
		e = &entry{key: key, exp: exp}
		sh.m[key] = e
		sh.push(e)
	} else if e.exp != exp {
		e.exp = exp
		sh.fix(int(e.idx))
	}
	e.data = string(rec.Data) // the one copy
	e.version = rec.Version
	e.kind = rec.Kind
	e.tomb = false
	if e.userName() != rec.User {
		s.unindex(e)
		s.index(e, rec.User)
	}
	return nil
}

// Delete removes the record under key and, if tombstone is after now,
// leaves a tombstone until then. A live tombstone is never shortened.
func (s *Store) Delete(ctx context.Context, key sesh.Key, tombstone time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.now().UnixMilli()
	ts := tombstone.UnixMilli()
	leave := !tombstone.IsZero() && ts > now
	sh := &s.shards[s.shardIndex(&key)]
	sh.lock()
	defer sh.mu.Unlock()
	e := sh.m[key]
	if e != nil && e.tomb && e.exp > now {
		// Already a live tombstone: only lengthen it.
		if leave && ts > e.exp {
			e.exp = ts
			sh.fix(int(e.idx))
		}
		return nil
	}
	switch {
	case leave && e == nil:
		e = &entry{key: key, exp: ts, tomb: true}
		sh.m[key] = e
		sh.push(e)
	case leave:
		s.unindex(e)
		e.data, e.version, e.kind, e.tomb = "", 0, 0, true
		e.exp = ts
		sh.fix(int(e.idx))
	case e != nil:
		sh.drop(s, e)
	}
	return nil
}

// Take removes the live record under key and returns it.
func (s *Store) Take(ctx context.Context, key sesh.Key) (sesh.Record, error) {
	if err := ctx.Err(); err != nil {
		return sesh.Record{}, err
	}
	now := s.now().UnixMilli()
	sh := &s.shards[s.shardIndex(&key)]
	sh.lock()
	defer sh.mu.Unlock()
	e := sh.m[key]
	if e == nil || e.exp <= now {
		return sesh.Record{}, sesh.ErrNotFound
	}
	if e.tomb {
		return sesh.Record{}, sesh.ErrGone
	}
	rec := e.record()
	sh.drop(s, e)
	return rec, nil
}

// drop removes e from the shard, its heap and the user index. The shard
// must be locked.
func (sh *shard) drop(s *Store, e *entry) {
	s.unindex(e)
	sh.remove(int(e.idx))
	delete(sh.m, e.key)
}

// index adds e to user's set and points e.user at the set, whose name
// all records of one user share.
func (s *Store) index(e *entry, user string) {
	if user == "" {
		return
	}
	us := s.userShard(user)
	us.mu.Lock()
	set := us.m[user]
	if set == nil {
		set = &userSet{name: user}
		us.m[user] = set
	}
	set.add(e)
	e.user = set
	us.mu.Unlock()
}

// unindex removes e from its user's set, if any.
func (s *Store) unindex(e *entry) {
	set := e.user
	if set == nil {
		return
	}
	us := s.userShard(set.name)
	us.mu.Lock()
	if set.remove(e) {
		delete(us.m, set.name)
	}
	us.mu.Unlock()
	e.user = nil
}

// UserRecords returns the live records whose User is user, with copies of
// their Data.
func (s *Store) UserRecords(ctx context.Context, user string) ([]sesh.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if user == "" {
		return nil, nil
	}
	us := s.userShard(user)
	us.mu.Lock()
	var members []*entry
	if set := us.m[user]; set != nil {
		members = make([]*entry, 0, set.len())
		if set.one != nil {
			members = append(members, set.one)
		}
		for e := range set.more {
			members = append(members, e)
		}
	}
	us.mu.Unlock()

	now := s.now().UnixMilli()
	var out []sesh.Entry
	for _, e := range members {
		// e.key never changes; everything else is read under the
		// shard's lock, and e must still be the entry under its key.
		sh := &s.shards[s.shardIndex(&e.key)]
		sh.rlock()
		if sh.m[e.key] == e && !e.tomb && e.exp > now && e.userName() == user {
			out = append(out, sesh.Entry{Key: e.key, Record: e.record()})
		}
		sh.mu.RUnlock()
	}
	return out, nil
}

// List returns up to limit live records after cursor, in an order that is
// fixed for a Store: by shard, then by key. The cursor is the hex key of
// the last record returned; see [sesh.Lister]. Each call holds one shard's
// read lock at a time.
func (s *Store) List(ctx context.Context, cursor string, limit int) ([]sesh.Entry, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		return nil, "", errLimit
	}
	var after sesh.Key
	first := uint64(0)
	hasAfter := false
	if cursor != "" {
		if err := parseKey(cursor, &after); err != nil {
			return nil, "", err
		}
		first = s.shardIndex(&after)
		hasAfter = true
	}
	now := s.now().UnixMilli()
	var out []sesh.Entry
	var pick []*entry
	for i := first; i < uint64(len(s.shards)); i++ {
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		need := limit - len(out)
		sh := &s.shards[i]
		sh.mu.RLock()
		pick = pick[:0]
		candidates := 0
		for k, e := range sh.m {
			if e.tomb || e.exp <= now || (hasAfter && i == first && !keyLess(&after, &k)) {
				continue
			}
			candidates++
			pick = pickSmallest(pick, e, need)
		}
		slices.SortFunc(pick, func(a, b *entry) int { return compareKeys(&a.key, &b.key) })
		for _, e := range pick {
			out = append(out, sesh.Entry{Key: e.key, Record: e.record()})
		}
		sh.mu.RUnlock()
		if len(out) == limit {
			if i == uint64(len(s.shards))-1 && candidates == len(pick) {
				break // nothing left anywhere
			}
			return out, out[len(out)-1].Key.String(), nil
		}
	}
	return out, "", nil
}

// pickSmallest keeps in pick (a max-heap on key, of at most n entries)
// the n smallest keys seen.
func pickSmallest(pick []*entry, e *entry, n int) []*entry {
	less := func(i, j int) bool { return compareKeys(&pick[i].key, &pick[j].key) > 0 }
	if len(pick) < n {
		pick = append(pick, e)
		for i := len(pick) - 1; i > 0; {
			p := (i - 1) / 2
			if !less(i, p) {
				break
			}
			pick[i], pick[p] = pick[p], pick[i]
			i = p
		}
		return pick
	}
	if compareKeys(&e.key, &pick[0].key) >= 0 {
		return pick
	}
	pick[0] = e
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(pick) && less(l, m) {
			m = l
		}
		if r := l + 1; r < len(pick) && less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		pick[i], pick[m] = pick[m], pick[i]
		i = m
	}
	return pick
}

func compareKeys(a, b *sesh.Key) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func keyLess(a, b *sesh.Key) bool { return compareKeys(a, b) < 0 }

// Errors returned by List for a cursor it did not make or a limit that is
// not positive.
var (
	errCursor = errors.New("memstore: invalid list cursor")
	errLimit  = errors.New("memstore: list limit must be positive")
)

func parseKey(s string, k *sesh.Key) error {
	if len(s) != 2*len(k) {
		return errCursor
	}
	for i := range k {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return errCursor
		}
		k[i] = hi<<4 | lo
	}
	return nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// Sweep removes up to limit dead records and lapsed tombstones, and
// forgets lapsed leases. It visits the shards round-robin from where the
// last call stopped, holding one shard's lock at a time and letting it go
// every 16 records for the requests waiting for it, and examines
// only the records it removes plus at most one per shard.
func (s *Store) Sweep(ctx context.Context, limit int) (int, error) {
	n, _, err := s.sweep(ctx, limit)
	return n, err
}

// sweepRun is how many records Sweep removes under one hold of a shard's
// lock: 4–6 µs of work on the development VM, well within spinFor, so a
// request for that shard waits by spinning and never parks.
const sweepRun = 16

// sweep is Sweep, also returning how many heap entries it examined.
func (s *Store) sweep(ctx context.Context, limit int) (deleted, examined int, err error) {
	if limit <= 0 {
		return 0, 0, ctx.Err()
	}
	now := s.now().UnixMilli()
	realNow := time.Now()
	start := s.sweepNext.Load()
	for i := range uint64(len(s.shards)) {
		if err := ctx.Err(); err != nil {
			return deleted, examined, err
		}
		idx := (start + i) & s.mask
		sh := &s.shards[idx]
		sh.lock()
		if s.testHookShardLocked != nil {
			s.testHookShardLocked(int(idx))
		}
		for run := 0; deleted < limit && len(sh.heap) > 0; run++ {
			if run == sweepRun {
				// Let requests for this shard in between: one must never
				// wait for a whole batch. Those spinning for the lock
				// get it before the sweep takes it back.
				sh.mu.Unlock()
				sh.makeWay()
				if s.testHookBetweenRuns != nil {
					s.testHookBetweenRuns(int(idx))
				}
				sh.lock()
				run = 0
			}
			examined++
			e := sh.heap[0]
			if e.exp > now {
				break
			}
			sh.drop(s, e)
			deleted++
		}
		sh.mu.Unlock()
		s.sweepLeases(int(idx), realNow)
		if deleted == limit {
			// This shard may hold more; start there next time.
			s.sweepNext.Store(idx)
			return deleted, examined, nil
		}
	}
	return deleted, examined, nil
}

func (s *Store) sweepLeases(i int, now time.Time) {
	ls := &s.locks[i]
	ls.mu.Lock()
	for k, l := range ls.m {
		if !now.Before(l.expires) {
			delete(ls.m, k)
			close(l.done)
		}
	}
	ls.mu.Unlock()
}

// errTTL is returned by Lock for a ttl that is not positive.
var errTTL = errors.New("memstore: lock ttl must be positive")

// Lock waits until it holds the in-process lease on key, or ctx is done.
// The lease lapses by itself after ttl of real time. The returned unlock
// releases the lease if it is still this caller's, and otherwise does
// nothing; it always returns nil.
func (s *Store) Lock(ctx context.Context, key sesh.Key, ttl time.Duration) (func(context.Context) error, error) {
	if ttl <= 0 {
		return nil, errTTL
	}
	ls := &s.locks[s.shardIndex(&key)]
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		now := time.Now()
		ls.mu.Lock()
		l := ls.m[key]
		if l == nil || !now.Before(l.expires) {
			if l != nil {
				close(l.done) // wake the lapsed lease's waiters
			}
			mine := &lease{expires: now.Add(ttl), done: make(chan struct{})}
			ls.m[key] = mine
			ls.mu.Unlock()
			return func(context.Context) error {
				ls.mu.Lock()
				if ls.m[key] != mine {
					ls.mu.Unlock()
					return sesh.ErrLockLost
				}
				delete(ls.m, key)
				close(mine.done)
				ls.mu.Unlock()
				return nil
			}, nil
		}
		done, wait := l.done, l.expires.Sub(now)
		ls.mu.Unlock()
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-done:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// Heap on exp, with each entry's position kept in entry.idx so that an
// entry whose expiry changes is fixed in O(log n).

func (sh *shard) push(e *entry) {
	e.idx = int32(len(sh.heap))
	sh.heap = append(sh.heap, e)
	sh.up(int(e.idx))
}

func (sh *shard) fix(i int) {
	if !sh.down(i) {
		sh.up(i)
	}
}

func (sh *shard) remove(i int) {
	last := len(sh.heap) - 1
	if i != last {
		sh.swap(i, last)
	}
	sh.heap[last] = nil
	sh.heap = sh.heap[:last]
	if i != last {
		sh.fix(i)
	}
	// Give memory back after a mass expiry.
	if c := cap(sh.heap); c > 1024 && len(sh.heap) < c/4 {
		sh.heap = slices.Clip(slices.Clone(sh.heap))
	}
}

func (sh *shard) swap(i, j int) {
	h := sh.heap
	h[i], h[j] = h[j], h[i]
	h[i].idx = int32(i)
	h[j].idx = int32(j)
}

func (sh *shard) up(i int) {
	h := sh.heap
	for i > 0 {
		p := (i - 1) / 2
		if h[p].exp <= h[i].exp {
			break
		}
		sh.swap(i, p)
		i = p
	}
}

// down sifts i down and reports whether it moved.
func (sh *shard) down(i int) bool {
	h := sh.heap
	i0 := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r].exp < h[l].exp {
			m = r
		}
		if h[m].exp >= h[i].exp {
			break
		}
		sh.swap(i, m)
		i = m
	}
	return i > i0
}
