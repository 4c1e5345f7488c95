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

	"github.com/labstack/echo/v4"
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

// startEcho serves the application on store with httptest, after routes
// lets the test add its own routes, and returns the base URL.
func startEcho(t *testing.T, store sesh.Store, routes func(e *echo.Echo)) string {
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
	e, err := newApp(m, logger)
	if err != nil {
		t.Fatal(err)
	}
	if routes != nil {
		routes(e)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv.URL
}

// A handler's error is answered inside sesh's middleware, so sesh sees
// the 500 and drops the changes the failed request made.
func TestHandlerErrorDropsChanges(t *testing.T) {
	base := startEcho(t, memstore.New(), func(e *echo.Echo) {
		e.POST("/test/set", func(c echo.Context) error {
			if err := session(c).Set("count", 7); err != nil {
				return err
			}
			return c.NoContent(http.StatusNoContent)
		})
		e.POST("/test/fail", func(c echo.Context) error {
			if err := session(c).Set("count", 99); err != nil {
				return err
			}
			return echo.NewHTTPError(http.StatusInternalServerError, "boom")
		})
	})
	c := exampletest.NewClient(t, base)
	if code := c.Post("/test/set", nil, ""); code != http.StatusNoContent {
		t.Fatalf("set: status %d", code)
	}
	if n := c.Count(); n != 7 {
		t.Fatalf("count %d, want 7", n)
	}
	req, _ := http.NewRequest("POST", base+"/test/fail", nil)
	code, body := c.Do(req)
	if code != http.StatusInternalServerError || !strings.Contains(body, "boom") {
		t.Fatalf("fail: status %d, body %q; want Echo's 500 JSON", code, body)
	}
	if n := c.Count(); n != 7 {
		t.Fatalf("the failed request's change was saved: count %d, want 7", n)
	}
}

// The session is committed before the first byte: when the store fails,
// sesh answers 503 instead of the handler's response, with no cookie.
func TestStoreFailureIs503(t *testing.T) {
	store := &failingStore{Store: memstore.New()}
	base := startEcho(t, store, nil)
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
