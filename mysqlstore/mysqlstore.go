package mysqlstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"reflect"
	"regexp"
	"strings"
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
)

// DefaultTable is the table name used unless [WithTable] says otherwise.
const DefaultTable = "sesh_records"

// MaxUserLen is the longest Record.User, in bytes, that the store holds
// (the user_key column is VARBINARY(1024)); Save returns
// [sesh.ErrTooLarge] for a longer one.
const MaxUserLen = 1024

// maxData is the capacity of a MEDIUMBLOB.
const maxData = 1<<24 - 1

// maxListLimit caps the page size of List.
const maxListLimit = 10000

// maxIdent is MySQL's identifier length limit.
const maxIdent = 64

// Server error numbers.
const (
	erLockDeadlock      = 1213
	erDataTooLong       = 1406
	erNetPacketTooLarge = 1153
	erWarnAllowedPacket = 1301
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
// The locks table is named after it, with the suffix _locks. To use
// another database than the DSN's, open the *sql.DB on it.
func WithTable(name string) Option { return func(c *config) { c.table = name } }

// WithClock sets the clock that decides every expiry: of records,
// tombstones and lock leases (default time.Now). The database's own clock
// is never used.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Store is a session store in a MySQL or MariaDB table. It is safe for
// concurrent use by any number of goroutines and processes. Make one with
// [New].
type Store struct {
	db  *sql.DB
	now func() time.Time
	ddl []string
	q   queries

	// returning is whether the server has DELETE ... RETURNING: 0 not
	// known yet, 1 yes (MariaDB), 2 no (MySQL).
	returning atomic.Int32
}

type queries struct {
	load, insert, lockRow, overwrite, replace, tombstone, del string
	takeReturning, takeSelect, takeDelete, gone               string
	user, listFirst, listNext, sweep, sweepLocks              string
	lock, clearLock, unlock, unlockLapsed                     string
}

// New returns a store on db. It checks the options but does no I/O: call
// [Store.Migrate] (or apply [Store.DDL]) before first use.
func New(db *sql.DB, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, errors.New("mysqlstore: nil db")
	}
	c := config{table: DefaultTable, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	if !identRE.MatchString(c.table) {
		return nil, fmt.Errorf("mysqlstore: invalid table name %q: want ^[A-Za-z_][A-Za-z0-9_]{0,62}$", c.table)
	}
	if c.now == nil {
		c.now = time.Now
	}
	// The names are checked above, so they hold no backquote.
	t := "`" + c.table + "`"
	l := "`" + derivedName(c.table, "_locks") + "`"
	s := &Store{db: db, now: c.now}
	s.ddl = []string{
		`CREATE TABLE IF NOT EXISTS ` + t + ` (
	k         BINARY(32)      NOT NULL,
	data      MEDIUMBLOB      NOT NULL,
	version   BIGINT          NOT NULL,
	expires   BIGINT          NOT NULL,
	user_key  VARBINARY(1024) NULL,
	kind      SMALLINT        NOT NULL,
	tombstone BOOLEAN         NOT NULL DEFAULT FALSE,
	PRIMARY KEY (k),
	KEY expires_idx (expires),
	KEY user_idx (user_key, expires)
) ENGINE=InnoDB`,
		`CREATE TABLE IF NOT EXISTS ` + l + ` (
	k       BINARY(32) NOT NULL,
	owner   BINARY(16) NOT NULL,
	expires BIGINT     NOT NULL,
	PRIMARY KEY (k)
) ENGINE=InnoDB`,
	}
	const cols = `data, version, expires, user_key, kind`
	s.q = queries{
		load: `SELECT ` + cols + `, tombstone FROM ` + t + ` WHERE k = ? AND expires > ?`,
		insert: `INSERT IGNORE INTO ` + t + ` (k, data, version, expires, user_key, kind, tombstone)
VALUES (?, ?, ?, ?, ?, ?, FALSE)`,
		lockRow: `SELECT expires FROM ` + t + ` WHERE k = ? FOR UPDATE`,
		overwrite: `UPDATE ` + t + ` SET data = ?, version = ?, expires = ?, user_key = ?, kind = ?, tombstone = FALSE
WHERE k = ?`,
		replace: `UPDATE ` + t + ` SET data = ?, version = ?, expires = ?, user_key = ?, kind = ?
WHERE k = ? AND version = ? AND expires > ? AND NOT tombstone`,
		// The expires assignment comes first: ON DUPLICATE KEY UPDATE
		// assigns left to right, and it must see the old tombstone flag.
		tombstone: `INSERT INTO ` + t + ` (k, data, version, expires, user_key, kind, tombstone)
VALUES (?, '', 0, ?, NULL, 0, TRUE)
ON DUPLICATE KEY UPDATE expires = IF(tombstone, GREATEST(expires, ?), ?),
	data = '', version = 0, user_key = NULL, kind = 0, tombstone = TRUE`,
		del:           `DELETE FROM ` + t + ` WHERE k = ? AND NOT (tombstone AND expires > ?)`,
		takeReturning: `DELETE FROM ` + t + ` WHERE k = ? AND expires > ? AND NOT tombstone RETURNING ` + cols,
		takeSelect:    `SELECT ` + cols + `, tombstone FROM ` + t + ` WHERE k = ? AND expires > ? FOR UPDATE`,
		takeDelete:    `DELETE FROM ` + t + ` WHERE k = ?`,
		gone:          `SELECT tombstone FROM ` + t + ` WHERE k = ? AND expires > ?`,
		user:          `SELECT k, ` + cols + ` FROM ` + t + ` WHERE user_key = ? AND expires > ? AND NOT tombstone`,
		listFirst: `SELECT k, ` + cols + ` FROM ` + t + ` WHERE expires > ? AND NOT tombstone
ORDER BY k LIMIT ?`,
		listNext: `SELECT k, ` + cols + ` FROM ` + t + ` WHERE k > ? AND expires > ? AND NOT tombstone
ORDER BY k LIMIT ?`,
		sweep:        `DELETE FROM ` + t + ` WHERE expires <= ? ORDER BY expires LIMIT ?`,
		sweepLocks:   `DELETE FROM ` + l + ` WHERE expires <= ? LIMIT ?`,
		lock:         `INSERT IGNORE INTO ` + l + ` (k, owner, expires) VALUES (?, ?, ?)`,
		clearLock:    `DELETE FROM ` + l + ` WHERE k = ? AND expires <= ?`,
		unlock:       `DELETE FROM ` + l + ` WHERE k = ? AND owner = ? AND expires > ?`,
		unlockLapsed: `DELETE FROM ` + l + ` WHERE k = ? AND owner = ?`,
	}
	return s, nil
}

// derivedName returns table+suffix, shortened with a hash of table when
// that is longer than MySQL's identifier limit, so that distinct tables
// keep distinct derived names.
func derivedName(table, suffix string) string {
	if len(table)+len(suffix) <= maxIdent {
		return table + suffix
	}
	sum := sha256.Sum256([]byte(table))
	h := "_" + hex.EncodeToString(sum[:4])
	return table[:maxIdent-len(suffix)-len(h)] + h + suffix
}

// DDL returns the statements that [Store.Migrate] runs, in order, for the
// configured table name, so that a DBA can apply them instead.
func (s *Store) DDL() []string { return append([]string(nil), s.ddl...) }

// Migrate creates the tables and their indexes if they do not exist. It
// is idempotent and never alters or drops anything.
func (s *Store) Migrate(ctx context.Context) error {
	for _, stmt := range s.ddl {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return s.fail(ctx, "migrate", err)
		}
	}
	return nil
}

