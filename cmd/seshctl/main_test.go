package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/seal"
	"github.com/seshgo/sesh/storeurl"
)

func TestMain(m *testing.M) {
	// Progress every two records, never by the clock: the small test
	// stores show some, deterministically.
	progressEvery, progressInterval = 2, 0
	redis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}

// result is what one run of seshctl gave.
type result struct {
	stdout, stderr string
	err            error
	code           int
}

// ctl runs seshctl with args in the environment env.
func ctl(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(t.Context(), args, &out, &errOut, func(k string) string { return env[k] })
	return result{out.String(), errOut.String(), err, exitCode(err)}
}

// mustCtl runs seshctl and fails the test if it fails.
func mustCtl(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	r := ctl(t, env, args...)
	if r.err != nil {
		t.Fatalf("seshctl %s: %v\nstderr: %s", strings.Join(args, " "), r.err, r.stderr)
	}
	return r
}

// failCtl runs seshctl, which must fail with exit status code and an
// error containing want.
func failCtl(t *testing.T, env map[string]string, code int, want string, args ...string) result {
	t.Helper()
	r := ctl(t, env, args...)
	if r.err == nil || r.code != code || !strings.Contains(r.err.Error(), want) {
		t.Fatalf("seshctl %s: got exit %d, error %v; want exit %d and an error containing %q", strings.Join(args, " "), r.code, r.err, code, want)
	}
	return r
}

func key(t *testing.T, id uint32) seal.Key {
	t.Helper()
	k, err := seal.GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ring(t *testing.T, keys ...seal.Key) *seal.Ring {
	t.Helper()
	r, err := seal.NewRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func keysEnv(keys ...seal.Key) string {
	items := make([]string, len(keys))
	for i, k := range keys {
		items[i] = k.Encode()
	}
	return strings.Join(items, ",")
}

func randHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ---- populating a store through a real manager

// site is an application on a store: a TLS test server behind a manager.
type site struct {
	t   *testing.T
	m   *sesh.Manager
	srv *httptest.Server
}

func newSite(t *testing.T, store sesh.Store, keys *seal.Ring) *site {
	t.Helper()
	m, err := sesh.New(store, sesh.Config{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		s.Login(r.FormValue("u"))
		if r.FormValue("remember") != "" {
			s.Remember()
		}
	})
	mux.HandleFunc("/cart", func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Set("cart", "socks")
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		io.WriteString(w, s.User()+" "+strconv.FormatBool(s.Remembered()))
	})
	srv := httptest.NewTLSServer(m.Handler(mux))
	t.Cleanup(srv.Close)
	return &site{t: t, m: m, srv: srv}
}

// browser is one device: a user agent and its cookies.
type browser struct {
	ua      string
	cookies map[string]*http.Cookie
}

func newBrowser(ua string) *browser { return &browser{ua: ua, cookies: map[string]*http.Cookie{}} }

func (s *site) get(b *browser, path string) string {
	s.t.Helper()
	req, err := http.NewRequestWithContext(s.t.Context(), "GET", s.srv.URL+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("User-Agent", b.ua)
	for _, c := range b.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	res, err := s.srv.Client().Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		s.t.Fatalf("GET %s: %s: %s", path, res.Status, body)
	}
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return string(body)
}

const (
	laptopUA = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
	phoneUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15"
)

// populated is what populate put in a store.
type populated struct {
	env    map[string]string // SESH_STORE and SESH_KEYS (key 1 only)
	store  sesh.Store
	site   *site
	laptop *browser // alice's
	bob    *browser
}

// populate fills the store at url through a manager sealing with key 1:
// alice logged in on a laptop and on a phone with remember-me, the phone
// later restored from its remember-me token alone (a third, remembered
// session), bob, and an anonymous session with a cart; and carol, logged
// in by an application with key 7, which seshctl does not get. That is
// six sessions, five readable.
func populate(t *testing.T, url string) *populated {
	t.Helper()
	store, closer, err := storeurl.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closer.Close() })
	k1, k7 := key(t, 1), key(t, 7)
	s := newSite(t, store, ring(t, k1))
	laptop, phone, bob, anon := newBrowser(laptopUA), newBrowser(phoneUA), newBrowser("curl/8.14"), newBrowser("Lynx/2.9")
	s.get(laptop, "/login?u=alice")
	s.get(phone, "/login?u=alice&remember=1")
	s.get(bob, "/login?u=bob")
	s.get(anon, "/cart")
	restored := newBrowser(phoneUA + " (restarted)")
	for name, c := range phone.cookies {
		if strings.HasSuffix(name, "-remember") {
			restored.cookies[name] = c
		}
	}
	if len(restored.cookies) != 1 {
		t.Fatalf("no remember-me cookie among %v", phone.cookies)
	}
	if got := s.get(restored, "/whoami"); got != "alice true" {
		t.Fatalf("restored from the remember-me token: whoami = %q", got)
	}
	other := newSite(t, store, ring(t, k7))
	other.get(newBrowser("Carol/1.0"), "/login?u=carol")
	return &populated{
		env:   map[string]string{"SESH_STORE": url, "SESH_KEYS": keysEnv(k1)},
		store: store, site: s, laptop: laptop, bob: bob,
	}
}

