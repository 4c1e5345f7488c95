package workload_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/seshgo/sesh/bench/workload"
)

// TestRoutes checks every pair's routes the way a browser uses them: the
// counter goes up by one per /rmw, /read reads it, and /new makes a
// session with a cookie.
func TestRoutes(t *testing.T) {
	for _, name := range workload.All {
		t.Run(name, func(t *testing.T) {
			o := workload.Options{Dir: t.TempDir()}
			if workload.NeedsRedis(name) {
				if o.RedisURL = os.Getenv("SESH_TEST_REDIS"); o.RedisURL == "" {
					if os.Getenv("CI") == "true" {
						t.Fatal("SESH_TEST_REDIS is not set")
					}
					t.Skip("SESH_TEST_REDIS is not set")
				}
			}
			app, err := workload.New(name, o)
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			cookie, err := app.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			get := func(path string) (string, *http.Response) {
				t.Helper()
				r := httptest.NewRequest("GET", "http://127.0.0.1"+path, nil)
				if cookie != "" && path != "/new" {
					r.Header.Set("Cookie", cookie)
				}
				w := httptest.NewRecorder()
				app.Handler.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					t.Fatalf("%s: status %d: %s", path, w.Code, w.Body)
				}
				resp := w.Result()
				for _, c := range resp.Cookies() {
					if c.Name == app.Cookie && path != "/new" {
						cookie = c.Name + "=" + c.Value
					}
				}
				return w.Body.String(), resp
			}
			if name == workload.NetHTTP {
				if !strings.HasPrefix(cookie, workload.BareCookie+"=") || len(cookie) != len("__Host-sesh=")+43 {
					t.Errorf("net/http's stand-in cookie is %q", cookie)
				}
				return
			}
			if got, _ := get("/rmw"); got != "2" {
				t.Errorf("/rmw after NewSession: %q, want 2", got)
			}
			if got, _ := get("/incr"); got != "3" {
				t.Errorf("/incr: %q, want 3", got)
			}
			if got, resp := get("/read"); got != "3" {
				t.Errorf("/read: %q, want 3", got)
			} else if workload.IsSesh(name) && len(resp.Cookies()) != 0 {
				t.Errorf("sesh /read set cookies %v", resp.Cookies())
			}
			got, resp := get("/new")
			if got != "ok" {
				t.Errorf("/new: %q, want ok", got)
			}
			var found bool
			for _, c := range resp.Cookies() {
				found = found || (c.Name == app.Cookie && c.Value != "" && !strings.Contains(cookie, c.Value))
			}
			if !found {
				t.Errorf("/new set no new %s cookie: %v", app.Cookie, resp.Cookies())
			}
		})
	}
}