// errNumber returns the server error number in err's chain, read from the
// Number field of the driver's error struct (go-sql-driver/mysql's
// *MySQLError), so that the store need not import a driver.
func errNumber(err error) (int, bool) {
	for ; err != nil; err = errors.Unwrap(err) {
		v := reflect.ValueOf(err)
		if v.Kind() == reflect.Pointer && !v.IsNil() {
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			continue
		}
		if f := v.FieldByName("Number"); f.IsValid() && f.CanUint() {
			return int(f.Uint()), true
		}
	}
	return 0, false
}

// tooLarge reports whether err says that a value did not fit.
func tooLarge(err error) bool {
	switch n, _ := errNumber(err); n {
	case erDataTooLong, erNetPacketTooLarge, erWarnAllowedPacket:
		return true
	}
	// go-sql-driver/mysql's ErrPktTooLarge, refused before sending.
	return strings.Contains(err.Error(), "packet for query is too large")
}

// errVersion is returned by Save when the caller breaks the rule that
// rec.Version exceeds prev.
var errVersion = errors.New("mysqlstore: rec.Version must be greater than prev")

// fail wraps err from an operation, adding ctx's error when ctx is done
// and the driver did not say so, and sesh.ErrTooLarge for size limits.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if errors.Is(err, sesh.ErrConflict) || errors.Is(err, sesh.ErrNotFound) || errors.Is(err, sesh.ErrGone) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("mysqlstore: %s: %w (%w)", op, err, cerr)
	}
	if tooLarge(err) {
		return fmt.Errorf("mysqlstore: %s: %w: %w", op, sesh.ErrTooLarge, err)
	}
	return fmt.Errorf("mysqlstore: %s: %w", op, err)
}

