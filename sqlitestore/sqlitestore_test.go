package sqlitestore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/sqlitestore"
	"github.com/seshgo/sesh/storetest"
	_ "modernc.org/sqlite"
)

// pragmas are the ones the package documentation asks for.
const pragmas = "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"

// openDB opens the database file at path with the DSN suffix opts, closed
// when tb ends.
func openDB(tb testing.TB, path, opts string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+opts)
	if err != nil {
		tb.Fatalf("sql.Open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		tb.Fatalf("ping %s: %v", path, err)
	}
	return db
}

// newDB opens a new database file with the documented pragmas, and
// returns it and its path.
func newDB(tb testing.TB) (*sql.DB, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "sessions.db")
	return openDB(tb, path, pragmas), path
}

// freshStore returns a migrated store on a new random table of db.
func freshStore(tb testing.TB, db *sql.DB, opts ...sqlitestore.Option) (*sqlitestore.Store, string) {
	tb.Helper()
	var b [6]byte
	rand.Read(b[:])
	table := "sesh_test_" + strconv.FormatUint(uint64(b[0])<<40|uint64(b[1])<<32|uint64(b[2])<<24|uint64(b[3])<<16|uint64(b[4])<<8|uint64(b[5]), 36)
	s, err := sqlitestore.New(db, append(opts, sqlitestore.WithTable(table))...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := db.Exec(`DROP TABLE IF EXISTS "` + table + `"`); err != nil {
			tb.Errorf("drop %s: %v", table, err)
		}
		if _, err := db.Exec(`DROP TABLE IF EXISTS "` + table + `_locks"`); err != nil {
			tb.Errorf("drop %s_locks: %v", table, err)
		}
	})
	return s, table
}

func TestConformance(t *testing.T) {
	db, _ := newDB(t)
	_, table := freshStore(t, db)
	storetest.Run(t, func(t *testing.T, now func() time.Time) sesh.Store {
		s, err := sqlitestore.New(db, sqlitestore.WithTable(table), sqlitestore.WithClock(now))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return s
	})
}

func TestNewValidatesNames(t *testing.T) {
	// Opening never touches the file: New does no I/O.
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "never.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bad := []string{
		"", "1abc", "a-b", "a b", "a.b", `s"; DROP TABLE u;--`, "s'; DROP TABLE u;--",
		"sessions;", `a"b`, "a]b", "[a]", "ä", "a\x00b", "tab\t", strings.Repeat("a", 64),
		"main.sessions", "(select 1)",
	}
	for _, name := range bad {
		if _, err := sqlitestore.New(db, sqlitestore.WithTable(name)); err == nil {
			t.Errorf("New(WithTable(%q)): got nil error, want the name rejected", name)
		}
	}
	for _, name := range []string{"a", "_", "sesh_records", "Sessions2", "_x_9", strings.Repeat("a", 63)} {
		if _, err := sqlitestore.New(db, sqlitestore.WithTable(name)); err != nil {
			t.Errorf("New(WithTable(%q)): got error %v, want nil", name, err)
		}
	}
	if _, err := sqlitestore.New(nil); err == nil {
		t.Errorf("New(nil): got nil error")
	}
}

