package redisstore_test

import (
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/internal/faulttest"
	"github.com/seshgo/sesh/redisstore"
)

// TestFaults runs the fault scenarios against the standalone test server,
// through a fault proxy.
func TestFaults(t *testing.T) {
	if os.Getenv("SESH_TEST_REDIS") == "" {
		needEnv(t, "SESH_TEST_REDIS")
	}
	opt, err := redis.ParseURL(os.Getenv("SESH_TEST_REDIS"))
	if err != nil {
		t.Fatalf("SESH_TEST_REDIS: %v", err)
	}
	prefix := testPrefix(t, backends[0].client(t))
	faulttest.Run(t, faulttest.Options{
		Target: opt.Addr,
		NewStore: func(t *testing.T, addr string, now func() time.Time) sesh.Store {
			o := *opt
			o.Addr = addr
			o.ContextTimeoutEnabled = true
			c := redis.NewClient(&o)
			t.Cleanup(func() { c.Close() })
			return redisstore.New(c, redisstore.WithPrefix(prefix), redisstore.WithClock(now))
		},
	})
}
