package sesh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"time"
)

// EventKind names a session lifecycle or security event.
type EventKind string

// Event kinds. The security-relevant ones (theft suspected, binding
// mismatch, network changed, CSRF rejected, corrupt record, duplicate
// cookie) are logged at warning level by [NewSlogObserver].
const (
	EventCreated         EventKind = "created"
	EventRenewed         EventKind = "renewed"
	EventDestroyed       EventKind = "destroyed"
	EventExpired         EventKind = "expired"
	EventLogin           EventKind = "login"
	EventLogout          EventKind = "logout"
	EventRevoked         EventKind = "revoked"
	EventRememberUsed    EventKind = "remember_used"
	EventTheftSuspected  EventKind = "theft_suspected"
	EventBindingMismatch EventKind = "binding_mismatch"
	EventNetworkChanged  EventKind = "network_changed"
	EventCSRFRejected    EventKind = "csrf_rejected"
	EventCorrupt         EventKind = "corrupt_record"
	EventDuplicateCookie EventKind = "duplicate_cookie"
	// EventUnknownSession: a well-formed session cookie named no live
	// session (never issued, expired, or ended). Expected now and then
	// from returning visitors; a burst from one client is a guessing
	// attack worth throttling. Logged at debug level by NewSlogObserver.
	EventUnknownSession EventKind = "unknown_session"
)

// Event describes something that happened to a session. It never carries
// a session ID, a remember-me token or a CSRF secret: sessions are named by
// their opaque handle, which cannot be used as a credential.
type Event struct {
	Kind      EventKind
	Time      time.Time
	User      string // "" when anonymous or unknown
	Handle    string // the session's handle, as listed by Manager.Sessions
	IP        string
	UserAgent string
	Detail    string
}

// Observer receives events. Observe is called synchronously on the request
// path, possibly from many goroutines at once: keep it fast and safe for
// concurrent use.
type Observer interface {
	Observe(ctx context.Context, e Event)
}

// ObserverFunc adapts a function to [Observer].
type ObserverFunc func(ctx context.Context, e Event)

// Observe implements [Observer].
func (f ObserverFunc) Observe(ctx context.Context, e Event) { f(ctx, e) }

// NewSlogObserver returns an [Observer] that logs each event to l.
func NewSlogObserver(l *slog.Logger) Observer { return slogObserver{l} }

type slogObserver struct{ l *slog.Logger }

// level returns the level at which events of kind k are logged.
func (slogObserver) level(k EventKind) slog.Level {
	switch {
	case k.Security():
		return slog.LevelWarn
	case k == EventUnknownSession:
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

func (o slogObserver) Observe(ctx context.Context, e Event) {
	level := o.level(e.Kind)
	if !o.l.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("event", string(e.Kind))}
	for _, a := range [...]struct{ k, v string }{
		{"user", e.User}, {"session", e.Handle}, {"ip", e.IP}, {"user_agent", e.UserAgent}, {"detail", e.Detail},
	} {
		if a.v != "" {
			attrs = append(attrs, slog.String(a.k, a.v))
		}
	}
	o.l.LogAttrs(ctx, level, "sesh: "+string(e.Kind), attrs...)
}

// wants reports whether the observer would do anything with an event of
// kind k, so that a request does not build events a slog observer would
// drop. Other observers get every event.
func (m *Manager) wants(ctx context.Context, k EventKind) bool {
	if o, ok := m.cfg.Observer.(slogObserver); ok {
		return o.l.Enabled(ctx, o.level(k))
	}
	return true
}

// Security reports whether k is a security event rather than routine
// lifecycle.
func (k EventKind) Security() bool {
	switch k {
	case EventTheftSuspected, EventBindingMismatch, EventNetworkChanged, EventCSRFRejected, EventCorrupt, EventDuplicateCookie:
		return true
	}
	return false
}

// Report sends e to the manager's observer, filling in Time. Packages
// built on sesh (csrf, for one) report through it.
func (m *Manager) Report(ctx context.Context, e Event) {
	if e.Time.IsZero() {
		e.Time = m.now()
	}
	m.cfg.Observer.Observe(ctx, e)
}

// handle returns the public handle of a store key: a short digest that
// names a session in listings and events but opens nothing.
func handle(k Key) string {
	h := sha256.New()
	h.Write([]byte("sesh/v1/handle\x00"))
	h.Write(k[:])
	var sum [32]byte
	// Hex: a handle never starts with '-' (a CLI would take it for a
	// flag) and needs no escaping in URLs.
	return hex.EncodeToString(h.Sum(sum[:0])[:12])
}
