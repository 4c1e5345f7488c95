package workload

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// FloorDesignCookie names the floor-design pair's session cookie: as long
// as sesh's.
const FloorDesignCookie = "__Host-flde"

// Deadlines of floor-design: sesh's defaults.
const (
	fdIdle     = 30 * time.Minute
	fdAbsolute = 12 * time.Hour
	fdTouch    = time.Minute
)

// fdPurpose is floor-design's associated data after the store key, as
// sesh's envelope binds a record to its purpose.
const fdPurpose = "session"

// fdKeyPrefix separates floor-design's session keys from other record
// kinds, as sesh's store keys do.
const fdKeyPrefix = "floor/v1/session\x00"

var errFDCorrupt = errors.New("floor-design: corrupt record")

// floorDesign is floor-sealed with the rest of what sesh's design
// (DESIGN.md's decisions) makes every session carry, written straight on
// net/http for these routes and nothing else:
//
//   - the store key is the SHA-256 of a purpose prefix and the ID, and a
//     cookie is parsed strictly before it is used (decision 1);
//   - the record keeps created and last-seen times, idle and absolute
//     deadlines, the client IP and user agent beside the values, each
//     value as its key and encoded bytes, decoded on demand (decision 4);
//   - the envelope is a key ID, a nonce and AES-256-GCM, with the store
//     key and the purpose as associated data (decisions 4, 5);
//   - records carry a version: a new session is saved only where no live
//     record is, a write only over the version it read, and a write that
//     loses re-applies its change to the newest version (decision 6);
//   - both deadlines are checked on every read, and a read-only request
//     writes only when the last recorded activity is over a minute old
//     (decisions 2, 7);
//   - the store keeps its records in a heap by expiry, so that it can
//     sweep them without scanning (decision 13).
//
// It has none of sesh's API (a Session per request, bags, flash, a codec,
// size limits, events, users and devices, remember-me, binding) and none
// of its generality: each route knows its keys. sesh's distance to it is
// the cost of the library around the design, not of the design.
func floorDesign() (http.Handler, error) {
	f, err := newFDServer()
	if err != nil {
		return nil, err
	}
	return plainRoutes(f.rmw, f.read, f.newSession), nil
}

func newFDServer() (*fdServer, error) {
	aead, err := newFloorAEAD()
	if err != nil {
		return nil, err
	}
	return &fdServer{aead: aead, store: fdStore{m: map[[sha256.Size]byte]*fdEntry{}}}, nil
}

type fdServer struct {
	aead  cipher.AEAD
	store fdStore
}

// fdRecord is a decoded floor-design record.
type fdRecord struct {
	created, lastSeen int64 // Unix ms
	idle, absolute    int64 // ms
	ip, ua            string
	keys, vals        [4]string
	n                 int // values in keys and vals
}

func (r *fdRecord) get(k string) string {
	for i := range r.n {
		if r.keys[i] == k {
			return r.vals[i]
		}
	}
	return ""
}

func (r *fdRecord) set(k, v string) {
	for i := range r.n {
		if r.keys[i] == k {
			r.vals[i] = v
			return
		}
	}
	if r.n < len(r.keys) {
		r.keys[r.n], r.vals[r.n] = k, v
		r.n++
	}
}

// expires returns when r ends: its idle or absolute deadline, whichever
// comes first.
func (r *fdRecord) expires() int64 {
	return min(r.lastSeen+r.idle, r.created+r.absolute)
}

func (r *fdRecord) encode(dst []byte) []byte {
	dst = append(dst, 1) // format
	for _, v := range [...]int64{r.created, r.lastSeen, r.idle, r.absolute} {
		dst = binary.AppendUvarint(dst, uint64(v))
	}
	dst = fdAppendString(dst, r.ip)
	dst = fdAppendString(dst, r.ua)
	dst = binary.AppendUvarint(dst, uint64(r.n))
	for i := range r.n {
		dst = fdAppendString(dst, r.keys[i])
		dst = fdAppendString(dst, r.vals[i])
	}
	return dst
}

func fdAppendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

