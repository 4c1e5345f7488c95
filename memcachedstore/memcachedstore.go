// Package memcachedstore is a [sesh.Store] on memcached, through
// github.com/bradfitz/gomemcache: sessions in a fast shared cache, for
// applications that can afford to lose one now and then.
//
//	client := memcache.New("10.0.0.5:11211", "10.0.0.6:11211")
//	store := memcachedstore.New(client, memcachedstore.WithPrefix("myapp:"))
//	m, err := sesh.New(store, sesh.Config{Keys: keys})
//
// # Capabilities
//
// A [Store] implements [sesh.Store], [sesh.Taker] and [sesh.Locker]. It
// cannot implement [sesh.Lister] or [sesh.UserIndexer]: memcached has no
// way to enumerate keys, nor any structure to keep an index in. An
// application that needs a user's sessions (a device list, "log out
// everywhere") can keep the index in another store with [NewIndexed].
// It needs no [sesh.Sweeper]: every item carries a memcached expiration.
//
// # What memcached cannot promise
//
// memcached is a cache. It evicts items under memory pressure (least
// recently used first) and loses everything on restart, so a session, a
// tombstone or a lock may vanish before it expires: the user is logged
// out, a destroyed session ID could be written again while its tombstone
// is gone, and two requests may hold one lock. Give memcached enough
// memory that it does not evict (watch the evictions statistic), or use a
// store that persists. With several servers, gomemcache spreads keys over
// them by hash; a server that goes away takes its sessions with it.
//
// # Operations
//
// Versions are compared with memcached's own compare-and-swap: Save with
// prev > 0 is a gets and a cas (two round trips) and fails with
// [sesh.ErrConflict] unless the item read is a live record of version
// prev and nobody wrote it in between; Save with prev == 0 is an add (one
// round trip), or, over a dead item, a gets and a cas. Load is one get.
// Delete is a gets and a cas (a live tombstone is only lengthened). Take is
// a gets and a cas to an already-expired item, so of concurrent Takes
// exactly one wins. Lock is an add with an expiration, retried with backoff
// until it succeeds or the context is done; unlock is a gets and a cas to
// an already-expired item if the lock still holds this caller's token.
//
// # Keys and values
//
// A record lives under prefix + the 64 hex digits of its key, its lock
// under prefix + "lock:" + the same; no other bytes of the key ever reach
// memcached. The prefix (default "sesh:") must be printable ASCII without
// spaces, at most 181 bytes, so keys stay within memcached's 250. The value
// is a format byte (1 record, 0 tombstone), Expires in Unix milliseconds,
// then for a record the version, kind, user and data (the same encoding as
// redisstore). Items larger than the server's item size limit (1 MiB by
// default, see [WithMaxItemSize]) give [sesh.ErrTooLarge].
//
// # Time
//
// Every expiry decision uses the store's clock ([WithClock], default
// time.Now): the item's memcached expiration is Expires − now, rounded up to
// whole seconds plus one (memcached's clock ticks once a second), and every
// read re-checks Expires against now, so memcached may keep a dead item a
// little longer but it is never returned. memcached takes lifetimes over
// 30 days as absolute Unix times, which are computed from the real clock,
// and which stop at 2038 (beyond, items get no expiration and rely on the
// read-time check and eviction). Lock leases run on the memcached server's
// clock and are rounded up to whole seconds plus one.
//
// # Contexts
//
// gomemcache takes no context, so the store makes each call in a goroutine
// of its own and returns the context's error as soon as the context is
// done: a request never waits past the sesh manager's StoreTimeout, whatever
// the client's Timeout. A call given up that way goes on until it completes
// or the client's Timeout (500 ms by default) passes, holding its
// connection, and its outcome is unknown, as with any remote write cut
// short: a Save or Delete may have been applied, a Take may have consumed
// the record. A lock that Lock wins after giving up is released at once. A
// context that can never be done (context.Background) makes its calls
// directly.
package memcachedstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/seshgo/sesh"
)

