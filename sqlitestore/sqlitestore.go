package sqlitestore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"regexp"
	"strings"
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
)

// DefaultTable is the table name used unless [WithTable] says otherwise.
const DefaultTable = "sesh_records"

// MaxUserLen is the longest Record.User, in bytes, that the store holds;
// Save returns [sesh.ErrTooLarge] for a longer one. It is the same for
// every sesh SQL store, so that records can move between them.
const MaxUserLen = 1024

// maxListLimit caps the page size of List.
const maxListLimit = 10000

// SQLite result codes (primary).
const (
	sqliteBusy   = 5
	sqliteLocked = 6
	sqliteTooBig = 18
)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// An Option configures a [Store] made by [New].
type Option func(*config)

type config struct {
	table string
	now   func() time.Time
}

// WithTable sets the name of the records table (default [DefaultTable]).
// It must match ^[A-Za-z_][A-Za-z0-9_]{0,62}$; New rejects any other name.
// The locks table is named after it, with the suffix _locks.
func WithTable(name string) Option { return func(c *config) { c.table = name } }

// WithClock sets the clock that decides every expiry: of records,
// tombstones and lock leases (default time.Now).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Store is a session store in an SQLite table. It is safe for concurrent
// use by any number of goroutines, and by the processes sharing the
// database file. Make one with [New].
type Store struct {
	db  *sql.DB
	now func() time.Time
	ddl []string
	q   queries

	// busyBudget bounds the time spent retrying one statement that
	// failed with SQLITE_BUSY or SQLITE_LOCKED.
	busyBudget time.Duration
}

type queries struct {
	load, create, replace, tombstone, del, take, gone string
	user, listFirst, listNext, sweep, sweepLocks      string
	lock, unlock                                      string
}

// New returns a store on db. It checks the options but does no I/O: call
// [Store.Migrate] (or apply [Store.DDL]) before first use.
func New(db *sql.DB, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlitestore: nil db")
	}
	c := config{table: DefaultTable, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	if !identRE.MatchString(c.table) {
		return nil, fmt.Errorf("sqlitestore: invalid table name %q: want ^[A-Za-z_][A-Za-z0-9_]{0,62}$", c.table)
	}
	if c.now == nil {
		c.now = time.Now
	}
	// The names are checked above, so they hold no double quote.
	quote := func(name string) string { return `"` + name + `"` }
	t := quote(c.table)
	l := quote(c.table + "_locks")
	s := &Store{db: db, now: c.now, busyBudget: 5 * time.Second}
	s.ddl = []string{
		`CREATE TABLE IF NOT EXISTS ` + t + ` (
	k         BLOB    NOT NULL PRIMARY KEY CHECK (typeof(k) = 'blob' AND length(k) = 32),
	data      BLOB    NOT NULL,
	version   INTEGER NOT NULL,
	expires   INTEGER NOT NULL,
	user_key  BLOB,
	kind      INTEGER NOT NULL,
	tombstone INTEGER NOT NULL DEFAULT 0
)`,
		`CREATE INDEX IF NOT EXISTS ` + quote(c.table+"_expires_idx") + ` ON ` + t + ` (expires)`,
		`CREATE INDEX IF NOT EXISTS ` + quote(c.table+"_user_idx") + ` ON ` + t + ` (user_key, expires) WHERE user_key IS NOT NULL`,
		`CREATE TABLE IF NOT EXISTS ` + l + ` (
	k       BLOB    NOT NULL PRIMARY KEY,
	owner   BLOB    NOT NULL,
	expires INTEGER NOT NULL
)`,
	}
	const cols = `data, version, expires, user_key, kind`
	s.q = queries{
		load: `SELECT ` + cols + `, tombstone FROM ` + t + ` WHERE k = ? AND expires > ?`,
		create: `INSERT INTO ` + t + ` (k, data, version, expires, user_key, kind, tombstone)
VALUES (?, ?, ?, ?, ?, ?, 0)
ON CONFLICT (k) DO UPDATE SET data = excluded.data, version = excluded.version,
	expires = excluded.expires, user_key = excluded.user_key, kind = excluded.kind, tombstone = 0
WHERE ` + t + `.expires <= ?`,
		replace: `UPDATE ` + t + ` SET data = ?, version = ?, expires = ?, user_key = ?, kind = ?
WHERE k = ? AND version = ? AND expires > ? AND tombstone = 0`,
		tombstone: `INSERT INTO ` + t + ` (k, data, version, expires, user_key, kind, tombstone)
VALUES (?, x'', 0, ?, NULL, 0, 1)
ON CONFLICT (k) DO UPDATE SET data = x'', version = 0, user_key = NULL, kind = 0, tombstone = 1,
	expires = CASE WHEN ` + t + `.tombstone THEN max(` + t + `.expires, excluded.expires) ELSE excluded.expires END`,
		del:  `DELETE FROM ` + t + ` WHERE k = ? AND NOT (tombstone AND expires > ?)`,
		take: `DELETE FROM ` + t + ` WHERE k = ? AND expires > ? AND tombstone = 0 RETURNING ` + cols,
		gone: `SELECT tombstone FROM ` + t + ` WHERE k = ? AND expires > ?`,
		user: `SELECT k, ` + cols + ` FROM ` + t + ` WHERE user_key = ? AND expires > ? AND tombstone = 0`,
		listFirst: `SELECT k, ` + cols + ` FROM ` + t + ` WHERE expires > ? AND tombstone = 0
ORDER BY k LIMIT ?`,
		listNext: `SELECT k, ` + cols + ` FROM ` + t + ` WHERE k > ? AND expires > ? AND tombstone = 0
ORDER BY k LIMIT ?`,
		sweep:      `DELETE FROM ` + t + ` WHERE rowid IN (SELECT rowid FROM ` + t + ` WHERE expires <= ? LIMIT ?)`,
		sweepLocks: `DELETE FROM ` + l + ` WHERE rowid IN (SELECT rowid FROM ` + l + ` WHERE expires <= ? LIMIT ?)`,
		lock: `INSERT INTO ` + l + ` (k, owner, expires) VALUES (?, ?, ?)
ON CONFLICT (k) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
WHERE ` + l + `.expires <= ?`,
		unlock: `DELETE FROM ` + l + ` WHERE k = ? AND owner = ? RETURNING expires`,
	}
	return s, nil
}