func TestMigrateIdempotent(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	s, table := freshStore(t, db)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL`, table).Scan(&n); err != nil || n != 2 {
		t.Fatalf("indexes on %s: got %d (%v), want 2", table, n, err)
	}
	// The key must be a 32-byte BLOB.
	for _, k := range []any{"0123456789abcdef0123456789abcdef", make([]byte, 31)} {
		if _, err := db.Exec(`INSERT INTO "`+table+`" (k, data, version, expires, kind) VALUES (?, x'', 1, 0, 0)`, k); err == nil {
			t.Errorf("insert of key %q: got nil error, want the CHECK to refuse it", k)
		}
	}
}

func TestTwoInstances(t *testing.T) {
	storetest.RunTwoInstances(t, func(t *testing.T, now func() time.Time) (sesh.Store, sesh.Store) {
		dbA, path := newDB(t)
		a, table := freshStore(t, dbA, sqlitestore.WithClock(now))
		b, err := sqlitestore.New(openDB(t, path, pragmas), sqlitestore.WithTable(table), sqlitestore.WithClock(now))
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	})
}

func TestTooLarge(t *testing.T) {
	db, _ := newDB(t)
	s, _ := freshStore(t, db)
	ctx := context.Background()
	k := sesh.Key{3}
	exp := time.Now().Add(time.Hour)
	for name, r := range map[string]sesh.Record{
		"long user":   {Data: []byte("x"), Version: 1, Expires: exp, User: strings.Repeat("u", sqlitestore.MaxUserLen+1)},
		"big version": {Data: []byte("x"), Version: math.MaxInt64 + 1, Expires: exp},
	} {
		if err := s.Save(ctx, k, r, 0); !errors.Is(err, sesh.ErrTooLarge) {
			t.Errorf("Save(%s): got %v, want ErrTooLarge", name, err)
		}
		if _, err := s.Load(ctx, k); !errors.Is(err, sesh.ErrNotFound) {
			t.Errorf("Load after a failed Save(%s): got %v, want ErrNotFound", name, err)
		}
	}
}

// TestBusyWithoutTimeout checks that the store waits out another
// connection's write lock even when busy_timeout was not set, and gives up
// when ctx is done.
func TestBusyWithoutTimeout(t *testing.T) {
	_, path := newDB(t) // creates the file in WAL mode
	db := openDB(t, path, "")
	other := openDB(t, path, "")
	s, _ := freshStore(t, db)
	ctx := context.Background()
	k := sesh.Key{7}
	r := sesh.Record{Data: []byte("before"), Version: 1, Expires: time.Now().Add(time.Hour)}
	if err := s.Save(ctx, k, r, 0); err != nil {
		t.Fatal(err)
	}

	hold := func(d time.Duration) (release func()) {
		conn, err := other.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			time.Sleep(d)
			if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
				t.Errorf("COMMIT: %v", err)
			}
			conn.Close()
		}()
		return func() { <-done }
	}

	// Without the retry, this would fail at once with SQLITE_BUSY.
	release := hold(300 * time.Millisecond)
	start := time.Now()
	r2 := sesh.Record{Data: []byte("after"), Version: 2, Expires: time.Now().Add(time.Hour)}
	if err := s.Save(ctx, k, r2, 1); err != nil {
		t.Fatalf("Save while another connection writes: got %v, want nil after waiting", err)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("Save returned after %v, before the write lock was released", waited)
	}
	release()

	release = hold(500 * time.Millisecond)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := s.Save(cctx, k, sesh.Record{Data: []byte("late"), Version: 3, Expires: time.Now().Add(time.Hour)}, 2)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, sesh.ErrConflict) {
		t.Fatalf("Save with a 50ms deadline while the database is locked: got %v, want an error wrapping DeadlineExceeded", err)
	}
	release()
	if got, err := s.Load(ctx, k); err != nil || string(got.Data) != "after" {
		t.Fatalf("Load: got (%q, %v), want the record of the Save that succeeded", got.Data, err)
	}
}

// TestConcurrentWritersTwoHandles runs compare-and-set increments on one
// key from two database handles at once, without busy_timeout.
func TestConcurrentWritersTwoHandles(t *testing.T) {
	_, path := newDB(t)
	dbA, dbB := openDB(t, path, ""), openDB(t, path, "")
	a, table := freshStore(t, dbA)
	b, err := sqlitestore.New(dbB, sqlitestore.WithTable(table))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k := sesh.Key{9}
	if err := a.Save(ctx, k, sesh.Record{Data: []byte("0"), Version: 1, Expires: time.Now().Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	const workers, each = 4, 20
	var wg sync.WaitGroup
	for w := range workers {
		s := []*sqlitestore.Store{a, b}[w%2]
		wg.Go(func() {
			for range each {
				for {
					cur, err := s.Load(ctx, k)
					if err != nil {
						t.Errorf("Load: %v", err)
						return
					}
					n, _ := strconv.Atoi(string(cur.Data))
					err = s.Save(ctx, k, sesh.Record{Data: []byte(strconv.Itoa(n + 1)), Version: cur.Version + 1, Expires: cur.Expires}, cur.Version)
					if err == nil {
						break
					}
					if !errors.Is(err, sesh.ErrConflict) {
						t.Errorf("Save: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if got, err := a.Load(ctx, k); err != nil || string(got.Data) != strconv.Itoa(workers*each) {
		t.Fatalf("after %d increments: got (%q, %v)", workers*each, got.Data, err)
	}
}
