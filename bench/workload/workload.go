// Package workload implements the benchmark workloads on sesh and its
// peers, each (library, store) pair as one http.Handler with the same
// routes:
//
//	GET /rmw   read-modify-write: read the int counter "n" of an existing
//	           session, add one, write it back, respond with it
//	GET /read  read only: respond with "n" of an existing session
//	GET /new   no cookie: create a session holding three small values
//	           (an int, a string and a bool) and respond "ok"
//	GET /incr  the lost-update route: /rmw as the library's users would
//	           write a counter that must not lose increments, with some work
//	           (Options.IncrWork, default 1 ms: a database call, say)
//	           between the read and the write. sesh wraps it in
//	           Manager.Exclusive; scs and gorilla have no equivalent.
//	GET /incr-plain  /incr without sesh's Exclusive (the same as /incr for
//	           the other libraries)
//
// Every handler writes a short text/plain body after the session work, so
// that the responses of all pairs differ only in their session headers.
// The bare net/http pair does the same without sessions: it is the
// ceiling every other pair is compared with.
package workload

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/v2"
	scsmem "github.com/alexedwards/scs/v2/memstore"
	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/redis/go-redis/v9"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/redisstore"
	"github.com/seshgo/sesh/seal"
)

// Names of the (library, store) pairs.
const (
	NetHTTP       = "nethttp"        // bare net/http, no sessions: the ceiling
	Floor         = "floor"          // net/http with the least a server-side session needs
	FloorSealed   = "floor-sealed"   // floor with the least that encryption at rest adds
	FloorDesign   = "floor-design"   // floor-sealed with the rest of what sesh's design makes a session carry
	SeshMem       = "sesh-memstore"  // sesh on its memory store
	SCSMem        = "scs-memstore"   // alexedwards/scs v2 on its memstore
	GorillaCookie = "gorilla-cookie" // gorilla/sessions CookieStore
	GorillaFS     = "gorilla-fs"     // gorilla/sessions FilesystemStore
	SeshRedis     = "sesh-redis"     // sesh on redisstore (go-redis v9)
	SCSRedis      = "scs-goredis"    // scs on goredisstore (go-redis v9)
)

// All lists every pair, memory and cookie pairs first.
var All = []string{NetHTTP, Floor, FloorSealed, FloorDesign, SeshMem, SCSMem, GorillaCookie, GorillaFS, SeshRedis, SCSRedis}

// Workloads are the three measured routes.
var Workloads = []string{"rmw", "read", "new"}

// NeedsRedis reports whether the pair needs a Redis server.
func NeedsRedis(name string) bool { return name == SeshRedis || name == SCSRedis }

// IsSesh reports whether the pair is sesh.
func IsSesh(name string) bool { return strings.HasPrefix(name, "sesh-") }

// Options configure [New].
type Options struct {
	// RedisURL is the Redis server of the Redis pairs, such as
	// redis://127.0.0.1:6379/0.
	RedisURL string
	// RedisHook, if set, is added to the Redis client (to count commands).
	RedisHook redis.Hook
	// Dir is where gorilla-fs keeps its files; by default a temporary
	// directory that Close removes.
	Dir string
	// Now is sesh's clock (manager and store); default time.Now.
	Now func() time.Time
	// Sesh adjusts sesh's configuration (tests use it).
	Sesh func(*sesh.Config)
	// RedisStore are options for sesh-redis's store, after the pair's own
	// (cmd/loadserver's -pipelining sets one).
	RedisStore []redisstore.Option
	// IncrWork is the work done between the read and the write of /incr
	// and /incr-plain (default 1 ms; negative for none).
	IncrWork time.Duration
}

func (o Options) incrWork() time.Duration {
	switch {
	case o.IncrWork == 0:
		return time.Millisecond
	case o.IncrWork < 0:
		return 0
	}
	return o.IncrWork
}

// sleep is the simulated work of /incr.
func sleep(d time.Duration) {
	if d > 0 {
		time.Sleep(d)
	}
}

