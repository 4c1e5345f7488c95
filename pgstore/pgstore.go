package pgstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
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
// Save returns [sesh.ErrTooLarge] for a longer one. (It keeps user_key
// index entries well inside PostgreSQL's B-tree limit, and is the same for
// every sesh SQL store.)
const MaxUserLen = 1024

// maxListLimit caps the page size of List.
const maxListLimit = 10000

// maxIdent is PostgreSQL's identifier length limit (NAMEDATALEN - 1).
const maxIdent = 63

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// An Option configures a [Store] made by [New].
type Option func(*config)

type config struct {
	table  string
	schema string
	now    func() time.Time
}

// WithTable sets the name of the records table (default [DefaultTable]).
// It must match ^[A-Za-z_][A-Za-z0-9_]{0,62}$; New rejects any other name.
// The locks table is named after it, with the suffix _locks.
func WithTable(name string) Option { return func(c *config) { c.table = name } }

// WithSchema puts the tables in the named schema, which must exist,
// instead of the first schema of the connection's search_path. The name
// must match ^[A-Za-z_][A-Za-z0-9_]{0,62}$.
func WithSchema(name string) Option { return func(c *config) { c.schema = name } }

// WithClock sets the clock that decides every expiry: of records,
// tombstones and lock leases (default time.Now). The database's own clock
// is never used.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Store is a session store in a PostgreSQL table. It is safe for
// concurrent use by any number of goroutines and processes. Make one with
// [New].
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
	name string // the qualified, quoted records table
	ddl  []string
	q    queries

	// objects are the qualified, quoted names of the tables and indexes
	// that Migrate creates, records table first.
	objects []string
}

type queries struct {
	load, create, replace, tombstone, del, take, gone string
	user, listFirst, listNext, sweep, sweepLocks      string
	lock, unlock                                      string
}

