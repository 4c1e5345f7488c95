package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// storeCaps says what the store under test can do.
type storeCaps struct {
	// userIndex: the store indexes sessions by user, so devices can be
	// listed and revoked, and a password change ends the user's other
	// sessions and remember-me tokens. memcached cannot: the API answers
	// 501 for devices.
	userIndex bool
}

func TestAPI(t *testing.T) {
	t.Setenv("SESH_KEYS", "")
	apiSuite(t, startDemo(t, t.TempDir()), storeCaps{userIndex: true})
}

// TestAPIOnEveryStore runs the API suite with every store. Stores that
// need a server take its address from the SESH_TEST_* variables that
// scripts/testservers.sh sets; without one a store is skipped, except in
// CI, where that is an error.
func TestAPIOnEveryStore(t *testing.T) {
	t.Setenv("SESH_KEYS", "")
	run := randomName()
	prefix := "seshdemo-test-" + run + ":"
	const table = "seshdemo_test"
	cases := []struct {
		name string
		url  func(t *testing.T) string
		caps storeCaps
	}{
		{"memory", func(*testing.T) string { return "memory:" }, storeCaps{userIndex: true}},
		{"sqlite", func(t *testing.T) string {
			return "sqlite:" + escapePath(filepath.Join(t.TempDir(), "sessions.db"))
		}, storeCaps{userIndex: true}},
		{"redis", func(t *testing.T) string {
			return withQuery(needEnv(t, "SESH_TEST_REDIS"), "prefix", prefix)
		}, storeCaps{userIndex: true}},
		{"redis-sentinel", func(t *testing.T) string {
			master := os.Getenv("SESH_TEST_REDIS_SENTINEL_MASTER")
			if master == "" {
				master = "seshmaster"
			}
			return withQuery(schemeURL("redis+sentinel", needEnv(t, "SESH_TEST_REDIS_SENTINEL"))+"/"+master, "prefix", prefix)
		}, storeCaps{userIndex: true}},
		{"redis-cluster", func(t *testing.T) string {
			return withQuery(schemeURL("redis+cluster", needEnv(t, "SESH_TEST_REDIS_CLUSTER")), "prefix", prefix)
		}, storeCaps{userIndex: true}},
		{"postgres", func(t *testing.T) string {
			return withQuery(needEnv(t, "SESH_TEST_POSTGRES"), "table", table)
		}, storeCaps{userIndex: true}},
		{"mysql", func(t *testing.T) string {
			return withQuery(mysqlURL(t, needEnv(t, "SESH_TEST_MYSQL")), "table", table)
		}, storeCaps{userIndex: true}},
		{"memcached", func(t *testing.T) string {
			return withQuery(schemeURL("memcached", needEnv(t, "SESH_TEST_MEMCACHED")), "prefix", prefix)
		}, storeCaps{userIndex: false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.url(t)
			// Remember-me tokens of this run expire soon in shared servers.
			apiSuite(t, startDemo(t, t.TempDir(), "-store", u, "-remember", "1h"), tc.caps)
		})
	}
}

// TestCounterAcrossInstances runs two demos on one file store: parallel
// increments of one session, sent to both, are still exact.
func TestCounterAcrossInstances(t *testing.T) {
	t.Setenv("SESH_KEYS", "")
	dir := t.TempDir()
	base1, base2 := startDemo(t, dir), startDemo(t, dir)
	tr := newTransport(t) // closed before the demos stop
	one, two := newClient(t, base1, tr), newClient(t, base2, tr)
	one.post("/api/counter", nil).want(t, http.StatusOK)
	two.setJar(one.jar())
	const n = 100
	var wg sync.WaitGroup
	for i := range n {
		c := one
		if i%2 == 1 {
			c = two
		}
		wg.Go(func() {
			if r := c.post("/api/counter", nil); r.status != http.StatusOK {
				t.Errorf("%s", r)
			}
		})
	}
	wg.Wait()
	var v struct{ Value int }
	two.get("/api/counter").want(t, http.StatusOK).decode(t, &v)
	if v.Value != n+1 {
		t.Fatalf("counter %d after %d increments on two instances", v.Value, n+1)
	}
}

// needEnv returns the variable, or skips the test (fails it in CI).
func needEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set; in CI every store must be tested (run through scripts/testservers.sh)", name)
		}
		t.Skipf("%s is not set (run through scripts/testservers.sh)", name)
	}
	return v
}