// App is one pair's handler.
type App struct {
	Name    string
	Handler http.Handler
	// Cookie is the name of the session cookie ("" for net/http).
	Cookie string
	// Redis is the Redis client of a Redis pair, nil otherwise.
	Redis *redis.Client
	// Sesh is the manager of a sesh pair, nil otherwise.
	Sesh *sesh.Manager
	// SCSStore is scs's memstore for scs-memstore, nil otherwise.
	SCSStore *scsmem.MemStore

	closers []func() error
}

// Close releases what the app holds: it stops background goroutines,
// deletes the Redis keys it wrote, and removes its temporary directory.
func (a *App) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

// New builds the app of the pair name.
func New(name string, o Options) (*App, error) {
	a := &App{Name: name}
	var err error
	switch name {
	case NetHTTP:
		a.Handler = netHTTP()
	case Floor:
		a.Handler, a.Cookie = floor(), FloorCookie
	case FloorSealed:
		a.Handler, err = floorSealed()
		a.Cookie = FloorSealedCookie
	case FloorDesign:
		a.Handler, err = floorDesign()
		a.Cookie = FloorDesignCookie
	case SeshMem:
		var opts []memstore.Option
		if o.Now != nil {
			opts = append(opts, memstore.WithClock(o.Now))
		}
		err = a.sesh(memstore.New(opts...), o)
	case SeshRedis:
		var c *redis.Client
		if c, err = a.redis(o); err == nil {
			prefix := uniquePrefix("sesh")
			opts := []redisstore.Option{redisstore.WithPrefix(prefix)}
			if o.Now != nil {
				opts = append(opts, redisstore.WithClock(o.Now))
			}
			a.closers = append(a.closers, func() error { return deletePrefix(c, prefix) })
			err = a.sesh(redisstore.New(c, append(opts, o.RedisStore...)...), o)
		}
	case SCSMem:
		// scs.New's default store is a memstore with a cleanup goroutine
		// (every minute). It is not stopped: MemStore.StopCleanup races
		// with the goroutine it stops (scs v2.9.0), which -race reports.
		sm := scs.New()
		a.SCSStore = sm.Store.(*scsmem.MemStore)
		a.scs(sm, o)
	case SCSRedis:
		var c *redis.Client
		if c, err = a.redis(o); err == nil {
			prefix := uniquePrefix("scs")
			a.closers = append(a.closers, func() error { return deletePrefix(c, prefix) })
			sm := scs.New() // its default memstore's idle goroutine is left (see above)
			sm.Store = goredisstore.NewWithPrefix(c, prefix)
			a.scs(sm, o)
		}
	case GorillaCookie:
		a.gorilla(sessions.NewCookieStore(gorillaKey()), o)
	case GorillaFS:
		dir := o.Dir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "sesh-bench-gorilla-"); err == nil {
				a.closers = append(a.closers, func() error { return os.RemoveAll(dir) })
			}
		}
		if err == nil {
			a.gorilla(sessions.NewFilesystemStore(dir, gorillaKey()), o)
		}
	default:
		err = fmt.Errorf("workload: unknown pair %q (want one of %s)", name, strings.Join(All, ", "))
	}
	if err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// NewSession creates a session through the app's own /rmw route, in
// process, and returns the Cookie header value that names it. The
// session's counter is 1. For net/http, which has no sessions, it returns
// a cookie of the same length as sesh's that nothing reads, so that every
// pair's clients send the same bytes.
func (a *App) NewSession() (string, error) {
	w := httptest.NewRecorder()
	a.Handler.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1/rmw", nil))
	if w.Code != http.StatusOK {
		return "", fmt.Errorf("%s: /rmw without a cookie: status %d", a.Name, w.Code)
	}
	if a.Cookie == "" {
		var b [32]byte
		rand.Read(b[:])
		return BareCookie + "=" + base64.RawURLEncoding.EncodeToString(b[:]), nil
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == a.Cookie {
			return c.Name + "=" + c.Value, nil
		}
	}
	return "", fmt.Errorf("%s: /rmw without a cookie set no %s cookie", a.Name, a.Cookie)
}

// body writes the response: text/plain, then b.
func body(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(b)
}

func writeInt(w http.ResponseWriter, n int) {
	var buf [20]byte
	body(w, strconv.AppendInt(buf[:0], int64(n), 10))
}

var ok = []byte("ok")