// New returns a store on pool. It checks the options but does no I/O:
// call [Store.Migrate] (or apply [Store.DDL]) before first use.
func New(pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	if pool == nil {
		return nil, errors.New("pgstore: nil pool")
	}
	c := config{table: DefaultTable, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	if !identRE.MatchString(c.table) {
		return nil, fmt.Errorf("pgstore: invalid table name %q: want ^[A-Za-z_][A-Za-z0-9_]{0,62}$", c.table)
	}
	if c.schema != "" && !identRE.MatchString(c.schema) {
		return nil, fmt.Errorf("pgstore: invalid schema name %q: want ^[A-Za-z_][A-Za-z0-9_]{0,62}$", c.schema)
	}
	if c.now == nil {
		c.now = time.Now
	}
	qualify := func(name string) string {
		if c.schema == "" {
			return pgx.Identifier{name}.Sanitize()
		}
		return pgx.Identifier{c.schema, name}.Sanitize()
	}
	t := qualify(c.table)
	l := qualify(derivedName(c.table, "_locks"))
	expIdxName, userIdxName := derivedName(c.table, "_expires_idx"), derivedName(c.table, "_user_idx")
	expIdx, userIdx := pgx.Identifier{expIdxName}.Sanitize(), pgx.Identifier{userIdxName}.Sanitize()
	s := &Store{pool: pool, now: c.now, name: t, objects: []string{t, l, qualify(expIdxName), qualify(userIdxName)}}
	s.ddl = []string{
		`CREATE TABLE IF NOT EXISTS ` + t + ` (
	k         bytea    NOT NULL PRIMARY KEY CHECK (octet_length(k) = 32),
	data      bytea    NOT NULL,
	version   bigint   NOT NULL,
	expires   bigint   NOT NULL,
	user_key  bytea,
	kind      smallint NOT NULL,
	tombstone boolean  NOT NULL DEFAULT false
)`,
		`ALTER TABLE ` + t + ` ALTER COLUMN data SET STORAGE EXTERNAL`,
		`CREATE INDEX IF NOT EXISTS ` + expIdx + ` ON ` + t + ` (expires)`,
		`CREATE INDEX IF NOT EXISTS ` + userIdx + ` ON ` + t + ` (user_key, expires) WHERE user_key IS NOT NULL`,
		`CREATE TABLE IF NOT EXISTS ` + l + ` (
	k       bytea  NOT NULL PRIMARY KEY,
	owner   bytea  NOT NULL,
	expires bigint NOT NULL
)`,
	}
	const cols = `data, version, expires, user_key, kind`
	s.q = queries{
		load: `SELECT ` + cols + `, tombstone FROM ` + t + ` WHERE k = $1 AND expires > $2`,
		create: `INSERT INTO ` + t + ` AS r (k, data, version, expires, user_key, kind, tombstone)
VALUES ($1, $2, $3, $4, $5, $6, false)
ON CONFLICT (k) DO UPDATE SET data = EXCLUDED.data, version = EXCLUDED.version,
	expires = EXCLUDED.expires, user_key = EXCLUDED.user_key, kind = EXCLUDED.kind, tombstone = false
WHERE r.expires <= $7`,
		replace: `UPDATE ` + t + ` SET data = $2, version = $3, expires = $4, user_key = $5, kind = $6
WHERE k = $1 AND version = $7 AND expires > $8 AND NOT tombstone`,
		tombstone: `INSERT INTO ` + t + ` AS r (k, data, version, expires, user_key, kind, tombstone)
VALUES ($1, '', 0, $2, NULL, 0, true)
ON CONFLICT (k) DO UPDATE SET data = '', version = 0, user_key = NULL, kind = 0, tombstone = true,
	expires = CASE WHEN r.tombstone THEN GREATEST(r.expires, EXCLUDED.expires) ELSE EXCLUDED.expires END`,
		del:  `DELETE FROM ` + t + ` WHERE k = $1 AND NOT (tombstone AND expires > $2)`,
		take: `DELETE FROM ` + t + ` WHERE k = $1 AND expires > $2 AND NOT tombstone RETURNING ` + cols,
		gone: `SELECT tombstone FROM ` + t + ` WHERE k = $1 AND expires > $2`,
		user: `SELECT k, ` + cols + ` FROM ` + t + ` WHERE user_key = $1 AND expires > $2 AND NOT tombstone`,
		listFirst: `SELECT k, ` + cols + ` FROM ` + t + ` WHERE expires > $1 AND NOT tombstone
ORDER BY k LIMIT $2`,
		listNext: `SELECT k, ` + cols + ` FROM ` + t + ` WHERE k > $3 AND expires > $1 AND NOT tombstone
ORDER BY k LIMIT $2`,
		sweep: `DELETE FROM ` + t + ` WHERE k = ANY(ARRAY(
	SELECT k FROM ` + t + ` WHERE expires <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED
)) AND expires <= $1`,
		sweepLocks: `DELETE FROM ` + l + ` WHERE k = ANY(ARRAY(
	SELECT k FROM ` + l + ` WHERE expires <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED
)) AND expires <= $1`,
		lock: `INSERT INTO ` + l + ` AS l (k, owner, expires) VALUES ($1, $2, $3)
ON CONFLICT (k) DO UPDATE SET owner = EXCLUDED.owner, expires = EXCLUDED.expires
WHERE l.expires <= $4`,
		unlock: `DELETE FROM ` + l + ` WHERE k = $1 AND owner = $2 RETURNING expires`,
	}
	return s, nil
}

// derivedName returns table+suffix, shortened with a hash of table when
// that is longer than PostgreSQL's identifier limit, so that distinct
// tables keep distinct derived names.
func derivedName(table, suffix string) string {
	if len(table)+len(suffix) <= maxIdent {
		return table + suffix
	}
	sum := sha256.Sum256([]byte(table))
	h := "_" + hex.EncodeToString(sum[:4])
	return table[:maxIdent-len(suffix)-len(h)] + h + suffix
}

// DDL returns the statements that [Store.Migrate] runs, in order, for the
// configured table and schema names, so that a DBA can apply them instead.
func (s *Store) DDL() []string { return append([]string(nil), s.ddl...) }

// Migrate creates the tables and indexes if they do not exist. It is
// idempotent and safe to run from several processes at once. When they
// all exist it only looks (with to_regclass), so that running it at every
// start takes no table lock; otherwise it runs [Store.DDL] in one
// transaction under a transaction-scoped advisory lock, setting the
// storage of the data column only on a table it has just created. It
// never alters or drops anything else.
func (s *Store) Migrate(ctx context.Context) error {
	exists := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}, names []string) (bool, error) {
		var ok bool
		err := q.QueryRow(ctx, `SELECT bool_and(to_regclass(n) IS NOT NULL) FROM unnest($1::text[]) AS n`, names).Scan(&ok)
		return ok, err
	}
	if ok, err := exists(s.pool, s.objects); err != nil {
		return s.fail(ctx, "migrate", err)
	} else if ok {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "sesh migrate "+s.name); err != nil {
			return err
		}
		hadTable, err := exists(tx, s.objects[:1])
		if err != nil {
			return err
		}
		for _, stmt := range s.ddl {
			if hadTable && strings.HasPrefix(stmt, "ALTER TABLE") {
				continue
			}
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.fail(ctx, "migrate", err)
	}
	return nil
}