func randomName() string {
	return strings.ToLower(rand.Text()[:10])
}

// escapePath escapes a path for a file: or sqlite: URL.
func escapePath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(filepath.ToSlash(p))
}

// schemeURL turns host:port[,host:port...] into scheme://hosts; a value
// that is a URL already is returned as it is.
func schemeURL(scheme, v string) string {
	if strings.Contains(v, "://") {
		return v
	}
	return scheme + "://" + v
}

// withQuery adds name=value to the query of u.
func withQuery(u, name, value string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + name + "=" + value
}

var mysqlDSN = regexp.MustCompile(`^(?:([^@]*)@)?tcp\(([^)]*)\)/([^?]*)(?:\?(.*))?$`)

// mysqlURL turns a go-sql-driver DSN (user:pass@tcp(host:port)/db?params)
// into a mysql:// URL.
func mysqlURL(t *testing.T, v string) string {
	if strings.Contains(v, "://") {
		return v
	}
	m := mysqlDSN.FindStringSubmatch(v)
	if m == nil {
		t.Fatalf("SESH_TEST_MYSQL %q: want user[:password]@tcp(host:port)/db or a mysql:// URL", v)
	}
	u := "mysql://"
	if m[1] != "" {
		u += m[1] + "@"
	}
	u += m[2] + "/" + m[3]
	if m[4] != "" {
		u += "?" + m[4]
	}
	return u
}

