package sesh

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seshgo/sesh/seal"
)

// Manager loads and commits sessions for HTTP requests. Create one with
// [New] and wrap handlers with [Manager.Handler]. A Manager is safe for
// concurrent use; it starts no goroutines.
type Manager struct {
	store    Store
	cfg      Config
	box      *seal.Box
	tokenBox *seal.Box
	locker   Locker
	local    *localLocker // queues exclusive requests within this process
	// nonblocking stores need no per-operation timeout.
	nonblocking bool
	// stale holds the store locks whose unlock failed (the store was
	// down), to release before this process next locks the same key.
	staleMu sync.Mutex
	stale   map[Key]staleLock
	// orphans holds sessions created by failed commits whose undo failed
	// too, by key, with their expiry; orphanCount is len(orphans).
	orphanMu    sync.Mutex
	orphans     map[Key]time.Time
	orphanCount atomic.Int32
	// cookieAttrs is the session cookie's attributes as Set-Cookie writes
	// them after the value ("; Path=/; Secure; ..."), when not Persistent.
	cookieAttrs string
}

// New returns a Manager keeping sessions in store. It fails when the
// configuration is unsafe or inconsistent, for example without keys.
func New(store Store, cfg Config) (*Manager, error) {
	if store == nil {
		return nil, errors.New("sesh: New needs a store")
	}
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	m := &Manager{store: store, cfg: cfg, box: cfg.Keys.Box("session"), tokenBox: cfg.Keys.Box("remember")}
	_, m.nonblocking = store.(Nonblocking)
	c := m.cookie("v", time.Time{})
	m.cookieAttrs = strings.TrimPrefix(c.String(), c.Name+"=v")
	m.local = newLocalLocker()
	m.locker = m.local
	if l, ok := store.(Locker); ok {
		m.locker = l
	}
	if cfg.Cookie.InsecureHTTP {
		cfg.Logger.Warn("sesh: session cookie is not Secure (Cookie.InsecureHTTP); use only for development over plain HTTP")
	}
	return m, nil
}

// Sweep removes up to limit dead records and tombstones from the store,
// if it needs explicit sweeping ([Sweeper]), and returns how many it
// removed; stores with native expiry return 0. Nothing sweeps in the
// background: call Sweep from a ticker in your application (a few hundred
// records every few seconds keeps a busy store clean) or run
// `seshctl sweep` from cron. Each call does bounded work.
func (m *Manager) Sweep(ctx context.Context, limit int) (int, error) {
	sw, ok := m.store.(Sweeper)
	if !ok || limit <= 0 {
		return 0, nil
	}
	n, err := sw.Sweep(ctx, limit)
	if n > 0 {
		m.Report(ctx, Event{Kind: EventExpired, Detail: fmt.Sprintf("swept %d dead records", n)})
	}
	return n, err
}

// storeCtx bounds one store operation by Config.StoreTimeout, unless the
// store never blocks.
func (m *Manager) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if m.nonblocking {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, m.cfg.StoreTimeout)
}

// Store returns the manager's store.
func (m *Manager) Store() Store { return m.store }

func (m *Manager) now() time.Time { return m.cfg.Now() }

// maxClockSkew is how far in the future a record's last activity may be
// (servers sharing a store disagree a little about the time) before the
// record is taken as expired.
const maxClockSkew = 5 * time.Minute

// loadState tells what a store lookup found.
type loadState int

const (
	stateAbsent loadState = iota // nothing usable: never issued, expired, or corrupt
	stateLive
	stateGone // tombstone: destroyed or renewed moments ago
)

// loaded is a decoded live record.
type loaded struct {
	rec     *record
	version uint64
	at      msTime // the clock when it was found live
}