// errVersion is returned by Save when the caller breaks the rule that
// rec.Version exceeds prev.
var errVersion = errors.New("pgstore: rec.Version must be greater than prev")

// fail wraps err from an operation, adding ctx's error when ctx is done
// and the driver did not say so, and sesh.ErrTooLarge for PostgreSQL's
// size limits.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("pgstore: %s: %w (%w)", op, err, cerr)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "54000" || pgErr.Code == "54001") {
		return fmt.Errorf("pgstore: %s: %w: %w", op, sesh.ErrTooLarge, err)
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
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
	err := s.pool.QueryRow(ctx, s.q.load, key[:], s.nowMS()).Scan(&data, &version, &expires, &user, &kind, &tomb)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return sesh.Record{}, sesh.ErrNotFound
	case err != nil:
		return sesh.Record{}, s.fail(ctx, "load", err)
	case tomb:
		return sesh.Record{}, sesh.ErrGone
	}
	return makeRecord(data, version, expires, user, kind), nil
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
	var (
		tag pgconn.CommandTag
		err error
	)
	if prev == 0 {
		tag, err = s.pool.Exec(ctx, s.q.create, key[:], data, int64(rec.Version), rec.Expires.UnixMilli(),
			userArg(rec.User), int16(rec.Kind), s.nowMS())
	} else {
		tag, err = s.pool.Exec(ctx, s.q.replace, key[:], data, int64(rec.Version), rec.Expires.UnixMilli(),
			userArg(rec.User), int16(rec.Kind), int64(prev), s.nowMS())
	}
	if err != nil {
		return s.fail(ctx, "save", err)
	}
	if tag.RowsAffected() == 0 {
		return sesh.ErrConflict
	}
	return nil
}