// apiSuite checks the JSON API contract against the demo at base. It can
// run again against the same server: it leaves the passwords as it found
// them.
func apiSuite(t *testing.T, base string, caps storeCaps) {
	tr := newTransport(t)
	nc := func(t *testing.T, ua string) *client {
		c := newClient(t, base, tr)
		c.ua = ua
		return c
	}

	t.Run("AnonymousReadsSetNoCookie", func(t *testing.T) {
		c := nc(t, "anon")
		for _, p := range []string{"/api/me", "/api/counter", "/api/flash", "/api/kv/nothing"} {
			r := c.get(p)
			r.noCookies(t)
			if r.status >= 500 {
				t.Fatalf("%s", r)
			}
		}
		if m := c.me(); m.User != nil || m.Remembered {
			t.Fatalf("anonymous: %s", m)
		}
		if r := c.get("/api/me"); strings.TrimSpace(string(r.body)) != `{"user":null,"remembered":false}` {
			t.Fatalf("%s: want exactly {\"user\":null,\"remembered\":false}", r)
		}
		var v map[string]any
		c.get("/api/counter").want(t, http.StatusOK).decode(t, &v)
		if !maps.Equal(v, map[string]any{"value": float64(0)}) {
			t.Fatalf("GET /api/counter: %v, want {\"value\":0}", v)
		}
		c.get("/api/kv/nothing").want(t, http.StatusNotFound).errorBody(t)
		var f map[string]any
		c.get("/api/flash").want(t, http.StatusOK).decode(t, &f)
		if msgs, ok := f["messages"].([]any); !ok || len(msgs) != 0 || len(f) != 1 {
			t.Fatalf("GET /api/flash: %v, want {\"messages\":[]}", f)
		}
		// Not signed in.
		for _, r := range []*response{
			c.get("/api/sessions"),
			c.delete("/api/sessions/AAAAAAAAAAAAAAAA"),
			c.post("/api/sessions/revoke-others", nil),
			c.post("/api/password", map[string]string{"old": "wonderland", "new": "x"}),
		} {
			r.want(t, http.StatusUnauthorized).errorBody(t)
		}
		// Logging out without a session is fine too.
		c.post("/api/logout", nil).want(t, http.StatusNoContent)
		if len(c.jar()) != 0 {
			t.Fatalf("cookies left: %v", c.jar())
		}
	})

	t.Run("Login", func(t *testing.T) {
		c := nc(t, "login")
		for _, body := range []map[string]any{
			{"user": "alice", "password": "builder"},
			{"user": "alice", "password": "Wonderland"},
			{"user": "carol", "password": "wonderland"},
			{"user": "alice"},
			{"user": "", "password": ""},
			{},
		} {
			r := c.post("/api/login", body).want(t, http.StatusUnauthorized)
			r.errorBody(t)
			r.noCookies(t)
		}
		r := c.login("alice", "wonderland", false)
		if strings.TrimSpace(string(r.body)) != `{"user":"alice"}` {
			t.Fatalf("%s: want exactly {\"user\":\"alice\"}", r)
		}
		set := r.setCookies()
		if len(set) != 1 {
			t.Fatalf("login without remember-me sets %d cookies, want 1 (the session's)", len(set))
		}
		var sess *http.Cookie
		for _, k := range set {
			sess = k
		}
		if strings.Contains(sess.Name, "remember") || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Path != "/" {
			t.Fatalf("session cookie %s", sess)
		}
		if m := c.wantUser("alice"); m.Remembered {
			t.Fatal("a password login is reported as remembered")
		}
		// Signing in as someone else gives a new session ID.
		before := c.jar()[sess.Name]
		c.login("bob", "builder", false)
		if c.jar()[sess.Name] == before {
			t.Fatal("the session ID was not renewed at login")
		}
		c.wantUser("bob")
		// The old ID is dead.
		old := c.clone()
		old.setJar(map[string]string{sess.Name: before})
		old.wantUser("")
		// A body without a content type is taken as JSON.
		c.send("POST", "/api/login", "", `{"user":"alice","password":"wonderland"}`).want(t, http.StatusOK)
		c.wantUser("alice")
		r = c.post("/api/logout", nil).want(t, http.StatusNoContent)
		if k := r.setCookies()[sess.Name]; k == nil || k.MaxAge >= 0 {
			t.Fatalf("logout does not delete the session cookie: %v", r.header.Values("Set-Cookie"))
		}
		c.wantUser("")
	})

	t.Run("BadRequests", func(t *testing.T) {
		c := nc(t, "errors")
		for _, body := range []string{``, `{`, `{"user":1,"password":"x"}`, `[]`, `{"user":"alice","password":"wonderland"} {}`, `{"user":"alice","password":"wonderland","remember":"yes"}`} {
			r := c.send("POST", "/api/login", "application/json", body)
			r.want(t, http.StatusBadRequest).errorBody(t)
			r.noCookies(t)
		}
		c.send("POST", "/api/login", "application/xml", `<user/>`).want(t, http.StatusUnsupportedMediaType).errorBody(t)
		c.get("/api/nosuch").want(t, http.StatusNotFound).errorBody(t)
		c.get("/api/kv/a/b").want(t, http.StatusNotFound).errorBody(t)
		for _, tc := range []struct{ method, path, allow string }{
			{"GET", "/api/login", "POST"},
			{"PUT", "/api/logout", "POST"},
			{"POST", "/api/me", "GET, HEAD"},
			{"DELETE", "/api/counter", "GET, HEAD, POST"},
			{"POST", "/api/kv/k", "GET, HEAD, PUT"},
			{"DELETE", "/api/flash", "GET, HEAD, POST"},
			{"POST", "/api/sessions", "GET, HEAD"},
			{"POST", "/api/sessions/AAAAAAAAAAAAAAAA", "DELETE"},
			{"GET", "/api/sessions/revoke-others", "POST"},
			{"GET", "/api/password", "POST"},
		} {
			r := c.send(tc.method, tc.path, "", "")
			r.want(t, http.StatusMethodNotAllowed).errorBody(t)
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("%s: Allow %q, want %q", r, got, tc.allow)
			}
		}
		if r := c.send("HEAD", "/api/me", "", ""); r.status != http.StatusOK {
			t.Fatalf("%s", r)
		}
	})

	t.Run("CrossSite", func(t *testing.T) {
		c := nc(t, "cross-site")
		login := `{"user":"alice","password":"wonderland"}`
		origin := strings.TrimSuffix(base, "/")
		for _, tc := range []struct {
			path, ct string
			header   []string
		}{
			{"/api/login", "application/json", []string{"Sec-Fetch-Site", "cross-site"}},
			{"/api/login", "application/json", []string{"Sec-Fetch-Site", "same-site"}},
			{"/api/login", "application/json", []string{"Origin", "http://evil.example"}},
			{"/api/login", "text/plain", nil},
			{"/api/login", "text/plain;charset=UTF-8", nil},
			{"/api/login", "TEXT/PLAIN", nil},
			{"/api/login", "application/x-www-form-urlencoded", nil},
			{"/api/login", "multipart/form-data; boundary=x", nil},
			{"/api/login", "text/plain", []string{"Sec-Fetch-Site", "same-origin"}},
			{"/api/login", "text/plain; charset=\"", nil},
		} {
			r := c.send("POST", tc.path, tc.ct, login, tc.header...)
			r.want(t, http.StatusForbidden).errorBody(t)
			r.noCookies(t)
		}
		// Every unsafe method is checked, before anything else.
		for _, r := range []*response{
			c.send("POST", "/api/flash", "text/plain", `{"message":"forged"}`),
			c.send("POST", "/api/counter", "", "", "Sec-Fetch-Site", "cross-site"),
			c.send("PUT", "/api/kv/forged", "text/plain", `{"value":1}`),
			c.send("DELETE", "/api/sessions/AAAAAAAAAAAAAAAA", "", "", "Origin", "http://evil.example"),
			c.send("POST", "/api/logout", "application/x-www-form-urlencoded", "a=b"),
			c.send("POST", "/api/nosuch", "", "", "Sec-Fetch-Site", "cross-site"),
		} {
			r.want(t, http.StatusForbidden).errorBody(t)
		}
		// Same-origin browser requests and non-browser clients pass.
		c.send("POST", "/api/login", "application/json", login, "Sec-Fetch-Site", "same-origin").want(t, http.StatusOK)
		c.send("POST", "/api/flash", "application/json", `{"message":"ok"}`, "Origin", origin).want(t, http.StatusNoContent)
		c.send("POST", "/api/flash", "application/json; charset=utf-8", `{"message":"ok too"}`, "Sec-Fetch-Site", "none").want(t, http.StatusNoContent)
		// Reads are allowed from anywhere (they change nothing).
		c.send("GET", "/api/me", "", "", "Sec-Fetch-Site", "cross-site").want(t, http.StatusOK)
		var f struct{ Messages []string }
		c.get("/api/flash").want(t, http.StatusOK).decode(t, &f)
		if !slices.Equal(f.Messages, []string{"ok", "ok too"}) {
			t.Fatalf("flash after refused forgeries: %q", f.Messages)
		}
		c.post("/api/logout", nil).want(t, http.StatusNoContent)
	})

	t.Run("Counter", func(t *testing.T) {
		c := nc(t, "counter")
		r := c.post("/api/counter", nil).want(t, http.StatusOK)
		if strings.TrimSpace(string(r.body)) != `{"value":1}` {
			t.Fatalf("%s: want {\"value\":1}", r)
		}
		const n = 200
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			seen  []int
			start = make(chan struct{})
		)
		for range n - 1 {
			wg.Go(func() {
				<-start
				r := c.post("/api/counter", nil)
				var v struct{ Value int }
				if r.status != http.StatusOK || json.Unmarshal(r.body, &v) != nil {
					t.Errorf("%s", r)
					return
				}
				mu.Lock()
				seen = append(seen, v.Value)
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		slices.Sort(seen)
		for i, v := range seen {
			if v != i+2 {
				t.Fatalf("parallel increments returned %v, want 2..%d each once", seen, n)
			}
		}
		var v struct{ Value int }
		r = c.get("/api/counter").want(t, http.StatusOK)
		r.decode(t, &v)
		r.noCookies(t)
		if v.Value != n {
			t.Fatalf("counter %d after %d increments", v.Value, n)
		}
		// Another session has its own counter.
		other := nc(t, "counter-2")
		other.get("/api/counter").want(t, http.StatusOK).decode(t, &v)
		if v.Value != 0 {
			t.Fatalf("a new session's counter is %d", v.Value)
		}
	})

	t.Run("KV", func(t *testing.T) {
		c := nc(t, "kv")
		c.put("/api/kv/a", map[string]any{"value": map[string]any{"x": []int{1, 2}, "s": "é<>"}}).want(t, http.StatusNoContent)
		r := c.get("/api/kv/a").want(t, http.StatusOK)
		if got := strings.TrimSpace(string(r.body)); got != `{"value":{"s":"é\u003c\u003e","x":[1,2]}}` && got != `{"value":{"s":"é<>","x":[1,2]}}` {
			t.Fatalf("%s", r)
		}
		for _, v := range []string{`null`, `0`, `"s"`, `[true,false]`, `{}`, `1.5e3`} {
			c.send("PUT", "/api/kv/v.1-_Z", "application/json", `{"value":`+v+`}`).want(t, http.StatusNoContent)
			var got struct{ Value json.RawMessage }
			c.get("/api/kv/v.1-_Z").want(t, http.StatusOK).decode(t, &got)
			if string(got.Value) != v {
				t.Fatalf("stored %s, read %s", v, got.Value)
			}
		}
		c.put("/api/kv/"+strings.Repeat("k", 64), map[string]any{"value": 1}).want(t, http.StatusNoContent)
		c.put("/api/kv/d?delay_ms=0", map[string]any{"value": 1}).want(t, http.StatusNoContent)
		c.put("/api/kv/d?delay_ms=5", map[string]any{"value": 2}).want(t, http.StatusNoContent)
		for _, p := range []string{"/api/kv/" + strings.Repeat("k", 65), "/api/kv/a%20b", "/api/kv/%C3%A9", "/api/kv/a:b", "/api/kv/a%2Fb"} {
			c.put(p, map[string]any{"value": 1}).want(t, http.StatusBadRequest).errorBody(t)
			c.get(p).want(t, http.StatusBadRequest).errorBody(t)
		}
		for _, q := range []string{"-1", "10001", "x", "1.5", "99999999999999999999"} {
			c.put("/api/kv/d?delay_ms="+q, map[string]any{"value": 3}).want(t, http.StatusBadRequest).errorBody(t)
		}
		for _, body := range []string{`{}`, `{"value":}`, `{"value":1`, `"x"`, ``} {
			c.send("PUT", "/api/kv/d", "application/json", body).want(t, http.StatusBadRequest).errorBody(t)
		}
		var got struct{ Value int }
		c.get("/api/kv/d").want(t, http.StatusOK).decode(t, &got)
		if got.Value != 2 {
			t.Fatalf("value %d after refused writes, want 2", got.Value)
		}
		// Too large for a session, and too large for a request.
		c.put("/api/kv/big", map[string]any{"value": strings.Repeat("x", 100<<10)}).want(t, http.StatusRequestEntityTooLarge).errorBody(t)
		c.put("/api/kv/big", map[string]any{"value": strings.Repeat("x", 2<<20)}).want(t, http.StatusRequestEntityTooLarge).errorBody(t)
		c.get("/api/kv/big").want(t, http.StatusNotFound)
		// Values belong to their session.
		nc(t, "kv-2").get("/api/kv/a").want(t, http.StatusNotFound)
	})

	t.Run("KVRacingLogout", func(t *testing.T) {
		// A PUT that loaded its session, then waits, while the session is
		// logged out: its write must not bring the session back.
		for delay := 250 * time.Millisecond; ; delay *= 2 {
			c := nc(t, "racer")
			c.login("alice", "wonderland", false)
			c.put("/api/kv/before", map[string]any{"value": 1}).want(t, http.StatusNoContent)
			old := c.jar()
			started, result := c.putWaiting(fmt.Sprintf("/api/kv/zombie?delay_ms=%d", delay.Milliseconds()), `{"value":"brains"}`)
			var waitFrom time.Time
			select {
			case waitFrom = <-started:
			case r := <-result:
				t.Fatalf("the PUT was answered before it read its body: %s", r)
			}
			c.post("/api/logout", nil).want(t, http.StatusNoContent)
			loggedOut := time.Since(waitFrom)
			put := <-result
			if loggedOut >= delay {
				// The logout took longer than the wait: no race happened.
				if delay >= 8*time.Second {
					t.Fatalf("the logout took %v, longer than the PUT's wait", loggedOut)
				}
				t.Logf("logout took %v, longer than the wait of %v; again with a longer wait", loggedOut, delay)
				continue
			}
			if put.status != http.StatusConflict {
				t.Fatalf("%s: got %d, want 409", put, put.status)
			}
			put.errorBody(t)
			put.noCookies(t)
			// The old cookie names nobody, and nothing was written.
			o := c.clone()
			o.setJar(old)
			o.wantUser("")
			for _, k := range []string{"zombie", "before"} {
				r := o.get("/api/kv/" + k)
				r.want(t, http.StatusNotFound)
				r.noCookies(t)
			}
			// A later write with the old cookie cannot bring it back either.
			o.put("/api/kv/zombie", map[string]any{"value": "again"}).want(t, http.StatusConflict).noCookies(t)
			o.wantUser("")
			return
		}
	})

	t.Run("Flash", func(t *testing.T) {
		c := nc(t, "flash")
		for _, m := range []string{"first", "second <b>", strings.Repeat("é", 500)} {
			c.post("/api/flash", map[string]string{"message": m}).want(t, http.StatusNoContent)
		}
		for _, body := range []map[string]any{{"message": ""}, {"message": strings.Repeat("x", 501)}, {}, {"message": 5}} {
			c.post("/api/flash", body).want(t, http.StatusBadRequest).errorBody(t)
		}
		var f struct{ Messages []string }
		c.get("/api/flash").want(t, http.StatusOK).decode(t, &f)
		if !slices.Equal(f.Messages, []string{"first", "second <b>", strings.Repeat("é", 500)}) {
			t.Fatalf("messages %q", f.Messages)
		}
		r := c.get("/api/flash").want(t, http.StatusOK)
		if strings.TrimSpace(string(r.body)) != `{"messages":[]}` {
			t.Fatalf("%s: want {\"messages\":[]} once popped", r)
		}
		// Parallel pops show each message once.
		for i := range 5 {
			c.post("/api/flash", map[string]string{"message": fmt.Sprint(i)}).want(t, http.StatusNoContent)
		}
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			all []string
		)
		for range 8 {
			wg.Go(func() {
				r := c.get("/api/flash")
				var f struct{ Messages []string }
				if r.status != http.StatusOK || json.Unmarshal(r.body, &f) != nil {
					t.Errorf("%s", r)
					return
				}
				mu.Lock()
				all = append(all, f.Messages...)
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.Sort(all)
		if !slices.Equal(all, []string{"0", "1", "2", "3", "4"}) {
			t.Fatalf("parallel pops returned %q, want each message once", all)
		}
	})

	t.Run("RememberMe", func(t *testing.T) {
		c := nc(t, "remember")
		r := c.login("alice", "wonderland", true)
		set := r.setCookies()
		var sessName, remName string
		for name, k := range set {
			if strings.Contains(name, "remember") {
				remName = name
				if k.MaxAge <= 0 || !k.HttpOnly {
					t.Fatalf("remember-me cookie %s", k)
				}
			} else {
				sessName = name
			}
		}
		if len(set) != 2 || sessName == "" || remName == "" {
			t.Fatalf("login with remember-me sets %q, want a session cookie and one whose name contains \"remember\"", r.header.Values("Set-Cookie"))
		}
		if m := c.wantUser("alice"); m.Remembered {
			t.Fatal("a password login is reported as remembered")
		}
		c.post("/api/counter", nil).want(t, http.StatusOK)
		// The browser is closed: the session cookie is gone.
		firstToken := c.jar()[remName]
		j := c.jar()
		delete(j, sessName)
		c.setJar(j)
		r = c.get("/api/me").want(t, http.StatusOK)
		if strings.TrimSpace(string(r.body)) != `{"user":"alice","remembered":true}` {
			t.Fatalf("%s: want {\"user\":\"alice\",\"remembered\":true}", r)
		}
		if set := r.setCookies(); set[sessName] == nil || set[remName] == nil {
			t.Fatalf("the restored session's cookies were not sent: %q", r.header.Values("Set-Cookie"))
		}
		if c.jar()[remName] == firstToken {
			t.Fatal("the remember-me token was not rotated")
		}
		r = c.get("/api/me")
		r.noCookies(t)
		if m := c.wantUser("alice"); !m.Remembered {
			t.Fatal("the restored session is not reported as remembered")
		}
		// A restored session is a new one: its data started empty.
		var v struct{ Value int }
		c.post("/api/counter", nil).want(t, http.StatusOK).decode(t, &v)
		if v.Value != 1 {
			t.Fatalf("counter %d in the restored session", v.Value)
		}
		// Logging out forgets the token.
		token := c.jar()[remName]
		r = c.post("/api/logout", nil).want(t, http.StatusNoContent)
		if k := r.setCookies()[remName]; k == nil || k.MaxAge >= 0 {
			t.Fatalf("logout does not delete the remember-me cookie: %q", r.header.Values("Set-Cookie"))
		}
		o := c.clone()
		o.setJar(map[string]string{remName: token})
		o.wantUser("")
	})

	t.Run("Devices", func(t *testing.T) {
		a := nc(t, "device-A")
		a.login("alice", "wonderland", true)
		if !caps.userIndex {
			for _, r := range []*response{
				a.get("/api/sessions"),
				a.delete("/api/sessions/AAAAAAAAAAAAAAAA"),
				a.post("/api/sessions/revoke-others", nil),
			} {
				r.want(t, http.StatusNotImplemented).errorBody(t)
			}
			a.wantUser("alice")
			return
		}
		// Start from alice's one session.
		a.post("/api/sessions/revoke-others", nil).want(t, http.StatusNoContent)
		b := nc(t, "device-B")
		b.login("alice", "wonderland", false)
		listA := sessions(t, a)
		if len(listA) != 2 {
			t.Fatalf("alice has %d sessions, want 2: %+v", len(listA), listA)
		}
		cur, other := listA[0], listA[1]
		if !cur.Current {
			cur, other = other, cur
		}
		if !cur.Current || other.Current || cur.UserAgent != "device-A" || other.UserAgent != "device-B" {
			t.Fatalf("sessions as seen by A: %+v", listA)
		}
		for _, d := range listA {
			if d.IP != "127.0.0.1" || d.Handle == "" {
				t.Fatalf("session %+v", d)
			}
			created, err1 := time.Parse(time.RFC3339, d.Created)
			seen, err2 := time.Parse(time.RFC3339, d.LastSeen)
			if err1 != nil || err2 != nil || seen.Before(created) || time.Since(created) > time.Hour || time.Until(created) > time.Minute {
				t.Fatalf("session times %q, %q", d.Created, d.LastSeen)
			}
		}
		listB := sessions(t, b)
		if len(listB) != 2 {
			t.Fatalf("B sees %d sessions", len(listB))
		}
		for _, d := range listB {
			if d.Current != (d.Handle == other.Handle) {
				t.Fatalf("B's current session is wrong: %+v", listB)
			}
		}
		// Bob cannot end alice's sessions, nor learn that they exist.
		bob := nc(t, "bob")
		bob.login("bob", "builder", false)
		bob.delete("/api/sessions/"+other.Handle).want(t, http.StatusNotFound).errorBody(t)
		b.wantUser("alice")
		// A revokes B.
		a.delete("/api/sessions/"+other.Handle).want(t, http.StatusNoContent)
		b.wantUser("")
		a.wantUser("alice")
		a.delete("/api/sessions/"+other.Handle).want(t, http.StatusNotFound).errorBody(t)
		a.delete("/api/sessions/nosuchhandle").want(t, http.StatusNotFound).errorBody(t)
		if l := sessions(t, a); len(l) != 1 || !l[0].Current {
			t.Fatalf("after revoking B, A sees %+v", l)
		}
		// A remembered device, signed out, does not come back with its
		// remember-me token.
		c := nc(t, "device-C")
		c.login("alice", "wonderland", true)
		var handleC string
		for _, d := range sessions(t, a) {
			if d.UserAgent == "device-C" {
				handleC = d.Handle
			}
		}
		a.delete("/api/sessions/"+handleC).want(t, http.StatusNoContent)
		c.wantUser("")
		c.wantUser("")
		// A's own remember-me token still works.
		a.wantUser("alice")
		a.setJar(onlyRemember(a.jar()))
		if m := a.wantUser("alice"); !m.Remembered {
			t.Fatal("revoking another device ended the caller's remember-me token")
		}
		bob.wantUser("bob")
		bob.post("/api/logout", nil).want(t, http.StatusNoContent)
	})

	t.Run("RevokeOthers", func(t *testing.T) {
		cs := []*client{nc(t, "one"), nc(t, "two"), nc(t, "three")}
		for i, c := range cs {
			c.login("alice", "wonderland", i == 2)
		}
		if !caps.userIndex {
			cs[0].post("/api/sessions/revoke-others", nil).want(t, http.StatusNotImplemented).errorBody(t)
			return
		}
		bob := nc(t, "bob")
		bob.login("bob", "builder", false)
		cs[0].post("/api/sessions/revoke-others", nil).want(t, http.StatusNoContent)
		cs[0].wantUser("alice")
		cs[1].wantUser("")
		cs[2].wantUser("") // remembered, but its token is gone too
		cs[2].wantUser("")
		bob.wantUser("bob")
		if l := sessions(t, cs[0]); len(l) != 1 || !l[0].Current {
			t.Fatalf("after revoke-others: %+v", l)
		}
		// With no other session, it is still 204.
		cs[0].post("/api/sessions/revoke-others", nil).want(t, http.StatusNoContent)
		bob.post("/api/logout", nil).want(t, http.StatusNoContent)
	})

	t.Run("Password", func(t *testing.T) {
		p1, p2, p3 := nc(t, "pw-1"), nc(t, "pw-2"), nc(t, "pw-3")
		p1.login("bob", "builder", true)
		p2.login("bob", "builder", true)
		p3.login("bob", "builder", false)
		alice := nc(t, "pw-alice")
		alice.login("alice", "wonderland", true)
		p1.post("/api/password", map[string]string{"old": "wrong", "new": "builder-2"}).want(t, http.StatusUnauthorized).errorBody(t)
		p1.post("/api/password", map[string]string{"old": "wonderland", "new": "builder-2"}).want(t, http.StatusUnauthorized).errorBody(t)
		p1.send("POST", "/api/password", "application/json", `{"old":`).want(t, http.StatusBadRequest).errorBody(t)
		p1.post("/api/password", map[string]string{"old": "builder", "new": ""}).want(t, http.StatusBadRequest).errorBody(t)
		// Nothing happened so far.
		p1.wantUser("bob")
		p2.wantUser("bob")

		remName := ""
		for name := range p1.jar() {
			if strings.Contains(name, "remember") {
				remName = name
			}
		}
		p1Token, p2Token := p1.jar()[remName], p2.jar()[remName]
		before := p1.jar()
		r := p1.post("/api/password", map[string]string{"old": "builder", "new": "builder-2"}).want(t, http.StatusNoContent)
		if len(r.setCookies()) == 0 || maps.Equal(before, p1.jar()) {
			t.Fatal("the session ID was not renewed after the password change")
		}
		p1.wantUser("bob")
		nc(t, "pw-old").post("/api/login", map[string]any{"user": "bob", "password": "builder"}).want(t, http.StatusUnauthorized)
		nc(t, "pw-new").login("bob", "builder-2", false)
		if caps.userIndex {
			// Every other session and every remember-me token is gone.
			p2.wantUser("")
			p3.wantUser("")
			for _, tok := range []string{p1Token, p2Token} {
				o := nc(t, "pw-token")
				o.setJar(map[string]string{remName: tok})
				o.wantUser("")
			}
			if l := sessions(t, p1); len(l) != 2 { // p1 and pw-new
				t.Fatalf("bob's sessions after the change: %+v", l)
			}
		}
		// Alice is untouched.
		alice.wantUser("alice")
		// Put the password back, for the next run.
		p1.post("/api/password", map[string]string{"old": "builder-2", "new": "builder"}).want(t, http.StatusNoContent)
		p1.wantUser("bob")
		p1.post("/api/logout", nil).want(t, http.StatusNoContent)
		alice.post("/api/logout", nil).want(t, http.StatusNoContent)
		nc(t, "pw-back").login("bob", "builder", false)
	})
}

// onlyRemember returns the remember-me cookie of a jar, as a browser
// keeps it after a restart.
func onlyRemember(j map[string]string) map[string]string {
	out := map[string]string{}
	for name, v := range j {
		if strings.Contains(name, "remember") {
			out[name] = v
		}
	}
	return out
}

// device is one entry of GET /api/sessions.
type device struct {
	Handle    string `json:"handle"`
	Created   string `json:"created"`
	LastSeen  string `json:"last_seen"`
	IP        string `json:"ip"`
	UserAgent string `json:"user_agent"`
	Current   bool   `json:"current"`
}

// sessions lists the client's user's sessions, checking the shape of the
// answer.
func sessions(t *testing.T, c *client) []device {
	t.Helper()
	r := c.get("/api/sessions").want(t, http.StatusOK)
	var raw struct {
		Sessions []map[string]any `json:"sessions"`
	}
	r.decode(t, &raw)
	if raw.Sessions == nil {
		t.Fatalf("%s: no sessions array", r)
	}
	want := []string{"created", "current", "handle", "ip", "last_seen", "user_agent"}
	for _, s := range raw.Sessions {
		if got := slices.Sorted(maps.Keys(s)); !slices.Equal(got, want) {
			t.Fatalf("%s: session fields %q, want %q", r, got, want)
		}
	}
	var out struct{ Sessions []device }
	r.decode(t, &out)
	return out.Sessions
}
