package mysqlstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/mysqlstore"
	"github.com/seshgo/sesh/storetest"
)

const envDSN = "SESH_TEST_MYSQL"

// dsn returns the test server's DSN. Without one it skips the test, or
// fails it in CI, where every store test must run.
func dsn(tb testing.TB) string {
	tb.Helper()
	d := os.Getenv(envDSN)
	if d == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is not set; CI must run the MySQL/MariaDB tests (see scripts/testservers.sh)", envDSN)
		}
		tb.Skipf("%s is not set; set it to a go-sql-driver DSN (e.g. root@tcp(127.0.0.1:3306)/test) to run this test", envDSN)
	}
	return d
}

// newDB opens a handle on the test server, closed when tb ends.
func newDB(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := sql.Open("mysql", dsn(tb))
	if err != nil {
		tb.Fatalf("sql.Open: %v", err)
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(20)
	tb.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		tb.Fatalf("ping %s: %v", envDSN, err)
	}
	return db
}

// randomTable returns a fresh table name.
func randomTable(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// freshStore returns a migrated store on a new random table of db; the
// tables are dropped when tb ends.
func freshStore(tb testing.TB, db *sql.DB, opts ...mysqlstore.Option) (*mysqlstore.Store, string) {
	tb.Helper()
	table := randomTable("sesh_test_")
	s, err := mysqlstore.New(db, append(opts, mysqlstore.WithTable(table))...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := db.Exec("DROP TABLE IF EXISTS `" + table + "`, `" + table + "_locks`"); err != nil {
			tb.Errorf("drop %s: %v", table, err)
		}
	})
	return s, table
}

func TestConformance(t *testing.T) {
	db := newDB(t)
	_, table := freshStore(t, db)
	storetest.Run(t, func(t *testing.T, now func() time.Time) sesh.Store {
		s, err := mysqlstore.New(db, mysqlstore.WithTable(table), mysqlstore.WithClock(now))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return s
	})
}

// TestConformanceMySQLPaths runs the suite with the paths the store takes
// on MySQL, which lacks DELETE ... RETURNING, against the test server.
func TestConformanceMySQLPaths(t *testing.T) {
	db := newDB(t)
	_, table := freshStore(t, db)
	storetest.Run(t, func(t *testing.T, now func() time.Time) sesh.Store {
		s, err := mysqlstore.New(db, mysqlstore.WithTable(table), mysqlstore.WithClock(now))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		mysqlstore.SetReturning(s, false)
		return s
	})
}

func TestNewValidatesNames(t *testing.T) {
	// Opening never connects: New does no I/O.
	db, err := sql.Open("mysql", "nobody@tcp(127.0.0.1:1)/none")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bad := []string{
		"", "1abc", "a-b", "a b", "a.b", `s"; DROP TABLE u;--`, "s'; DROP TABLE u;--",
		"s`; DROP TABLE u;--", "sessions;", "a`b", "ä", "a\x00b", "tab\t", strings.Repeat("a", 64),
		"test.sessions", "(select 1)",
	}
	for _, name := range bad {
		if _, err := mysqlstore.New(db, mysqlstore.WithTable(name)); err == nil {
			t.Errorf("New(WithTable(%q)): got nil error, want the name rejected", name)
		}
	}
	for _, name := range []string{"a", "_", "sesh_records", "Sessions2", "_x_9", strings.Repeat("a", 63)} {
		if _, err := mysqlstore.New(db, mysqlstore.WithTable(name)); err != nil {
			t.Errorf("New(WithTable(%q)): got error %v, want nil", name, err)
		}
	}
	if _, err := mysqlstore.New(nil); err == nil {
		t.Errorf("New(nil): got nil error")
	}
}

