// Command lostupdate sends -n parallel increments of one session's
// counter to each pair over real HTTP (an httptest server on loopback)
// and prints one JSON object per row: how many were answered 200 and what
// the counter reads afterwards. The Redis rows need -redis (default
// $SESH_TEST_REDIS) and are left out without it. The test
// TestLostUpdates asserts the sesh Exclusive rows; this prints the table.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"net/http/httptest"
	"os"
	"time"

	"github.com/seshgo/sesh/bench/workload"
)

type row struct {
	Pair     string         `json:"pair"`
	Path     string         `json:"path"`
	Sent     int            `json:"sent"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Failures map[string]int `json:"failures,omitempty"`
	Final    int            `json:"final"`
	Lost     int            `json:"lost"`
}

func main() {
	n := flag.Int("n", 200, "parallel increments")
	redisURL := flag.String("redis", os.Getenv("SESH_TEST_REDIS"), "Redis URL of the Redis pairs")
	work := flag.Duration("work", time.Millisecond, "work between read and write in /incr")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("lostupdate: ")
	enc := json.NewEncoder(os.Stdout)
	for _, c := range workload.LostUpdateCases() {
		if workload.NeedsRedis(c.Pair) && *redisURL == "" {
			continue
		}
		app, err := workload.New(c.Pair, workload.Options{RedisURL: *redisURL, IncrWork: *work})
		if err != nil {
			log.Fatal(err)
		}
		srv := httptest.NewServer(app.Handler)
		res, err := workload.LostUpdates(context.Background(), srv.URL, c.Path, *n)
		srv.Close()
		app.Close()
		if err != nil {
			log.Fatalf("%s %s: %v", c.Pair, c.Path, err)
		}
		enc.Encode(row{c.Pair, c.Path, res.Sent, res.OK, res.Failed, res.Failures, res.Final, res.Lost()})
	}
}