// Compile-time checks of the capabilities.
var (
	_ sesh.Store  = (*Store)(nil)
	_ sesh.Taker  = (*Store)(nil)
	_ sesh.Locker = (*Store)(nil)
)

// DefaultPrefix is the key prefix used unless [WithPrefix] says otherwise.
const DefaultPrefix = "sesh:"

// DefaultMaxItemSize is memcached's default item size limit (its -I
// option): 1 MiB.
const DefaultMaxItemSize = 1 << 20

// itemOverhead is what memcached adds to key and value in an item (header,
// CAS, suffix), rounded up.
const itemOverhead = 64

// maxPrefix keeps prefix + "lock:" + 64 hex digits within memcached's
// 250-byte keys.
const maxPrefix = 250 - 64 - len("lock:")

// attempts bounds the compare-and-swap retries of one operation.
const attempts = 100

// ErrLockLost is returned by an unlock function when the lock was no
// longer held by its caller: it lapsed (or was evicted), and possibly
// another caller took it.
var ErrLockLost = sesh.ErrLockLost

// errContention is returned when an operation keeps losing its
// compare-and-swap to other writers of the same key.
var errContention = errors.New("memcachedstore: too many concurrent writers of one key")

// Store is a session store on memcached. Make one with [New]. It is safe
// for concurrent use, and any number of Stores in any number of processes
// may share the servers and the prefix.
type Store struct {
	client  *memcache.Client
	prefix  string
	now     func() time.Time
	maxItem int
}

type options struct {
	prefix  string
	now     func() time.Time
	maxItem int
}

// Option configures a [Store].
type Option func(*options)

// WithPrefix sets the prefix of every key the store writes (default
// "sesh:"). It must be printable ASCII without spaces, of at most 181
// bytes; [New] panics otherwise.
func WithPrefix(prefix string) Option {
	return func(o *options) { o.prefix = prefix }
}

// WithClock makes the store take all its expiry decisions from now instead
// of time.Now. Tests pass a controllable clock.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithMaxItemSize tells the store the servers' item size limit (their -I
// option), so that Save returns [sesh.ErrTooLarge] without a round trip
// for a record that cannot fit. The default is 1 MiB. A server's own
// refusal is reported as sesh.ErrTooLarge too.
func WithMaxItemSize(n int) Option {
	return func(o *options) { o.maxItem = n }
}

// New returns a store that keeps its records in memcached through client.
// It starts no goroutines and sends nothing to the servers. It panics if
// client is nil or the prefix is invalid (see [WithPrefix]).
func New(client *memcache.Client, opts ...Option) *Store {
	if client == nil {
		panic("memcachedstore: New with a nil client")
	}
	o := options{prefix: DefaultPrefix, now: time.Now, maxItem: DefaultMaxItemSize}
	for _, opt := range opts {
		opt(&o)
	}
	if err := validPrefix(o.prefix); err != nil {
		panic(err)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.maxItem <= 0 {
		o.maxItem = DefaultMaxItemSize
	}
	return &Store{client: client, prefix: o.prefix, now: o.now, maxItem: o.maxItem}
}

func validPrefix(p string) error {
	if len(p) > maxPrefix {
		return fmt.Errorf("memcachedstore: key prefix longer than %d bytes", maxPrefix)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("memcachedstore: key prefix %q contains %q: only printable ASCII without spaces is allowed", p, c)
		}
	}
	return nil
}

func (s *Store) recordKey(k sesh.Key) string { return s.prefix + k.String() }

func (s *Store) lockKey(k sesh.Key) string { return s.prefix + "lock:" + k.String() }

// Stored values: the same encoding as redisstore's.

const (
	formatTombstone = 0
	formatRecord    = 1
	headerLen       = 18 // format, expires, version, kind
)

func encodeRecord(rec sesh.Record, expMs int64) []byte {
	b := make([]byte, 0, headerLen+binary.MaxVarintLen64+len(rec.User)+len(rec.Data))
	b = append(b, formatRecord)
	b = binary.BigEndian.AppendUint64(b, uint64(expMs))
	b = binary.BigEndian.AppendUint64(b, rec.Version)
	b = append(b, byte(rec.Kind))
	b = binary.AppendUvarint(b, uint64(len(rec.User)))
	b = append(b, rec.User...)
	return append(b, rec.Data...)
}

