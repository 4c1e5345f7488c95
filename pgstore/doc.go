// Package pgstore is a [sesh.Store] on PostgreSQL, through pgx v5
// (github.com/jackc/pgx/v5). Any number of processes may share one table.
//
// # Usage
//
//	pool, err := pgxpool.New(ctx, "postgres://app@db.internal/app")
//	if err != nil { ... }
//	store, err := pgstore.New(pool) // or pgstore.New(pool, pgstore.WithTable("sessions"), pgstore.WithSchema("auth"))
//	if err != nil { ... }
//	if err := store.Migrate(ctx); err != nil { ... } // or have a DBA apply the DDL below
//	m, err := sesh.New(store, sesh.Config{Keys: keys})
//
// New does no I/O, starts no goroutines and creates nothing: tables are
// created only by [Store.Migrate] (idempotent: CREATE ... IF NOT EXISTS),
// which needs the CREATE privilege. The application itself needs only
// SELECT, INSERT, UPDATE and DELETE on the two tables.
//
// # Schema
//
// With the default table name sesh_records, [Store.Migrate] runs (and
// [Store.DDL] returns, for other names):
//
//	CREATE TABLE IF NOT EXISTS "sesh_records" (
//		k         bytea    NOT NULL PRIMARY KEY CHECK (octet_length(k) = 32),
//		data      bytea    NOT NULL,
//		version   bigint   NOT NULL,
//		expires   bigint   NOT NULL,
//		user_key  bytea,
//		kind      smallint NOT NULL,
//		tombstone boolean  NOT NULL DEFAULT false
//	);
//	ALTER TABLE "sesh_records" ALTER COLUMN data SET STORAGE EXTERNAL;
//	CREATE INDEX IF NOT EXISTS "sesh_records_expires_idx" ON "sesh_records" (expires);
//	CREATE INDEX IF NOT EXISTS "sesh_records_user_idx" ON "sesh_records" (user_key, expires) WHERE user_key IS NOT NULL;
//	CREATE TABLE IF NOT EXISTS "sesh_records_locks" (
//		k       bytea  NOT NULL PRIMARY KEY,
//		owner   bytea  NOT NULL,
//		expires bigint NOT NULL
//	);
//
// k is the 32-byte store key (the SHA-256 of a session ID, never the ID),
// compared as bytes, so no collation can make two keys equal. data is the
// sealed record, already encrypted, hence stored without compression
// (STORAGE EXTERNAL). expires is Unix milliseconds: a record is live while
// expires is after the store's clock; for a tombstone (tombstone = true,
// data empty, version 0) it is the instant the tombstone lapses. user_key
// is Record.User as raw bytes (any bytes round-trip, compared exactly),
// NULL for none; it may be at most [MaxUserLen] bytes. kind is
// Record.Kind. Names longer than PostgreSQL's 63-byte limit are shortened
// with a hash of the table name; [Store.DDL] shows the names in use.
//
// # Operations
//
// Each operation is one statement, with every value a bind parameter and
// every expiry decision taken from the store's clock ([WithClock]; the
// server's NOW() is never used), passed as a parameter:
//
//   - Save with prev == 0 is INSERT ... ON CONFLICT (k) DO UPDATE ...
//     WHERE expires <= now: it replaces only a dead record or a lapsed
//     tombstone, and no affected row means [sesh.ErrConflict].
//   - Save with prev > 0 is UPDATE ... WHERE k = $1 AND version = prev AND
//     expires > now AND NOT tombstone.
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
// releases only its own lease; an unlock that finds its lease lapsed or
// gone returns [sesh.ErrLockLost]. They work with connection pools (unlike
// session-level advisory locks) and across processes. Lease expiry is
// judged by the store's clock, so the clocks of processes sharing a table
// should agree to well within the lock TTL (NTP). A waiting Lock polls
// with backoff from 2 ms to 64 ms, holding no connection in between.
// An attempt to take the lease is never abandoned half way: ctx is checked
// between attempts (each bounded to 5 s), and a lease won after ctx is done
// is released before Lock returns ctx's error, so a caller that gave up
// cannot leave the key locked for the whole TTL.
//
// # Expiry and sweeping
//
// Dead records and lapsed tombstones are invisible at once, but stay in
// the table until swept: New starts no goroutines. Call [Store.Sweep]
// periodically (the sesh manager can, or run `seshctl sweep` from cron),
// for example every minute with a limit of 1000 until it returns less
// than the limit. Each call deletes one batch (about 10 ms for 1000 rows
// on a small server), locking only the rows it deletes (FOR UPDATE SKIP
// LOCKED, then deleting by primary key), so it blocks no live session and
// concurrent sweepers do not wait for each other. Sweep also
// removes lapsed leases left in the locks table by crashed holders.
//
// # Timeouts
//
// pgx honours contexts: a call ends when the sesh manager's deadline
// (Config.StoreTimeout) passes, whatever the server does. Two things in pgx
// outlast that deadline and are worth configuring:
//
//   - The pool opens connections in the background, apart from the
//     caller's context, and without a time limit unless the connection
//     string sets connect_timeout (in seconds; or
//     Config.ConnConfig.ConnectTimeout): to a server that accepts
//     connections and never answers, such attempts hang. Set it, as in
//     postgres://app@db/app?connect_timeout=5 (storeurl defaults it to 5).
//   - A connection whose call was cut off by its deadline is closed in the
//     background: pgx sends a cancel request on a new connection and waits
//     for the server to close the old one, for up to 15 s, and the pool
//     keeps the connection's slot meanwhile. After a hung server or dead
//     connections, all of the pool's MaxConns slots can be held by
//     connections being closed, and the pool serves nothing (each call
//     waits for a slot until its deadline) for up to 15 s, even once the
//     server is back. A MaxConns well above the calls in flight at once
//     (pool_max_conns; pgx's default is the larger of 4 and the number of
//     CPUs) rides out short faults; long ones can still stall the pool so.
//
// # Errors
//
// Outcomes are the sesh sentinels ([sesh.ErrNotFound], [sesh.ErrGone],
// [sesh.ErrConflict], [sesh.ErrTooLarge]); other errors are wrapped with
// the prefix "pgstore:" and keep the pgx error (and, if ctx is done, the
// context's error) in their chain.
package pgstore
