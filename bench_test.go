package sesh_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memstore"
)

// benchApp is the workload of the bench module: read, read-modify-write
// and new sessions, on the memory store, through the whole middleware.
func benchApp(b testing.TB) (http.Handler, *http.Cookie) {
	b.Helper()
	m, err := sesh.New(memstore.New(), sesh.Config{Keys: testRing(b)})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/rmw", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		n, _ := sesh.Get[int](s, "n")
		s.Set("n", n+1)
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		sesh.Get[int](sesh.FromContext(r.Context()), "n")
	})
	mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		s.Set("a", 1)
		s.Set("b", "two")
		s.Set("c", true)
	})
	h := m.Handler(mux)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "https://example.com/rmw", nil))
	return h, rec.Result().Cookies()[0]
}

func benchRequests(b *testing.B, path string, withCookie bool) {
	h, c := benchApp(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest("GET", "https://example.com"+path, nil)
		if withCookie {
			req.AddCookie(c)
		}
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}

func BenchmarkRead(b *testing.B)            { benchRequests(b, "/read", true) }
func BenchmarkReadModifyWrite(b *testing.B) { benchRequests(b, "/rmw", true) }
func BenchmarkNewSession(b *testing.B)      { benchRequests(b, "/new", false) }