func encodeTombstone(untilMs int64) []byte {
	b := make([]byte, 0, 9)
	b = append(b, formatTombstone)
	return binary.BigEndian.AppendUint64(b, uint64(untilMs))
}

var errCorrupt = fmt.Errorf("memcachedstore: corrupt value (%w)", sesh.ErrCorrupt)

// decode parses a stored value. For a tombstone it returns tomb and its
// end as expMs. The returned Data aliases v.
func decode(v []byte) (rec sesh.Record, expMs int64, tomb bool, err error) {
	if len(v) < 9 {
		return rec, 0, false, errCorrupt
	}
	expMs = int64(binary.BigEndian.Uint64(v[1:9]))
	switch v[0] {
	case formatTombstone:
		if len(v) != 9 {
			return rec, 0, false, errCorrupt
		}
		return rec, expMs, true, nil
	case formatRecord:
	default:
		return rec, 0, false, errCorrupt
	}
	if len(v) < headerLen+1 {
		return rec, 0, false, errCorrupt
	}
	rec.Version = binary.BigEndian.Uint64(v[9:17])
	rec.Kind = sesh.Kind(v[17])
	n, w := binary.Uvarint(v[headerLen:])
	if w <= 0 || n > uint64(len(v)-headerLen-w) {
		return sesh.Record{}, 0, false, errCorrupt
	}
	p := headerLen + w
	rec.User = string(v[p : p+int(n)])
	rec.Data = v[p+int(n):]
	rec.Expires = time.UnixMilli(expMs)
	return rec, expMs, false, nil
}

// expiration converts a lifetime of ms > 0 milliseconds into memcached's
// expiration: whole seconds rounded up, plus one because memcached's clock
// ticks once a second; relative up to 30 days, else an absolute Unix time
// (from the real clock, memcached's reference), or 0 (none) past 2038.
func expiration(ms int64) int32 {
	secs := (ms+999)/1000 + 1
	if secs <= 30*24*3600 {
		return int32(secs)
	}
	abs := time.Now().Unix() + secs
	if abs > math.MaxInt32 {
		return 0
	}
	return int32(abs)
}

// gone is the expiration of an item that is dead as soon as it is stored:
// a cas to it is a compare-and-delete.
const gone = -1

// mapErr maps gomemcache's errors: a server's refusal of a large item
// becomes sesh.ErrTooLarge; others are wrapped.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "too large") {
		return fmt.Errorf("%w: %v", sesh.ErrTooLarge, err)
	}
	return fmt.Errorf("memcachedstore: %w", err)
}

// casLost reports whether err means a cas lost to another writer.
func casLost(err error) bool {
	return errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss)
}

// call makes f, a gomemcache call, and returns its result, or ctx's error
// as soon as ctx is done. A call given up that way goes on in its
// goroutine until it completes or the client's Timeout passes; late, if
// not nil, then gets its result.
func call[T any](ctx context.Context, f func() (T, error), late func(T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if ctx.Done() == nil {
		return f()
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result) // unbuffered: a result is taken or handed to late
	gone := make(chan struct{})
	go func() {
		v, err := f()
		select {
		case ch <- result{v, err}:
		case <-gone:
			if late != nil {
				late(v, err)
			}
		}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		close(gone)
		return zero, ctx.Err()
	}
}

// do is call for a gomemcache call that returns only an error.
func do(ctx context.Context, f func() error) error {
	_, err := call(ctx, func() (struct{}, error) { return struct{}{}, f() }, nil)
	return err
}

// get returns the item under name, or nil if there is none.
func (s *Store) get(ctx context.Context, name string) (*memcache.Item, error) {
	it, err := call(ctx, func() (*memcache.Item, error) { return s.client.Get(name) }, nil)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil, nil
	}
	if err != nil {
		return nil, mapErr(err)
	}
	return it, nil
}