// DDL returns the statements that [Store.Migrate] runs, in order, for the
// configured table name.
func (s *Store) DDL() []string { return append([]string(nil), s.ddl...) }

// Migrate creates the tables and indexes if they do not exist. It is
// idempotent and never alters or drops anything.
func (s *Store) Migrate(ctx context.Context) error {
	for _, stmt := range s.ddl {
		err := s.retry(ctx, func() error {
			_, err := s.db.ExecContext(ctx, stmt)
			return err
		})
		if err != nil {
			return s.fail(ctx, "migrate", err)
		}
	}
	return nil
}

// sqliteCode returns the primary SQLite result code in err's chain, from
// a Code() int method (modernc.org/sqlite's *Error).
func sqliteCode(err error) (int, bool) {
	var c interface{ Code() int }
	if errors.As(err, &c) {
		return c.Code() & 0xff, true
	}
	return 0, false
}

// isBusy reports whether err is SQLITE_BUSY or SQLITE_LOCKED: another
// connection holds a lock, and the statement, which did nothing, may be
// run again.
func isBusy(err error) bool {
	if err == nil {
		return false
	}
	if code, ok := sqliteCode(err); ok {
		return code == sqliteBusy || code == sqliteLocked
	}
	// Drivers without a Code method (mattn/go-sqlite3) say it in words.
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "database table is locked")
}

