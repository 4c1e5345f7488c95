package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seshgo/sesh/seal"
)

func TestMain(m *testing.M) {
	// One hash at the production cost takes seconds under the race
	// detector, and the tests sign in hundreds of times.
	hashIterations = 1000
	os.Exit(m.Run())
}

// logBuffer collects the demo's log, shown when a test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startDemo runs the demo on a free loopback port, with dir as its data
// directory and the extra flags args, and returns its URL. The demo stops
// when the test ends.
func startDemo(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return startDemoLogging(t, dir, &logBuffer{}, args...)
}

// demoLog keeps what the demo logs, to show if the test fails.
type demoLog interface {
	io.Writer
	fmt.Stringer
}

// startDemoLogging is startDemo with the demo's log written to logs.
func startDemoLogging(t *testing.T, dir string, logs demoLog, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0", "-data", dir}, args...), pw, logs)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if t.Failed() {
			t.Logf("the demo's log:\n%s", logs)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		<-done
		t.Fatalf("reading the demo's URL: %v; log:\n%s", err, logs)
	}
	go io.Copy(io.Discard, pr)
	u := regexp.MustCompile(`http://\S+/`).FindString(line)
	if u == "" {
		t.Fatalf("no URL in %q", line)
	}
	return u
}

var tokenRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// formToken returns the CSRF token of the first form in page.
func formToken(t *testing.T, page string) string {
	t.Helper()
	m := tokenRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

func TestDemoCountsVisitsAndFlashes(t *testing.T) {
	t.Setenv("SESH_KEYS", "")
	dir := t.TempDir()
	base := startDemo(t, dir)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	visits := func() string {
		t.Helper()
		res, err := c.Get(base)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	var page string
	for i, want := range []string{`id="visits">1<`, `id="visits">2<`} {
		if page = visits(); !strings.Contains(page, want) {
			t.Fatalf("visit %d: page lacks %q", i+1, want)
		}
	}
	// A flash message shows once. The form post is same-origin and
	// carries the page's CSRF token.
	form := url.Values{"message": {"hello <b>there</b>"}, "csrf_token": {formToken(t, page)}}
	req, _ := http.NewRequest("POST", base+"flash", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "hello &lt;b&gt;there&lt;/b&gt;") {
		t.Fatalf("flash not shown (escaped) after redirect: %s", body)
	}
	if strings.Contains(visits(), "hello") {
		t.Fatal("flash message shown twice")
	}
	// A cross-site form post is refused, token or not.
	form.Set("csrf_token", formToken(t, visits()))
	req, _ = http.NewRequest("POST", base+"flash", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site post: got %d, want 403", res.StatusCode)
	}
	// The development key was created once, private, and is reused.
	fi, err := os.Stat(filepath.Join(dir, "dev-key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev key mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(filepath.Join(dir, "dev-key"))
	if _, err := seal.ParseRing(strings.TrimSpace(string(b))); err != nil {
		t.Fatalf("dev key: %v", err)
	}
}

func TestDemoRefusesBadKeys(t *testing.T) {
	t.Setenv("SESH_KEYS", seal.ExampleKey)
	err := run(t.Context(), []string{"-addr", "127.0.0.1:0", "-data", t.TempDir()}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "SESH_KEYS") {
		t.Fatalf("got %v, want an error naming SESH_KEYS", err)
	}
}

func TestDemoKeepsItsDevelopmentKey(t *testing.T) {
	t.Setenv("SESH_KEYS", "")
	dir := t.TempDir()
	var logs logBuffer
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // start, then stop at once
	if err := run(ctx, []string{"-addr", "127.0.0.1:0", "-data", dir}, io.Discard, &logs); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(filepath.Join(dir, "dev-key"))
	if err := run(ctx, []string{"-addr", "127.0.0.1:0", "-data", dir}, io.Discard, &logs); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(filepath.Join(dir, "dev-key"))
	if len(first) == 0 || !bytes.Equal(first, second) {
		t.Fatal("the development key was not kept")
	}
	if n := strings.Count(logs.String(), "SESH_KEYS is not set"); n != 2 {
		t.Fatalf("the development key was announced %d times in two starts, want 2", n)
	}
	if strings.Contains(logs.String(), strings.TrimSpace(string(first))) {
		t.Fatal("the development key was logged")
	}
}

func TestDemoRefusesBadFlags(t *testing.T) {
	t.Setenv("SESH_KEYS", "")
	for _, args := range [][]string{
		{"-idle", "0s"},
		{"-absolute", "-1h"},
		{"-remember", "0"},
		{"-store", "nosuch:x"},
		{"-store", "redis://user:hunter22@127.0.0.1:1/0"},
		{"stray"},
	} {
		err := run(t.Context(), append([]string{"-addr", "127.0.0.1:0", "-data", t.TempDir()}, args...), io.Discard, io.Discard)
		if err == nil {
			t.Errorf("%q: run succeeded", args)
			continue
		}
		if strings.Contains(err.Error(), "hunter22") {
			t.Errorf("%q: the error shows the password: %v", args, err)
		}
	}
}

func TestDemoStoreFlag(t *testing.T) {
	t.Setenv("SESH_KEYS", "")
	// A data directory whose name storeurl would misread if not escaped.
	dir := filepath.Join(t.TempDir(), "a%20b?c#d")
	base := startDemo(t, dir, "-store", "memory:")
	tr := newTransport(t)
	c := newClient(t, base, tr)
	c.post("/api/counter", nil).want(t, http.StatusOK)
	if _, err := os.Stat(filepath.Join(dir, "sessions")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("with -store memory:, the file store was made anyway (%v)", err)
	}
	tr.CloseIdleConnections()
	// The default store is the file store in the data directory.
	base = startDemo(t, dir)
	c = newClient(t, base, newTransport(t))
	c.post("/api/counter", nil).want(t, http.StatusOK)
	entries, err := os.ReadDir(filepath.Join(dir, "sessions"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("the default store wrote nothing in DATA/sessions: %v", err)
	}
}

func TestShutdownCancelsWaitingPut(t *testing.T) {
	t.Setenv("SESH_KEYS", "")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-data", t.TempDir(), "-store", "memory:"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	base := regexp.MustCompile(`http://\S+/`).FindString(line)
	c := newClient(t, base, newTransport(t))
	started, result := c.putWaiting("/api/kv/slow?delay_ms=10000", `{"value":1}`)
	select {
	case <-started:
	case r := <-result:
		t.Fatalf("the PUT was answered %d before it waited", r.status)
	}
	start := time.Now()
	cancel() // shut down: the waiting PUT is cancelled
	if err := <-done; err != nil {
		t.Fatalf("run: %v (the waiting request held up the shutdown)", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if r := <-result; r.status == http.StatusNoContent {
		t.Fatal("the PUT was written after the shutdown began")
	}
}

func TestWaitHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := wait(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait: %v", err)
	}
	if err := wait(t.Context(), 0); err != nil {
		t.Fatalf("wait 0: %v", err)
	}
}