// listJSON runs `seshctl list --json ARGS` and decodes its output.
func listJSON(t *testing.T, env map[string]string, args ...string) []sessionJSON {
	t.Helper()
	r := mustCtl(t, env, append([]string{"list", "--json"}, args...)...)
	var list []sessionJSON
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("list --json: %v\n%s", err, r.stdout)
	}
	if list == nil {
		t.Fatalf("list --json printed null, want an array: %s", r.stdout)
	}
	return list
}

func statsJSON(t *testing.T, env map[string]string) stats {
	t.Helper()
	r := mustCtl(t, env, "stats", "--json")
	var st stats
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("stats --json: %v\n%s", err, r.stdout)
	}
	return st
}

func byUser(list []sessionJSON, user string) []sessionJSON {
	var out []sessionJSON
	for _, s := range list {
		if s.User == user {
			out = append(out, s)
		}
	}
	return out
}

// ---- backends

// backend makes a fresh, empty store for a test and returns its URL; it
// removes the store's data when the test ends.
type backend struct {
	name   string
	newURL func(t *testing.T) string
}

var backends = []backend{
	{"file", func(t *testing.T) string { return "file:" + t.TempDir() }},
	{"redis", redisURL},
	{"postgres", postgresURL},
}

// serverURL returns the value of the environment variable that names a
// test server; when it is unset, the test is skipped, except on CI.
func serverURL(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set (run the tests under scripts/testservers.sh)", name)
		}
		t.Skipf("%s is not set; run under scripts/testservers.sh", name)
	}
	return v
}

func withQuery(u, k, v string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + k + "=" + v
}

// redisURL gives each test its own key prefix, and deletes its keys at
// the end.
func redisURL(t *testing.T) string {
	base := serverURL(t, "SESH_TEST_REDIS")
	prefix := "seshctl-test-" + randHex(t) + ":"
	opts, err := redis.ParseURL(base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client := redis.NewClient(opts)
		defer client.Close()
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := client.Del(ctx, iter.Val()).Err(); err != nil {
				t.Errorf("cleaning up %s: %v", iter.Val(), err)
			}
		}
		if err := iter.Err(); err != nil {
			t.Errorf("cleaning up %s*: %v", prefix, err)
		}
	})
	return withQuery(base, "prefix", prefix)
}

// postgresURL gives each test its own table, and drops it at the end.
func postgresURL(t *testing.T) string {
	base := serverURL(t, "SESH_TEST_POSTGRES")
	table := "seshctl_" + randHex(t)
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("cleaning up: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+table+", "+table+"_locks"); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})
	return withQuery(base, "table", table)
}

// ---- the commands on each store

func TestCommands(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testCommands(t, b.newURL(t)) })
	}
}