// maxAttempts bounds the retries of a deadlock victim.
const maxAttempts = 5

// retry runs f until it returns something other than a deadlock (after
// which InnoDB has rolled the statement or transaction back, so running it
// again is safe), at most maxAttempts times.
func retry(ctx context.Context, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if n, _ := errNumber(err); n != erLockDeadlock || attempt == maxAttempts {
			return err
		}
		b := backoff{d: time.Duration(attempt) * minBackoff}
		if b.wait(ctx) != nil {
			return err
		}
	}
}

func (s *Store) nowMS() int64 { return s.now().UnixMilli() }

// userArg is the user_key parameter for user: NULL for none.
func userArg(user string) any {
	if user == "" {
		return nil
	}
	return []byte(user)
}

// makeRecord builds a Record from scanned columns.
func makeRecord(data []byte, version, expires int64, user []byte, kind int16) sesh.Record {
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
		data, user       []byte
		version, expires int64
		kind             int16
		tomb             bool
	)
	err := s.db.QueryRowContext(ctx, s.q.load, key[:], s.nowMS()).Scan(&data, &version, &expires, &user, &kind, &tomb)
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

// checkRecord checks what Save can check before writing. Everything that
// could be truncated is checked, which makes INSERT IGNORE safe.
func checkRecord(rec sesh.Record, prev uint64) error {
	switch {
	case rec.Version <= prev:
		return fmt.Errorf("%w (version %d, prev %d)", errVersion, rec.Version, prev)
	case rec.Version > math.MaxInt64:
		return fmt.Errorf("mysqlstore: version %d above the BIGINT range: %w", rec.Version, sesh.ErrTooLarge)
	case len(rec.User) > MaxUserLen:
		return fmt.Errorf("mysqlstore: user of %d bytes, above MaxUserLen (%d): %w", len(rec.User), MaxUserLen, sesh.ErrTooLarge)
	case len(rec.Data) > maxData:
		return fmt.Errorf("mysqlstore: data of %d bytes, above the MEDIUMBLOB limit (%d): %w", len(rec.Data), maxData, sesh.ErrTooLarge)
	}
	return nil
}

