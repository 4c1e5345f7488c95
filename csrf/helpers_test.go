package csrf_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/csrf"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/seal"
)

// app is a small application behind a real sesh manager over memstore
// and a Protection. It records every rejection and captures the logs of
// both.
type app struct {
	t       *testing.T
	m       *sesh.Manager
	p       *csrf.Protection
	h       http.Handler
	logs    *syncBuffer
	mu      sync.Mutex
	rejects []error
	events  []sesh.Event
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newManager(t testing.TB, logger *slog.Logger, obs sesh.Observer) *sesh.Manager {
	t.Helper()
	k, err := seal.GenerateKey(1)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := seal.NewRing(k)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sesh.New(memstore.New(), sesh.Config{Keys: ring, Logger: logger, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newApp builds the application with cfg. OnReject and Logger, if unset,
// are filled in to record into the app.
func newApp(t *testing.T, cfg csrf.Config) *app {
	t.Helper()
	a := &app{t: t, logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a.m = newManager(t, logger, sesh.ObserverFunc(func(_ context.Context, e sesh.Event) {
		a.mu.Lock()
		a.events = append(a.events, e)
		a.mu.Unlock()
	}))
	if cfg.OnReject == nil {
		cfg.OnReject = func(r *http.Request, err error) {
			a.mu.Lock()
			a.rejects = append(a.rejects, err)
			a.mu.Unlock()
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = logger
	}
	p, err := csrf.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.p = p
	a.h = a.m.Handler(p.Handler(a.routes()))
	return a
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		tok, err := csrf.Token(r)
		if err != nil {
			http.Error(w, "no token", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, tok)
	})
	mux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<form method="post" action="/transfer">%s</form>`, a.p.TemplateField(r))
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Login(r.PostFormValue("u"))
		io.WriteString(w, "welcome")
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Logout()
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		u := sesh.FromContext(r.Context()).User()
		if u == "" {
			u = "anon"
		}
		io.WriteString(w, u)
	})
	mux.HandleFunc("POST /api/items", func(w http.ResponseWriter, r *http.Request) {
		var item struct{ Name string }
		if err := json.NewDecoder(r.Body).Decode(&item); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "created %s", item.Name)
	})
	// Everything else, whatever the method: the state change under attack.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	return mux
}

// lastReject returns the error of the last rejection since the previous
// call, or nil.
func (a *app) lastReject() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.rejects) == 0 {
		return nil
	}
	err := a.rejects[len(a.rejects)-1]
	a.rejects = nil
	return err
}

// browser replays the cookies the application set, like a browser.
type browser struct {
	a       *app
	cookies map[string]*http.Cookie
}

func (a *app) browser() *browser { return &browser{a: a, cookies: map[string]*http.Cookie{}} }

// result is a finished response.
type result struct {
	code   int
	body   string
	header http.Header
}

// do sends req through the application with the browser's cookies.
func (b *browser) do(req *http.Request) result {
	for _, c := range b.cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	b.a.h.ServeHTTP(rec, req)
	res := rec.Result()
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	body, _ := io.ReadAll(res.Body)
	return result{res.StatusCode, string(body), res.Header}
}

// token fetches a fresh token, creating the session if needed.
func (b *browser) token() string {
	b.a.t.Helper()
	r := b.do(req("GET", "/form"))
	if r.code != http.StatusOK || len(r.body) != csrf.TokenLen {
		b.a.t.Fatalf("GET /form: got %d %q, want 200 and a token", r.code, r.body)
	}
	return r.body
}

const origin = "https://example.com"

// req builds a request to https://example.com (a TLS request) unless
// target is absolute; hdr holds header name/value pairs.
func req(method, target string, hdr ...string) *http.Request {
	if strings.HasPrefix(target, "/") {
		target = origin + target
	}
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

// form builds a POST of an urlencoded body.
func form(target, body string, hdr ...string) *http.Request {
	r := req("POST", target, hdr...)
	r.Body = io.NopCloser(strings.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// server is the application on a TLS test server, for end-to-end tests
// with real cookie jars, as in the core's harness.
type server struct {
	*app
	srv *httptest.Server
}

func newServer(t *testing.T, cfg csrf.Config) *server {
	t.Helper()
	a := newApp(t, cfg)
	srv := httptest.NewUnstartedServer(a.h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &server{app: a, srv: srv}
}

// client returns an HTTPS client with its own cookie jar.
func (s *server) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := *s.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// rawClient returns an HTTPS client without a jar, for hand-made cookies.
func (s *server) rawClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// send sends method path with an urlencoded body (if not empty) and the
// given header pairs.
func (s *server) send(c *http.Client, method, path, body string, hdr ...string) result {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequest(method, s.srv.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(r)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return result{res.StatusCode, string(b), res.Header}
}

func (s *server) token(c *http.Client) string {
	s.t.Helper()
	r := s.send(c, "GET", "/form", "")
	if r.code != http.StatusOK || len(r.body) != csrf.TokenLen {
		s.t.Fatalf("GET /form: got %d %q, want 200 and a token", r.code, r.body)
	}
	return r.body
}

// sessionCookie returns the session cookie a response set.
func sessionCookie(r result) (string, bool) {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == sesh.DefaultCookieName && c.MaxAge >= 0 {
			return c.Value, true
		}
	}
	return "", false
}
