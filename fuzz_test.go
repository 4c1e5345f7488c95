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
	f.Add("__Host-sesh-remember=x", false) // a useless remember cookie is deleted
	f.Add("__Host-sesh-remember=x; __Host-sesh=y", true)
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
		// A remember-me cookie that can sign no one in is deleted: the
		// deletion is the only other cookie a response may carry.
		var cookies []*http.Cookie
		for _, c := range rec.Result().Cookies() {
			if c.Name == sesh.DefaultCookieName+"-remember" && c.Value == "" && c.MaxAge < 0 {
				continue
			}
			cookies = append(cookies, c)
		}
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
