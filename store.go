package sesh

import (
	"context"
	"encoding/hex"
	"errors"
	"time"
)

// Key is the key under which a store keeps a record. For a session it is
// the SHA-256 of the session ID, so a store never sees a raw ID; for other
// record kinds it is a hash with its own domain separation. Stores must
// treat a Key as 32 opaque bytes: any byte value may appear, and [Key.String]
// (lower-case hex) is the safe form for file names, Redis keys and SQL text.
type Key [32]byte

// String returns the key in lower-case hex.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// IsZero reports whether k is the zero key, which no record ever uses.
func (k Key) IsZero() bool { return k == Key{} }

// MaxUserLen is the longest [Record.User] every store must hold.
const MaxUserLen = 1024

// Kind tells what a record holds. Stores keep it with the record and
// return it unchanged; it lets listings tell sessions from tokens without
// opening the sealed data.
type Kind uint8

const (
	// KindSession is a session record.
	KindSession Kind = 0
	// KindToken is a long-lived token record such as a remember-me token.
	KindToken Kind = 1
)

// Record is what a store keeps under a [Key].
//
// Stores keep Expires at millisecond precision, truncated (never rounded
// up), and must round-trip Versions up to math.MaxInt64, User as arbitrary
// bytes (NUL and invalid UTF-8 included) of up to [MaxUserLen] bytes, and
// Data of at least 256 KiB. Larger values may be refused with ErrTooLarge.
//
// Data is the sealed envelope: opaque to the store, and already bound to
// its key, so a store can neither read nor move it. The other fields are
// in the clear because the store needs them: Version for compare-and-set,
// Expires for server-side expiry and sweeping, User for the user index.
type Record struct {
	// Data is the sealed record. Stores must return exactly the bytes they
	// were given and must not retain the slice after Save returns: the
	// manager seals the next record into the same buffer. A store that
	// hands the data to another goroutine copies it first.
	Data []byte
	// Version is positive and grows by at least one with every save.
	Version uint64
	// Expires is the instant after which the record is dead. A store must
	// never return a record whose Expires is not after its clock's now.
	Expires time.Time
	// User is an opaque index key of the user the record belongs to, or
	// "" for none. Stores that implement [UserIndexer] index it.
	User string
	// Kind is the record kind.
	Kind Kind
}

// Errors returned by stores. Stores must return these (or errors wrapping
// them) so that the manager and [storetest] can tell the cases apart; any
// other error is a store failure, which the manager never mistakes for
// "no session".
var (
	// ErrNotFound means there is no live record under the key: it never
	// existed, it expired, or it was deleted and its tombstone has lapsed.
	ErrNotFound = errors.New("sesh: record not found")
	// ErrGone means the record was deleted and its tombstone is still
	// live: the ID was destroyed or renewed moments ago, and a request
	// still holding it must neither write nor issue a new cookie.
	ErrGone = errors.New("sesh: record was destroyed")
	// ErrConflict means a Save lost a compare-and-set: the stored version
	// is not the one the caller expected, or the record is absent or
	// tombstoned when a version was expected, or present when none was.
	ErrConflict = errors.New("sesh: version conflict")
	// ErrTooLarge means the record exceeds what the store can hold.
	// Nothing was written.
	ErrTooLarge = errors.New("sesh: record too large")
	// ErrCorrupt means the store holds an entry under the key that it
	// cannot parse (a damaged file, a foreign value). The manager treats
	// the record as absent, reports it and deletes it, so Delete must
	// remove such an entry: a damaged entry must never lock a user out.
	ErrCorrupt = errors.New("sesh: corrupt store entry")
	// ErrLockLost is returned by the unlock function of a [Locker] when
	// the caller no longer held the lock: it lapsed, or was released
	// already. The current holder's lock is left alone.
	ErrLockLost = errors.New("sesh: lock was lost before unlock")
)