// BareCookie names the cookie that NewSession gives net/http clients:
// as long as sesh's name, and read by nobody.
const BareCookie = "__Host-bare"

func fail(w http.ResponseWriter, err error) {
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// plainRoutes serves the routes of a pair that has no Exclusive: /incr
// and /incr-plain are its rmw.
func plainRoutes(rmw, read, newSession http.HandlerFunc) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/rmw", rmw)
	mux.HandleFunc("/incr", rmw)
	mux.HandleFunc("/incr-plain", rmw)
	mux.HandleFunc("/read", read)
	mux.HandleFunc("/new", newSession)
	return mux
}

// netHTTP is the ceiling: the same routes and bodies, no sessions.
func netHTTP() http.Handler {
	var n atomic.Int64
	return plainRoutes(
		func(w http.ResponseWriter, r *http.Request) { writeInt(w, int(n.Add(1))) },
		func(w http.ResponseWriter, r *http.Request) { writeInt(w, int(n.Load())) },
		func(w http.ResponseWriter, r *http.Request) { body(w, ok) },
	)
}

// FloorCookie names the floor pair's session cookie: as long as sesh's.
const FloorCookie = "__Host-flor"

// floorID returns a new session ID for the floor pairs: 256 random bits,
// base64url.
func floorID() (string, error) {
	var id [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(id[:]), nil
}

// setFloorCookie sets a floor pair's headers for a new session: its
// cookie, with sesh's attributes, and no caching.
func setFloorCookie(w http.ResponseWriter, name, sid string) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Add("Set-Cookie", name+"="+sid+"; Path=/; HttpOnly; Secure; SameSite=Lax")
}

// floor is what any library that keeps sessions on the server must do at
// the least, written straight on net/http: a 256-bit random ID in a cookie
// with sesh's attributes, the same Cache-Control and Vary headers, and a
// map of plain Go values under a mutex. Nothing more: no encryption, no
// hashing, no encoding, no expiry, no versions, no size limits, no events.
// sesh's distance to it is the cost of what sesh does beyond that.
func floor() http.Handler {
	type values struct {
		n int
		b string
		c bool
	}
	var (
		mu       sync.RWMutex
		sessions = map[string]*values{}
	)
	lookup := func(r *http.Request) *values {
		c, err := r.Cookie(FloorCookie)
		if err != nil {
			return nil
		}
		mu.RLock()
		defer mu.RUnlock()
		return sessions[c.Value]
	}
	create := func(w http.ResponseWriter, v *values) error {
		sid, err := floorID()
		if err != nil {
			return err
		}
		mu.Lock()
		sessions[sid] = v
		mu.Unlock()
		setFloorCookie(w, FloorCookie, sid)
		return nil
	}
	rmw := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Cookie")
		v := lookup(r)
		if v == nil {
			v = &values{n: 1}
			if err := create(w, v); err != nil {
				fail(w, err)
				return
			}
			writeInt(w, 1)
			return
		}
		mu.Lock()
		v.n++
		n := v.n
		mu.Unlock()
		writeInt(w, n)
	}
	read := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Cookie")
		n := 0
		if v := lookup(r); v != nil {
			mu.RLock()
			n = v.n
			mu.RUnlock()
		}
		writeInt(w, n)
	}
	newSession := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Cookie")
		if err := create(w, &values{n: 1, b: "two", c: true}); err != nil {
			fail(w, err)
			return
		}
		body(w, ok)
	}
	return plainRoutes(rmw, read, newSession)
}

// FloorSealedCookie names the floor-sealed pair's session cookie: as long
// as sesh's.
const FloorSealedCookie = "__Host-flse"