// load reads and opens the record of id, whose store key is key. Store
// failures and records sealed under unknown keys are errors; anything the
// client could have caused (unknown, expired or corrupt records) is
// stateAbsent.
func (m *Manager) load(ctx context.Context, id sessionID, key Key) (loaded, loadState, error) {
	ctx, cancel := m.storeCtx(ctx)
	defer cancel()
	sr, err := m.store.Load(ctx, key)
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrGone) {
		m.dropOrphans(ctx)
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		return loaded{}, stateAbsent, nil
	case errors.Is(err, ErrGone):
		return loaded{}, stateGone, nil
	case errors.Is(err, ErrCorrupt):
		// The store cannot parse what it holds: never lock the user out
		// over it.
		m.Report(ctx, Event{Kind: EventCorrupt, Handle: handle(key), Detail: "unparseable store entry dropped"})
		m.remove(ctx, key)
		return loaded{}, stateAbsent, nil
	default:
		return loaded{}, stateAbsent, fmt.Errorf("%w: load: %w", ErrStoreUnavailable, err)
	}
	now := m.now()
	if !sr.Expires.After(now) || sr.Kind != KindSession {
		return loaded{}, stateAbsent, nil
	}
	rec, err := m.openOwned(key, sr.Data)
	if err == nil {
		err = m.openValues(id, key, rec)
	}
	if err != nil {
		if errors.Is(err, seal.ErrUnknownKey) {
			// A deployment fault, not client input: answering "no session"
			// would log the user out everywhere.
			return loaded{}, stateAbsent, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
		}
		m.Report(ctx, Event{Kind: EventCorrupt, Handle: handle(key), Detail: "undecodable session record dropped"})
		m.remove(ctx, key)
		return loaded{}, stateAbsent, nil
	}
	idle, abs := m.deadlinesMS(rec)
	// A record last written in the future means the clock went back: a
	// session must never outlive its deadlines that way.
	nowMS := toMS(now)
	future := rec.lastSeen > nowMS+msTime(maxClockSkew/time.Millisecond)
	if future || nowMS >= idle || nowMS >= abs {
		m.Report(ctx, Event{Kind: EventExpired, User: rec.user, Handle: handle(key)})
		m.remove(ctx, key)
		return loaded{}, stateAbsent, nil
	}
	return loaded{rec: rec, version: sr.Version, at: nowMS}, stateLive, nil
}

