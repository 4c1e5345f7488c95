//go:build !race

package sesh_test

import (
	"net/http/httptest"
	"testing"
)

// TestAllocsPerRequest holds the allocations of the bench workloads, each
// a whole request through the middleware on the memory store (with
// httptest's recorder), to what they are now: the counts that profiles
// earned (see bench/PROFILE.md) do not creep back. The new-session count
// relies on sealing into a pooled buffer, and would be one higher without.
// It runs without the race detector only (make test runs it so): under it
// sync.Pool drops items, and the count would be meaningless.
func TestAllocsPerRequest(t *testing.T) {
	h, c := benchApp(t)
	for _, tc := range []struct {
		path   string
		cookie bool
		max    float64
	}{
		{"/read", true, 10},
		{"/rmw", true, 12},
		{"/new", false, 12},
	} {
		req := httptest.NewRequest("GET", "https://example.com"+tc.path, nil)
		if tc.cookie {
			req.AddCookie(c)
		}
		n := testing.AllocsPerRun(5000, func() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				t.Fatalf("%s: status %d", tc.path, w.Code)
			}
		})
		if n > tc.max {
			t.Errorf("%s: %.0f allocations per request, want at most %.0f", tc.path, n, tc.max)
		}
	}
}
