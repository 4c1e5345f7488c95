package bench_test

import (
	"os"
	"testing"

	"github.com/seshgo/sesh/bench/workload"
)

// redisURL returns SESH_TEST_REDIS, or skips the test when it is unset
// (fails it in CI, where every test must run).
func redisURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("SESH_TEST_REDIS")
	if u == "" {
		msg := "SESH_TEST_REDIS is not set: run under scripts/testservers.sh (redis://127.0.0.1:6379/0)"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return u
}

// open builds the app of pair name, closed when tb ends. Redis pairs skip
// without SESH_TEST_REDIS.
func open(tb testing.TB, name string, o workload.Options) *workload.App {
	tb.Helper()
	if workload.NeedsRedis(name) {
		o.RedisURL = redisURL(tb)
	}
	if name == workload.GorillaFS && o.Dir == "" {
		o.Dir = tb.TempDir()
	}
	a, err := workload.New(name, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := a.Close(); err != nil {
			tb.Error(err)
		}
	})
	return a
}