// retire deletes a record leaving a tombstone, trying twice: a session
// that should have ended must not stay valid because of one lost packet.
func (m *Manager) retire(ctx context.Context, key Key, tomb time.Time) error {
	var err error
	for range 2 {
		dctx, cancel := m.storeCtx(ctx)
		err = m.store.Delete(dctx, key, tomb)
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}

// undoCreate deletes a session that a failed commit created and no
// browser was told of. If the store fails that too, the key is kept and
// deleted once the store answers again (see dropOrphans): left alone, the
// record would be listed among its user's devices until it expires.
func (m *Manager) undoCreate(ctx context.Context, key Key, expires time.Time) {
	if m.retire(context.WithoutCancel(ctx), key, time.Time{}) == nil {
		return
	}
	m.orphanMu.Lock()
	defer m.orphanMu.Unlock()
	if m.orphans == nil {
		m.orphans = make(map[Key]time.Time)
	}
	if len(m.orphans) < maxOrphans {
		m.orphans[key] = expires
		m.orphanCount.Store(int32(len(m.orphans)))
	}
}

// maxOrphans bounds the undone sessions kept for deletion; past it, such
// records are left to expire.
const maxOrphans = 4096

// dropOrphans deletes a few of the sessions that undoCreate could not,
// now that the store answers. It is called after a successful load, and
// costs an atomic load when there are none.
func (m *Manager) dropOrphans(ctx context.Context) {
	if m.orphanCount.Load() == 0 {
		return
	}
	type orphan struct {
		key Key
		exp time.Time
	}
	var batch [8]orphan
	n := 0
	now := m.now()
	m.orphanMu.Lock()
	for k, exp := range m.orphans {
		if n == len(batch) {
			break
		}
		delete(m.orphans, k)
		if now.Before(exp) {
			batch[n] = orphan{k, exp}
			n++
		}
	}
	m.orphanCount.Store(int32(len(m.orphans)))
	m.orphanMu.Unlock()
	for i, o := range batch[:n] {
		dctx, cancel := m.storeCtx(context.WithoutCancel(ctx))
		err := m.store.Delete(dctx, o.key, time.Time{})
		cancel()
		if err != nil {
			// Still failing: keep the rest for later.
			m.orphanMu.Lock()
			for _, o := range batch[i:n] {
				if len(m.orphans) < maxOrphans {
					m.orphans[o.key] = o.exp
				}
			}
			m.orphanCount.Store(int32(len(m.orphans)))
			m.orphanMu.Unlock()
			return
		}
	}
}

// remove deletes a dead record, best effort: the record is dead either
// way, and a store that fails here will fail the next request loudly.
func (m *Manager) remove(ctx context.Context, key Key) {
	ctx, cancel := m.storeCtx(context.WithoutCancel(ctx))
	defer cancel()
	_ = m.store.Delete(ctx, key, time.Time{})
}

// open opens and decodes a sealed session record, leaving data as it is.
func (m *Manager) open(key Key, data []byte) (*record, error) {
	if len(data) > m.cfg.MaxSize+seal.Overhead {
		return nil, errCorrupt
	}
	pt, _, err := m.box.Open(nil, data, key[:])
	if err != nil {
		return nil, err
	}
	return decodeRecord(pt)
}

// openOwned is open for data that the caller owns and will not use again,
// as the Store contract says Load returns: it decrypts in place.
func (m *Manager) openOwned(key Key, data []byte) (*record, error) {
	if len(data) > m.cfg.MaxSize+seal.Overhead || len(data) < seal.Overhead {
		return nil, errCorrupt
	}
	pt, _, err := m.box.Open(data[seal.HeaderSize:seal.HeaderSize], data, key[:])
	if err != nil {
		return nil, err
	}
	return decodeRecord(pt)
}

// openValues opens the values of a record sealed in bound mode, which
// needs the session ID as well as the key ring.
func (m *Manager) openValues(id sessionID, key Key, rec *record) error {
	if rec.flags&flagBound == 0 {
		return nil
	}
	pt, _, err := m.box.OpenBound(nil, rec.boundValues, key[:], id[:])
	if err != nil {
		return err
	}
	vs, err := decodeValues(pt, rec.inline[:0])
	if err != nil {
		return err
	}
	rec.values, rec.boundValues = vs, nil
	rec.flags &^= flagBound
	return nil
}

// sealBufs holds the buffers that sealSave seals records into. A store
// must not keep Record.Data after Save returns (storetest checks that),
// so a buffer goes back to the pool as soon as Save has returned. Each is
// a *[]byte, so that Get and Put allocate nothing.
var sealBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledSeal is the largest buffer put back into sealBufs: a rare
// large session does not pin its buffer for every later small one.
const maxPooledSeal = 4 << 10

// sealSave seals rec for the session id (see seal) and saves it under
// key, its store key, with compare-and-set on prev. A sealing error, such
// as ErrTooLarge, is returned as it is; a store error is wrapped in
// ErrStoreUnavailable (ErrConflict stays visible to errors.Is).
func (m *Manager) sealSave(ctx context.Context, id sessionID, key Key, rec *record, version, prev uint64) error {
	buf := sealBufs.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= maxPooledSeal {
			sealBufs.Put(buf)
		}
	}()
	sr, err := m.seal(buf, id, key, rec, version)
	if err != nil {
		return err
	}
	if err := m.store.Save(ctx, key, sr, prev); err != nil {
		return fmt.Errorf("%w: save: %w", ErrStoreUnavailable, err)
	}
	return nil
}