func testCommands(t *testing.T, url string) {
	p := populate(t, url)
	env := p.env

	// list: a table for people.
	r := mustCtl(t, env, "list")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 7 || !regexp.MustCompile(`^HANDLE +USER +CREATED +LAST-SEEN +EXPIRES +IP +USER-AGENT$`).MatchString(lines[0]) {
		t.Fatalf("list: want a header and 6 rows, got:\n%s", r.stdout)
	}
	for _, want := range []string{"alice", "bob", "(anonymous)", "carol", "(unreadable: sealed under key 7)", "127.0.0.1", "Mozilla/5.0 (X11; Linux x86_64; rv:140.…"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list: table lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, laptopUA) {
		t.Errorf("list: long user agent not truncated:\n%s", r.stdout)
	}

	// list --json: every field, for scripts.
	all := listJSON(t, env)
	if len(all) != 6 {
		t.Fatalf("list --json: got %d sessions, want 6: %+v", len(all), all)
	}
	alices := byUser(all, "alice")
	if len(alices) != 3 || len(byUser(all, "bob")) != 1 || len(byUser(all, "")) != 1 {
		t.Fatalf("list --json: wrong users: %+v", all)
	}
	remembered := 0
	for _, s := range all {
		if s.Unreadable {
			if s.User != "carol" || s.KeyID != 7 || !s.Created.IsZero() || s.Expires.IsZero() {
				t.Errorf("unreadable session: %+v", s)
			}
			continue
		}
		if s.KeyID != 1 || s.Created.IsZero() || s.LastSeen.IsZero() || s.Expires.IsZero() || s.IP != "127.0.0.1" || s.UserAgent == "" || len(s.Handle) < 8 {
			t.Errorf("session: %+v", s)
		}
		if s.Remembered {
			remembered++
			if s.User != "alice" || !strings.HasSuffix(s.UserAgent, "(restarted)") {
				t.Errorf("remembered session: %+v", s)
			}
		}
	}
	if remembered != 1 {
		t.Errorf("list --json: %d remembered sessions, want 1", remembered)
	}
	// The raw output has the documented snake_case names. (The whole list:
	// any one session may be the unreadable one, which has no times.)
	r = mustCtl(t, env, "list", "--json")
	for _, f := range []string{`"handle"`, `"user"`, `"last_seen"`, `"user_agent"`, `"key_id"`, `"remembered"`, `"unreadable"`} {
		if !strings.Contains(r.stdout, f) {
			t.Errorf("list --json lacks field %s: %s", f, r.stdout)
		}
	}
	if got := listJSON(t, env, "--limit", "2"); len(got) != 2 {
		t.Errorf("list --limit 2: got %d sessions", len(got))
	}

	// list --user: one user's, through the store's user index.
	mine := listJSON(t, env, "--user", "alice")
	if len(mine) != 3 || len(byUser(mine, "alice")) != 3 {
		t.Fatalf("list --user alice: %+v", mine)
	}
	if got := listJSON(t, env, "--user=nobody"); len(got) != 0 {
		t.Errorf("list --user nobody: %+v", got)
	}
	r = mustCtl(t, env, "list", "--user", "bob")
	if n := strings.Count(r.stdout, "\n"); n != 2 || !strings.Contains(r.stdout, "curl/8.14") {
		t.Errorf("list --user bob: want a header and one row:\n%s", r.stdout)
	}

	// show, by handle, with flags before or after it.
	bobs := byUser(all, "bob")[0]
	r = mustCtl(t, env, "show", bobs.Handle)
	for _, want := range []string{"user:       bob", "key:        1 (current)", "curl/8.14", "remembered: no", "handle:     " + bobs.Handle} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show: output lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, args := range [][]string{{"show", bobs.Handle, "--json"}, {"show", "--json", bobs.Handle}} {
		r = mustCtl(t, env, args...)
		var got sessionJSON
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if got.Handle != bobs.Handle || got.User != "bob" || got.UserAgent != "curl/8.14" || got.Expires.IsZero() {
			t.Errorf("%v: %+v", args, got)
		}
	}
	carols := byUser(all, "carol")[0]
	r = mustCtl(t, env, "show", carols.Handle)
	if !strings.Contains(r.stdout, "key:        7 (not in SESH_KEYS)") || !strings.Contains(r.stdout, "unreadable: yes") {
		t.Errorf("show of an unreadable session:\n%s", r.stdout)
	}
	failCtl(t, env, 1, "no such session", "show", "AAAAAAAAAAAAAAAA")
	failCtl(t, env, 2, "missing argument", "show")
	failCtl(t, env, 2, "unexpected argument", "show", "a", "b")

	// stats.
	st := statsJSON(t, env)
	if st.Sessions != 6 || st.Authenticated != 5 || st.Anonymous != 1 || st.DistinctUsers != 3 ||
		st.Remembered != 1 || st.Unreadable != 1 || st.Tokens < 1 || st.OldestCreated.IsZero() || st.CurrentKeyID != 1 {
		t.Errorf("stats: %+v", st)
	}
	if len(st.ByKey) != 2 || st.ByKey[0].KeyID != 1 || st.ByKey[0].Status != "current" || st.ByKey[0].Sessions != 5 || st.ByKey[0].Tokens != st.Tokens ||
		st.ByKey[1].KeyID != 7 || st.ByKey[1].Status != "unknown" || st.ByKey[1].Sessions != 1 {
		t.Errorf("stats by key: %+v %+v", st.ByKey[0], st.ByKey[len(st.ByKey)-1])
	}
	r = mustCtl(t, env, "stats")
	for _, want := range []string{"sessions            6", "distinct users      3", "unreadable        1", "1 (current)", "7 (not in SESH_KEYS)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stats: output lacks %q:\n%s", want, r.stdout)
		}
	}

	// revoke one session by handle: bob is logged out.
	failCtl(t, env, 2, "exactly one of", "revoke")
	failCtl(t, env, 2, "exactly one of", "revoke", "--handle", bobs.Handle, "--user", "bob")
	failCtl(t, env, 1, "no such session", "revoke", "--handle", "AAAAAAAAAAAAAAAA")
	r = mustCtl(t, env, "revoke", "--handle", bobs.Handle)
	if r.stdout != "revoked 1 session\n" {
		t.Errorf("revoke --handle: %q", r.stdout)
	}
	if got := p.site.get(p.bob, "/whoami"); got != " false" {
		t.Errorf("bob after revoke --handle: whoami = %q", got)
	}
	failCtl(t, env, 1, "no such session", "show", bobs.Handle)

	// revoke a user: all of alice's sessions and her remember-me token.
	r = mustCtl(t, env, "revoke", "--user", "alice")
	if !strings.HasPrefix(r.stdout, "revoked 3 sessions of user alice") {
		t.Errorf("revoke --user: %q", r.stdout)
	}
	if got := listJSON(t, env, "--user", "alice"); len(got) != 0 {
		t.Errorf("alice's sessions after revoke --user: %+v", got)
	}
	if got := p.site.get(p.laptop, "/whoami"); got != " false" {
		t.Errorf("alice after revoke --user: whoami = %q", got)
	}
	if st := statsJSON(t, env); st.Sessions != 2 || st.Tokens != 0 || st.DistinctUsers != 1 {
		t.Errorf("stats after revoking bob and alice: %+v", st)
	}

	// sweep: expired records go, from stores that keep them.
	if _, ok := p.store.(sesh.Sweeper); ok {
		for i := range 5 {
			var k sesh.Key
			rand.Read(k[:])
			rec := sesh.Record{Data: []byte{byte(i)}, Version: 1, Expires: time.Now().Add(-time.Hour), Kind: sesh.KindSession}
			if err := p.store.Save(t.Context(), k, rec, 0); err != nil {
				t.Fatal(err)
			}
		}
		r = mustCtl(t, env, "sweep", "--batch", "2")
		if n := count(`^swept (\d+) records`, r.stdout); n < 5 {
			t.Errorf("sweep: %q, want at least 5 records", r.stdout)
		}
		if !strings.Contains(r.stderr, "swept 2 records so far") {
			t.Errorf("sweep: no progress on stderr: %q", r.stderr)
		}
		if r = mustCtl(t, env, "sweep"); r.stdout != "swept 0 records (expired records and lapsed tombstones)\n" {
			t.Errorf("second sweep: %q", r.stdout)
		}
	} else {
		r = mustCtl(t, env, "sweep")
		if !strings.Contains(r.stdout, "expires records itself") {
			t.Errorf("sweep on a store with native expiry: %q", r.stdout)
		}
	}
	failCtl(t, env, 2, "--batch must be positive", "sweep", "--batch", "0")

	// revoke --all needs --yes, then ends everything.
	r = failCtl(t, env, 2, "add --yes to confirm", "revoke", "--all")
	if got := listJSON(t, env); len(got) != 2 {
		t.Fatalf("revoke --all without --yes changed the store: %+v", got)
	}
	p.site.get(newBrowser("late"), "/login?u=dave&remember=1")
	r = mustCtl(t, env, "revoke", "--all", "--yes")
	if n := count(`^revoked (\d+) records`, r.stdout); n < 4 {
		t.Errorf("revoke --all: %q, want at least 4 records (3 sessions and a token)", r.stdout)
	}
	if !strings.Contains(r.stderr, "revoked 2 records so far") {
		t.Errorf("revoke --all: no progress on stderr: %q", r.stderr)
	}
	if st := statsJSON(t, env); st.Sessions != 0 || st.Tokens != 0 || len(st.ByKey) != 0 {
		t.Errorf("stats after revoke --all: %+v", st)
	}
	if r := mustCtl(t, env, "list", "--json"); r.stdout != "[]\n" {
		t.Errorf("list --json of an empty store: %q", r.stdout)
	}
}

