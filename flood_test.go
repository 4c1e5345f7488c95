package sesh_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/filestore"
	"github.com/seshgo/sesh/memstore"
)

// The flood: thousands of requests carrying bogus, empty, malformed,
// oversized, duplicated or well-formed but unknown session and remember-me
// cookies, over real HTTP, to handlers that only read the session. None
// may create a record, write to the store, set a cookie (but the deletion
// of a remember-me cookie it could not use) or fail.

// writeCounter counts the writes a store receives.
type writeCounter struct {
	saves, deletes, takes, locks atomic.Int64
}

func (c *writeCounter) String() string {
	return fmt.Sprintf("%d saves, %d deletes, %d takes", c.saves.Load(), c.deletes.Load(), c.takes.Load())
}

func (c *writeCounter) writes() int64 { return c.saves.Load() + c.deletes.Load() + c.takes.Load() }

// countedMem and countedFile count the writes of a memstore and a
// filestore and keep all their capabilities.
type countedMem struct {
	*memstore.Store
	c *writeCounter
}

func (s countedMem) Save(ctx context.Context, k sesh.Key, r sesh.Record, prev uint64) error {
	s.c.saves.Add(1)
	return s.Store.Save(ctx, k, r, prev)
}

func (s countedMem) Delete(ctx context.Context, k sesh.Key, tomb time.Time) error {
	s.c.deletes.Add(1)
	return s.Store.Delete(ctx, k, tomb)
}

func (s countedMem) Take(ctx context.Context, k sesh.Key) (sesh.Record, error) {
	s.c.takes.Add(1)
	return s.Store.Take(ctx, k)
}

func (s countedMem) Lock(ctx context.Context, k sesh.Key, ttl time.Duration) (func(context.Context) error, error) {
	s.c.locks.Add(1)
	return s.Store.Lock(ctx, k, ttl)
}

type countedFile struct {
	*filestore.Store
	c *writeCounter
}

func (s countedFile) Save(ctx context.Context, k sesh.Key, r sesh.Record, prev uint64) error {
	s.c.saves.Add(1)
	return s.Store.Save(ctx, k, r, prev)
}

func (s countedFile) Delete(ctx context.Context, k sesh.Key, tomb time.Time) error {
	s.c.deletes.Add(1)
	return s.Store.Delete(ctx, k, tomb)
}

func (s countedFile) Take(ctx context.Context, k sesh.Key) (sesh.Record, error) {
	s.c.takes.Add(1)
	return s.Store.Take(ctx, k)
}

func (s countedFile) Lock(ctx context.Context, k sesh.Key, ttl time.Duration) (func(context.Context) error, error) {
	s.c.locks.Add(1)
	return s.Store.Lock(ctx, k, ttl)
}

// floodCookies returns the Cookie headers of the flood: a few hand-made
// cases, and many well-formed but unknown values. Each entry is one
// request's Cookie header lines (several lines for some). Every value is
// a valid header value: the HTTP client refuses the others, and the fuzz
// targets cover them.
func floodCookies() (cases, unknown [][]string) {
	const s, r = sesh.DefaultCookieName, rememberName
	id := validLooking("flood")
	// The last character of a 43-character ID carries two padding bits;
	// a non-zero one is not the canonical encoding.
	nonCanonical := id[:42] + "B"
	if id[42] == 'B' {
		nonCanonical = id[:42] + "C"
	}
	sel := validLooking("selector")[:22]
	junk := strings.Repeat("x", 4000)
	lines := []string{
		"", ";", ";;;", "=", s, s + "=", s + "==", s + "=;", " " + s + "=\t",
		s + "=x", s + "=" + id[:42], s + "=" + id + "A", s + "=" + id + "=", s + "=" + nonCanonical,
		s + "=" + strings.ReplaceAll(id[:40], "A", "+") + "/+/", s + "=" + strings.Repeat("/", 43),
		s + "=\"" + id + "\"", s + "=" + strings.ToUpper(id), s + "=" + strings.Repeat("é", 21) + "A",
		s + "=\xff\xfe" + id[2:], s + "=" + id[:20] + "\t" + id[21:], s + "=../../../etc/passwd",
		s + "=" + junk, s + "=" + junk + "; " + s + "=" + junk,
		strings.Repeat(s+"="+id+"; ", 200), strings.Repeat(s+"=; ", 500),
		"__host-sesh=" + id, s + "2=" + id, "sesh=" + id, s + " =" + id, "a=b; " + s + "=" + id + "; c=d",
		r + "=", r + "=.", r + "=..", r + "=x.y", r + "=" + sel + ".", r + "=." + id,
		r + "=" + sel + "." + id, r + "=" + sel + "." + id + "=", r + "=" + sel + "A." + id,
		r + "=" + sel[:21] + "." + id, r + "=" + sel + "." + id[:42], r + "=" + sel + "." + nonCanonical,
		r + "=\"" + sel + "." + id + "\"", r + "=" + id + "." + sel, r + "=" + strings.ReplaceAll(sel, "A", "+") + "." + id,
		r + "=" + sel + "." + id + "; " + r + "=" + sel + "." + id, r + "=" + junk,
		s + "=" + id + "; " + r + "=" + sel + "." + id, s + "=x; " + r + "=y",
		strings.Repeat(r+"="+sel+"."+id+"; ", 100),
	}
	for _, l := range lines {
		cases = append(cases, []string{l})
	}
	cases = append(cases, []string{s + "=" + id, s + "=" + validLooking("second line")},
		[]string{r + "=x", r + "=" + sel + "." + id}, []string{"", s + "=" + id})
	// Well-formed but never issued: each costs a store lookup, no more.
	out := cases[len(cases):]
	for i := range 1500 {
		out = append(out, []string{s + "=" + validLooking(fmt.Sprint("unknown session ", i))})
	}
	for i := range 600 {
		out = append(out, []string{r + "=" + validLooking(fmt.Sprint("unknown selector ", i))[:22] + "." + validLooking(fmt.Sprint("unknown validator ", i))})
	}
	for i := range 200 {
		var sb strings.Builder
		for j := range 6 {
			fmt.Fprintf(&sb, "%s=%s; ", s, validLooking(fmt.Sprint("many ", i, j)))
		}
		fmt.Fprintf(&sb, "%s=%s.%s", r, validLooking(fmt.Sprint("sel ", i))[:22], validLooking(fmt.Sprint("val ", i)))
		out = append(out, []string{sb.String()})
	}
	return cases, out
}