// Save writes rec under key with compare-and-set on the version; see
// [sesh.Store] and the package documentation for the statements. It
// returns [sesh.ErrTooLarge] for a Version above math.MaxInt64, a User
// longer than [MaxUserLen] or Data longer than 16 MiB - 1.
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
	ver, exp, user, kind := int64(rec.Version), rec.Expires.UnixMilli(), userArg(rec.User), int16(rec.Kind)
	now := s.nowMS()
	var err error
	if prev == 0 {
		err = s.create(ctx, key, data, ver, exp, user, kind, now)
	} else {
		err = retry(ctx, func() error {
			res, err := s.db.ExecContext(ctx, s.q.replace, data, ver, exp, user, kind, key[:], int64(prev), now)
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
	}
	if err != nil {
		return s.fail(ctx, "save", err)
	}
	return nil
}

// maxVanished bounds how often create starts again because the row that
// blocked its insert was gone by the time it looked.
const maxVanished = 10

// create is Save with prev == 0.
func (s *Store) create(ctx context.Context, key sesh.Key, data []byte, ver, exp int64, user any, kind int16, now int64) error {
	for range maxVanished {
		var inserted, vanished bool
		err := retry(ctx, func() error {
			res, err := s.db.ExecContext(ctx, s.q.insert, key[:], data, ver, exp, user, kind)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			inserted = n == 1
			return err
		})
		if err != nil || inserted {
			return err
		}
		// A row is under key: overwrite it only if it is dead, under its
		// row lock.
		err = retry(ctx, func() error {
			vanished = false
			tx, err := s.db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			var cur int64
			err = tx.QueryRowContext(ctx, s.q.lockRow, key[:]).Scan(&cur)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				vanished = true
				return nil
			case err != nil:
				return err
			case cur > now:
				return sesh.ErrConflict // a live record or tombstone
			}
			if _, err := tx.ExecContext(ctx, s.q.overwrite, data, ver, exp, user, kind, key[:]); err != nil {
				return err
			}
			return tx.Commit()
		})
		if err != nil || !vanished {
			return err
		}
	}
	return fmt.Errorf("key %s contended: gave up after %d attempts", key, maxVanished)
}

