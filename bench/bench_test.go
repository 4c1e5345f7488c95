package bench_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/seshgo/sesh/bench/workload"
)

// BenchmarkWorkload runs each workload on each pair through its handler,
// in process (httptest, no network):
//
//	BenchmarkWorkload/<pair>/<rmw|read|new>/<serial|parallel>
//
// Each request is a fresh shallow copy of one template request and gets a
// fresh httptest.ResponseRecorder; the nethttp pair measures that harness
// with no sessions. rmw and read use an existing session: serial runs use
// one, parallel runs one per goroutine (as many users do), so that
// compare-and-set libraries are not measured against themselves on one
// session (lost_update_test.go covers that case). new sends no cookie.
// Redis pairs are skipped without SESH_TEST_REDIS.
func BenchmarkWorkload(b *testing.B) {
	for _, name := range workload.All {
		b.Run(name, func(b *testing.B) {
			for _, wl := range workload.Workloads {
				b.Run(wl, func(b *testing.B) {
					b.Run("serial", func(b *testing.B) { benchWorkload(b, name, wl, false) })
					b.Run("parallel", func(b *testing.B) { benchWorkload(b, name, wl, true) })
				})
			}
		})
	}
}

func benchWorkload(b *testing.B, name, wl string, parallel bool) {
	app := open(b, name, workload.Options{})
	// One session per goroutine of RunParallel (GOMAXPROCS of them), and
	// then some.
	cookies := make([]string, 64)
	if wl != "new" {
		for i := range cookies {
			c, err := app.NewSession()
			if err != nil {
				b.Fatal(err)
			}
			cookies[i] = c
		}
	}
	template := func(cookie string) *http.Request {
		r := httptest.NewRequest("GET", "http://127.0.0.1/"+wl, nil)
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		return r
	}
	serve := func(tmpl *http.Request) bool {
		w := httptest.NewRecorder()
		app.Handler.ServeHTTP(w, tmpl.WithContext(context.Background()))
		if w.Code != http.StatusOK {
			b.Errorf("%s %s: status %d: %s", name, wl, w.Code, w.Body)
			return false
		}
		return true
	}
	b.ReportAllocs()
	if !parallel {
		tmpl := template(cookies[0])
		b.ResetTimer()
		for range b.N {
			if !serve(tmpl) {
				return
			}
		}
		return
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		tmpl := template(cookies[int(next.Add(1)-1)%len(cookies)])
		for pb.Next() {
			if !serve(tmpl) {
				return
			}
		}
	})
}
