package sesh_test

import (
	"net/http"
	"testing"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/filestore"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/seal"
)

// TestTwoInstancesShareAStore: two app instances behind a load balancer,
// each with its own manager, share one store. A session written through
// one is read, renewed and destroyed through the other.
func TestTwoInstancesShareAStore(t *testing.T) {
	dir := t.TempDir()
	newFile := func() sesh.Store {
		s, err := filestore.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	mem := memstore.New()
	for _, tc := range []struct {
		name string
		a, b sesh.Store
	}{
		{"memstore", mem, mem},
		{"filestore", newFile(), newFile()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ring := mustRing(t, mustKey(t, 1))
			a, b := instance(t, tc.a, ring), instance(t, tc.b, ring)
			var br browser
			if got := br.do(a, "GET", "/put").Body.String(); got != "ok" {
				t.Fatalf("put on A: %q", got)
			}
			if got := br.do(b, "GET", "/get").Body.String(); got != "from-a" {
				t.Fatalf("get on B: got %q, want from-a", got)
			}
			old := br.cookies[sesh.DefaultCookieName].Value
			br.do(b, "POST", "/login")
			if br.cookies[sesh.DefaultCookieName].Value == old {
				t.Fatal("login on B did not renew the ID")
			}
			if got := br.do(a, "GET", "/whoami").Body.String(); got != "alice from-a" {
				t.Fatalf("whoami on A after renew on B: got %q", got)
			}
			stale := browser{cookies: map[string]*http.Cookie{sesh.DefaultCookieName: {Name: sesh.DefaultCookieName, Value: old}}}
			if got := stale.do(a, "GET", "/whoami").Body.String(); got != " " {
				t.Fatalf("old ID on A after renew on B: got %q", got)
			}
			id := br.cookies[sesh.DefaultCookieName].Value
			br.do(a, "POST", "/logout")
			if _, ok := br.cookies[sesh.DefaultCookieName]; ok {
				t.Fatal("logout on A left the cookie")
			}
			replay := browser{cookies: map[string]*http.Cookie{sesh.DefaultCookieName: {Name: sesh.DefaultCookieName, Value: id}}}
			if got := replay.do(b, "GET", "/whoami").Body.String(); got != " " {
				t.Fatalf("destroyed ID on B: got %q", got)
			}
		})
	}
}

// instance is one app instance over store.
func instance(t *testing.T, store sesh.Store, ring *seal.Ring) http.Handler {
	t.Helper()
	m, err := sesh.New(store, sesh.Config{Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /put", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Set("v", "from-a")
		w.Write([]byte("ok"))
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		v, _ := sesh.Get[string](sesh.FromContext(r.Context()), "v")
		w.Write([]byte(v))
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Login("alice")
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		v, _ := sesh.Get[string](s, "v")
		w.Write([]byte(s.User() + " " + v))
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Logout()
	})
	return m.Handler(mux)
}
