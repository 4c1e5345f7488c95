// Command seshdemo is a small web application showing sesh at work: a
// visit counter and flash messages, on the embedded file store.
//
// Usage:
//
//	go -C cmd run ./seshdemo [-addr 127.0.0.1:8080] [-data DIR]
//
// Keys come from SESH_KEYS; without it a development key is created once
// in the data directory, with a warning.
package main

import (
	"context"
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
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/filestore"
	"github.com/seshgo/sesh/seal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "seshdemo:", err)
		os.Exit(1)
	}
}

// run starts the demo and serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("seshdemo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	data := fs.String("data", "seshdemo-data", "data directory (sessions and the development key)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	keys, err := loadKeys(*data, logger)
	if err != nil {
		return err
	}
	store, err := filestore.New(filepath.Join(*data, "sessions"))
	if err != nil {
		return err
	}
	m, err := sesh.New(store, sesh.Config{
		Keys:   keys,
		Logger: logger,
		// The demo serves plain HTTP on loopback; production serves HTTPS
		// and keeps the default __Host- Secure cookie.
		Cookie: sesh.CookieConfig{InsecureHTTP: true},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: m.Handler(newApp()), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "seshdemo listening on http://%s/\n", ln.Addr())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// loadKeys reads SESH_KEYS, or a development key kept in dir.
func loadKeys(dir string, logger *slog.Logger) (*seal.Ring, error) {
	if v := os.Getenv("SESH_KEYS"); v != "" {
		r, err := seal.ParseRing(v)
		if err != nil {
			return nil, fmt.Errorf("SESH_KEYS: %w", err)
		}
		return r, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "dev-key")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k, err := seal.GenerateKey(1)
		if err != nil {
			return nil, err
		}
		b = []byte(k.Encode())
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	logger.Warn("SESH_KEYS is not set: using a development key kept in the data directory; set SESH_KEYS in production", "path", path)
	return seal.ParseRing(strings.TrimSpace(string(b)))
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sesh demo</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto}
.flash{padding:.5rem 1rem;background:#e6f4ea;border:1px solid #34a853;border-radius:4px}</style></head>
<body><h1>sesh demo</h1>
{{range .Flash}}<p class="flash">{{.Text}}</p>{{end}}
<p>You have visited this page <strong id="visits">{{.Visits}}</strong> time(s) in this session.</p>
<form method="post" action="/flash"><input name="message" value="Hello from the last request" size="30">
<button>Flash it</button></form>
<form method="post" action="/reset"><button>Forget me</button></form>
</body></html>`))

func newApp() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		visits, _ := sesh.Get[int](s, "visits")
		visits++
		if err := s.Set("visits", visits); err != nil {
			http.Error(w, "cannot count this visit", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page.Execute(w, map[string]any{"Visits": visits, "Flash": s.Flash().Pop()})
	})
	mux.HandleFunc("POST /flash", func(w http.ResponseWriter, r *http.Request) {
		msg := strings.TrimSpace(r.FormValue("message"))
		if msg == "" || len(msg) > 200 {
			http.Error(w, "message must be 1 to 200 characters", http.StatusBadRequest)
			return
		}
		sesh.FromContext(r.Context()).Flash().Add("info", msg)
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		s.Destroy()
		s.Flash().Add("info", "Your session was ended; counting starts again.")
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	// Cross-origin form posts are refused before any handler runs.
	return http.NewCrossOriginProtection().Handler(mux)
}