// Load returns the live record under key, [sesh.ErrNotFound] if there is
// none (including a record whose Expires is not after now), or
// [sesh.ErrGone] while a tombstone lives. It is one get.
func (s *Store) Load(ctx context.Context, key sesh.Key) (sesh.Record, error) {
	it, err := s.get(ctx, s.recordKey(key))
	if err != nil {
		return sesh.Record{}, err
	}
	if it == nil {
		return sesh.Record{}, sesh.ErrNotFound
	}
	return s.live(key, it.Value, s.now().UnixMilli())
}

// live interprets a stored value v of key at nowMs.
func (s *Store) live(key sesh.Key, v []byte, nowMs int64) (sesh.Record, error) {
	rec, expMs, tomb, err := decode(v)
	switch {
	case err != nil:
		return sesh.Record{}, fmt.Errorf("%w under key %s", err, key)
	case expMs <= nowMs:
		return sesh.Record{}, sesh.ErrNotFound
	case tomb:
		return sesh.Record{}, sesh.ErrGone
	}
	return rec, nil
}

// Save writes rec under key with compare-and-set on the version, as
// [sesh.Store] says: an add to create, a gets and a cas to replace. The
// item's expiration is Expires − now; a record that is already dead is
// not stored (it replaces a live record by an expired item).
func (s *Store) Save(ctx context.Context, key sesh.Key, rec sesh.Record, prev uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := s.recordKey(key)
	nowMs := s.now().UnixMilli()
	expMs := rec.Expires.UnixMilli()
	value := encodeRecord(rec, expMs)
	if len(name)+len(value)+itemOverhead > s.maxItem {
		return sesh.ErrTooLarge
	}
	live := !rec.Expires.IsZero() && expMs > nowMs
	item := &memcache.Item{Key: name, Expiration: gone}
	if live {
		item.Value, item.Expiration = value, expiration(expMs-nowMs)
	}
	if prev == 0 {
		return s.create(ctx, item, nowMs, live)
	}
	old, err := s.get(ctx, name)
	if err != nil {
		return err
	}
	if old == nil {
		return sesh.ErrConflict
	}
	cur, err := s.live(key, old.Value, nowMs)
	if errors.Is(err, sesh.ErrNotFound) || errors.Is(err, sesh.ErrGone) || (err == nil && cur.Version != prev) {
		return sesh.ErrConflict
	}
	if err != nil {
		return err
	}
	item.CasID = old.CasID
	if err := do(ctx, func() error { return s.client.CompareAndSwap(item) }); err != nil {
		if casLost(err) {
			return sesh.ErrConflict
		}
		return mapErr(err)
	}
	return nil
}

// create writes item if nothing live (record or tombstone) is under its
// key: an add, or over a dead item a gets and a cas.
func (s *Store) create(ctx context.Context, item *memcache.Item, nowMs int64, live bool) error {
	for range attempts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if live {
			err := do(ctx, func() error { return s.client.Add(item) })
			if err == nil {
				return nil
			}
			if !errors.Is(err, memcache.ErrNotStored) {
				return mapErr(err)
			}
		}
		old, err := s.get(ctx, item.Key)
		if err != nil {
			return err
		}
		if old == nil {
			if !live {
				return nil
			}
			continue // gone since the add: add again
		}
		if _, expMs, _, err := decode(old.Value); err != nil {
			return fmt.Errorf("%w under key %s", err, item.Key)
		} else if expMs > nowMs {
			return sesh.ErrConflict
		}
		if !live {
			return nil // a dead item stays dead: as absent as the record
		}
		item.CasID = old.CasID
		err = do(ctx, func() error { return s.client.CompareAndSwap(item) })
		if err == nil {
			return nil
		}
		if !casLost(err) {
			return mapErr(err)
		}
	}
	return errContention
}

