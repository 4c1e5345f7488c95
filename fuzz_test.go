package sesh_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memstore"
)

// FuzzCookieHeader sends arbitrary Cookie headers through the whole
// middleware: never a 5xx, never a panic, never a record under anything
// but a fresh server-made ID, and a cookie only when something was stored.
func FuzzCookieHeader(f *testing.F) {
	ring := testRing(f)
	f.Add("__Host-sesh=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false)
	f.Add("__Host-sesh=; __Host-sesh=x", true)
	f.Add("__Host-sesh=../../etc/passwd", true)
	f.Add("__Host-sesh=\x00\r\n", false)
	f.Fuzz(func(t *testing.T, cookie string, write bool) {
		store := memstore.New()
		m, err := sesh.New(store, sesh.Config{Keys: ring})
		if err != nil {
			t.Fatal(err)
		}
		h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := sesh.FromContext(r.Context())
			sesh.Get[string](s, "k")
			if write {
				s.Set("k", "v")
			}
		}))
		req := httptest.NewRequest("GET", "https://example.com/", nil)
		req.Header["Cookie"] = []string{cookie}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
		cookies := rec.Result().Cookies()
		if !write {
			if len(cookies) != 0 || store.Len() != 0 {
				t.Fatalf("read-only request: %d cookies, %d records", len(cookies), store.Len())
			}
			return
		}
		if len(cookies) != 1 || store.Len() != 1 {
			t.Fatalf("write: %d cookies, %d records, want 1 and 1", len(cookies), store.Len())
		}
		if v := cookies[0].Value; len(v) != 43 || strings.Contains(cookie, v) {
			t.Fatalf("issued %q for cookie header %q", v, cookie)
		}
	})
}
