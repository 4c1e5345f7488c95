package mysqlstore_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/internal/faulttest"
	"github.com/seshgo/sesh/mysqlstore"
)

// TestFaults runs the fault scenarios against the test server, through a
// fault proxy.
func TestFaults(t *testing.T) {
	cfg, err := mysql.ParseDSN(dsn(t))
	if err != nil {
		t.Fatalf("%s: %v", envDSN, err)
	}
	_, table := freshStore(t, newDB(t))
	faulttest.Run(t, faulttest.Options{
		// Lock finishes an attempt in flight (lockAttemptTimeout).
		LockAttempt:    5 * time.Second,
		Target:         cfg.Addr,
		ConnGoroutines: 1, // the driver's watcher of each connection
		NewStore: func(t *testing.T, addr string, now func() time.Time) sesh.Store {
			c := cfg.Clone()
			c.Addr = addr
			conn, err := mysql.NewConnector(c)
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(conn)
			t.Cleanup(func() { db.Close() })
			s, err := mysqlstore.New(db, mysqlstore.WithTable(table), mysqlstore.WithClock(now))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	})
}
