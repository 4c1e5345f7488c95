package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/pgstore"
	"github.com/seshgo/sesh/storetest"
)

const envDSN = "SESH_TEST_POSTGRES"

// dsn returns the test server's DSN. Without one it skips the test, or
// fails it in CI, where every store test must run.
func dsn(tb testing.TB) string {
	tb.Helper()
	d := os.Getenv(envDSN)
	if d == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is not set; CI must run the PostgreSQL tests (see scripts/testservers.sh)", envDSN)
		}
		tb.Skipf("%s is not set; set it to a PostgreSQL DSN (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run this test", envDSN)
	}
	return d
}

// newPool opens a pool on the test server, closed when tb ends.
func newPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(context.Background(), dsn(tb))
	if err != nil {
		tb.Fatalf("pgxpool.New: %v", err)
	}
	tb.Cleanup(pool.Close)
	if err := pool.Ping(context.Background()); err != nil {
		tb.Fatalf("ping %s: %v", envDSN, err)
	}
	return pool
}

// randomTable returns a fresh table name.
func randomTable(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// migrate creates the tables of s and drops them (and the locks table)
// when tb ends.
func migrate(tb testing.TB, pool *pgxpool.Pool, s *pgstore.Store, qualified ...string) {
	tb.Helper()
	if err := s.Migrate(context.Background()); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	tb.Cleanup(func() {
		for _, t := range qualified {
			if _, err := pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+t); err != nil {
				tb.Errorf("drop %s: %v", t, err)
			}
		}
	})
}

