// Command seshdemo is a small web application showing sesh at work: HTML
// pages (a visit counter, login with "remember me", a cart, the list of
// your signed-in devices, a password change, flash messages, all behind
// CSRF protection) and a same-origin JSON API over the same sessions.
//
// Usage:
//
//	go -C cmd run ./seshdemo [flags]
//
//	-addr ADDR        listen address (default 127.0.0.1:8080)
//	-data DIR         data directory: the development key and the default
//	                  store (default seshdemo-data)
//	-store URL        session store, as storeurl.Open takes it: memory:,
//	                  file:PATH, sqlite:PATH, redis://..., rediss://...,
//	                  redis+sentinel://..., redis+cluster://...,
//	                  postgres://..., mysql://..., memcached://...
//	                  (default file:DIR/sessions)
//	-idle D           idle timeout (default 30m)
//	-absolute D       absolute timeout (default 12h)
//	-remember D       lifetime of remember-me tokens (default 720h)
//
// Keys come from SESH_KEYS; without it a development key is created once
// in the data directory, and announced with a warning at every start. The
// demo serves plain HTTP on loopback, so its cookies are not Secure
// (Cookie.InsecureHTTP, with the core's warning): the session cookie is
// "sesh" and the remember-me cookie "sesh-remember". Production serves
// HTTPS and keeps the default __Host- cookies. It prints
// "seshdemo listening on http://ADDR/" once it accepts connections.
//
// The users are alice (password "wonderland") and bob ("builder"). Their
// passwords are kept only as salted PBKDF2-HMAC-SHA256 hashes made at
// start-up, compared in constant time; a changed password lives in memory
// until the process ends.
//
// # Pages
//
//	GET  /                   greeting, visit counter, flash messages, links
//	POST /flash              add a flash message (field message)
//	POST /reset              end the session
//	GET  /login              sign-in form with a "remember me" box
//	POST /login              fields user, password, remember
//	POST /logout             sign out
//	GET  /cart               the cart (a session bag), with the products
//	POST /cart/add           field item
//	POST /cart/remove        field item
//	POST /cart/clear
//	GET  /devices            your signed-in devices (signed-in users)
//	POST /devices/revoke     field handle
//	POST /devices/revoke-others
//	GET  /password           password change form (signed-in users)
//	POST /password           fields old, new, confirm
//	GET  /session-ended      ?next=PATH: see below
//
// GET /, POST /cart/add and POST /api/counter read, change and write one
// value: they are exclusive (sesh.Manager.Exclusive), and the demo queues
// them per session in arrival order before that, so that a burst of
// parallel requests on one session takes turns instead of all polling the
// store's lock.
//
// Every form carries a CSRF token (package csrf, field csrf_token), the
// sign-in form too: making the token creates the session. The element ids
// and classes that browser tests may rely on are listed in pages.go.
//
// # JSON API
//
// Bodies are JSON (Content-Type application/json, or none); every JSON
// response has Content-Type application/json and Cache-Control: no-store.
// Errors are {"error": "..."}: 400 for a malformed body or parameter, 401
// when a user is needed, 403 for a refused cross-origin request, 404, 405
// (with Allow), 409 when the session was ended by a concurrent request,
// 413, 415 for a body that is not JSON, 501 when the store cannot do it,
// 503 when the store is unavailable.
//
//	POST   /api/login                 {"user","password","remember"} → 200 {"user"} or 401
//	POST   /api/logout                → 204
//	GET    /api/me                    → 200 {"user": string or null, "remembered": bool}
//	POST   /api/counter               → 200 {"value"}: +1, exclusive (exact under parallel requests)
//	GET    /api/counter               → 200 {"value"} (0 when absent)
//	PUT    /api/kv/{key}[?delay_ms=N] {"value": any JSON} → 204, after waiting N ms (≤ 10000)
//	GET    /api/kv/{key}              → 200 {"value"} or 404
//	POST   /api/flash                 {"message"} (1 to 500 characters) → 204
//	GET    /api/flash                 → 200 {"messages": [...]} (pops them)
//	GET    /api/sessions              → 200 {"sessions": [{"handle","created","last_seen","ip","user_agent","current"}]} or 401
//	DELETE /api/sessions/{handle}     → 204; 404 when it is not one of the caller's
//	POST   /api/sessions/revoke-others → 204
//	POST   /api/password              {"old","new"} → 204 or 401
//
// Keys of /api/kv are 1 to 64 characters of A-Z a-z 0-9 _ . -. Reading
// (GET /api/me, /api/counter, /api/kv, /api/flash) never creates a
// session nor sets a cookie, except that a request carrying only a valid
// remember-me cookie is signed in again and given fresh cookies. A PUT
// that is waiting when its session is logged out or revoked is answered
// 409 and writes nothing: the session cannot be brought back. The wait
// ends early, writing nothing, if the request is cancelled.
//
// /api/password revokes the user's other sessions and every remember-me
// token of the user, and renews the caller's session ID. Signing a device
// out (DELETE /api/sessions/{handle}, revoke-others, the devices page)
// ends its session and its remember-me token: its next request starts
// anonymous.
//
// A session ID that was logged out or renewed stays known for a few
// minutes (a tombstone), so that no request in flight can bring it back:
// an API write with it answers 409, and a page is redirected through
// GET /session-ended, which tells the browser to forget the dead cookie
// and sends it back to the page.
//
// The memcached store keeps no index of sessions by user. With it,
// /api/sessions, DELETE /api/sessions/{handle} and revoke-others answer
// 501 {"error": ...}, the devices page says so, and a password change
// renews the caller's session but cannot end the user's other sessions or
// remember-me tokens, which run out by themselves.
//
// # CSRF
//
// HTML forms go through csrf.Protection: the origin check of
// http.CrossOriginProtection (Sec-Fetch-Site, then Origin), then a
// synchronizer token bound to the session. The JSON API is not given
// tokens. It relies on http.CrossOriginProtection, which refuses the
// unsafe requests that a browser marks as cross-origin (Sec-Fetch-Site
// other than same-origin or none, or an Origin that is not the Host), and
// on a second check: an unsafe API request whose Content-Type is one that
// a cross-site page can send without a CORS preflight
// (application/x-www-form-urlencoded, multipart/form-data, text/plain)
// is refused with 403, so a form or a no-cors fetch cannot reach it even
// from a browser that sends neither header. Requests with application/json
// or with no content type pass. Clients that are not browsers, such as
// curl or Go's http.Client, send neither Sec-Fetch-Site nor Origin and
// need no token: with curl, pass -H 'Content-Type: application/json'.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/csrf"
	"github.com/seshgo/sesh/seal"
	"github.com/seshgo/sesh/storeurl"
)

