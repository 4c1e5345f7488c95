// Package mysqlstore is a [sesh.Store] on MySQL (8.0 and later) or
// MariaDB (10.5 and later), through database/sql. Any number of processes
// may share one table.
//
// # Usage
//
// The store takes a *sql.DB and imports no driver; with
// github.com/go-sql-driver/mysql:
//
//	import _ "github.com/go-sql-driver/mysql"
//
//	db, err := sql.Open("mysql", "app:secret@tcp(db.internal:3306)/app")
//	if err != nil { ... }
//	store, err := mysqlstore.New(db) // or mysqlstore.New(db, mysqlstore.WithTable("sessions"))
//	if err != nil { ... }
//	if err := store.Migrate(ctx); err != nil { ... } // or have a DBA apply the DDL below
//	m, err := sesh.New(store, sesh.Config{Keys: keys})
//
// No DSN parameter is needed (parseTime, charset and clientFoundRows do
// not matter: every column is binary or an integer, and no statement's
// outcome is read from the affected-row count of an UPDATE that may
// change nothing). interpolateParams=true saves a round trip per
// statement; the driver then escapes binary values as _binary literals.
// Records of up to 16 MiB - 1 fit the data column, but max_allowed_packet
// (16 MiB by default on MariaDB, 64 MiB on MySQL) must leave room for the
// statement.
//
// New does no I/O, starts no goroutines and creates nothing: tables are
// created only by [Store.Migrate] (idempotent: CREATE TABLE IF NOT
// EXISTS), which needs the CREATE privilege. The application itself needs
// only SELECT, INSERT, UPDATE and DELETE on the two tables.
//
// # Schema
//
// With the default table name sesh_records, [Store.Migrate] runs (and
// [Store.DDL] returns, for other names):
//
//	CREATE TABLE IF NOT EXISTS `sesh_records` (
//		k         BINARY(32)      NOT NULL,
//		data      MEDIUMBLOB      NOT NULL,
//		version   BIGINT          NOT NULL,
//		expires   BIGINT          NOT NULL,
//		user_key  VARBINARY(1024) NULL,
//		kind      SMALLINT        NOT NULL,
//		tombstone BOOLEAN         NOT NULL DEFAULT FALSE,
//		PRIMARY KEY (k),
//		KEY expires_idx (expires),
//		KEY user_idx (user_key, expires)
//	) ENGINE=InnoDB;
//	CREATE TABLE IF NOT EXISTS `sesh_records_locks` (
//		k       BINARY(32) NOT NULL,
//		owner   BINARY(16) NOT NULL,
//		expires BIGINT     NOT NULL,
//		PRIMARY KEY (k)
//	) ENGINE=InnoDB;
//
// k is the 32-byte store key (the SHA-256 of a session ID, never the ID),
// a binary string, so no collation (case- or accent-insensitive, PAD
// SPACE) can make two keys equal. data is the sealed record. expires is
// Unix milliseconds: a record is live while expires is after the store's
// clock; for a tombstone (tombstone = TRUE, data empty, version 0) it is
// the instant the tombstone lapses. user_key is Record.User as raw bytes,
// compared exactly (so "Zoë" and "ZOË", or "a" and "a ", stay distinct),
// NULL for none; it may be at most [MaxUserLen] bytes. kind is
// Record.Kind. A locks table name longer than 64 characters is shortened
// with a hash of the table name; [Store.DDL] shows the names in use.
//
// # Operations
//
// Every value is a bind parameter, and every expiry decision is taken from
// the store's clock ([WithClock]; the server's NOW() is never used), passed
// as a parameter:
//
//   - Save with prev > 0 is one UPDATE ... WHERE k = ? AND version = prev
//     AND expires > now AND NOT tombstone. The version always changes, so
//     a matched row is always one affected row.
//   - Save with prev == 0 is INSERT IGNORE, which inserts when the key is
//     free (the common case: keys are random). When a row is there, a
//     short transaction locks it (SELECT ... FOR UPDATE) and overwrites it
//     only if it is a dead record or a lapsed tombstone. (A single INSERT
//     ... ON DUPLICATE KEY UPDATE cannot be used: its affected-row count
//     cannot tell an insert from a row left alone when the connection has
//     CLIENT_FOUND_ROWS set.) INSERT IGNORE is safe here because every
//     value is checked before it is sent, so nothing can be truncated.
//   - Delete leaves a tombstone with INSERT ... ON DUPLICATE KEY UPDATE (a
//     live tombstone is only ever lengthened), or is a plain DELETE.
//   - Take is DELETE ... RETURNING on MariaDB; on MySQL, which lacks it, a
//     transaction that locks the row with SELECT ... FOR UPDATE, then
//     deletes it. The server is told apart by SELECT VERSION() on first use.
//
// Statements that InnoDB aborts as deadlock victims (error 1213) are
// retried, a few times, from the start.
//
// # Capabilities
//
// A [Store] implements [sesh.Store], [sesh.UserIndexer] (through
// user_idx), [sesh.Lister] (keyset pagination on k; the cursor is the hex
// of the last key), [sesh.Sweeper], [sesh.Locker] and [sesh.Taker].
//
// Locks are leases in the locks table: INSERT IGNORE of a row with a
// random owner token takes a free key, a lapsed lease is deleted first,
// and unlock deletes the row only if it still carries the caller's token
// (else it returns [sesh.ErrLockLost]).
// They work across processes and need no session-scoped GET_LOCK. Lease
// expiry is judged by the store's clock, so the clocks of processes
// sharing a table should agree to well within the lock TTL (NTP). A
// waiting Lock polls with backoff from 2 ms to 64 ms, holding no
// connection in between.
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
// than the limit. Each call is one DELETE ... WHERE expires <= ? ORDER BY
// expires LIMIT ?, which walks expires_idx and locks only the rows it
// deletes (and the index gap before the first live one) while it runs:
// about 40 ms for 1000 rows on a small server, so lower the limit if saves
// of just-expired records must never wait that long. Sweep also removes lapsed leases left in the locks
// table by crashed holders.
//
// # Timeouts
//
// With github.com/go-sql-driver/mysql, a call ends when its context's
// deadline (the sesh manager's Config.StoreTimeout) passes, whatever the
// server does: the driver closes the connection. database/sql also opens
// connections in the background, without any deadline, for calls waiting
// for one (which happens only with SetMaxOpenConns); give the DSN a
// timeout (for the dial) and a readTimeout, so that such an attempt cannot
// hang on a server that accepts connections and never answers.
//
// # Errors
//
// Outcomes are the sesh sentinels ([sesh.ErrNotFound], [sesh.ErrGone],
// [sesh.ErrConflict], [sesh.ErrTooLarge]); other errors are wrapped with
// the prefix "mysqlstore:" and keep the driver's error (and, if ctx is
// done, the context's error) in their chain. Server error numbers are read
// from the driver's error value by its Number field (as in
// github.com/go-sql-driver/mysql's MySQLError) without importing the
// driver.
package mysqlstore