// freshStore returns a migrated store on a new random table of pool.
func freshStore(tb testing.TB, pool *pgxpool.Pool, opts ...pgstore.Option) (*pgstore.Store, string) {
	tb.Helper()
	table := randomTable("sesh_test_")
	s, err := pgstore.New(pool, append(opts, pgstore.WithTable(table))...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	migrate(tb, pool, s, pgx.Identifier{table}.Sanitize(), pgx.Identifier{table + "_locks"}.Sanitize())
	return s, table
}

func TestConformance(t *testing.T) {
	pool := newPool(t)
	_, table := freshStore(t, pool)
	storetest.Run(t, func(t *testing.T, now func() time.Time) sesh.Store {
		s, err := pgstore.New(pool, pgstore.WithTable(table), pgstore.WithClock(now))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return s
	})
}

func TestNewValidatesNames(t *testing.T) {
	// The pool never connects: New does no I/O.
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	bad := []string{
		"", "1abc", "a-b", "a b", "a.b", `s"; DROP TABLE u;--`, "s'; DROP TABLE u;--",
		"sessions;", `a"b`, "a`b", "ä", "a\x00b", "tab\t", strings.Repeat("a", 64),
		"public.sessions", "(select 1)",
	}
	for _, name := range bad {
		if _, err := pgstore.New(pool, pgstore.WithTable(name)); err == nil {
			t.Errorf("New(WithTable(%q)): got nil error, want the name rejected", name)
		}
		if name != "" {
			if _, err := pgstore.New(pool, pgstore.WithSchema(name)); err == nil {
				t.Errorf("New(WithSchema(%q)): got nil error, want the name rejected", name)
			}
		}
	}
	good := []string{"a", "_", "sesh_records", "Sessions2", "_x_9", strings.Repeat("a", 63)}
	for _, name := range good {
		if _, err := pgstore.New(pool, pgstore.WithTable(name), pgstore.WithSchema(name)); err != nil {
			t.Errorf("New(WithTable(%q)): got error %v, want nil", name, err)
		}
	}
	if _, err := pgstore.New(nil); err == nil {
		t.Errorf("New(nil): got nil error")
	}
}

func TestMigrateIdempotentAndLongNames(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	// A 63-byte name: the derived names must be shortened, and stay distinct.
	table := randomTable("")
	table = "t" + table + strings.Repeat("x", 63-1-len(table))
	s, err := pgstore.New(pool, pgstore.WithTable(table))
	if err != nil {
		t.Fatal(err)
	}
	var locks string
	for _, stmt := range s.DDL() {
		if strings.HasPrefix(stmt, "CREATE TABLE") && !strings.Contains(stmt, `"`+table+`"`) {
			locks = strings.Fields(stmt)[5]
		}
	}
	if locks == "" {
		t.Fatalf("no locks table in DDL:\n%s", strings.Join(s.DDL(), ";\n"))
	}
	migrate(t, pool, s, pgx.Identifier{table}.Sanitize(), locks)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	var indexes int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE tablename = $1`, table).Scan(&indexes); err != nil {
		t.Fatal(err)
	}
	if indexes != 3 { // primary key, expires, user
		t.Errorf("got %d indexes on %s, want 3", indexes, table)
	}
	var storage string
	err = pool.QueryRow(ctx, `SELECT attstorage::text FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'data'`,
		pgx.Identifier{table}.Sanitize()).Scan(&storage)
	if err != nil || storage != "e" {
		t.Errorf("storage of the data column: got %q (%v), want e (EXTERNAL)", storage, err)
	}
	// A missing index is created again.
	var idx string
	if err := pool.QueryRow(ctx, `SELECT indexname FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE '%(expires)'`, table).Scan(&idx); err != nil {
		t.Fatal(err)
	}
	if len(idx) > 63 {
		t.Errorf("index name %q longer than 63 bytes", idx)
	}
	if _, err := pool.Exec(ctx, "DROP INDEX "+pgx.Identifier{idx}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate after dropping an index: %v", err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE tablename = $1`, table).Scan(&indexes); err != nil || indexes != 3 {
		t.Errorf("after Migrate: got %d indexes (%v), want 3", indexes, err)
	}
	k := sesh.Key{1}
	r := sesh.Record{Data: []byte("x"), Version: 1, Expires: time.Now().Add(time.Hour)}
	if err := s.Save(ctx, k, r, 0); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(ctx, k, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSchema(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	schema := randomTable("sesh_schema_")
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	s, err := pgstore.New(pool, pgstore.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1`, schema).Scan(&n); err != nil || n != 2 {
		t.Fatalf("tables in schema %s: got %d (%v), want 2", schema, n, err)
	}
	k := sesh.Key{2}
	r := sesh.Record{Data: []byte("in schema"), Version: 1, Expires: time.Now().Add(time.Hour), User: "u"}
	if err := s.Save(ctx, k, r, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx, k); err != nil || string(got.Data) != "in schema" {
		t.Fatalf("Load: got (%q, %v)", got.Data, err)
	}
	if es, err := s.UserRecords(ctx, "u"); err != nil || len(es) != 1 {
		t.Fatalf("UserRecords: got (%d, %v), want 1 entry", len(es), err)
	}
}

func TestTwoInstances(t *testing.T) {
	storetest.RunTwoInstances(t, func(t *testing.T, now func() time.Time) (sesh.Store, sesh.Store) {
		a, table := freshStore(t, newPool(t), pgstore.WithClock(now))
		b, err := pgstore.New(newPool(t), pgstore.WithTable(table), pgstore.WithClock(now))
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	})
}

func TestTooLarge(t *testing.T) {
	s, _ := freshStore(t, newPool(t))
	ctx := context.Background()
	k := sesh.Key{3}
	exp := time.Now().Add(time.Hour)
	for name, r := range map[string]sesh.Record{
		"long user":   {Data: []byte("x"), Version: 1, Expires: exp, User: strings.Repeat("u", pgstore.MaxUserLen+1)},
		"big version": {Data: []byte("x"), Version: math.MaxInt64 + 1, Expires: exp},
	} {
		if err := s.Save(ctx, k, r, 0); !errors.Is(err, sesh.ErrTooLarge) {
			t.Errorf("Save(%s): got %v, want ErrTooLarge", name, err)
		}
		if _, err := s.Load(ctx, k); !errors.Is(err, sesh.ErrNotFound) {
			t.Errorf("Load after a failed Save(%s): got %v, want ErrNotFound", name, err)
		}
	}
	r := sesh.Record{Data: []byte("x"), Version: 1, Expires: exp, User: strings.Repeat("u", pgstore.MaxUserLen)}
	if err := s.Save(ctx, k, r, 0); err != nil {
		t.Errorf("Save with a user of MaxUserLen bytes: %v", err)
	}
}

// TestLockAttemptNotAbandoned: a Lock whose ctx ends while its attempt
// waits in the server must not leave a lease behind that no one can
// unlock (the attempt would take it once the server got to it).
func TestLockAttemptNotAbandoned(t *testing.T) {
	pool := newPool(t)
	clock := storetest.NewClock()
	s, table := freshStore(t, pool, pgstore.WithClock(clock.Now))
	ctx := context.Background()
	locks := pgx.Identifier{table + "_locks"}.Sanitize()
	k := sesh.Key{5}
	// A lapsed lease, its row locked by another transaction for 300ms.
	if _, err := pool.Exec(ctx, `INSERT INTO `+locks+` (k, owner, expires) VALUES ($1, $2, $3)`,
		k[:], make([]byte, 16), clock.Now().Add(-time.Second).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM `+locks+` WHERE k = $1 FOR UPDATE`, k[:]); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(300 * time.Millisecond)
		tx.Commit(ctx)
	}()
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	if unlock, err := s.Lock(cctx, k, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			unlock(ctx)
		}
		t.Fatalf("Lock with a 100ms deadline on a row held 300ms: got %v, want DeadlineExceeded", err)
	}
	cancel()
	<-done
	cctx, cancel = context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	unlock, err := s.Lock(cctx, k, time.Minute)
	if err != nil {
		t.Fatalf("Lock after the timed-out one: got %v, want the lock (no lease may be left behind)", err)
	}
	unlock(ctx)
}