// Delete removes the record under key and, if tombstone is after now,
// leaves a tombstone until then. A live tombstone is never shortened or
// removed by Delete.
func (s *Store) Delete(ctx context.Context, key sesh.Key, tombstone time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.nowMS()
	err := retry(ctx, func() error {
		var err error
		if ts := tombstone.UnixMilli(); !tombstone.IsZero() && ts > now {
			_, err = s.db.ExecContext(ctx, s.q.tombstone, key[:], ts, ts, ts)
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

// hasReturning reports whether the server supports DELETE ... RETURNING
// (MariaDB does, MySQL does not), asking it once.
func (s *Store) hasReturning(ctx context.Context) (bool, error) {
	switch s.returning.Load() {
	case 1:
		return true, nil
	case 2:
		return false, nil
	}
	var v string
	if err := s.db.QueryRowContext(ctx, `SELECT VERSION()`).Scan(&v); err != nil {
		return false, err
	}
	yes := strings.Contains(strings.ToLower(v), "mariadb")
	if yes {
		s.returning.Store(1)
	} else {
		s.returning.Store(2)
	}
	return yes, nil
}

// Take deletes the live record under key and returns it: with one DELETE
// ... RETURNING on MariaDB, or on MySQL with a transaction that locks the
// row and deletes it. It returns [sesh.ErrNotFound] if there is none, or
// [sesh.ErrGone] under a live tombstone, which it leaves in place.
func (s *Store) Take(ctx context.Context, key sesh.Key) (sesh.Record, error) {
	if err := ctx.Err(); err != nil {
		return sesh.Record{}, err
	}
	returning, err := s.hasReturning(ctx)
	if err != nil {
		return sesh.Record{}, s.fail(ctx, "take", err)
	}
	now := s.nowMS()
	var rec sesh.Record
	err = retry(ctx, func() error {
		var (
			data, user       []byte
			version, expires int64
			kind             int16
		)
		if returning {
			err := s.db.QueryRowContext(ctx, s.q.takeReturning, key[:], now).Scan(&data, &version, &expires, &user, &kind)
			if err == nil {
				rec = makeRecord(data, version, expires, user, kind)
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			// Nothing taken: tell a tombstone from nothing.
			var tomb bool
			err = s.db.QueryRowContext(ctx, s.q.gone, key[:], now).Scan(&tomb)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return sesh.ErrNotFound
			case err != nil:
				return err
			case tomb:
				return sesh.ErrGone
			}
			return sesh.ErrNotFound // created after the DELETE looked
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		var tomb bool
		err = tx.QueryRowContext(ctx, s.q.takeSelect, key[:], now).Scan(&data, &version, &expires, &user, &kind, &tomb)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return sesh.ErrNotFound
		case err != nil:
			return err
		case tomb:
			return sesh.ErrGone
		}
		if _, err := tx.ExecContext(ctx, s.q.takeDelete, key[:]); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		rec = makeRecord(data, version, expires, user, kind)
		return nil
	})
	if err != nil {
		return sesh.Record{}, s.fail(ctx, "take", err)
	}
	return rec, nil
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
	rows, err := s.db.QueryContext(ctx, s.q.user, []byte(user), s.nowMS())
	if err != nil {
		return nil, s.fail(ctx, "user records", err)
	}
	out, err := scanEntries(rows)
	if err != nil {
		return nil, s.fail(ctx, "user records", err)
	}
	return out, nil
}

func scanEntries(rows *sql.Rows) ([]sesh.Entry, error) {
	defer rows.Close()
	var out []sesh.Entry
	for rows.Next() {
		var (
			k, data, user    []byte
			version, expires int64
			kind             int16
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
var errCursor = errors.New("mysqlstore: invalid list cursor")

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
	var (
		rows *sql.Rows
		err  error
	)
	if cursor == "" {
		rows, err = s.db.QueryContext(ctx, s.q.listFirst, s.nowMS(), limit+1)
	} else {
		after, perr := hex.DecodeString(cursor)
		if perr != nil || len(after) != len(sesh.Key{}) || hex.EncodeToString(after) != cursor {
			return nil, "", errCursor
		}
		rows, err = s.db.QueryContext(ctx, s.q.listNext, after, s.nowMS(), limit+1)
	}
	if err != nil {
		return nil, "", s.fail(ctx, "list", err)
	}
	out, err := scanEntries(rows)
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
// DELETE ... ORDER BY expires LIMIT, and returns how many it deleted.
// When fewer than limit were left it also deletes up to limit lapsed lock
// leases (not counted).
func (s *Store) Sweep(ctx context.Context, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if limit <= 0 {
		return 0, nil
	}
	now := s.nowMS()
	var n int64
	err := retry(ctx, func() error {
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
		err := retry(ctx, func() error {
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
var errTTL = errors.New("mysqlstore: lock ttl must be positive")

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
		now := s.nowMS()
		var held bool
		err := retry(ctx, func() error {
			res, err := s.db.ExecContext(ctx, s.q.unlock, key[:], owner, now)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			held = n == 1
			if err != nil || held {
				return err
			}
			// Lost: clear this caller's lapsed lease, if it is still there.
			_, err = s.db.ExecContext(ctx, s.q.unlockLapsed, key[:], owner)
			return err
		})
		switch {
		case err != nil:
			return s.fail(ctx, "unlock", err)
		case !held:
			return sesh.ErrLockLost
		}
		return nil
	}
	var b backoff
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		got, err := s.tryLock(ctx, key, owner, ttl)
		if err != nil {
			// Only a timed-out attempt can have taken the lease unseen.
			cleanup(ctx, unlock)
			return nil, s.fail(ctx, "lock", err)
		}
		if got {
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

// lockAttemptTimeout bounds one attempt of Lock to take the lease, which
// ctx does not cut short.
const lockAttemptTimeout = 5 * time.Second

// tryLock makes one attempt to take the lease: insert it, and if a lease
// is there, delete that if it has lapsed and insert again. The attempt
// runs to its end whatever ctx does: one abandoned in flight could still
// take the lease on the server after Lock has returned, locking the key
// for ttl with no one to unlock it.
func (s *Store) tryLock(ctx context.Context, key sesh.Key, owner []byte, ttl time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockAttemptTimeout)
	defer cancel()
	now := s.now()
	var got bool
	err := retry(ctx, func() error {
		for range 2 {
			res, err := s.db.ExecContext(ctx, s.q.lock, key[:], owner, ceilMS(now.Add(ttl)))
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 1 {
				got = n == 1
				return err
			}
			res, err = s.db.ExecContext(ctx, s.q.clearLock, key[:], now.UnixMilli())
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				return err // held by a live lease
			}
		}
		return nil
	})
	return got, err
}

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