// newFloorAEAD returns AES-256-GCM under a new random key, for the
// floors that seal.
func newFloorAEAD() (cipher.AEAD, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// floorSealed is floor with the least that keeping sessions encrypted at
// rest adds, written straight on net/http: the values encoded in a few
// bytes and sealed with AES-256-GCM under a random nonce; the record kept
// under the SHA-256 of the ID, which is also the sealed data's associated
// data (a reader of the store can neither read the values, nor use a key
// as a cookie, nor move a record to another key). Every read opens the
// record, every write seals a new one. Nothing more: no expiry, no
// versions (concurrent writes to one session: the last one wins), no
// size limits, no events. sesh's distance to it is what sesh does beyond
// an encrypted store.
func floorSealed() (http.Handler, error) {
	aead, err := newFloorAEAD()
	if err != nil {
		return nil, err
	}
	var (
		mu      sync.RWMutex
		records = map[[sha256.Size]byte][]byte{}
	)
	type values struct {
		n int64
		b string
		c bool
	}
	// A record: nonce, then sealed (n as a varint, c as a byte, b).
	seal := func(key *[sha256.Size]byte, v values) ([]byte, error) {
		out := make([]byte, aead.NonceSize(), aead.NonceSize()+binary.MaxVarintLen64+1+len(v.b)+aead.Overhead())
		if _, err := rand.Read(out); err != nil {
			return nil, err
		}
		pt := binary.AppendVarint(out[len(out):], v.n)
		if v.c {
			pt = append(pt, 1)
		} else {
			pt = append(pt, 0)
		}
		pt = append(pt, v.b...)
		return aead.Seal(out, out, pt, key[:]), nil
	}
	open := func(key *[sha256.Size]byte, rec []byte) (values, error) {
		ns := aead.NonceSize()
		if len(rec) < ns {
			return values{}, errors.New("floor-sealed: short record")
		}
		var buf [64]byte
		pt, err := aead.Open(buf[:0], rec[:ns], rec[ns:], key[:])
		if err != nil {
			return values{}, err
		}
		n, i := binary.Varint(pt)
		if i <= 0 || i >= len(pt) {
			return values{}, errors.New("floor-sealed: bad record")
		}
		return values{n: n, c: pt[i] == 1, b: string(pt[i+1:])}, nil
	}
	// lookup returns the request's session: its store key and values.
	lookup := func(r *http.Request) (key [sha256.Size]byte, v values, ok bool, err error) {
		c, cerr := r.Cookie(FloorSealedCookie)
		if cerr != nil {
			return key, v, false, nil
		}
		key = sha256.Sum256([]byte(c.Value))
		mu.RLock()
		rec := records[key]
		mu.RUnlock()
		if rec == nil {
			return key, v, false, nil
		}
		v, err = open(&key, rec)
		return key, v, err == nil, err
	}
	store := func(key *[sha256.Size]byte, v values) error {
		rec, err := seal(key, v)
		if err != nil {
			return err
		}
		mu.Lock()
		records[*key] = rec
		mu.Unlock()
		return nil
	}
	create := func(w http.ResponseWriter, v values) error {
		sid, err := floorID()
		if err != nil {
			return err
		}
		key := sha256.Sum256([]byte(sid))
		if err := store(&key, v); err != nil {
			return err
		}
		setFloorCookie(w, FloorSealedCookie, sid)
		return nil
	}
	rmw := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Cookie")
		key, v, ok, err := lookup(r)
		if err != nil {
			fail(w, err)
			return
		}
		if !ok {
			if err := create(w, values{n: 1}); err != nil {
				fail(w, err)
				return
			}
			writeInt(w, 1)
			return
		}
		v.n++
		if err := store(&key, v); err != nil {
			fail(w, err)
			return
		}
		writeInt(w, int(v.n))
	}
	read := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Cookie")
		_, v, _, err := lookup(r)
		if err != nil {
			fail(w, err)
			return
		}
		writeInt(w, int(v.n))
	}
	newSession := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Cookie")
		if err := create(w, values{n: 1, b: "two", c: true}); err != nil {
			fail(w, err)
			return
		}
		body(w, ok)
	}
	return plainRoutes(rmw, read, newSession), nil
}

