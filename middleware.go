package sesh

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
)

// Handler returns middleware that gives every request a lazily loaded
// session (see [FromContext]) and commits it before the first byte of the
// response: on the first Write, WriteHeader, Flush, ReadFrom or Hijack, or
// when next returns without writing.
//
// If the session cannot be loaded or committed while the response is
// still unwritten, the error handler writes the response instead of next
// (503 for a store failure, with no cookie), and whatever next writes
// after that is discarded. Commits use a context that the client cannot
// cancel by disconnecting. Changes made by a response with status 500 or
// above are dropped unless Config.SaveOnServerError is set.
//
// The response writer passed to next keeps Flush and Hijack, and unwraps
// for [http.ResponseController].
func (m *Manager) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := &Session{m: m}
		rw := &s.rw
		rw.ResponseWriter, rw.s = w, s
		s.ctx = requestCtx{r.Context(), s}
		copyRequest(&s.r, r, &s.ctx)
		s.req, s.w = &s.r, rw
		defer s.release()
		next.ServeHTTP(rw, s.req)
		rw.finish()
	})
}

// copyRequest sets *dst to a copy of r with ctx as its context, as
// r.WithContext would return it, without the allocation of its own: the
// middleware's copy lives in the Session. It is kept out of line because
// where Handler is inlined, its closure's call to WithContext might not
// be, and the Request would then escape to a heap allocation after all.
//
//go:noinline
func copyRequest(dst, r *http.Request, ctx context.Context) {
	*dst = *r.WithContext(ctx)
}

// Exclusive returns middleware that serialises requests on one session:
// a request through it waits (up to Config.LockTimeout) until no other
// exclusive request holds the session, loads it, and keeps it until its
// changes are committed. Use it for read-modify-write of one key, such as
// a counter or a cart, where compare-and-set merging of different keys is
// not enough. It must be inside [Manager.Handler], and must run before
// anything touches the session.
//
// Across processes, requests are serialised only if the store implements
// [Locker]; otherwise only within this process.
func (m *Manager) Exclusive(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		if s.detached || s.m != m {
			m.cfg.ErrorHandler(w, r, ErrNoMiddleware)
			return
		}
		if err := s.makeExclusive(); err != nil {
			m.cfg.Logger.Error("sesh: Exclusive used after the session was changed; wrap the route, not an inner handler")
			m.cfg.ErrorHandler(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// makeExclusive switches the session to exclusive mode. A session that was
// only read so far (by a CSRF check, say) is loaded again under the lock; a
// session with changes cannot be.
func (s *Session) makeExclusive() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exclusive = true
	switch {
	case s.state == sessUnloaded || s.unlock != nil:
		return nil
	case s.failed != nil:
		return s.failed
	case s.dirty() || len(s.retiring()) > 0 || (s.x != nil && len(s.x.popped) > 0):
		return errors.New("sesh: Exclusive after the session was changed")
	case s.deliver:
		// Restored from a remember-me token by this request: lock it and
		// read it again under the lock.
		return s.lockAdopted()
	}
	s.state = sessUnloaded
	s.presented, s.id, s.key, s.rec, s.version, s.gone = false, sessionID{}, Key{}, nil, 0, false
	s.setNewIP("")
	s.dropRemember = false
	return nil
}

// responseWriter commits the session before the response starts.
type responseWriter struct {
	http.ResponseWriter
	s           *Session
	status      int
	wroteHeader bool
	aborted     bool // the error handler answered; next's output is dropped
}

var errAborted = errors.New("sesh: response replaced by the session error handler")

// start commits the session and reports whether next's output may go
// out. It runs once, before the first byte.
func (w *responseWriter) start(status int) bool {
	if w.wroteHeader {
		return !w.aborted
	}
	w.wroteHeader, w.status = true, status
	s := w.s
	s.mu.Lock()
	loaded := s.state == sessLoaded
	s.mu.Unlock()
	err := s.commit(false, status)
	s.release()
	if err == nil {
		if loaded {
			addVary(w.Header()) // after the commit, whose cookie headers may bring it
		}
		return true
	}
	w.aborted = true
	h := w.Header()
	clear(h)
	s.mu.Lock()
	if s.x != nil {
		for _, c := range s.x.delivered {
			h.Add("Set-Cookie", c) // a restored session must reach the browser
		}
	}
	if s.clearSite {
		h.Set("Clear-Site-Data", s.m.cfg.ClearSiteData)
	}
	s.mu.Unlock()
	s.m.cfg.Logger.LogAttrs(s.req.Context(), slog.LevelWarn, "sesh: session commit failed", slog.String("error", err.Error()))
	s.m.cfg.ErrorHandler(w.ResponseWriter, s.req, err)
	return false
}

// WriteHeader implements [http.ResponseWriter].
func (w *responseWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		if !w.wroteHeader {
			w.ResponseWriter.WriteHeader(code)
		}
		return
	}
	if w.wroteHeader {
		if !w.aborted {
			w.ResponseWriter.WriteHeader(code) // let net/http report the superfluous call
		}
		return
	}
	if w.start(code) {
		w.ResponseWriter.WriteHeader(code)
	}
}

// Write implements [http.ResponseWriter].
func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.aborted {
		return 0, errAborted
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps io.Copy on the underlying writer's fast path.
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.aborted {
		return 0, errAborted
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(w.ResponseWriter, src)
}

// Flush implements [http.Flusher]; it commits the session first.
func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.aborted {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}

// Hijack implements [http.Hijacker]; it commits the session first.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !w.wroteHeader && !w.start(http.StatusSwitchingProtocols) {
		return nil, nil, errAborted
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets [http.ResponseController] reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish runs after next returns.
func (w *responseWriter) finish() {
	if !w.wroteHeader {
		if w.start(http.StatusOK) {
			// Nothing was written: the server will send 200 with our headers.
			return
		}
		return
	}
	if w.aborted {
		return
	}
	// Changes made after the response started: save them if the cookie the
	// browser holds already names the session; a new session cannot be
	// created without a cookie.
	if err := w.s.commit(true, w.status); err != nil {
		w.s.m.cfg.Logger.LogAttrs(w.s.req.Context(), slog.LevelError,
			"sesh: session changes made after the response started were not saved", slog.String("error", err.Error()))
	}
}