// Sweeping: stores that need explicit expiry are swept this often, this
// many records at a time.
const (
	sweepEvery = 30 * time.Second
	sweepLimit = 300
)

// shutdownTimeout bounds the wait for requests in progress at shutdown.
const shutdownTimeout = 10 * time.Second

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
	data := fs.String("data", "seshdemo-data", "data directory (the development key, and the default store)")
	storeURL := fs.String("store", "", "session store URL: memory:, file:PATH, sqlite:PATH, redis://..., postgres://..., mysql://..., memcached://... (default file:DATA/sessions)")
	idle := fs.Duration("idle", sesh.DefaultIdleTimeout, "idle timeout")
	absolute := fs.Duration("absolute", sesh.DefaultAbsoluteTimeout, "absolute timeout")
	remember := fs.Duration("remember", 720*time.Hour, "lifetime of remember-me tokens")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"-idle", *idle}, {"-absolute", *absolute}, {"-remember", *remember}} {
		if d.v <= 0 {
			return fmt.Errorf("%s must be positive", d.name)
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	keys, err := loadKeys(*data, logger)
	if err != nil {
		return err
	}
	if *storeURL == "" {
		*storeURL = fileURL(filepath.Join(*data, "sessions"))
	}
	users, err := newUserDB(demoUsers)
	if err != nil {
		return err
	}
	store, closer, err := storeurl.Open(ctx, *storeURL)
	if err != nil {
		return err
	}
	defer closer.Close()
	logger.Info("seshdemo: session store", "url", storeurl.Redact(*storeURL))
	m, err := sesh.New(store, sesh.Config{
		Keys:   keys,
		Logger: logger,
		// The demo serves plain HTTP on loopback; production serves HTTPS
		// and keeps the default __Host- Secure cookie.
		Cookie:          sesh.CookieConfig{InsecureHTTP: true},
		IdleTimeout:     *idle,
		AbsoluteTimeout: *absolute,
		RememberTTL:     *remember,
		ErrorHandler:    errorHandler,
	})
	if err != nil {
		return err
	}
	p, err := csrf.New(csrf.Config{Logger: logger})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	// Requests are cancelled when the server shuts down, so that a waiting
	// PUT /api/kv does not hold it up.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           m.Handler(newApp(m, p, users, logger, storeScheme(*storeURL))),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()
	wg.Go(func() { sweep(sweepCtx, m, logger) })

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "seshdemo listening on http://%s/\n", ln.Addr())
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Shutdown waits for requests in progress, and for connections that
	// have not sent a request yet for up to 5 seconds.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	cancelBase()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("seshdemo: closing the connections still open", "error", err)
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// sweep removes dead records from stores that need it, until ctx is done.
func sweep(ctx context.Context, m *sesh.Manager, logger *slog.Logger) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := m.Sweep(ctx, sweepLimit); err != nil && ctx.Err() == nil {
				logger.Warn("seshdemo: sweep failed", "error", err)
			}
		}
	}
}

// storeScheme returns the scheme of a store URL, such as "redis".
func storeScheme(u string) string {
	scheme, _, _ := strings.Cut(strings.TrimSpace(u), ":")
	return strings.ToLower(scheme)
}

// fileURL returns the file: store URL of path, escaping the characters
// that storeurl reads as escapes or delimiters.
func fileURL(path string) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(filepath.ToSlash(path))
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
