package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/seshgo/sesh/seal"
)

// startDemo runs the demo on a free loopback port and returns its URL.
func startDemo(t *testing.T, dir string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-data", dir}, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the demo's URL: %v", err)
	}
	go io.Copy(io.Discard, pr)
	u := regexp.MustCompile(`http://\S+/`).FindString(line)
	if u == "" {
		t.Fatalf("no URL in %q", line)
	}
	return u
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
	for i, want := range []string{`id="visits">1<`, `id="visits">2<`} {
		if body := visits(); !strings.Contains(body, want) {
			t.Fatalf("visit %d: page lacks %q", i+1, want)
		}
	}
	// A flash message shows once. The form post is same-origin.
	req, _ := http.NewRequest("POST", base+"flash", strings.NewReader(url.Values{"message": {"hello <b>there</b>"}}.Encode()))
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
	// A cross-site form post is refused.
	req, _ = http.NewRequest("POST", base+"flash", strings.NewReader("message=x"))
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
