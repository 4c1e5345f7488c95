package sesh_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/seal"
)

// exampleManager builds a manager on a fresh memory store. Real
// applications read their keys from SESH_KEYS with seal.ParseRing.
func exampleManager() *sesh.Manager {
	k, err := seal.GenerateKey(1)
	if err != nil {
		panic(err)
	}
	keys, err := seal.NewRing(k)
	if err != nil {
		panic(err)
	}
	m, err := sesh.New(memstore.New(), sesh.Config{Keys: keys})
	if err != nil {
		panic(err)
	}
	return m
}

// browser replays the cookies a handler set, like a browser would.
type browser struct{ cookies map[string]*http.Cookie }

func (b *browser) do(h http.Handler, method, path string) *httptest.ResponseRecorder {
	if b.cookies == nil {
		b.cookies = map[string]*http.Cookie{}
	}
	req := httptest.NewRequest(method, "https://example.com"+path, nil)
	for _, c := range b.cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return rec
}

func Example() {
	m := exampleManager()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		n, _ := sesh.Get[int](s, "visits")
		n++
		s.Set("visits", n)
		fmt.Fprintf(w, "visit %d", n)
	})
	h := m.Handler(mux)

	var b browser
	for range 3 {
		fmt.Println(b.do(h, "GET", "/").Body.String())
	}
	// Output:
	// visit 1
	// visit 2
	// visit 3
}

// Renew the session ID whenever privileges change. Login does it, binds
// the user and records the authentication time.
func ExampleSession_Login() {
	m := exampleManager()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		// ... check the credentials first ...
		sesh.FromContext(r.Context()).Login("alice")
	})
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		_, authenticated := s.AuthAge()
		fmt.Fprintf(w, "user=%q authenticated=%v", s.User(), authenticated)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Logout()
	})
	h := m.Handler(mux)

	var b browser
	fmt.Println(b.do(h, "GET", "/me").Body.String())
	b.do(h, "POST", "/login")
	fmt.Println(b.do(h, "GET", "/me").Body.String())
	rec := b.do(h, "POST", "/logout")
	fmt.Println("logout clears the cookie:", strings.Contains(rec.Header().Get("Set-Cookie"), "Max-Age=0"))
	fmt.Println(b.do(h, "GET", "/me").Body.String())
	// Output:
	// user="" authenticated=false
	// user="alice" authenticated=true
	// logout clears the cookie: true
	// user="" authenticated=false
}

// Flash messages survive until a request reads them, and are shown once.
func ExampleFlash() {
	m := exampleManager()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /save", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Flash().Add("success", "Saved.")
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		for _, msg := range sesh.FromContext(r.Context()).Flash().Pop() {
			fmt.Fprintf(w, "[%s] %s", msg.Kind, msg.Text)
		}
	})
	h := m.Handler(mux)

	var b browser
	b.do(h, "POST", "/save")
	fmt.Printf("first view: %q\n", b.do(h, "GET", "/").Body.String())
	fmt.Printf("second view: %q\n", b.do(h, "GET", "/").Body.String())
	// Output:
	// first view: "[success] Saved."
	// second view: ""
}

// Exclusive mode serialises requests on one session, so read-modify-write
// of one key is exact even under parallel requests.
func ExampleManager_Exclusive() {
	m := exampleManager()
	counter := m.Exclusive(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		n, _ := sesh.Get[int](s, "n")
		s.Set("n", n+1)
	}))
	h := m.Handler(counter)

	var b browser
	b.do(h, "POST", "/") // create the session
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			req := httptest.NewRequest("POST", "https://example.com/", nil)
			for _, c := range b.cookies {
				req.AddCookie(c)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
		})
	}
	wg.Wait()
	read := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := sesh.Get[int](sesh.FromContext(r.Context()), "n")
		fmt.Fprint(w, n)
	}))
	fmt.Println(b.do(read, "GET", "/").Body.String())
	// Output: 51
}

// Bags keep the values of one part of an application apart.
func ExampleSession_Bag() {
	m := exampleManager()
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		cart := s.Bag("cart")
		cart.Set("sku-42", 2)
		s.Set("sku-42", "unrelated")
		n, _ := sesh.Get[int](cart, "sku-42")
		fmt.Fprintln(w, n, cart.Keys(), s.Keys())
	}))
	var b browser
	fmt.Print(b.do(h, "GET", "/").Body.String())
	// Output: 2 [sku-42] [sku-42]
}