// count returns the number that the pattern's group matches in s, or -1.
func count(pattern, s string) int {
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return -1
	}
	return n
}

// ---- key rotation

func TestKeyRotation(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testKeyRotation(t, b.newURL(t)) })
	}
}

func testKeyRotation(t *testing.T, url string) {
	store, closer, err := storeurl.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	k1 := key(t, 1)
	s := newSite(t, store, ring(t, k1))
	alice, bob := newBrowser("a"), newBrowser("b")
	s.get(alice, "/login?u=alice&remember=1")
	s.get(bob, "/login?u=bob")
	s.get(newBrowser("c"), "/cart")
	old := map[string]string{"SESH_STORE": url, "SESH_KEYS": keysEnv(k1)}

	// keygen picks the next ID.
	r := mustCtl(t, old, "keygen")
	k2, err := seal.ParseRing(strings.TrimSpace(r.stdout))
	if err != nil || k2.Current() != 2 || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("keygen with key 1 in SESH_KEYS: %q: ring %v, %v", r.stdout, k2, err)
	}
	if !strings.Contains(r.stderr, "prepend") || strings.Contains(r.stderr, strings.TrimSpace(r.stdout)) {
		t.Errorf("keygen hint: %q", r.stderr)
	}
	newKeys := strings.TrimSpace(r.stdout) + "," + old["SESH_KEYS"]
	rotated := map[string]string{"SESH_STORE": url, "SESH_KEYS": newKeys}

	if st := statsJSON(t, rotated); len(st.ByKey) != 1 || st.ByKey[0].KeyID != 1 || st.ByKey[0].Status != "old" || st.ByKey[0].Sessions != 3 || st.ByKey[0].Tokens != 1 {
		t.Fatalf("stats before reseal: %+v", st.ByKey)
	}
	r = mustCtl(t, rotated, "reseal", "--batch", "1")
	if r.stdout != "re-sealed 4 records under key 2\n" {
		t.Errorf("reseal: %q, want 4 records (3 sessions and a token)", r.stdout)
	}
	if !strings.Contains(r.stderr, "scanned up to 2 records") {
		t.Errorf("reseal: no progress on stderr: %q", r.stderr)
	}
	st := statsJSON(t, rotated)
	if len(st.ByKey) != 1 || st.ByKey[0].KeyID != 2 || st.ByKey[0].Status != "current" || st.ByKey[0].Sessions != 3 || st.ByKey[0].Tokens != 1 || st.Unreadable != 0 {
		t.Fatalf("stats after reseal: want only key 2: %+v", st.ByKey)
	}
	if r = mustCtl(t, rotated, "reseal"); r.stdout != "re-sealed 0 records under key 2\n" {
		t.Errorf("second reseal: %q", r.stdout)
	}
	// The sessions live on under the new ring, even without key 1.
	only2 := map[string]string{"SESH_STORE": url, "SESH_KEYS": strings.TrimSpace(strings.Split(newKeys, ",")[0])}
	if list := listJSON(t, only2); len(list) != 3 || slices.ContainsFunc(list, func(s sessionJSON) bool { return s.Unreadable }) {
		t.Errorf("list with key 2 alone after reseal: %+v", list)
	}
}