// sesh: as the README writes it, with a key ring (encryption is always
// on) and default configuration.
func (a *App) sesh(store sesh.Store, o Options) error {
	k, err := seal.GenerateKey(1)
	if err != nil {
		return err
	}
	ring, err := seal.NewRing(k)
	if err != nil {
		return err
	}
	cfg := sesh.Config{Keys: ring, Now: o.Now}
	if o.Sesh != nil {
		o.Sesh(&cfg)
	}
	m, err := sesh.New(store, cfg)
	if err != nil {
		return err
	}
	rmw := func(work time.Duration) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s := sesh.FromContext(r.Context())
			n, _ := sesh.Get[int](s, "n")
			sleep(work)
			n++
			if err := s.Set("n", n); err != nil {
				fail(w, err)
				return
			}
			writeInt(w, n)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/rmw", rmw(0))
	mux.Handle("/incr", m.Exclusive(rmw(o.incrWork())))
	mux.Handle("/incr-plain", rmw(o.incrWork()))
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		n, _ := sesh.Get[int](sesh.FromContext(r.Context()), "n")
		writeInt(w, n)
	})
	mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		if err := errors.Join(s.Set("a", 1), s.Set("b", "two"), s.Set("c", true)); err != nil {
			fail(w, err)
			return
		}
		body(w, ok)
	})
	a.Handler, a.Cookie, a.Sesh = m.Handler(mux), sesh.DefaultCookieName, m
	return nil
}

// scs: as its README writes it, with its defaults (gob codec, 24 h
// lifetime, no idle timeout, no encryption).
func (a *App) scs(sm *scs.SessionManager, o Options) {
	rmw := func(work time.Duration) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			n := sm.GetInt(r.Context(), "n")
			sleep(work)
			n++
			sm.Put(r.Context(), "n", n)
			writeInt(w, n)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/rmw", rmw(0))
	mux.Handle("/incr", rmw(o.incrWork()))
	mux.Handle("/incr-plain", rmw(o.incrWork()))
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		writeInt(w, sm.GetInt(r.Context(), "n"))
	})
	mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		sm.Put(ctx, "a", 1)
		sm.Put(ctx, "b", "two")
		sm.Put(ctx, "c", true)
		body(w, ok)
	})
	a.Handler, a.Cookie = sm.LoadAndSave(mux), sm.Cookie.Name
}

const gorillaName = "session"

// gorillaKey is an authentication key, as gorilla's README uses it:
// values are signed, not encrypted.
func gorillaKey() []byte { return securecookie.GenerateRandomKey(32) }

// gorilla: as its README writes it: Get, change Values, Save before
// writing the body.
func (a *App) gorilla(store sessions.Store, o Options) {
	rmw := func(work time.Duration) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s, _ := store.Get(r, gorillaName) // a new session on error, as users do
			n, _ := s.Values["n"].(int)
			sleep(work)
			n++
			s.Values["n"] = n
			if err := s.Save(r, w); err != nil {
				fail(w, err)
				return
			}
			writeInt(w, n)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/rmw", rmw(0))
	mux.Handle("/incr", rmw(o.incrWork()))
	mux.Handle("/incr-plain", rmw(o.incrWork()))
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		s, _ := store.Get(r, gorillaName)
		n, _ := s.Values["n"].(int)
		writeInt(w, n)
	})
	mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
		s, _ := store.Get(r, gorillaName)
		s.Values["a"] = 1
		s.Values["b"] = "two"
		s.Values["c"] = true
		if err := s.Save(r, w); err != nil {
			fail(w, err)
			return
		}
		body(w, ok)
	})
	a.Handler, a.Cookie = mux, gorillaName
}

// redis connects to o.RedisURL with go-redis's default pool.
func (a *App) redis(o Options) (*redis.Client, error) {
	if o.RedisURL == "" {
		return nil, fmt.Errorf("workload: %s needs a Redis URL (SESH_TEST_REDIS)", a.Name)
	}
	opt, err := redis.ParseURL(o.RedisURL)
	if err != nil {
		return nil, err
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("workload: %s: %w", o.RedisURL, err)
	}
	if o.RedisHook != nil {
		c.AddHook(o.RedisHook)
	}
	a.Redis = c
	a.closers = append(a.closers, c.Close)
	return c, nil
}

var prefixSeq atomic.Int64

// uniquePrefix gives each app its own Redis key space, deleted by Close.
func uniquePrefix(lib string) string {
	return fmt.Sprintf("seshbench:%s:%d-%d-%d:", lib, os.Getpid(), time.Now().UnixNano(), prefixSeq.Add(1))
}

// deletePrefix deletes every key under prefix, in SCAN batches.
func deletePrefix(c *redis.Client, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	batch := make([]string, 0, 1000)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.Unlink(ctx, batch...).Err()
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	return flush()
}