// Store is the interface every session store implements. It is
// deliberately small; further capabilities are optional interfaces that
// the manager finds by type assertion: [UserIndexer], [Lister], [Sweeper],
// [Locker] and [Taker].
//
// All methods must be safe for concurrent use, by several goroutines and,
// for shared stores, by several processes. They must honour ctx
// cancellation and deadlines. A store must give read-your-writes
// consistency for one key. Constructors must not start goroutines.
//
// The package storetest checks this contract; every store should pass
// storetest.Run under the race detector.
type Store interface {
	// Load returns the live record under key. It returns ErrNotFound when
	// there is none (including one whose Expires has passed, whatever the
	// state of any background cleanup), and ErrGone while a tombstone
	// left by Delete is live.
	Load(ctx context.Context, key Key) (Record, error)

	// Save writes rec under key with compare-and-set on the version:
	//
	//   - prev == 0 creates: it fails with ErrConflict if a live record
	//     or a live tombstone is under key. An expired record counts as
	//     absent.
	//   - prev > 0 replaces: it fails with ErrConflict unless a live
	//     record with Version == prev is under key.
	//
	// rec.Version is always greater than prev. On ErrConflict and
	// ErrTooLarge nothing was written. On a transport or context error the
	// outcome is unknown, as with any remote write; the manager never
	// reports success then, and a retried compare-and-set sorts it out.
	// A store that cannot hold rec returns ErrTooLarge.
	Save(ctx context.Context, key Key, rec Record, prev uint64) error

	// Delete removes the record under key, and removes it from any index.
	// If tombstone is after now, it leaves a tombstone until then: Load
	// returns ErrGone and Save with any prev returns ErrConflict while it
	// lives. Delete of an absent key is not an error (it still leaves the
	// tombstone). A Delete never shortens a live tombstone.
	Delete(ctx context.Context, key Key, tombstone time.Time) error
}

// Entry is a record together with its key, as returned by listings.
type Entry struct {
	Key    Key
	Record Record
}

// UserIndexer is implemented by stores that index records by
// [Record.User]. The index must stay right when records are saved with a
// different user, deleted, or expire: UserRecords never returns a dead
// record, whatever the state of background cleanup.
type UserIndexer interface {
	// UserRecords returns the live records whose User is user, in no
	// particular order. An unknown user, or "", gives an empty result and
	// no error.
	UserRecords(ctx context.Context, user string) ([]Entry, error)
}

// Lister is implemented by stores that can enumerate all live records,
// for administration. It must work in bounded batches and never block the
// store (no Redis KEYS, no full-table locks).
type Lister interface {
	// List returns up to limit live records after cursor, and the cursor
	// for the next call, which is "" when the listing is complete. The
	// first call passes "". A record saved or deleted during a listing
	// may or may not appear; no record that is live throughout is skipped.
	// A record may appear more than once (Redis SCAN repeats keys while
	// its table shrinks), so callers drop duplicate keys.
	List(ctx context.Context, cursor string, limit int) (entries []Entry, next string, err error)
}

// Sweeper is implemented by stores that need explicit removal of expired
// records and tombstones (stores with native expiry, such as Redis, need
// not implement it). Sweeping is incremental: nothing runs in the
// background, and the caller decides when and how much.
type Sweeper interface {
	// Sweep deletes up to limit dead records and tombstones, removing them
	// from any index, and returns how many it deleted. A result below
	// limit means none were left when it looked, except dead records that
	// other transactions held at the time (SQL SKIP LOCKED), which the
	// next call finds. It must never hold a lock over the whole store;
	// each call does bounded locking work.
	Sweep(ctx context.Context, limit int) (int, error)
}

// Locker is implemented by stores that can serialise requests on one key
// across all processes sharing the store, for the manager's exclusive
// mode. Without it, exclusive mode serialises only within one process.
type Locker interface {
	// Lock waits until it holds the lock on key or ctx is done, in which
	// case it returns ctx's error. The lock lapses by itself after ttl so
	// a crashed holder cannot block the key forever (stores with coarse
	// clocks may round ttl up, by at most a second). The returned unlock
	// releases it only if it is still held by this caller, and otherwise
	// returns ErrLockLost. A remote store must not abandon an attempt in
	// flight when ctx ends: a lock won after Lock returned would block the
	// key until it lapses, so it must release such a lock before
	// returning ctx's error.
	Lock(ctx context.Context, key Key, ttl time.Duration) (unlock func(context.Context) error, err error)
}

// Nonblocking is implemented by stores whose operations complete without
// waiting on I/O or other processes, such as memstore. The manager skips
// its per-operation timeout for them, which saves a timer per operation.
type Nonblocking interface {
	Nonblocking()
}

// Taker is implemented by stores that can consume a record atomically:
// of any number of concurrent Take calls on one key, exactly one gets the
// record. It serves single-use tokens.
type Taker interface {
	// Take deletes the live record under key and returns it, or returns
	// ErrNotFound (or ErrGone under a tombstone) if there is none. Take
	// leaves no tombstone.
	Take(ctx context.Context, key Key) (Record, error)
}
