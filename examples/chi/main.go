// Command chi is a small chi application using sesh: a CSRF-protected
// login form, logout, flash messages and a counter whose route is
// exclusive, so parallel increments are never lost.
//
// Usage:
//
//	go run . [-addr 127.0.0.1:8080]
//
// Keys come from SESH_KEYS; without it a development key is generated at
// start (sessions then end when the process does), with a warning.
package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/csrf"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/seal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chi example:", err)
		os.Exit(1)
	}
}

// run serves the application until ctx is done. It prints the URL it
// listens on as the first line of stdout; logs go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	keys, err := loadKeys(logger)
	if err != nil {
		return err
	}
	m, err := newManager(memstore.New(), keys, logger)
	if err != nil {
		return err
	}
	app, err := newApp(m, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "listening on http://%s/\n", ln.Addr())

	var wg sync.WaitGroup
	wg.Go(func() { sweep(ctx, m, logger) })
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	err = srv.Serve(ln)
	wg.Wait()
	if !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// loadKeys reads the key ring from SESH_KEYS, or generates a development
// key. A generated key lives only as long as the process: restarting ends
// every session. Generate a real one with `go -C cmd run ./seshctl keygen`.
func loadKeys(logger *slog.Logger) (*seal.Ring, error) {
	if v := os.Getenv("SESH_KEYS"); v != "" {
		keys, err := seal.ParseRing(v)
		if err != nil {
			return nil, fmt.Errorf("SESH_KEYS: %w", err)
		}
		return keys, nil
	}
	logger.Warn("SESH_KEYS is not set: using a development key generated at start; sessions will not survive a restart. Set SESH_KEYS in production.")
	k, err := seal.GenerateKey(1)
	if err != nil {
		return nil, err
	}
	return seal.NewRing(k)
}

// newManager builds the session manager on store.
func newManager(store sesh.Store, keys *seal.Ring, logger *slog.Logger) (*sesh.Manager, error) {
	return sesh.New(store, sesh.Config{
		Keys:   keys,
		Logger: logger,
		// InsecureHTTP drops the Secure attribute and the __Host- prefix so
		// that the cookie works over plain HTTP on localhost. Never set it
		// in production: serve HTTPS and keep the default __Host-sesh
		// cookie.
		Cookie: sesh.CookieConfig{InsecureHTTP: true},
	})
}

// sweep removes expired sessions from the memory store every minute.
// Nothing sweeps in the background unless the application does.
func sweep(ctx context.Context, m *sesh.Manager, logger *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := m.Sweep(ctx, 500); err != nil && ctx.Err() == nil {
				logger.Warn("sweeping sessions", "error", err)
			}
		}
	}
}

// newApp returns the application's router, with sesh's middleware around
// every route.
func newApp(m *sesh.Manager, logger *slog.Logger) (http.Handler, error) {
	p, err := csrf.New(csrf.Config{Logger: logger})
	if err != nil {
		return nil, err
	}
	r := chi.NewRouter()
	r.Use(m.Handler) // every handler below finds its session in the request context

	r.Get("/", home(p))
	r.Get("/whoami", whoami)
	r.Get("/counter", counter)

	// Every unsafe request must pass the CSRF check. It reads the
	// session, so it goes inside m.Handler.
	r.Group(func(r chi.Router) {
		r.Use(p.Handler)
		r.Post("/login", login)
		r.Post("/logout", logout)
	})
	// The counter is read-modify-write of one key: m.Exclusive serialises
	// requests on one session so that parallel increments are not lost. It
	// must run before anything reads the session, so it goes before the
	// CSRF check, which does.
	r.With(m.Exclusive, p.Handler).Post("/counter", increment)
	return r, nil
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sesh + chi</title></head>
<body><h1>sesh + chi</h1>
{{range .Flash}}<p class="flash {{.Kind}}">{{.Text}}</p>
{{end}}{{if .User}}<p>Signed in as <strong id="user">{{.User}}</strong>.</p>
<form method="post" action="/logout">{{.CSRF}}<button>Sign out</button></form>
{{else}}<form method="post" action="/login">{{.CSRF}}
<label>User <input name="user" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button>Sign in</button> (demo: any user name, password "demo")</form>
{{end}}<p>Counter: <strong id="count">{{.Count}}</strong></p>
<form method="post" action="/counter">{{.CSRF}}<button>+1</button></form>
</body></html>
`))

func home(p *csrf.Protection) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		count, _ := sesh.Get[int](s, "count")
		data := map[string]any{
			"User":  s.User(),
			"Count": count,
			"Flash": s.Flash().Pop(),
			// The token creates the session if needed: call it before the
			// response starts, so that the cookie can still be set.
			"CSRF": p.TemplateField(r),
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store") // the page carries a CSRF token
		_ = page.Execute(w, data)
	}
}

func whoami(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]string{"user": sesh.FromContext(r.Context()).User()})
}

func counter(w http.ResponseWriter, r *http.Request) {
	n, _ := sesh.Get[int](sesh.FromContext(r.Context()), "count")
	writeJSON(w, map[string]int{"count": n})
}

func increment(w http.ResponseWriter, r *http.Request) {
	s := sesh.FromContext(r.Context())
	n, _ := sesh.Get[int](s, "count")
	if err := s.Set("count", n+1); err != nil {
		http.Error(w, "cannot count", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func login(w http.ResponseWriter, r *http.Request) {
	s := sesh.FromContext(r.Context())
	user := strings.TrimSpace(r.PostFormValue("user"))
	if !checkPassword(user, r.PostFormValue("password")) {
		_ = s.Flash().Add("error", "Wrong user name or password.")
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.Login(user) // a new session ID, bound to the user
	_ = s.Flash().Add("success", "Welcome, "+user+".")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func logout(w http.ResponseWriter, r *http.Request) {
	sesh.FromContext(r.Context()).Logout()
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// checkPassword stands in for a real credential check: any user name of
// 1 to 64 bytes, with the password "demo".
func checkPassword(user, password string) bool {
	return user != "" && len(user) <= 64 &&
		subtle.ConstantTimeCompare([]byte(password), []byte("demo")) == 1
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
