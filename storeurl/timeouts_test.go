package storeurl

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/internal/faultproxy"
)

// server returns the test server named by the environment variable name,
// skipping the test without it, or failing it in CI.
func server(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		msg := name + " is not set: run the tests under scripts/testservers.sh"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return v
}

func openClient(t *testing.T, rawURL string) (sesh.Store, any) {
	t.Helper()
	s, c, err := Open(t.Context(), rawURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return s, c.(*closer).client
}

// TestRedisDeadlines checks that a call to a Redis server that stopped
// answering ends at its context's deadline, not at go-redis's ReadTimeout
// (5 s), for every kind of client Open makes.
func TestRedisDeadlines(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		u, err := url.Parse(server(t, "SESH_TEST_REDIS"))
		if err != nil {
			t.Fatal(err)
		}
		p, err := faultproxy.New(u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		store, _ := openClient(t, "redis://"+p.Addr()+u.Path)
		p.SetMode(faultproxy.BlackHole)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := store.Load(ctx, sesh.Key{1}); err == nil {
			t.Fatal("Load from a black-holed server succeeded")
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("Load took %v, want about its context's 200 ms", took)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		sentinel := server(t, "SESH_TEST_REDIS_SENTINEL")
		master := server(t, "SESH_TEST_REDIS_SENTINEL_MASTER")
		_, c := openClient(t, "redis+sentinel://"+sentinel+"/"+master)
		if !c.(*redis.Client).Options().ContextTimeoutEnabled {
			t.Error("the failover client ignores context deadlines")
		}
	})
	t.Run("cluster", func(t *testing.T) {
		nodes := server(t, "SESH_TEST_REDIS_CLUSTER")
		_, c := openClient(t, "redis+cluster://"+nodes)
		if !c.(*redis.ClusterClient).Options().ContextTimeoutEnabled {
			t.Error("the cluster client ignores context deadlines")
		}
	})
}

// TestPostgresConnectTimeout checks that the pool's connection attempts
// are bounded unless the URL or the environment says otherwise.
func TestPostgresConnectTimeout(t *testing.T) {
	base := server(t, "SESH_TEST_POSTGRES")
	for _, tt := range []struct {
		query, env string
		want       time.Duration
	}{
		{"", "", pgConnectTimeout},
		{"connect_timeout=2", "", 2 * time.Second},
		{"connect_timeout=0", "", 0}, // libpq's "wait forever", as asked
		{"", "3", 3 * time.Second},
	} {
		t.Run(tt.query+"/"+tt.env, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("PGCONNECT_TIMEOUT", tt.env)
			}
			_, c := openClient(t, withQuery(withQuery(base, tt.query), "migrate=false"))
			if got := c.(*pgxpool.Pool).Config().ConnConfig.ConnectTimeout; got != tt.want {
				t.Errorf("ConnectTimeout %v, want %v", got, tt.want)
			}
		})
	}
}

// withQuery appends query, if any, to the URL u.
func withQuery(u, query string) string {
	switch {
	case query == "":
		return u
	case strings.Contains(u, "?"):
		return u + "&" + query
	}
	return u + "?" + query
}
