package main

import (
	"bufio"
	"io"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
)

// wrapMiddleware adapts net/http middleware to gin: sesh's m.Handler and
// m.Exclusive, csrf's p.Handler. The rest of gin's chain (c.Next) runs
// inside the middleware, with
//
//   - c.Request set to the request the middleware passes on, whose context
//     carries the session, so handlers find it with
//     sesh.FromContext(c.Request.Context());
//   - c.Writer set to a gin.ResponseWriter that writes through the writer
//     the middleware passes on. sesh commits the session on the first
//     WriteHeader, Write or Flush through its writer, before the first byte
//     of the response; writing to gin's own writer would bypass it, and the
//     session would never be saved, or be saved after the response was sent
//     without its cookie. A middleware that passes gin's writer on as it is
//     (csrf, m.Exclusive) gets it back unwrapped.
//
// When the middleware answers the request itself without calling its next
// handler (a CSRF rejection, a store failure), the chain is aborted. When
// the chain returns, the status it set is passed to the middleware if
// nothing was written yet, so sesh sees the real status (and drops the
// changes of a 5xx response); c.Writer and c.Request are restored for the
// middleware earlier in the chain. If a handler panics, nothing is
// committed and the panic goes on to gin.Recovery.
func wrapMiddleware(mw func(http.Handler) http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		outer, req := c.Writer, c.Request
		defer func() { c.Writer, c.Request = outer, req }()
		called := false
		mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			called = true
			c.Request = r
			if gw, ok := w.(gin.ResponseWriter); ok {
				c.Writer = gw
				c.Next()
				return
			}
			tw := &through{ResponseWriter: outer, w: w, status: outer.Status()}
			c.Writer = tw
			c.Next()
			tw.commit()
		})).ServeHTTP(outer, req)
		if !called {
			c.Abort()
		}
	}
}

// through is a gin.ResponseWriter that writes through w, the writer of a
// net/http middleware (sesh's), which itself writes to gin's writer. Like
// gin's own writer it holds the status until the first byte or
// WriteHeaderNow, so that headers set after c.Status still go out (gin's
// renderers set Content-Type after it). Hijack, CloseNotify and Pusher
// come from gin's writer; Hijack and Flush go through w first, which
// commits the session.
type through struct {
	gin.ResponseWriter // gin's writer, below w
	w                  http.ResponseWriter
	status             int
	started            bool // the status was passed to w
}

var _ gin.ResponseWriter = (*through)(nil)

// Header returns the header map, which w and gin's writer share.
func (t *through) Header() http.Header { return t.w.Header() }

// WriteHeader records the status, as gin's writer does; it goes out with
// the first byte, or on WriteHeaderNow.
func (t *through) WriteHeader(code int) {
	if code <= 0 {
		return
	}
	if t.started {
		t.ResponseWriter.WriteHeader(code) // gin warns about the late call
		return
	}
	t.status = code
}

// commit passes the status to w if nothing was written, which commits the
// session, but leaves gin's writer to send the header, as gin does after
// its chain.
func (t *through) commit() {
	if !t.started {
		t.started = true
		t.w.WriteHeader(t.status)
	}
}

// WriteHeaderNow sends the header: through w, then out of gin's writer.
func (t *through) WriteHeaderNow() {
	if !t.started {
		t.commit()
		t.ResponseWriter.WriteHeaderNow()
	}
}

func (t *through) Write(b []byte) (int, error) {
	t.WriteHeaderNow()
	return t.w.Write(b)
}

func (t *through) WriteString(s string) (int, error) {
	t.WriteHeaderNow()
	return io.WriteString(t.w, s)
}

// Status returns the status set so far, or the one that went out (sesh's
// 503 if it could not commit).
func (t *through) Status() int {
	if t.started {
		return t.ResponseWriter.Status()
	}
	return t.status
}

// Size returns the bytes written to gin's writer, or -1 before the header.
func (t *through) Size() int {
	if !t.started {
		return -1
	}
	return t.ResponseWriter.Size()
}

func (t *through) Written() bool { return t.started }

func (t *through) Flush() {
	t.WriteHeaderNow()
	_ = http.NewResponseController(t.w).Flush()
}

func (t *through) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	t.started = true // sesh commits with 101 Switching Protocols
	return http.NewResponseController(t.w).Hijack()
}

// Unwrap lets http.ResponseController reach w.
func (t *through) Unwrap() http.ResponseWriter { return t.w }
