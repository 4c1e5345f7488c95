package memcachedstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/seshgo/sesh"
)

// Compile-time checks of the capabilities.
var (
	_ sesh.Store       = (*Indexed)(nil)
	_ sesh.UserIndexer = (*Indexed)(nil)
	_ sesh.Taker       = (*Indexed)(nil)
	_ sesh.Locker      = (*Indexed)(nil)
)

// IndexStore is a store that can keep the user index of an [Indexed]
// store: any [sesh.Store] that implements [sesh.UserIndexer], such as a SQL
// store or redisstore.
type IndexStore interface {
	sesh.Store
	sesh.UserIndexer
}

// Indexed is a memcached [Store] whose user index is kept in another
// store, so that it implements [sesh.UserIndexer]: records stay in
// memcached, and the index store holds one small entry per (record, user)
// pair. Make one with [NewIndexed].
//
// Save first makes sure the index store has an entry for the record's key
// and user that lives at least as long as the record (a load, plus a save
// when the entry is missing or shorter-lived: the idle deadline of a
// session moves at most once a minute), then saves the record. Index
// entries are never deleted, only left to expire, so every live record is
// always indexed; entries of deleted, taken, evicted or re-assigned records
// linger until their own expiry and are filtered out by UserRecords, which
// reads the user's entries from the index store and then gets the records
// from memcached in one batch, keeping the live ones that still carry the
// user. If the index store needs sweeping (it implements [sesh.Sweeper]),
// sweep it yourself: Indexed does not implement Sweeper, since it cannot
// sweep memcached.
//
// Index entries are keyed by the SHA-256 of the record key and user, their
// Data is the record key, their Expires the record's. The index store must
// use the same clock as the memcached store.
type Indexed struct {
	*Store
	index IndexStore
}

// NewIndexed returns records with a user index kept in index.
func NewIndexed(records *Store, index IndexStore) *Indexed {
	if records == nil || index == nil {
		panic("memcachedstore: NewIndexed with a nil store")
	}
	return &Indexed{Store: records, index: index}
}

// entryKey is the index store's key of the entry for key and user.
func entryKey(key sesh.Key, user string) sesh.Key {
	h := sha256.New()
	h.Write([]byte("sesh/memcachedstore index entry\x00"))
	h.Write(key[:])
	h.Write([]byte(user))
	return sesh.Key(h.Sum(nil))
}

// Save indexes rec's user, then saves rec in memcached, as [Store.Save].
func (x *Indexed) Save(ctx context.Context, key sesh.Key, rec sesh.Record, prev uint64) error {
	if rec.User != "" && rec.Expires.UnixMilli() > x.now().UnixMilli() {
		if err := x.ensureEntry(ctx, key, rec); err != nil {
			return err
		}
	}
	return x.Store.Save(ctx, key, rec, prev)
}

// ensureEntry makes sure the index has an entry for key and rec.User that
// lives at least until rec.Expires.
func (x *Indexed) ensureEntry(ctx context.Context, key sesh.Key, rec sesh.Record) error {
	ek := entryKey(key, rec.User)
	entry := sesh.Record{Data: key[:], Version: 1, Expires: rec.Expires, User: rec.User, Kind: rec.Kind}
	for range attempts {
		cur, err := x.index.Load(ctx, ek)
		switch {
		case err == nil:
			if !cur.Expires.Before(rec.Expires) {
				return nil
			}
			entry.Version = cur.Version + 1
			err = x.index.Save(ctx, ek, entry, cur.Version)
		case errors.Is(err, sesh.ErrNotFound):
			entry.Version = 1
			err = x.index.Save(ctx, ek, entry, 0)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, sesh.ErrConflict) {
			return fmt.Errorf("memcachedstore: index: %w", err)
		}
	}
	return errContention
}

// UserRecords returns the live records whose User is user: the index
// store's entries for user, then one batch get from memcached.
func (x *Indexed) UserRecords(ctx context.Context, user string) ([]sesh.Entry, error) {
	entries, err := x.index.UserRecords(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("memcachedstore: index: %w", err)
	}
	if len(entries) == 0 {
		return nil, nil
	}
	keys := make(map[string]sesh.Key, len(entries))
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if len(e.Record.Data) != len(sesh.Key{}) {
			continue
		}
		k := sesh.Key(e.Record.Data)
		name := x.recordKey(k)
		if _, dup := keys[name]; !dup {
			keys[name] = k
			names = append(names, name)
		}
	}
	items, err := call(ctx, func() (map[string]*memcache.Item, error) { return x.client.GetMulti(names) }, nil)
	if err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
		return nil, mapErr(err)
	}
	nowMs := x.now().UnixMilli()
	var out []sesh.Entry
	for _, name := range names {
		it := items[name]
		if it == nil {
			continue
		}
		rec, err := x.live(keys[name], it.Value, nowMs)
		if errors.Is(err, sesh.ErrNotFound) || errors.Is(err, sesh.ErrGone) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if rec.User == user {
			out = append(out, sesh.Entry{Key: keys[name], Record: rec})
		}
	}
	return out, nil
}