// Delete removes the record under key and, if tombstone is after now,
// leaves a tombstone until then; a live tombstone is only lengthened. It
// is a gets and a cas (an add when the key is empty).
func (s *Store) Delete(ctx context.Context, key sesh.Key, tombstone time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := s.recordKey(key)
	nowMs := s.now().UnixMilli()
	untilMs := tombstone.UnixMilli()
	leave := !tombstone.IsZero() && untilMs > nowMs
	item := &memcache.Item{Key: name, Expiration: gone}
	if leave {
		item.Value, item.Expiration = encodeTombstone(untilMs), expiration(untilMs-nowMs)
	}
	for range attempts {
		old, err := s.get(ctx, name)
		if err != nil {
			return err
		}
		if old == nil {
			if !leave {
				return nil
			}
			err = do(ctx, func() error { return s.client.Add(item) })
		} else {
			if _, expMs, tomb, err := decode(old.Value); err == nil && tomb && expMs > nowMs && (!leave || expMs >= untilMs) {
				return nil // a live tombstone that lasts at least as long
			}
			item.CasID = old.CasID
			err = do(ctx, func() error { return s.client.CompareAndSwap(item) })
		}
		if err == nil {
			return nil
		}
		if !casLost(err) {
			return mapErr(err)
		}
	}
	return errContention
}

// Take removes the live record under key and returns it: a gets, then a
// cas to an already-expired item, so that of concurrent Takes only one
// succeeds. It returns [sesh.ErrNotFound] if there is no live record and
// [sesh.ErrGone] under a live tombstone, which it leaves in place.
func (s *Store) Take(ctx context.Context, key sesh.Key) (sesh.Record, error) {
	if err := ctx.Err(); err != nil {
		return sesh.Record{}, err
	}
	name := s.recordKey(key)
	for range attempts {
		old, err := s.get(ctx, name)
		if err != nil {
			return sesh.Record{}, err
		}
		if old == nil {
			return sesh.Record{}, sesh.ErrNotFound
		}
		rec, err := s.live(key, old.Value, s.now().UnixMilli())
		if err != nil {
			return sesh.Record{}, err
		}
		cas := &memcache.Item{Key: name, Expiration: gone, CasID: old.CasID}
		err = do(ctx, func() error { return s.client.CompareAndSwap(cas) })
		if err == nil {
			return rec, nil
		}
		if !casLost(err) {
			return sesh.Record{}, mapErr(err)
		}
	}
	return sesh.Record{}, errContention
}

// Lock takes the lock on key: an add of a random token with an expiration
// of ttl (rounded up to whole seconds, plus one), retried with a backoff
// from 2 ms doubling up to 100 ms, with jitter, until it succeeds or ctx is
// done, in which case it returns ctx's error. The lease runs on the
// memcached server's clock. The returned unlock expires the lock item only
// if it still holds this caller's token (a gets and a cas), and returns
// [ErrLockLost] if it did not. An evicted lock item is a lost lock: see
// the package documentation.
func (s *Store) Lock(ctx context.Context, key sesh.Key, ttl time.Duration) (func(context.Context) error, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	token := []byte(hex.EncodeToString(raw[:]))
	name := s.lockKey(key)
	item := &memcache.Item{Key: name, Value: token, Expiration: expiration(max(ttl.Milliseconds(), 1))}
	delay := 2 * time.Millisecond
	var timer *time.Timer
	// An add given up on may still win the lock: release it then.
	add := func() (struct{}, error) { return struct{}{}, s.client.Add(item) }
	late := func(_ struct{}, err error) {
		if err == nil {
			s.unlock(context.Background(), name, token)
		}
	}
	for {
		_, err := call(ctx, add, late)
		if err == nil {
			return func(ctx context.Context) error { return s.unlock(ctx, name, token) }, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(err, memcache.ErrNotStored) {
			return nil, mapErr(err)
		}
		wait := delay/2 + mrand.N(delay/2+1)
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

func (s *Store) unlock(ctx context.Context, name string, token []byte) error {
	it, err := s.get(ctx, name)
	if err != nil {
		return err
	}
	if it == nil || string(it.Value) != string(token) {
		return ErrLockLost
	}
	cas := &memcache.Item{Key: name, Expiration: gone, CasID: it.CasID}
	err = do(ctx, func() error { return s.client.CompareAndSwap(cas) })
	if casLost(err) {
		return ErrLockLost
	}
	return mapErr(err)
}