// ---- errors

func TestUsageAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	keys := keysEnv(key(t, 1))
	env := map[string]string{"SESH_STORE": "file:" + dir, "SESH_KEYS": keys}

	r := mustCtl(t, nil, "help")
	if !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "reseal") {
		t.Errorf("help: %q", r.stdout)
	}
	for _, args := range [][]string{{"-h"}, {"--help"}} {
		if r := mustCtl(t, nil, args...); !strings.Contains(r.stdout, "Commands:") {
			t.Errorf("%v: %q", args, r.stdout)
		}
	}
	if r := mustCtl(t, nil, "list", "-h"); !strings.Contains(r.stdout, "-limit N") {
		t.Errorf("list -h: %q", r.stdout)
	}
	if r := mustCtl(t, nil, "help", "revoke"); !strings.Contains(r.stdout, "--all --yes") || !strings.Contains(r.stdout, "-handle H") {
		t.Errorf("help revoke: %q", r.stdout)
	}
	failCtl(t, nil, 2, "no command", []string{}...)
	failCtl(t, nil, 2, `unknown command "frobnicate"`, "frobnicate")
	failCtl(t, nil, 2, "unknown command", "help", "frobnicate")
	failCtl(t, env, 2, "flag provided but not defined: -bogus", "list", "--bogus")
	failCtl(t, env, 2, "invalid value", "list", "--limit", "many")
	failCtl(t, env, 2, "--limit must not be negative", "list", "--limit", "-1")
	failCtl(t, env, 2, "--user needs a user name", "list", "--user", "")
	failCtl(t, env, 2, "unexpected argument", "list", "extra")

	// The store: missing, malformed, unreachable; never a password.
	noStore := map[string]string{"SESH_KEYS": keys}
	r = failCtl(t, noStore, 1, "SESH_STORE", "list")
	if !strings.Contains(r.err.Error(), "--store") {
		t.Errorf("missing store: %v", r.err)
	}
	mustCtl(t, noStore, "--store", "file:"+dir, "list")
	mustCtl(t, noStore, "list", "--store", "file:"+dir)
	for _, u := range []string{"nosuch://admin:hunter22@db/x", "hunter22", "redis://:hunter22@127.0.0.1:1/0", "postgres://app:hunter22@127.0.0.1:1/app?connect_timeout=2", "file:" + dir + "?password=hunter22"} {
		r := ctl(t, map[string]string{"SESH_STORE": u, "SESH_KEYS": keys}, "stats")
		if r.err == nil || r.code != 1 {
			t.Errorf("store %q: got exit %d, %v", u, r.code, r.err)
			continue
		}
		if strings.Contains(r.err.Error()+r.stderr+r.stdout, "hunter22") {
			t.Errorf("store URL error shows the password: %v", r.err)
		}
		if !strings.Contains(r.err.Error(), "SESH_STORE") {
			t.Errorf("store error does not name SESH_STORE: %v", r.err)
		}
	}
	r = failCtl(t, env, 2, "unexpected argument", "list", "redis://:hunter22@host/0")
	if strings.Contains(r.err.Error(), "hunter22") {
		t.Errorf("unexpected argument shows a password: %v", r.err)
	}

	// The keys: missing, malformed; never a secret.
	failCtl(t, map[string]string{"SESH_STORE": "file:" + dir}, 1, "SESH_KEYS is not set", "list")
	r = failCtl(t, map[string]string{"SESH_STORE": "file:" + dir, "SESH_KEYS": "1:c2VjcmV0"}, 1, "SESH_KEYS", "list")
	if strings.Contains(r.err.Error(), "c2VjcmV0") {
		t.Errorf("bad key error shows the secret: %v", r.err)
	}
	failCtl(t, map[string]string{"SESH_STORE": "file:" + dir, "SESH_KEYS": keys, "SESH_IDLE_TIMEOUT": "soon"}, 1, "SESH_IDLE_TIMEOUT", "list")
	// Both missing: both reported.
	r = failCtl(t, nil, 1, "SESH_STORE", "stats")
	if !strings.Contains(r.err.Error(), "SESH_KEYS") {
		t.Errorf("missing store and keys: %v", r.err)
	}
	// Flags are checked before the store is opened.
	failCtl(t, nil, 2, "add --yes", "revoke", "--all")
}