// retry runs f, and runs it again while it fails with SQLITE_BUSY or
// SQLITE_LOCKED, with backoff from 1 ms to 50 ms, until s.busyBudget has
// passed or ctx is done.
func (s *Store) retry(ctx context.Context, f func() error) error {
	var deadline time.Time
	d := time.Millisecond
	for {
		err := f()
		if !isBusy(err) {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(s.busyBudget)
		}
		if time.Now().Add(d).After(deadline) {
			return err
		}
		t := time.NewTimer(d/2 + mrand.N(d/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		d = min(2*d, 50*time.Millisecond)
	}
}

// errVersion is returned by Save when the caller breaks the rule that
// rec.Version exceeds prev.
var errVersion = errors.New("sqlitestore: rec.Version must be greater than prev")

// fail wraps err from an operation, adding ctx's error when ctx is done
// and the driver did not say so, and sesh.ErrTooLarge for SQLITE_TOOBIG.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if errors.Is(err, sesh.ErrConflict) || errors.Is(err, sesh.ErrNotFound) || errors.Is(err, sesh.ErrGone) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("sqlitestore: %s: %w (%w)", op, err, cerr)
	}
	if code, ok := sqliteCode(err); ok && code == sqliteTooBig {
		return fmt.Errorf("sqlitestore: %s: %w: %w", op, sesh.ErrTooLarge, err)
	}
	return fmt.Errorf("sqlitestore: %s: %w", op, err)
}

func (s *Store) nowMS() int64 { return s.now().UnixMilli() }

// userArg is the user_key parameter for user: NULL for none, else a BLOB
// (never TEXT, which SQLite would order and compare apart from BLOBs).
func userArg(user string) any {
	if user == "" {
		return nil
	}
	return []byte(user)
}

// makeRecord builds a Record from scanned columns.
func makeRecord(data []byte, version, expires int64, user []byte, kind int64) sesh.Record {
	if data == nil {
		data = []byte{}
	}
	return sesh.Record{
		Data:    data,
		Version: uint64(version),
		Expires: time.UnixMilli(expires),
		User:    string(user),
		Kind:    sesh.Kind(kind),
	}
}

