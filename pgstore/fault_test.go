package pgstore_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/internal/faulttest"
	"github.com/seshgo/sesh/pgstore"
)

// TestFaults runs the fault scenarios against the test server, through a
// fault proxy.
func TestFaults(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(dsn(t))
	if err != nil {
		t.Fatalf("%s: %v", envDSN, err)
	}
	_, table := freshStore(t, newPool(t))
	faulttest.Run(t, faulttest.Options{
		// Lock finishes an attempt in flight (lockAttemptTimeout).
		LockAttempt: 5 * time.Second,
		Target:      net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))),
		// pgx closes a connection interrupted by a deadline in the
		// background, first sending a cancel request on a new connection,
		// for up to 15 s when the server does not answer.
		Linger: 15 * time.Second,
		NewStore: func(t *testing.T, addr string, now func() time.Time) sesh.Store {
			c := cfg.Copy()
			host, port, _ := net.SplitHostPort(addr)
			p, _ := strconv.Atoi(port)
			c.ConnConfig.Host, c.ConnConfig.Port, c.ConnConfig.Fallbacks = host, uint16(p), nil
			// As the package documentation advises: without it, the pool's
			// connection attempts to a server that accepts and never
			// answers never end.
			c.ConnConfig.ConnectTimeout = 2 * time.Second
			// Room for the connections that pgx closes in the background
			// after each fault (up to 15 s each): with the default of 4,
			// the pool stalls for that long after the half-open fault.
			c.MaxConns = 8
			pool, err := pgxpool.NewWithConfig(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			s, err := pgstore.New(pool, pgstore.WithTable(table), pgstore.WithClock(now))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	})
}
