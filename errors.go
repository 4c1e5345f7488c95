package sesh

import (
	"errors"
	"net/http"
)

// Errors reported by the manager. The middleware hands them to
// [Config.ErrorHandler]; session methods return them.
var (
	// ErrStoreUnavailable wraps any store failure: a timeout, a refused
	// connection, a record sealed under a key this server does not have.
	// It never means "no session": the middleware answers 503 and sends no
	// cookie, so a store outage never logs a user out.
	ErrStoreUnavailable = errors.New("sesh: session store unavailable")
	// ErrSessionGone means the session was destroyed or renewed by another
	// request while this one was running. Its changes were not saved, and
	// no cookie was sent, so the browser keeps the cookie it was given.
	ErrSessionGone = errors.New("sesh: session was destroyed or renewed concurrently")
	// ErrLockTimeout means an exclusive request waited too long for
	// another request on the same session.
	ErrLockTimeout = errors.New("sesh: timed out waiting for exclusive session access")
	// ErrNoMiddleware is returned by a session taken from a context that
	// the manager's middleware did not prepare.
	ErrNoMiddleware = errors.New("sesh: no session in context (is the handler wrapped by Manager.Handler?)")
	// ErrNoValue is returned by [Lookup] for a key that is not set.
	ErrNoValue = errors.New("sesh: no value for key")
	// ErrInvalidKey is returned for a value key that is empty, longer than
	// 256 bytes, or starts with a byte reserved for the library (0x00 or 0x01).
	ErrInvalidKey = errors.New("sesh: invalid value key")
	// ErrHeadersSent is returned by an explicit commit that needs to set a
	// cookie after the response headers were written.
	ErrHeadersSent = errors.New("sesh: response headers already sent")
)

// ErrorHandler writes the response for a request whose session could not
// be loaded or committed. It must not touch the session.
type ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

// DefaultErrorHandler answers 503 with Retry-After for store failures and
// lock timeouts, 409 for a session ended by a concurrent request, 413 for
// a session over its size limit, and 500 otherwise. The body never
// carries the error's text, which may name internal systems.
func DefaultErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrStoreUnavailable), errors.Is(err, ErrLockTimeout):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, ErrSessionGone):
		code = http.StatusConflict
	case errors.Is(err, ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, http.StatusText(code), code)
}