// seal encodes and seals rec for the session id, whose store key is key,
// into *buf (grown if needed), refusing oversized records. The returned
// Record.Data is in *buf: it is valid until buf is reused. In bound mode
// the values are sealed first under a key that also depends on id.
func (m *Manager) seal(buf *[]byte, id sessionID, key Key, rec *record, version uint64) (Record, error) {
	enc := rec
	if m.cfg.BindDataToID {
		vals := appendValues(make([]byte, 0, rec.encodedSize()), rec.values)
		blob, err := m.box.SealBound(nil, vals, key[:], id[:])
		if err != nil {
			return Record{}, err
		}
		cp := *rec
		cp.values, cp.boundValues, cp.flags = nil, blob, rec.flags|flagBound
		enc = &cp
	}
	// Encode after room for the envelope's header and seal in place.
	if need := enc.encodedSize() + seal.Overhead; cap(*buf) < need {
		*buf = make([]byte, 0, need)
	}
	pt := enc.appendEncode((*buf)[:seal.HeaderSize])[seal.HeaderSize:]
	if len(pt) > m.cfg.MaxSize {
		return Record{}, fmt.Errorf("%w: session data is %d bytes, limit %d", ErrTooLarge, len(pt), m.cfg.MaxSize)
	}
	data, err := m.box.Seal((*buf)[:0], pt, key[:])
	if err != nil {
		return Record{}, err
	}
	return Record{Data: data, Version: version, Expires: m.expires(rec), User: rec.user, Kind: KindSession}, nil
}

// deadlines returns the idle and absolute deadlines of rec.
func (m *Manager) deadlines(rec *record) (idle, abs time.Time) {
	i, a := m.deadlinesMS(rec)
	return i.Time(), a.Time()
}

// deadlinesMS returns the idle and absolute deadlines of rec to the
// millisecond, as records keep their times: a timeout with a fraction of
// a millisecond ends at the millisecond before.
func (m *Manager) deadlinesMS(rec *record) (idle, abs msTime) {
	it, at := m.cfg.IdleTimeout, m.cfg.AbsoluteTimeout
	if rec.idle > 0 && rec.idle < it {
		it = rec.idle
	}
	if rec.absolute > 0 && rec.absolute < at {
		at = rec.absolute
	}
	return rec.lastSeen + msTime(it/time.Millisecond), rec.created + msTime(at/time.Millisecond)
}

// expires returns the earlier of rec's deadlines.
func (m *Manager) expires(rec *record) time.Time {
	idle, abs := m.deadlinesMS(rec)
	return min(idle, abs).Time()
}

// touchDue reports whether rec's last recorded activity is old enough, at
// now, to be recorded again (Config.TouchInterval).
func (m *Manager) touchDue(rec *record, now msTime) bool {
	d := (m.cfg.TouchInterval + time.Millisecond - 1) / time.Millisecond
	return now >= rec.lastSeen+msTime(d)
}

// maxCandidates bounds the session cookies one request may present.
const maxCandidates = 4

// candidates appends to dst the distinct well-formed session IDs among
// the request's cookies, at most maxCandidates of them. It scans the
// Cookie headers itself: names are compared exactly, never decoded, and
// nothing is allocated for the other cookies.
func (m *Manager) candidates(r *http.Request, dst []sessionID) []sessionID {
	name := m.cfg.Cookie.Name
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = trimBlanksLeft(part)
			n, v, ok := strings.Cut(part, "=")
			if !ok || n != name {
				continue
			}
			id, ok := parseSessionID(trimBlanksRight(v))
			if !ok || slices.Contains(dst, id) {
				continue
			}
			dst = append(dst, id)
			if len(dst) == maxCandidates {
				return dst
			}
		}
	}
	return dst
}

// trimBlanksLeft and trimBlanksRight remove spaces and tabs from the
// start and from the end of s: strings.TrimLeft and TrimRight with " \t",
// without building their character set on every call.
func trimBlanksLeft(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	return s
}