// checkRecord checks what Save can check before writing.
func checkRecord(rec sesh.Record, prev uint64) error {
	switch {
	case rec.Version <= prev:
		return fmt.Errorf("%w (version %d, prev %d)", errVersion, rec.Version, prev)
	case rec.Version > math.MaxInt64:
		return fmt.Errorf("pgstore: version %d above the bigint range: %w", rec.Version, sesh.ErrTooLarge)
	case len(rec.User) > MaxUserLen:
		return fmt.Errorf("pgstore: user of %d bytes, above MaxUserLen (%d): %w", len(rec.User), MaxUserLen, sesh.ErrTooLarge)
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
	var err error
	if ts := tombstone.UnixMilli(); !tombstone.IsZero() && ts > now {
		_, err = s.pool.Exec(ctx, s.q.tombstone, key[:], ts)
	} else {
		_, err = s.pool.Exec(ctx, s.q.del, key[:], now)
	}
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
	var (
		data, user       []byte
		version, expires int64
		kind             int16
	)
	err := s.pool.QueryRow(ctx, s.q.take, key[:], now).Scan(&data, &version, &expires, &user, &kind)
	if err == nil {
		return makeRecord(data, version, expires, user, kind), nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return sesh.Record{}, s.fail(ctx, "take", err)
	}
	// Nothing taken: tell a tombstone from nothing.
	var tomb bool
	err = s.pool.QueryRow(ctx, s.q.gone, key[:], now).Scan(&tomb)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return sesh.Record{}, sesh.ErrNotFound
	case err != nil:
		return sesh.Record{}, s.fail(ctx, "take", err)
	case tomb:
		return sesh.Record{}, sesh.ErrGone
	}
	// A record appeared after the DELETE: it was not there to take.
	return sesh.Record{}, sesh.ErrNotFound
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
	rows, err := s.pool.Query(ctx, s.q.user, []byte(user), s.nowMS())
	if err != nil {
		return nil, s.fail(ctx, "user records", err)
	}
	out, err := scanEntries(rows)
	if err != nil {
		return nil, s.fail(ctx, "user records", err)
	}
	return out, nil
}

func scanEntries(rows pgx.Rows) ([]sesh.Entry, error) {
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
var errCursor = errors.New("pgstore: invalid list cursor")

// List returns up to limit live records in key order after cursor, which
// is "" or the lower-case hex of the last key of the previous page; see
// [sesh.Lister]. Each call is one indexed range query (keyset pagination),
// reading at most limit+1 live rows; limit is capped at 10000.
func (s *Store) List(ctx context.Context, cursor string, limit int) ([]sesh.Entry, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		return nil, cursor, nil
	}
	limit = min(limit, maxListLimit)
	var (
		rows pgx.Rows
		err  error
	)
	if cursor == "" {
		rows, err = s.pool.Query(ctx, s.q.listFirst, s.nowMS(), limit+1)
	} else {
		after, perr := hex.DecodeString(cursor)
		if perr != nil || len(after) != len(sesh.Key{}) || hex.EncodeToString(after) != cursor {
			return nil, "", errCursor
		}
		rows, err = s.pool.Query(ctx, s.q.listNext, s.nowMS(), limit+1, after)
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
// statement that locks only the rows it deletes, skipping rows that other
// transactions hold, and returns how many it deleted. When fewer than
// limit were left it also deletes up to limit lapsed lock leases (not
// counted).
func (s *Store) Sweep(ctx context.Context, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if limit <= 0 {
		return 0, nil
	}
	now := s.nowMS()
	tag, err := s.pool.Exec(ctx, s.q.sweep, now, limit)
	if err != nil {
		return 0, s.fail(ctx, "sweep", err)
	}
	n := int(tag.RowsAffected())
	if n < limit {
		if _, err := s.pool.Exec(ctx, s.q.sweepLocks, now, limit); err != nil {
			return n, s.fail(ctx, "sweep locks", err)
		}
	}
	return n, nil
}

// errTTL is returned by Lock for a ttl that is not positive.
var errTTL = errors.New("pgstore: lock ttl must be positive")

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
		err := s.pool.QueryRow(ctx, s.q.unlock, key[:], owner).Scan(&expires)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
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
		// The attempt runs to its end whatever ctx does: one abandoned in
		// flight could still take the lease on the server after Lock has
		// returned, locking the key for ttl with no one to unlock it.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockAttemptTimeout)
		tag, err := s.pool.Exec(actx, s.q.lock, key[:], owner, ceilMS(now.Add(ttl)), now.UnixMilli())
		cancel()
		if err != nil {
			// Only a timed-out attempt can have taken the lease unseen.
			cleanup(ctx, unlock)
			return nil, s.fail(ctx, "lock", err)
		}
		if tag.RowsAffected() == 1 {
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