func TestKeygen(t *testing.T) {
	r := mustCtl(t, nil, "keygen")
	rg, err := seal.ParseRing(strings.TrimSpace(r.stdout))
	if err != nil || rg.Current() != 1 {
		t.Fatalf("keygen: %q: %v", r.stdout, err)
	}
	if !strings.Contains(r.stderr, "SESH_KEYS") {
		t.Errorf("keygen hint: %q", r.stderr)
	}
	if r2 := mustCtl(t, nil, "keygen"); r2.stdout == r.stdout {
		t.Error("keygen printed the same key twice")
	}
	env := map[string]string{"SESH_KEYS": keysEnv(key(t, 3), key(t, 9), key(t, 4))}
	if r := mustCtl(t, env, "keygen"); !strings.HasPrefix(r.stdout, "10:") {
		t.Errorf("keygen after keys 3, 9, 4: %q", r.stdout)
	}
	if r := mustCtl(t, env, "keygen", "--id", "42"); !strings.HasPrefix(r.stdout, "42:") {
		t.Errorf("keygen --id 42: %q", r.stdout)
	}
	failCtl(t, env, 1, "already in SESH_KEYS", "keygen", "--id", "9")
	failCtl(t, env, 2, "--id must be between 1", "keygen", "--id", "0")
	failCtl(t, env, 2, "--id must be between 1", "keygen", "--id", "4294967296")
	failCtl(t, env, 2, "invalid value", "keygen", "--id", "-1")
	r = failCtl(t, map[string]string{"SESH_KEYS": "x:c2VjcmV0"}, 1, "give one with --id", "keygen")
	if strings.Contains(r.err.Error(), "c2VjcmV0") {
		t.Errorf("keygen error shows a secret: %v", r.err)
	}
	// A weak key is no obstacle to making its replacement.
	if r := mustCtl(t, map[string]string{"SESH_KEYS": seal.ExampleKey}, "keygen"); !strings.HasPrefix(r.stdout, "2:") {
		t.Errorf("keygen after the example key: %q", r.stdout)
	}
	if r := mustCtl(t, map[string]string{"SESH_KEYS": "x:c2VjcmV0"}, "keygen", "--id", "5"); !strings.HasPrefix(r.stdout, "5:") {
		t.Errorf("keygen --id with unparsable SESH_KEYS: %q", r.stdout)
	}
}

