package main

import (
	"context"
	"errors"
	"github.com/seshgo/sesh/examples/exampletest"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/seal"
)

// startApp runs the example as `go run .` would and returns its base URL.
func startApp(t *testing.T) string { return exampletest.Start(t, run) }

// TestExample is the suite every framework example passes.
func TestExample(t *testing.T) { exampletest.Run(t, startApp) }

// failingStore is a memory store whose saves fail while fail is set.
type failingStore struct {
	sesh.Store
	fail atomic.Bool
}

func (f *failingStore) Save(ctx context.Context, key sesh.Key, rec sesh.Record, prev uint64) error {
	if f.fail.Load() {
		return errors.New("the disk is on fire")
	}
	return f.Store.Save(ctx, key, rec, prev)
}

// startGin serves the application on store with httptest, after routes
// lets the test add its own routes, and returns the base URL.
func startGin(t *testing.T, store sesh.Store, routes func(r *gin.Engine)) string {
	t.Helper()
	k, err := seal.GenerateKey(1)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := seal.NewRing(k)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	m, err := newManager(store, keys, logger)
	if err != nil {
		t.Fatal(err)
	}
	r, err := newApp(m, logger)
	if err != nil {
		t.Fatal(err)
	}
	if routes != nil {
		routes(r)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv.URL
}

// The adapter keeps gin's own behaviour: headers set after the status
// (gin's renderers set Content-Type after it) and gin's 404 page.
func TestAdapterKeepsGinBehaviour(t *testing.T) {
	base := startGin(t, memstore.New(), nil)
	c := exampletest.NewClient(t, base)
	for path, want := range map[string]string{
		"/":       "text/html; charset=utf-8",
		"/whoami": "application/json; charset=utf-8",
	} {
		res, err := c.HTTP().Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if ct := res.Header.Get("Content-Type"); ct != want {
			t.Errorf("GET %s: Content-Type %q, want %q", path, ct, want)
		}
	}
	if code, body := c.Get("/nowhere"); code != http.StatusNotFound || body != "404 page not found" {
		t.Errorf("GET /nowhere: %d %q, want gin's 404 page", code, body)
	}
}

// sesh drops the changes of a 5xx response however gin produces it: the
// adapter passes the status to sesh before anything is written.
func TestAdapterDropsChangesOf5xx(t *testing.T) {
	base := startGin(t, memstore.New(), func(r *gin.Engine) {
		r.POST("/test/set", func(c *gin.Context) {
			_ = session(c).Set("count", 7)
			c.Status(http.StatusNoContent)
		})
		fail := map[string]gin.HandlerFunc{
			"string":  func(c *gin.Context) { c.String(http.StatusInternalServerError, "boom") },
			"json":    func(c *gin.Context) { c.JSON(http.StatusServiceUnavailable, gin.H{"error": "boom"}) },
			"abort":   func(c *gin.Context) { c.AbortWithStatus(http.StatusInternalServerError) },
			"status":  func(c *gin.Context) { c.Status(http.StatusInternalServerError) }, // no body at all
			"panic":   func(c *gin.Context) { panic("boom") },                            // gin.Recovery answers 500
			"flushed": func(c *gin.Context) { c.Status(http.StatusBadGateway); c.Writer.Flush() },
		}
		for name, h := range fail {
			r.POST("/test/fail/"+name, func(c *gin.Context) {
				_ = session(c).Set("count", 99)
				h(c)
			})
		}
	})
	c := exampletest.NewClient(t, base)
	if code := c.Post("/test/set", nil, ""); code != http.StatusNoContent {
		t.Fatalf("set: status %d, want 204", code)
	}
	if n := c.Count(); n != 7 {
		t.Fatalf("count %d, want 7", n)
	}
	for _, name := range []string{"string", "json", "abort", "status", "panic", "flushed"} {
		if code := c.Post("/test/fail/"+name, nil, ""); code < 500 {
			t.Errorf("%s: status %d, want 5xx", name, code)
		}
		if n := c.Count(); n != 7 {
			t.Errorf("%s: the failed request's change was saved: count %d, want 7", name, n)
		}
	}
}

// A streaming handler's changes are committed, and its cookie sent, when
// it flushes: the flush goes through sesh's writer.
func TestAdapterCommitsBeforeFlush(t *testing.T) {
	base := startGin(t, memstore.New(), func(r *gin.Engine) {
		r.POST("/test/stream", func(c *gin.Context) {
			_ = session(c).Set("count", 5)
			c.Writer.Flush()
			_, _ = c.Writer.WriteString("streamed")
			_ = session(c).Set("count", 6) // after the response started: kept, the cookie is out
		})
	})
	c := exampletest.NewClient(t, base)
	req, _ := http.NewRequest("POST", base+"/test/stream", nil)
	if code, body := c.Do(req); code != http.StatusOK || body != "streamed" {
		t.Fatalf("stream: %d %q", code, body)
	}
	if c.SessionID() == "" {
		t.Fatal("no session cookie on a flushed response")
	}
	if n := c.Count(); n != 6 {
		t.Fatalf("count %d, want 6", n)
	}
}

// The session is committed before the first byte: when the store fails,
// sesh answers 503 instead of the handler's response, with no cookie.
func TestStoreFailureIs503(t *testing.T) {
	store := &failingStore{Store: memstore.New()}
	base := startGin(t, store, nil)
	c := exampletest.NewClient(t, base)
	tok := c.Token()
	store.fail.Store(true)
	req, _ := http.NewRequest("POST", base+"/counter", strings.NewReader(url.Values{"csrf_token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err := c.HTTP().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Location") != "" || len(res.Cookies()) != 0 {
		t.Fatalf("increment on a failing store: status %d, Location %q, %d cookies; want 503 without either",
			res.StatusCode, res.Header.Get("Location"), len(res.Cookies()))
	}
	store.fail.Store(false)
	if n := c.Count(); n != 0 {
		t.Fatalf("count %d after a failed save, want 0", n)
	}
}
