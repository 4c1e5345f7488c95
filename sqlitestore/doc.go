// Package sqlitestore is a [sesh.Store] in an SQLite database, through
// database/sql, for one machine: the processes sharing the database file
// must share its file system (SQLite's locking does not work over network
// file systems). It needs SQLite 3.35 or later (for DELETE ... RETURNING).
//
// # Usage
//
// The store takes a *sql.DB and imports no driver; with the pure-Go
// modernc.org/sqlite:
//
//	import _ "modernc.org/sqlite"
//
//	db, err := sql.Open("sqlite", "file:/var/lib/myapp/sessions.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
//	if err != nil { ... }
//	store, err := sqlitestore.New(db) // or sqlitestore.New(db, sqlitestore.WithTable("sessions"))
//	if err != nil { ... }
//	if err := store.Migrate(ctx); err != nil { ... }
//	m, err := sesh.New(store, sesh.Config{Keys: keys})
//
// Open the database with both pragmas, as above (they apply to every
// connection of the pool):
//
//   - journal_mode(WAL) lets readers run alongside the one writer, so that
//     loading sessions never waits for a save. It is kept in the file;
//     synchronous(NORMAL) may be added for faster commits that stay
//     consistent (a power loss may lose the last few).
//   - busy_timeout(5000) makes a connection that finds the database
//     locked by another writer wait up to 5 s, inside SQLite, instead of
//     failing at once with SQLITE_BUSY.
//
// Every statement of the store runs on its own (autocommit), never in a
// transaction that could have to upgrade from reading to writing, so a
// busy handler can always resolve contention. Should SQLITE_BUSY or
// SQLITE_LOCKED reach the store all the same (say, busy_timeout was not
// set), it retries the statement, which wrote nothing, with backoff from
// 1 ms to 50 ms for up to 5 s in all, or until ctx is done. Do not use an
// in-memory database (":memory:") with a pool: each connection would have
// its own. With mattn/go-sqlite3 use "file:...?_busy_timeout=5000&_journal_mode=WAL".
//
// New does no I/O, starts no goroutines and creates nothing: tables are
// created only by [Store.Migrate] (idempotent: CREATE ... IF NOT EXISTS).
//
// # Schema
//
// With the default table name sesh_records, [Store.Migrate] runs (and
// [Store.DDL] returns, for other names):
//
//	CREATE TABLE IF NOT EXISTS "sesh_records" (
//		k         BLOB    NOT NULL PRIMARY KEY CHECK (typeof(k) = 'blob' AND length(k) = 32),
//		data      BLOB    NOT NULL,
//		version   INTEGER NOT NULL,
//		expires   INTEGER NOT NULL,
//		user_key  BLOB,
//		kind      INTEGER NOT NULL,
//		tombstone INTEGER NOT NULL DEFAULT 0
//	);
//	CREATE INDEX IF NOT EXISTS "sesh_records_expires_idx" ON "sesh_records" (expires);
//	CREATE INDEX IF NOT EXISTS "sesh_records_user_idx" ON "sesh_records" (user_key, expires) WHERE user_key IS NOT NULL;
//	CREATE TABLE IF NOT EXISTS "sesh_records_locks" (
//		k       BLOB    NOT NULL PRIMARY KEY,
//		owner   BLOB    NOT NULL,
//		expires INTEGER NOT NULL
//	);
//
// k is the 32-byte store key (the SHA-256 of a session ID, never the ID),
// a BLOB compared with memcmp, so no collation can make two keys equal.
// data is the sealed record. expires is Unix milliseconds: a record is live
// while expires is after the store's clock; for a tombstone (tombstone =
// 1, data empty, version 0) it is the instant the tombstone lapses.
// user_key is Record.User as a BLOB (any bytes round-trip, compared
// exactly), NULL for none; it may be at most [MaxUserLen] bytes, like the
// other sesh SQL stores. kind is Record.Kind.
//
// # Operations
//
// Each operation is one statement, with every value a bind parameter and
// every expiry decision taken from the store's clock ([WithClock]), passed
// as a parameter:
//
//   - Save with prev == 0 is INSERT ... ON CONFLICT (k) DO UPDATE ...
//     WHERE expires <= now: it replaces only a dead record or a lapsed
//     tombstone, and no changed row means [sesh.ErrConflict].
//   - Save with prev > 0 is UPDATE ... WHERE k = ? AND version = prev AND
//     expires > now AND tombstone = 0.
//   - Delete leaves a tombstone with an upsert (a live tombstone is only
//     ever lengthened), or is a plain DELETE.
//   - Take is DELETE ... RETURNING.
//
// # Capabilities
//
// A [Store] implements [sesh.Store], [sesh.UserIndexer] (through the
// user_key index), [sesh.Lister] (keyset pagination on k; the cursor is the
// hex of the last key), [sesh.Sweeper], [sesh.Locker] and [sesh.Taker].
//
// Locks are leases in the locks table, taken with an upsert that succeeds
// only over a lapsed lease and carrying a random owner token, so an unlock
// releases only its own lease (one that finds its lease lapsed or gone
// returns [sesh.ErrLockLost]); they hold across the processes sharing the
// file. Lease expiry is judged by the store's clock. A waiting Lock polls
// with backoff from 2 ms to 64 ms.
// An attempt to take the lease is never abandoned half way: ctx is checked
// between attempts (each bounded to 5 s), and a lease won after ctx is done
// is released before Lock returns ctx's error, so a caller that gave up
// cannot leave the key locked for the whole TTL.
//
// # Expiry and sweeping
//
// Dead records and lapsed tombstones are invisible at once, but stay in
// the file until swept: New starts no goroutines. Call [Store.Sweep]
// periodically (the sesh manager can, or run `seshctl sweep` from cron),
// for example every minute with a limit of a few hundred until it returns
// less than the limit. Each call is one write transaction, and SQLite has
// one writer at a time, so the limit bounds how long a sweep holds up
// saves: with modernc.org/sqlite on two cores a batch of 1000 takes about
// 50 ms (up to a few hundred when a WAL checkpoint falls in it). Sweep also
// removes lapsed leases left in the locks table by crashed holders.
// Deleted pages are reused; run VACUUM (or set auto_vacuum) to give space
// back to the file system.
//
// # Errors
//
// Outcomes are the sesh sentinels ([sesh.ErrNotFound], [sesh.ErrGone],
// [sesh.ErrConflict], [sesh.ErrTooLarge]); other errors are wrapped with
// the prefix "sqlitestore:" and keep the driver's error (and, if ctx is
// done, the context's error) in their chain.
package sqlitestore