// decode reads r from pt. Its strings share one copy of pt.
func (r *fdRecord) decode(pt []byte) error {
	if len(pt) == 0 || pt[0] != 1 {
		return errFDCorrupt
	}
	b := string(pt[1:])
	var ok bool
	for _, p := range [...]*int64{&r.created, &r.lastSeen, &r.idle, &r.absolute} {
		v, n := fdUvarint(b)
		if n <= 0 {
			return errFDCorrupt
		}
		*p, b = int64(v), b[n:]
	}
	if r.ip, b, ok = fdString(b); !ok {
		return errFDCorrupt
	}
	if r.ua, b, ok = fdString(b); !ok {
		return errFDCorrupt
	}
	count, n := fdUvarint(b)
	if n <= 0 || count > uint64(len(r.keys)) {
		return errFDCorrupt
	}
	b, r.n = b[n:], int(count)
	for i := range r.n {
		if r.keys[i], b, ok = fdString(b); !ok {
			return errFDCorrupt
		}
		if r.vals[i], b, ok = fdString(b); !ok {
			return errFDCorrupt
		}
	}
	if len(b) != 0 {
		return errFDCorrupt
	}
	return nil
}

// fdUvarint is binary.Uvarint for a string.
func fdUvarint(b string) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < binary.MaxVarintLen64; i++ {
		c := b[i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

// fdString reads a length-prefixed string from b.
func fdString(b string) (string, string, bool) {
	l, n := fdUvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return "", "", false
	}
	b = b[n:]
	return b[:l], b[l:], true
}

// fdStoreKey returns the store key of a session ID.
func fdStoreKey(id []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(fdKeyPrefix))
	h.Write(id)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// seal returns r's envelope under key: key ID, nonce, ciphertext.
func (f *fdServer) seal(key *[sha256.Size]byte, r *fdRecord) ([]byte, error) {
	var buf [256]byte
	pt := r.encode(buf[:0])
	ns := f.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(pt)+f.aead.Overhead())
	out[0] = 1 // the key's ID
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	var ad [sha256.Size + len(fdPurpose)]byte
	copy(ad[copy(ad[:], key[:]):], fdPurpose)
	return f.aead.Seal(out, out[1:], pt, ad[:]), nil
}

func (f *fdServer) open(key *[sha256.Size]byte, env []byte, r *fdRecord) error {
	ns := f.aead.NonceSize()
	if len(env) < 1+ns || env[0] != 1 {
		return errFDCorrupt
	}
	var buf [256]byte
	var ad [sha256.Size + len(fdPurpose)]byte
	copy(ad[copy(ad[:], key[:]):], fdPurpose)
	pt, err := f.aead.Open(buf[:0], env[1:1+ns], env[1+ns:], ad[:])
	if err != nil {
		return err
	}
	return r.decode(pt)
}

// fdSession is a request's live session.
type fdSession struct {
	key     [sha256.Size]byte
	rec     fdRecord
	version uint64
}

// lookup loads the request's session into s. It reports false for no
// cookie, a malformed one, or no live record under it: a new session.
func (f *fdServer) lookup(r *http.Request, now int64, s *fdSession) bool {
	c, err := r.Cookie(FloorDesignCookie)
	if err != nil || len(c.Value) != 43 {
		return false
	}
	var id [32]byte
	if n, err := base64.RawURLEncoding.Strict().Decode(id[:], []byte(c.Value)); err != nil || n != len(id) {
		return false
	}
	s.key = fdStoreKey(id[:])
	env, version, found := f.store.load(&s.key, now)
	if !found || f.open(&s.key, env, &s.rec) != nil || s.rec.expires() <= now {
		return false
	}
	s.version = version
	return true
}

// create saves rec as a new session and sets its cookie.
func (f *fdServer) create(w http.ResponseWriter, r *http.Request, rec *fdRecord, now int64) error {
	rec.created, rec.lastSeen = now, now
	rec.idle, rec.absolute = fdIdle.Milliseconds(), fdAbsolute.Milliseconds()
	rec.ip = r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		rec.ip = host
	}
	if rec.ua = r.UserAgent(); len(rec.ua) > 256 {
		rec.ua = rec.ua[:256]
	}
	var id [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return err
	}
	key := fdStoreKey(id[:])
	env, err := f.seal(&key, rec)
	if err != nil {
		return err
	}
	if !f.store.save(&key, env, 1, 0, rec.expires(), now) {
		return errors.New("floor-design: session ID taken")
	}
	setFloorCookie(w, FloorDesignCookie, base64.RawURLEncoding.EncodeToString(id[:]))
	return nil
}

