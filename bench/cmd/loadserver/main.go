// Command loadserver serves one pair of package workload on a loopback
// port, for the end-to-end load runs of run.sh:
//
//	loadserver -pair sesh-memstore [-addr 127.0.0.1:0] [-redis URL] [-pipelining N] [-cpuprofile FILE]
//
// It prints "listening on http://ADDR" once it accepts connections and
// serves until SIGINT or SIGTERM. Besides the workload routes it answers
//
//	GET /_cookies?n=N
//
// with N Cookie header values, one a line, of N sessions it has just
// created through its own /rmw route (in process): wrk's Lua script sends
// them round-robin, as many users would. It refuses to listen on anything
// but a loopback address.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seshgo/sesh/bench/workload"
	"github.com/seshgo/sesh/redisstore"
)

func main() {
	pair := flag.String("pair", "", "the pair to serve: "+strings.Join(workload.All, ", "))
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	redisURL := flag.String("redis", os.Getenv("SESH_TEST_REDIS"), "Redis URL of the Redis pairs")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	pipelining := flag.Int("pipelining", -1, "sesh-redis: redisstore.WithPipelining(n), n = 0 for a round trip per call (default: the store's default)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("loadserver: ")

	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatal(err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		log.Fatalf("-addr %s: only loopback addresses are allowed", *addr)
	}
	o := workload.Options{RedisURL: *redisURL}
	if *pipelining >= 0 {
		o.RedisStore = append(o.RedisStore, redisstore.WithPipelining(*pipelining))
	}
	app, err := workload.New(*pair, o)
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()

	mux := http.NewServeMux()
	mux.Handle("/", app.Handler)
	mux.HandleFunc("/_cookies", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 1 || n > 100000 {
			http.Error(w, "n must be 1..100000", http.StatusBadRequest)
			return
		}
		var b strings.Builder
		for range n {
			c, err := app.NewSession()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			b.WriteString(c)
			b.WriteByte('\n')
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, b.String())
	})

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Printf("listening on http://%s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
