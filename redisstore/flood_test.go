package redisstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/redisstore"
	"github.com/seshgo/sesh/seal"
)

// floodID returns a well-formed session ID that was never issued.
func floodID(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestFloodCreatesNoKeys sends thousands of requests with bogus, empty,
// malformed, oversized, duplicated or well-formed but unknown session and
// remember-me cookies, over HTTP, to handlers that only read the session,
// on a store in Redis. No request may fail or set a cookie (but the
// deletion of an unusable remember-me cookie), the client may send no
// command but GET (and its connection set-up), and no key may exist under
// the store's prefix afterwards.
func TestFloodCreatesNoKeys(t *testing.T) {
	c := backends[0].client(t)
	cmds := &commandLog{}
	c.AddHook(cmds)
	prefix := testPrefix(t, c)
	k, err := seal.GenerateKey(1)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := seal.NewRing(k)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sesh.New(redisstore.New(c, redisstore.WithPrefix(prefix)), sesh.Config{Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		if r.URL.Path == "/nothing" {
			return
		}
		v, _ := sesh.Get[string](s, "k")
		fmt.Fprintf(w, "%s|%q|%v|%v|%d", s.User(), v, s.Keys(), s.Remembered(), len(s.Flash().Pop()))
	})))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 8

	const name, remember = sesh.DefaultCookieName, sesh.DefaultCookieName + "-remember"
	id := floodID("flood")
	sel := floodID("selector")[:22]
	var cookies []string
	for _, v := range []string{"", "x", "=", id[:42], id + "A", id + "=", "\"" + id + "\"", strings.Repeat("+", 43),
		strings.Repeat("é", 22), strings.Repeat("x", 4000), "../../etc/passwd"} {
		cookies = append(cookies, name+"="+v, remember+"="+v, remember+"="+sel+"."+v)
	}
	cookies = append(cookies, "", ";;", strings.Repeat(name+"="+id+"; ", 300), strings.Repeat(remember+"="+sel+"."+id+"; ", 100))
	for i := range 1500 {
		cookies = append(cookies, name+"="+floodID(fmt.Sprint("unknown ", i)))
	}
	for i := range 500 {
		cookies = append(cookies, fmt.Sprintf("%s=%s; %s=%s.%s", name, floodID(fmt.Sprint("s", i)), remember, floodID(fmt.Sprint("r", i))[:22], floodID(fmt.Sprint("v", i))))
	}

	var failed, sent atomic.Int64
	jobs := make(chan string)
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			for ck := range jobs {
				n := sent.Add(1)
				path := "/read"
				if n%5 == 0 {
					path = "/nothing"
				}
				if err := floodRequest(client, srv.URL+path, ck, remember); err != nil && failed.Add(1) <= 20 {
					t.Errorf("%s with Cookie %.200q: %v", path, ck, err)
				}
			}
		})
	}
	for _, ck := range cookies {
		jobs <- ck
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed", n, sent.Load())
	}
	cmds.mu.Lock()
	count := map[string]int{}
	for _, cmd := range cmds.names {
		count[cmd]++
	}
	cmds.mu.Unlock()
	for cmd, n := range count {
		switch cmd {
		case "get", "hello", "client", "ping", "select", "auth":
		default:
			t.Errorf("the flood sent %d %s commands", n, strings.ToUpper(cmd))
		}
	}
	t.Logf("%d requests in %v, Redis commands %v", sent.Load(), elapsed.Round(time.Millisecond), count)
	keys, err := scanAll(context.Background(), c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("the flood left %d keys under the store's prefix, first %q", len(keys), keys[0])
	}
}

// floodRequest sends one GET with the raw Cookie header and checks that it
// succeeds and sets no cookie but the deletion of the remember cookie.
func floodRequest(client *http.Client, url, cookie, remember string) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %q", res.StatusCode, body)
	}
	if !strings.HasSuffix(url, "/nothing") && string(body) != `|""|[]|false|0` {
		return fmt.Errorf("an anonymous read found something: %q", body)
	}
	for _, c := range res.Cookies() {
		if c.Name != remember || c.MaxAge >= 0 || strings.HasSuffix(url, "/nothing") {
			return fmt.Errorf("Set-Cookie %q", res.Header.Values("Set-Cookie"))
		}
	}
	if _, err := req.Cookie(remember); err == nil && !strings.HasSuffix(url, "/nothing") && len(res.Cookies()) != 1 {
		return fmt.Errorf("an unusable remember cookie was not deleted: Set-Cookie %q", res.Header.Values("Set-Cookie"))
	}
	return nil
}