// floodRoutes are handlers that only read the session, each in its own
// way, and one that never touches it.
func floodRoutes(m *sesh.Manager) (http.Handler, []string) {
	mux := http.NewServeMux()
	read := func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		if err := s.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		v, _ := sesh.Get[string](s, "k")
		fmt.Fprintf(w, "%s|%v|%q|%v|%v|%v", s.User(), s.Has("x"), v, s.Keys(), s.Remembered(), s.AuthTime().IsZero())
	}
	mux.HandleFunc("GET /read", read)
	mux.HandleFunc("POST /read", read)
	mux.HandleFunc("GET /bag", func(w http.ResponseWriter, r *http.Request) {
		b := sesh.FromContext(r.Context()).Bag("cart")
		fmt.Fprint(w, b.Keys(), b.Has("x"))
	})
	mux.HandleFunc("GET /flash", func(w http.ResponseWriter, r *http.Request) {
		f := sesh.FromContext(r.Context()).Flash()
		fmt.Fprint(w, len(f.Peek()), len(f.Pop()))
	})
	mux.HandleFunc("GET /secret", func(w http.ResponseWriter, r *http.Request) {
		sec, err := sesh.FromContext(r.Context()).Secret("csrf", false)
		fmt.Fprint(w, len(sec), err)
	})
	mux.Handle("GET /exclusive", m.Exclusive(http.HandlerFunc(read)))
	mux.HandleFunc("GET /nothing", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})
	return mux, []string{"GET /read", "POST /read", "HEAD /read", "GET /bag", "GET /flash", "GET /secret", "GET /exclusive", "GET /nothing"}
}

// flood sends every flood cookie to every route of an app on store, over
// TLS, from eight clients at once, and checks every response.
func flood(t *testing.T, store sesh.Store, c *writeCounter) {
	m, err := sesh.New(store, sesh.Config{Keys: testRing(t), Logger: suiteLogger})
	if err != nil {
		t.Fatal(err)
	}
	mux, routes := floodRoutes(m)
	srv := httptest.NewUnstartedServer(m.Handler(mux))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 8

	type job struct {
		route  string
		cookie []string
	}
	jobs := make(chan job)
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			for j := range jobs {
				if err := floodOne(client, srv.URL, j.route, j.cookie); err != nil && failed.Add(1) <= 20 {
					t.Errorf("%s with Cookie %.200q: %v", j.route, j.cookie, err)
				}
				sent.Add(1)
			}
		})
	}
	// The hand-made cases go to every route; the many unknown values
	// each to one, in turn.
	cases, unknown := floodCookies()
	for _, ck := range cases {
		for _, r := range routes {
			jobs <- job{r, ck}
		}
	}
	for i, ck := range unknown {
		jobs <- job{routes[i%len(routes)], ck}
	}
	close(jobs)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed", n, sent.Load())
	}
	if n := c.writes(); n != 0 {
		t.Errorf("the flood wrote to the store: %v", c)
	}
	t.Logf("%d requests in %v: %v; %d store locks (exclusive route)", sent.Load(), time.Since(start).Round(time.Millisecond), c, c.locks.Load())
}

// floodOne sends one request and checks the response.
func floodOne(client *http.Client, base, route string, cookie []string) error {
	method, path, _ := strings.Cut(route, " ")
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		return err
	}
	for _, l := range cookie {
		req.Header.Add("Cookie", l)
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
	if path == "/read" && method != "HEAD" && !strings.HasPrefix(string(body), "|false|\"\"|[]|false|true") {
		return fmt.Errorf("an anonymous read found something: %q", body)
	}
	// The middleware reads the remember cookie as net/http does; one it
	// cannot use is deleted when the session is loaded.
	_, rerr := req.Cookie(rememberName)
	wantDelete := rerr == nil && path != "/nothing"
	cookies := res.Cookies()
	switch {
	case wantDelete && (len(cookies) != 1 || !deletes(res, rememberName)):
		return fmt.Errorf("want only the deletion of the remember cookie, got Set-Cookie %q", res.Header.Values("Set-Cookie"))
	case !wantDelete && len(cookies) != 0:
		return fmt.Errorf("want no cookie, got Set-Cookie %q", res.Header.Values("Set-Cookie"))
	}
	return nil
}

func TestFloodMemstore(t *testing.T) {
	c := &writeCounter{}
	mem := memstore.New()
	flood(t, countedMem{mem, c}, c)
	if n := mem.Len(); n != 0 {
		t.Fatalf("the flood left %d records and tombstones in the store", n)
	}
}

func TestFloodFilestore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sessions")
	fst, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := &writeCounter{}
	flood(t, countedFile{fst, c}, c)
	// No record, tombstone, index marker, lease or temporary file: only
	// the flock(2) files that guard the fan-out directories the
	// exclusive route's leases went through (at most 256, made once).
	var files []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != ".lock" {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 0 {
		t.Fatalf("the flood left %d files in the store, first %s", len(files), files[0])
	}
}