// memcached can neither list nor index users: the commands say so.
func TestMemcachedCannotList(t *testing.T) {
	addr := os.Getenv("SESH_TEST_MEMCACHED")
	if addr == "" {
		t.Skip("SESH_TEST_MEMCACHED is not set")
	}
	env := map[string]string{
		"SESH_STORE": "memcached://" + addr + "?prefix=seshctl-test-" + randHex(t) + ":",
		"SESH_KEYS":  keysEnv(key(t, 1)),
	}
	failCtl(t, env, 1, "the memcached store cannot list its records", "list")
	failCtl(t, env, 1, "the memcached store keeps no index of sessions by user", "list", "--user", "alice")
	failCtl(t, env, 1, "keeps no index", "revoke", "--user", "alice")
	failCtl(t, env, 1, "cannot list", "stats")
	failCtl(t, env, 1, "cannot list", "revoke", "--all", "--yes")
	failCtl(t, env, 1, "cannot list", "reseal")
	if r := mustCtl(t, env, "sweep"); !strings.Contains(r.stdout, "the memcached store expires records itself") {
		t.Errorf("sweep on memcached: %q", r.stdout)
	}
}

func TestSafe(t *testing.T) {
	for in, want := range map[string]string{
		"alice":             "alice",
		"Ünïcødé user":      "Ünïcødé user",
		"evil\x1b[2J":       `"evil\x1b[2J"`,
		"two\nlines":        `"two\nlines"`,
		"tab\there":         `"tab\there"`,
		"bad\xffutf8":       `"bad\xffutf8"`,
		"rtl\u202eoverride": `"rtl\u202eoverride"`,
		"no\u00a0break":     `"no\u00a0break"`,
	} {
		if got := safe(in); got != want {
			t.Errorf("safe(%q) = %s, want %s", in, got, want)
		}
	}
	if got := cell(strings.Repeat("x", 50), 10); got != "xxxxxxxxx…" {
		t.Errorf("cell: %q", got)
	}
}

// The error that main prints for a context cancelled mid-run carries the
// count so far; here, simply, a cancelled run fails with exit status 1.
func TestCancelled(t *testing.T) {
	env := map[string]string{"SESH_STORE": "file:" + t.TempDir(), "SESH_KEYS": keysEnv(key(t, 1))}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, []string{"stats"}, &out, &errOut, func(k string) string { return env[k] })
	if err == nil || exitCode(err) != 1 || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled stats: %v", err)
	}
}