func trimBlanksRight(s string) string {
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// cookie returns the session cookie for value; an empty value gives the
// deletion cookie.
func (m *Manager) cookie(value string, abs time.Time) *http.Cookie {
	cc := &m.cfg.Cookie
	c := &http.Cookie{
		Name:        cc.Name,
		Value:       value,
		Path:        cc.Path,
		Domain:      cc.Domain,
		Secure:      !cc.InsecureHTTP,
		HttpOnly:    true,
		SameSite:    cc.SameSite,
		Partitioned: cc.Partitioned,
	}
	switch {
	case value == "":
		c.MaxAge = -1
		c.Expires = time.Unix(1, 0)
	case cc.Persistent:
		c.MaxAge = max(int(abs.Sub(m.now())/time.Second), 1)
	}
	return c
}

// sessionCookie returns the Set-Cookie line for the session id. Without
// Cookie.Persistent the attributes never change, and the line is put
// together from the ones New formatted, in one allocation.
func (m *Manager) sessionCookie(id sessionID, abs time.Time) string {
	if m.cfg.Cookie.Persistent {
		return m.cookie(id.encode(), abs).String()
	}
	var enc [idLen]byte
	idEncoding.Encode(enc[:], id[:])
	var b strings.Builder
	b.Grow(len(m.cfg.Cookie.Name) + 1 + idLen + len(m.cookieAttrs))
	b.WriteString(m.cfg.Cookie.Name)
	b.WriteByte('=')
	b.Write(enc[:])
	b.WriteString(m.cookieAttrs)
	return b.String()
}

// staleLock is a store lock whose release failed.
type staleLock struct {
	unlock func(context.Context) error
	until  time.Time // it expires in the store by then anyway
}

// maxStaleLocks bounds the failed unlocks kept for retry; past it, such
// locks wait out their LockTTL.
const maxStaleLocks = 4096

// keepStale remembers a store lock that could not be released, so that an
// outage does not leave its session locked for the whole LockTTL after
// the store is back.
func (m *Manager) keepStale(key Key, unlock func(context.Context) error, until time.Time) {
	m.staleMu.Lock()
	defer m.staleMu.Unlock()
	if m.stale == nil {
		m.stale = make(map[Key]staleLock)
	}
	if len(m.stale) < maxStaleLocks {
		m.stale[key] = staleLock{unlock, until}
	}
}

// releaseStale retries the release of key's store lock, if one failed.
// The caller holds key's local lock, so no request of this process holds
// the store lock; the unlock is token-checked, so it never releases a
// lock that another process took since.
func (m *Manager) releaseStale(ctx context.Context, key Key) {
	m.staleMu.Lock()
	sl, ok := m.stale[key]
	delete(m.stale, key)
	m.staleMu.Unlock()
	if !ok || !m.now().Before(sl.until) {
		return
	}
	sctx, cancel := m.storeCtx(ctx)
	defer cancel()
	if err := sl.unlock(sctx); err != nil && !errors.Is(err, ErrLockLost) {
		m.keepStale(key, sl.unlock, sl.until)
	}
}

func userAgent(r *http.Request) string {
	ua := r.UserAgent()
	if len(ua) > 256 {
		ua = ua[:256]
	}
	return ua
}

// localLocker serialises exclusive requests within one process, for
// stores that do not implement Locker.
type localLocker struct {
	mu   sync.Mutex
	held map[Key]chan struct{} // closed when released
}

func newLocalLocker() *localLocker {
	return &localLocker{held: make(map[Key]chan struct{})}
}

func (l *localLocker) Lock(ctx context.Context, key Key, _ time.Duration) (func(context.Context) error, error) {
	for {
		l.mu.Lock()
		ch, busy := l.held[key]
		if !busy {
			ch = make(chan struct{})
			l.held[key] = ch
			l.mu.Unlock()
			return func(context.Context) error {
				l.mu.Lock()
				if l.held[key] == ch {
					delete(l.held, key)
					close(ch)
				}
				l.mu.Unlock()
				return nil
			}, nil
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
