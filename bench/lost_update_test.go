package bench_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/seshgo/sesh/bench/workload"
)

// TestLostUpdates sends 200 parallel increments of one session's counter
// over real HTTP (an httptest server on loopback) to each pair. sesh's
// Exclusive route must count all of them: that is asserted. The other
// rows (sesh without Exclusive, scs, gorilla) are reported, not asserted:
// losing updates is what they are expected to do. cmd/lostupdate prints
// the same comparison as a table for run.sh.
func TestLostUpdates(t *testing.T) {
	const n = 200
	for _, c := range workload.LostUpdateCases() {
		t.Run(c.Pair+c.Path, func(t *testing.T) {
			app := open(t, c.Pair, workload.Options{})
			srv := httptest.NewServer(app.Handler)
			defer srv.Close()
			res, err := workload.LostUpdates(context.Background(), srv.URL, c.Path, n)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s %s: %d sent, %d ok, %d failed %v %q, final counter %d, %d lost",
				c.Pair, c.Path, res.Sent, res.OK, res.Failed, res.Failures, res.Body, res.Final, res.Lost())
			if c.MustNotLose && (res.Final != n || res.OK != n) {
				t.Errorf("%s %s: final counter %d with %d answered 200, want exactly %d", c.Pair, c.Path, res.Final, res.OK, n)
			}
		})
	}
}