// Load returns the live record under key, [sesh.ErrNotFound] if there is
// none, or [sesh.ErrGone] under a live tombstone.
func (s *Store) Load(ctx context.Context, key sesh.Key) (sesh.Record, error) {
	if err := ctx.Err(); err != nil {
		return sesh.Record{}, err
	}
	var (
		data, user             []byte
		version, expires, kind int64
		tomb                   bool
	)
	now := s.nowMS()
	err := s.retry(ctx, func() error {
		return s.db.QueryRowContext(ctx, s.q.load, key[:], now).Scan(&data, &version, &expires, &user, &kind, &tomb)
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return sesh.Record{}, sesh.ErrNotFound
	case err != nil:
		return sesh.Record{}, s.fail(ctx, "load", err)
	case tomb:
		return sesh.Record{}, sesh.ErrGone
	}
	return makeRecord(data, version, expires, user, kind), nil
}

// checkRecord checks what Save can check before writing.
func checkRecord(rec sesh.Record, prev uint64) error {
	switch {
	case rec.Version <= prev:
		return fmt.Errorf("%w (version %d, prev %d)", errVersion, rec.Version, prev)
	case rec.Version > math.MaxInt64:
		return fmt.Errorf("sqlitestore: version %d above the INTEGER range: %w", rec.Version, sesh.ErrTooLarge)
	case len(rec.User) > MaxUserLen:
		return fmt.Errorf("sqlitestore: user of %d bytes, above MaxUserLen (%d): %w", len(rec.User), MaxUserLen, sesh.ErrTooLarge)
	}
	return nil
}

// Save writes rec under key with compare-and-set on the version, in one
// statement; see [sesh.Store]. It returns [sesh.ErrTooLarge] for a
// Version above math.MaxInt64 or a User longer than [MaxUserLen].
func (s *Store) Save(ctx context.Context, key sesh.Key, rec sesh.Record, prev uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkRecord(rec, prev); err != nil {
		return err
	}
	data := rec.Data
	if data == nil {
		data = []byte{}
	}
	ver, exp, user, kind := int64(rec.Version), rec.Expires.UnixMilli(), userArg(rec.User), int64(rec.Kind)
	now := s.nowMS()
	err := s.retry(ctx, func() error {
		var (
			res sql.Result
			err error
		)
		if prev == 0 {
			res, err = s.db.ExecContext(ctx, s.q.create, key[:], data, ver, exp, user, kind, now)
		} else {
			res, err = s.db.ExecContext(ctx, s.q.replace, data, ver, exp, user, kind, key[:], int64(prev), now)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return sesh.ErrConflict
		}
		return nil
	})
	if err != nil {
		return s.fail(ctx, "save", err)
	}
	return nil
}

// Delete removes the record under key and, if tombstone is after now,
// leaves a tombstone until then. A live tombstone is never shortened or
// removed by Delete.
func (s *Store) Delete(ctx context.Context, key sesh.Key, tombstone time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.nowMS()
	err := s.retry(ctx, func() error {
		var err error
		if ts := tombstone.UnixMilli(); !tombstone.IsZero() && ts > now {
			_, err = s.db.ExecContext(ctx, s.q.tombstone, key[:], ts)
		} else {
			_, err = s.db.ExecContext(ctx, s.q.del, key[:], now)
		}
		return err
	})
	if err != nil {
		return s.fail(ctx, "delete", err)
	}
	return nil
}

// Take deletes the live record under key and returns it, in one DELETE
// ... RETURNING. It returns [sesh.ErrNotFound] if there is none, or
// [sesh.ErrGone] under a live tombstone, which it leaves in place.
func (s *Store) Take(ctx context.Context, key sesh.Key) (sesh.Record, error) {
	if err := ctx.Err(); err != nil {
		return sesh.Record{}, err
	}
	now := s.nowMS()
	var rec sesh.Record
	err := s.retry(ctx, func() error {
		var (
			data, user             []byte
			version, expires, kind int64
		)
		err := s.db.QueryRowContext(ctx, s.q.take, key[:], now).Scan(&data, &version, &expires, &user, &kind)
		if err == nil {
			rec = makeRecord(data, version, expires, user, kind)
		}
		return err
	})
	if err == nil {
		return rec, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return sesh.Record{}, s.fail(ctx, "take", err)
	}
	// Nothing taken: tell a tombstone from nothing.
	var tomb bool
	err = s.retry(ctx, func() error {
		return s.db.QueryRowContext(ctx, s.q.gone, key[:], now).Scan(&tomb)
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return sesh.Record{}, sesh.ErrNotFound
	case err != nil:
		return sesh.Record{}, s.fail(ctx, "take", err)
	case tomb:
		return sesh.Record{}, sesh.ErrGone
	}
	return sesh.Record{}, sesh.ErrNotFound // created after the DELETE looked
}

// UserRecords returns the live records whose User is user, through the
// user_key index. The user "" is never indexed and gives no records.
func (s *Store) UserRecords(ctx context.Context, user string) ([]sesh.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if user == "" {
		return nil, nil
	}
	now := s.nowMS()
	var out []sesh.Entry
	err := s.retry(ctx, func() error {
		var err error
		out, err = s.queryEntries(ctx, s.q.user, []byte(user), now)
		return err
	})
	if err != nil {
		return nil, s.fail(ctx, "user records", err)
	}
	return out, nil
}

func (s *Store) queryEntries(ctx context.Context, query string, args ...any) ([]sesh.Entry, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sesh.Entry
	for rows.Next() {
		var (
			k, data, user          []byte
			version, expires, kind int64
		)
		if err := rows.Scan(&k, &data, &version, &expires, &user, &kind); err != nil {
			return nil, err
		}
		var e sesh.Entry
		if len(k) != len(e.Key) {
			return nil, fmt.Errorf("stored key of %d bytes, want %d", len(k), len(e.Key))
		}
		copy(e.Key[:], k)
		e.Record = makeRecord(data, version, expires, user, kind)
		out = append(out, e)
	}
	return out, rows.Err()
}

// errCursor is returned by List for a cursor it did not make.
var errCursor = errors.New("sqlitestore: invalid list cursor")

// List returns up to limit live records in key order after cursor, which
// is "" or the lower-case hex of the last key of the previous page; see
// [sesh.Lister]. Each call is one range query on the primary key (keyset
// pagination), reading at most limit+1 live rows; limit is capped at
// 10000.
func (s *Store) List(ctx context.Context, cursor string, limit int) ([]sesh.Entry, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		return nil, cursor, nil
	}
	limit = min(limit, maxListLimit)
	var after []byte
	if cursor != "" {
		var err error
		after, err = hex.DecodeString(cursor)
		if err != nil || len(after) != len(sesh.Key{}) || hex.EncodeToString(after) != cursor {
			return nil, "", errCursor
		}
	}
	now := s.nowMS()
	var out []sesh.Entry
	err := s.retry(ctx, func() error {
		var err error
		if after == nil {
			out, err = s.queryEntries(ctx, s.q.listFirst, now, limit+1)
		} else {
			out, err = s.queryEntries(ctx, s.q.listNext, after, now, limit+1)
		}
		return err
	})
	if err != nil {
		return nil, "", s.fail(ctx, "list", err)
	}
	if len(out) <= limit {
		return out, "", nil
	}
	out = out[:limit]
	return out, out[limit-1].Key.String(), nil
}

// Sweep deletes up to limit dead records and lapsed tombstones in one
// statement, and returns how many it deleted. When fewer than limit were
// left it also deletes up to limit lapsed lock leases (not counted).
func (s *Store) Sweep(ctx context.Context, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if limit <= 0 {
		return 0, nil
	}
	now := s.nowMS()
	var n int64
	err := s.retry(ctx, func() error {
		res, err := s.db.ExecContext(ctx, s.q.sweep, now, limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, s.fail(ctx, "sweep", err)
	}
	if int(n) < limit {
		err := s.retry(ctx, func() error {
			_, err := s.db.ExecContext(ctx, s.q.sweepLocks, now, limit)
			return err
		})
		if err != nil {
			return int(n), s.fail(ctx, "sweep locks", err)
		}
	}
	return int(n), nil
}

// errTTL is returned by Lock for a ttl that is not positive.
var errTTL = errors.New("sqlitestore: lock ttl must be positive")

// Lock waits until it holds the lease on key in the locks table, or ctx is
// done. The lease lapses ttl after it was taken, by the store's clock. The
// returned unlock deletes the lease if it still carries this caller's
// random owner token, and returns [sesh.ErrLockLost] if it had lapsed or
// was released already (leaving any new holder's lease alone).
func (s *Store) Lock(ctx context.Context, key sesh.Key, ttl time.Duration) (func(context.Context) error, error) {
	if ttl <= 0 {
		return nil, errTTL
	}
	owner := make([]byte, 16)
	rand.Read(owner)
	unlock := func(ctx context.Context) error {
		var expires int64
		err := s.retry(ctx, func() error {
			return s.db.QueryRowContext(ctx, s.q.unlock, key[:], owner).Scan(&expires)
		})
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return sesh.ErrLockLost // released already, or lapsed and taken
		case err != nil:
			return s.fail(ctx, "unlock", err)
		case expires <= s.nowMS():
			return sesh.ErrLockLost // lapsed (and now deleted)
		}
		return nil
	}
	var b backoff
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		now := s.now()
		var n int64
		// Each statement runs to its end whatever ctx does (ctx only stops
		// the waits between retries), so that no attempt can take the
		// lease unseen; ctx is checked once it is over.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockAttemptTimeout)
		err := s.retry(ctx, func() error {
			res, err := s.db.ExecContext(actx, s.q.lock, key[:], owner, ceilMS(now.Add(ttl)), now.UnixMilli())
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		cancel()
		if err != nil {
			cleanup(ctx, unlock)
			return nil, s.fail(ctx, "lock", err)
		}
		if n == 1 {
			if err := ctx.Err(); err != nil {
				cleanup(ctx, unlock)
				return nil, err
			}
			return unlock, nil
		}
		if err := b.wait(ctx); err != nil {
			return nil, err
		}
	}
}

// lockAttemptTimeout bounds one statement of Lock, which ctx does not cut
// short.
const lockAttemptTimeout = 5 * time.Second

// cleanup runs unlock with a short deadline that ctx being done cannot cut.
func cleanup(ctx context.Context, unlock func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = unlock(ctx)
}

// ceilMS returns t in Unix milliseconds, rounded up, so that a lease is
// never shorter than asked.
func ceilMS(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return ms
}

// backoff paces the polls of a waiting Lock: 2 ms doubling to 64 ms, with
// jitter so that waiters spread out.
type backoff struct{ d time.Duration }

const (
	minBackoff = 2 * time.Millisecond
	maxBackoff = 64 * time.Millisecond
)

func (b *backoff) wait(ctx context.Context) error {
	if b.d == 0 {
		b.d = minBackoff
	}
	d := b.d/2 + mrand.N(b.d/2+1)
	b.d = min(2*b.d, maxBackoff)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
