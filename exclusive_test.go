package sesh_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memstore"
)

// TestExclusiveQueuesInProcess: while one exclusive request holds a
// session, the others of the same process wait in an in-process queue,
// so at most one of them at a time asks the store for its lock (store
// locks are polled; hundreds of pollers would flood a SQL server).
func TestExclusiveQueuesInProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &faultStore{Store: memstore.New()}
		m, err := sesh.New(store, sesh.Config{Keys: testRing(t)})
		if err != nil {
			t.Fatal(err)
		}
		hold := make(chan struct{})
		h := m.Handler(m.Exclusive(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := sesh.FromContext(r.Context())
			n, _ := sesh.Get[int](s, "n")
			if r.URL.Path == "/hold" {
				<-hold
			}
			s.Set("n", n+1)
		})))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "https://example.com/", nil))
		cookie := rec.Result().Cookies()[0]
		send := func(path string) {
			req := httptest.NewRequest("GET", "https://example.com"+path, nil)
			req.AddCookie(cookie)
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
		done := make(chan struct{})
		go func() { send("/hold"); close(done) }()
		synctest.Wait() // the holder has the lock and waits
		for range 5 {
			go send("/")
		}
		synctest.Wait() // every other request is blocked somewhere
		if n := store.locking.Load(); n > 1 {
			t.Fatalf("requests waiting inside the store's Lock: got %d, want at most 1", n)
		}
		close(hold)
		<-done
		synctest.Wait()
		req := httptest.NewRequest("GET", "https://example.com/", nil)
		req.AddCookie(cookie)
		var got int
		m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, _ = sesh.Get[int](sesh.FromContext(r.Context()), "n")
		})).ServeHTTP(httptest.NewRecorder(), req)
		if got != 7 {
			t.Fatalf("counter: got %d, want 7", got)
		}
	})
}

// TestFailedUnlockRetried: an exclusive request whose unlock fails (the
// store went down as it finished) leaves the store's lock behind. Other
// processes wait for it to expire (LockTTL), but the next exclusive
// request of the process that held it releases it first, instead of
// answering 503 for the whole LockTTL after the store is back.
func TestFailedUnlockRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &faultStore{Store: memstore.New()}
		cfg := sesh.Config{Keys: testRing(t), LockTimeout: time.Second, LockTTL: time.Hour}
		m1, err := sesh.New(store, cfg)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := sesh.New(store, cfg) // another process on the same store
		if err != nil {
			t.Fatal(err)
		}
		incr := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := sesh.FromContext(r.Context())
			n, _ := sesh.Get[int](s, "n")
			s.Set("n", n+1)
		})
		h1, h2 := m1.Handler(m1.Exclusive(incr)), m2.Handler(m2.Exclusive(incr))
		rec := httptest.NewRecorder()
		h1.ServeHTTP(rec, httptest.NewRequest("GET", "https://example.com/", nil))
		cookie := rec.Result().Cookies()[0]
		send := func(h http.Handler) int {
			req := httptest.NewRequest("GET", "https://example.com/", nil)
			req.AddCookie(cookie)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec.Code
		}
		store.failUnlock.Store(true)
		if code := send(h1); code != http.StatusOK {
			t.Fatalf("request whose unlock fails: got %d, want 200", code)
		}
		store.failUnlock.Store(false)
		if code := send(h2); code != http.StatusServiceUnavailable {
			t.Fatalf("other process while the lock is left behind: got %d, want 503", code)
		}
		if code := send(h1); code != http.StatusOK {
			t.Fatalf("next request of the holding process: got %d, want 200", code)
		}
		if code := send(h2); code != http.StatusOK {
			t.Fatalf("other process after the release: got %d, want 200", code)
		}
	})
}

// TestExclusiveRestoredFromRememberMe: parallel exclusive requests that
// carry only a remember-me cookie (a browser restarted with several tabs)
// share the one restored session, and still take turns: no increment is
// lost. Found by the demo's soak test.
func TestExclusiveRestoredFromRememberMe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := sesh.New(memstore.New(), sesh.Config{Keys: testRing(t)})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
			s := sesh.FromContext(r.Context())
			s.Login("alice")
			s.Remember()
		})
		mux.Handle("/incr", m.Exclusive(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := sesh.FromContext(r.Context())
			n, _ := sesh.Get[int](s, "n")
			time.Sleep(5 * time.Millisecond) // a database call between read and write
			s.Set("n", n+1)
			fmt.Fprint(w, n+1)
		})))
		h := m.Handler(mux)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "https://example.com/login", nil))
		var remember *http.Cookie
		for _, c := range rec.Result().Cookies() {
			if c.Name == sesh.DefaultCookieName+"-remember" {
				remember = c
			}
		}
		if remember == nil {
			t.Fatal("no remember-me cookie")
		}
		const n = 8
		got := make(chan string, n)
		for range n {
			go func() {
				req := httptest.NewRequest("GET", "https://example.com/incr", nil)
				req.AddCookie(remember)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				got <- fmt.Sprintf("%d %s", rec.Code, rec.Body)
			}()
		}
		var answers []string
		for range n {
			answers = append(answers, <-got)
		}
		slices.Sort(answers)
		want := []string{"200 1", "200 2", "200 3", "200 4", "200 5", "200 6", "200 7", "200 8"}
		if !slices.Equal(answers, want) {
			t.Fatalf("answers: got %q, want %q", answers, want)
		}
	})
}
