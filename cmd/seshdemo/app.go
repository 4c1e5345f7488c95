package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/csrf"
)

// app holds what the handlers share.
type app struct {
	m      *sesh.Manager
	csrf   *csrf.Protection
	users  *userDB
	logger *slog.Logger
	// storeName is the store's URL scheme, shown in the pages' footer.
	storeName string
	queue     sessionQueue
}

// newApp returns the demo's routes. It goes inside m.Handler.
func newApp(m *sesh.Manager, p *csrf.Protection, users *userDB, logger *slog.Logger, storeName string) http.Handler {
	a := &app{m: m, csrf: p, users: users, logger: logger, storeName: storeName}
	mux := http.NewServeMux()
	a.routePages(mux)
	mux.Handle("/api/", a.apiGuard(a.apiRoutes()))
	return mux
}

// apiRoute dispatches the requests for one API path by method, answering
// 405 in JSON for the others. GET routes also answer HEAD.
type apiRoute map[string]http.Handler

func (rt apiRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if h, ok := rt[method]; ok {
		h.ServeHTTP(w, r)
		return
	}
	methodNotAllowed(w, rt.allowed()...)
}

func (rt apiRoute) allowed() []string {
	var out []string
	for m := range rt {
		out = append(out, m)
		if m == http.MethodGet {
			out = append(out, http.MethodHead)
		}
	}
	slices.Sort(out)
	return out
}

func methodNotAllowed(w http.ResponseWriter, allowed ...string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	jsonError(w, http.StatusMethodNotAllowed, "method not allowed")
}

// apiGuard refuses unsafe API requests that a cross-site page could have
// sent (see the package documentation). It does not touch the session.
func (a *app) apiGuard(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cop.Check(r); err != nil {
			a.refuse(w, r, "cross-origin request")
			return
		}
		if !safeMethod(r.Method) && simpleContentType(r.Header.Get("Content-Type")) {
			a.refuse(w, r, "content type that a cross-site page can send")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *app) refuse(w http.ResponseWriter, r *http.Request, why string) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	a.m.Report(r.Context(), sesh.Event{
		Kind: sesh.EventCSRFRejected, IP: host, UserAgent: r.UserAgent(),
		Detail: "API " + r.Method + " " + r.URL.Path + ": " + why,
	})
	jsonError(w, http.StatusForbidden, "cross-origin request refused")
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// simpleContentType reports whether ct is a content type that a cross-site
// page can send without a CORS preflight, or one too malformed to tell.
func simpleContentType(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		// Browsers look at the essence before any ';'.
		mt, _, _ = strings.Cut(ct, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		if mt == "" || !strings.Contains(mt, "/") {
			return true
		}
	}
	switch mt {
	case "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return true
	}
	return false
}

// errorHandler writes the response when a session cannot be loaded or
// committed: JSON under /api/, the default elsewhere.
func errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if !isAPI(r) {
		pageErrorHandler(w, r, err)
		return
	}
	code, msg := http.StatusInternalServerError, "internal error"
	switch {
	case errors.Is(err, sesh.ErrSessionGone):
		code, msg = http.StatusConflict, "the session was ended by another request; nothing was saved"
	case errors.Is(err, sesh.ErrLockTimeout):
		code, msg = http.StatusServiceUnavailable, "the session is busy; try again"
	case errors.Is(err, sesh.ErrStoreUnavailable):
		code, msg = http.StatusServiceUnavailable, "the session store is unavailable; try again"
	case errors.Is(err, sesh.ErrTooLarge):
		code, msg = http.StatusRequestEntityTooLarge, "the session would be too large"
	}
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	jsonError(w, code, msg)
}

func isAPI(r *http.Request) bool {
	return r.URL.Path == "/api" || strings.HasPrefix(r.URL.Path, "/api/")
}

// writeJSON writes v as the JSON response.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

type errorBody struct {
	Error string `json:"error"`
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{msg})
}

// noContent answers 204.
func noContent(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// maxBody bounds JSON request bodies.
const maxBody = 1 << 20

// readJSON decodes the request body, a single JSON value, into dst. On
// failure it answers the request and returns false.
func readJSON(w http.ResponseWriter, r *http.Request, dst any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			jsonError(w, http.StatusUnsupportedMediaType, "the body must be JSON (Content-Type: application/json)")
			return false
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	err := dec.Decode(dst)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			jsonError(w, http.StatusRequestEntityTooLarge, "the body is too large")
			return false
		}
		jsonError(w, http.StatusBadRequest, "malformed JSON body")
		return false
	}
	return true
}

// exclusive wraps a read-modify-write route: requests on one session are
// queued in this process, in arrival order, then serialised across
// processes by m.Exclusive and the store's lock. Without the queue, every
// waiting request would poll the store's lock: with a few hundred
// parallel requests on one session, an SQL store's lease lock is taken
// in no particular order, some requests wait past Config.LockTimeout, and
// each waiter holds a database connection while it polls.
func (a *app) exclusive(h http.Handler) http.Handler {
	h = a.m.Exclusive(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, err := a.queue.acquire(r)
		if err != nil {
			errorHandler(w, r, err)
			return
		}
		defer release()
		h.ServeHTTP(w, r)
	})
}

// queueTimeout bounds the wait in a sessionQueue.
const queueTimeout = 20 * time.Second

// sessionQueue queues requests by the session (or remember-me) cookie
// they carry. Each key has a one-slot semaphore; Go's channels hand it to
// waiting senders in arrival order.
type sessionQueue struct {
	mu    sync.Mutex
	slots map[[sha256.Size]byte]*queueSlot
}

type queueSlot struct {
	sem  chan struct{}
	refs int
}

// acquire waits for r's turn and returns the function that ends it. A
// request without a session cookie does not wait: it will get a session
// of its own.
func (q *sessionQueue) acquire(r *http.Request) (func(), error) {
	var key [sha256.Size]byte
	if c, err := r.Cookie(sessionCookie); err == nil {
		key = sha256.Sum256([]byte("s" + c.Value))
	} else if c, err := r.Cookie(rememberCookie); err == nil {
		key = sha256.Sum256([]byte("r" + c.Value))
	} else {
		return func() {}, nil
	}
	q.mu.Lock()
	if q.slots == nil {
		q.slots = make(map[[sha256.Size]byte]*queueSlot)
	}
	s := q.slots[key]
	if s == nil {
		s = &queueSlot{sem: make(chan struct{}, 1)}
		q.slots[key] = s
	}
	s.refs++
	q.mu.Unlock()
	done := func() {
		q.mu.Lock()
		if s.refs--; s.refs == 0 {
			delete(q.slots, key)
		}
		q.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(r.Context(), queueTimeout)
	defer cancel()
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem; done() }, nil
	case <-ctx.Done():
		done()
		if r.Context().Err() != nil {
			return nil, r.Context().Err()
		}
		return nil, sesh.ErrLockTimeout
	}
}