// write saves s.rec with change applied, re-applying it to the newest
// version when another request wrote first.
func (f *fdServer) write(s *fdSession, now int64, change func(*fdRecord)) error {
	for range 100 {
		change(&s.rec)
		s.rec.lastSeen = now
		env, err := f.seal(&s.key, &s.rec)
		if err != nil {
			return err
		}
		if f.store.save(&s.key, env, s.version+1, s.version, s.rec.expires(), now) {
			s.version++
			return nil
		}
		env, version, found := f.store.load(&s.key, now)
		if !found {
			return errors.New("floor-design: session ended")
		}
		if err := f.open(&s.key, env, &s.rec); err != nil {
			return err
		}
		s.version = version
	}
	return errors.New("floor-design: too many concurrent writers")
}

func (f *fdServer) rmw(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Vary", "Cookie")
	now := time.Now().UnixMilli()
	var s fdSession
	if !f.lookup(r, now, &s) {
		s.rec.set("n", "1")
		if err := f.create(w, r, &s.rec, now); err != nil {
			fail(w, err)
			return
		}
		writeInt(w, 1)
		return
	}
	var n int
	err := f.write(&s, now, func(rec *fdRecord) {
		n, _ = strconv.Atoi(rec.get("n"))
		n++
		rec.set("n", strconv.Itoa(n))
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeInt(w, n)
}

func (f *fdServer) read(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Vary", "Cookie")
	now := time.Now().UnixMilli()
	var s fdSession
	n := 0
	if f.lookup(r, now, &s) {
		n, _ = strconv.Atoi(s.rec.get("n"))
		if now-s.rec.lastSeen >= fdTouch.Milliseconds() {
			if err := f.write(&s, now, func(*fdRecord) {}); err != nil {
				fail(w, err)
				return
			}
		}
	}
	writeInt(w, n)
}

func (f *fdServer) newSession(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Vary", "Cookie")
	var rec fdRecord
	rec.set("a", "1")
	rec.set("b", `"two"`)
	rec.set("c", "true")
	if err := f.create(w, r, &rec, time.Now().UnixMilli()); err != nil {
		fail(w, err)
		return
	}
	body(w, ok)
}

// fdStore is floor-design's store: envelopes under their keys with a
// version each, and a min-heap of them by expiry.
type fdStore struct {
	mu   sync.RWMutex
	m    map[[sha256.Size]byte]*fdEntry
	heap []*fdEntry
}

type fdEntry struct {
	env     []byte // never modified once stored
	version uint64
	exp     int64 // Unix ms
	i       int   // index in heap
}

// load returns the live envelope under key and its version.
func (s *fdStore) load(key *[sha256.Size]byte, now int64) (env []byte, version uint64, ok bool) {
	s.mu.RLock()
	e := s.m[*key]
	if e == nil || e.exp <= now {
		s.mu.RUnlock()
		return nil, 0, false
	}
	env, version = e.env, e.version
	s.mu.RUnlock()
	return env, version, true
}

// save stores env under key as version if the live record there has
// version prev (0: there is none), and reports whether it did.
func (s *fdStore) save(key *[sha256.Size]byte, env []byte, version, prev uint64, exp, now int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[*key]
	live := e != nil && e.exp > now
	switch {
	case prev == 0 && live, prev != 0 && (!live || e.version != prev):
		return false
	case e == nil:
		e = &fdEntry{exp: exp, i: len(s.heap)}
		s.m[*key] = e
		s.heap = append(s.heap, e)
		s.up(e.i)
	default:
		e.exp = exp
		s.down(s.up(e.i))
	}
	e.env, e.version = env, version // env is the caller's fresh envelope
	return true
}

func (s *fdStore) swap(i, j int) {
	h := s.heap
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i, j
}

// up moves heap[i] towards the root while it expires before its parent,
// and returns where it stopped.
func (s *fdStore) up(i int) int {
	for i > 0 {
		p := (i - 1) / 2
		if s.heap[p].exp <= s.heap[i].exp {
			break
		}
		s.swap(i, p)
		i = p
	}
	return i
}

// down moves heap[i] towards the leaves while a child expires before it.
func (s *fdStore) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(s.heap) {
			return
		}
		if c+1 < len(s.heap) && s.heap[c+1].exp < s.heap[c].exp {
			c++
		}
		if s.heap[i].exp <= s.heap[c].exp {
			return
		}
		s.swap(i, c)
		i = c
	}
}