func TestMigrateIdempotentAndLongNames(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	table := randomTable("")
	table = "t" + table + strings.Repeat("x", 63-1-len(table))
	s, err := mysqlstore.New(db, mysqlstore.WithTable(table))
	if err != nil {
		t.Fatal(err)
	}
	ddl := s.DDL()
	locks := strings.Trim(strings.Fields(ddl[1])[5], "`")
	if len(locks) > 64 || locks == table+"_locks" {
		t.Fatalf("locks table %q: want a shortened name of at most 64 characters", locks)
	}
	t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS `" + table + "`, `" + locks + "`") })
	for range 2 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	}
	k := sesh.Key{1}
	if err := s.Save(ctx, k, sesh.Record{Data: []byte("x"), Version: 1, Expires: time.Now().Add(time.Hour)}, 0); err != nil {
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

func TestTwoInstances(t *testing.T) {
	for _, returning := range []bool{true, false} {
		t.Run(map[bool]string{true: "Returning", false: "NoReturning"}[returning], func(t *testing.T) {
			storetest.RunTwoInstances(t, func(t *testing.T, now func() time.Time) (sesh.Store, sesh.Store) {
				a, table := freshStore(t, newDB(t), mysqlstore.WithClock(now))
				b, err := mysqlstore.New(newDB(t), mysqlstore.WithTable(table), mysqlstore.WithClock(now))
				if err != nil {
					t.Fatal(err)
				}
				mysqlstore.SetReturning(a, returning)
				mysqlstore.SetReturning(b, returning)
				return a, b
			})
		})
	}
}

func TestTooLarge(t *testing.T) {
	s, _ := freshStore(t, newDB(t))
	ctx := context.Background()
	k := sesh.Key{3}
	exp := time.Now().Add(time.Hour)
	for name, r := range map[string]sesh.Record{
		"long user":   {Data: []byte("x"), Version: 1, Expires: exp, User: strings.Repeat("u", mysqlstore.MaxUserLen+1)},
		"big version": {Data: []byte("x"), Version: math.MaxInt64 + 1, Expires: exp},
		"big data":    {Data: make([]byte, 1<<24), Version: 1, Expires: exp},
	} {
		if err := s.Save(ctx, k, r, 0); !errors.Is(err, sesh.ErrTooLarge) {
			t.Errorf("Save(%s): got %v, want ErrTooLarge", name, err)
		}
		if _, err := s.Load(ctx, k); !errors.Is(err, sesh.ErrNotFound) {
			t.Errorf("Load after a failed Save(%s): got %v, want ErrNotFound", name, err)
		}
	}
	r := sesh.Record{Data: []byte("x"), Version: 1, Expires: exp, User: strings.Repeat("u", mysqlstore.MaxUserLen)}
	if err := s.Save(ctx, k, r, 0); err != nil {
		t.Errorf("Save with a user of MaxUserLen bytes: %v", err)
	}
	if got, err := s.Load(ctx, k); err != nil || got.User != r.User {
		t.Errorf("Load: got user of %d bytes (%v), want %d", len(got.User), err, len(r.User))
	}
}

// TestErrNumber checks that the store reads the driver's error numbers.
func TestErrNumber(t *testing.T) {
	db := newDB(t)
	_, table := freshStore(t, db)
	ins := "INSERT INTO `" + table + "` (k, data, version, expires, kind) VALUES (?, '', 1, 0, 0)"
	k := make([]byte, 32)
	if _, err := db.Exec(ins, k); err != nil {
		t.Fatal(err)
	}
	_, err := db.Exec(ins, k)
	if n, ok := mysqlstore.ErrNumber(err); !ok || n != 1062 {
		t.Fatalf("ErrNumber(%v): got (%d, %v), want (1062, true)", err, n, ok)
	}
	if n, ok := mysqlstore.ErrNumber(errors.New("Error 1062: not a driver error")); ok {
		t.Fatalf("ErrNumber(plain error): got (%d, true), want false", n)
	}
}

// TestCreateOverDeadConcurrently races creators over a dead record: the
// insert fails for all of them, and exactly one may replace it.
func TestCreateOverDeadConcurrently(t *testing.T) {
	s, _ := freshStore(t, newDB(t))
	ctx := context.Background()
	for round := range 5 {
		var k sesh.Key
		rand.Read(k[:])
		dead := sesh.Record{Data: []byte("dead"), Version: 7, Expires: time.Now().Add(-time.Minute)}
		if err := s.Save(ctx, k, dead, 0); err != nil {
			t.Fatal(err)
		}
		const n = 12
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				errs[i] = s.Save(ctx, k, sesh.Record{Data: []byte{byte(i)}, Version: 1, Expires: time.Now().Add(time.Hour)}, 0)
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: creators %d and %d both succeeded", round, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, sesh.ErrConflict):
				t.Fatalf("round %d: creator %d: %v", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no creator succeeded", round)
		}
		if got, err := s.Load(ctx, k); err != nil || len(got.Data) != 1 || int(got.Data[0]) != winner {
			t.Fatalf("round %d: Load: got (%q, %v), want the winner's (%d)", round, got.Data, err, winner)
		}
	}
}

// TestLockAttemptNotAbandoned: a Lock whose ctx ends while its attempt
// waits in the server must not leave a lease behind that no one can
// unlock (the attempt would take it once the server got to it).
func TestLockAttemptNotAbandoned(t *testing.T) {
	db := newDB(t)
	clock := storetest.NewClock()
	s, table := freshStore(t, db, mysqlstore.WithClock(clock.Now))
	ctx := context.Background()
	locks := "`" + table + "_locks`"
	k := sesh.Key{5}
	// The key is free, but another transaction holds the gap it would go
	// in (a locking read of the absent key, under REPEATABLE READ) for
	// 300ms, so the insert of the lease waits.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(`SELECT 1 FROM `+locks+` WHERE k = ? FOR UPDATE`, k[:])
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(300 * time.Millisecond)
		tx.Commit()
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
