package sesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Session is one request's view of a session. The middleware creates it
// and puts it in the request context; get it with [FromContext]. Nothing
// is read from the store until a method needs the data, and nothing is
// written unless something changed.
//
// A Session is safe for concurrent use by the goroutines of one request.
// It must not be used after the request's handler returns.
type Session struct {
	m   *Manager
	req *http.Request
	w   *responseWriter

	mu     sync.Mutex
	failed error // sticky load failure

	rw      responseWriter // allocated with the session
	ctx     requestCtx     // the request's context, with the session in it
	r       http.Request   // the request passed on, with ctx; req points here
	arena   []byte         // values encoded by setScalar; append-only
	id      sessionID      // ID of the live session, valid when version > 0
	key     Key
	rec     *record // last known content; nil when there is no live record
	version uint64  // 0: no live record under key
	// loadedAt is the clock when the request found its record live, or 0:
	// a commit with nothing to write decides on it whether to touch.
	loadedAt msTime

	unlock func(context.Context) error // releases the exclusive lock, while held

	// Pending changes, re-applied to the newest version on conflict.
	changes changeSet
	// draft is the record a commit creates for a session with no live
	// record, allocated with the first change's buffers (see grow).
	draft *record

	x *sessionExtra // what most requests never use; see extra

	rnd randBuf // random bytes for IDs; used under mu. Byte-aligned, as
	// the flags below are: together they waste no padding.

	// The flags of the groups above, together here so that the struct,
	// allocated for every request, has no padding between them.
	detached   bool // no middleware: every access fails with ErrNoMiddleware; never changes
	state      sessState
	presented  bool // the request carried a session cookie
	gone       bool // the presented ID was destroyed or renewed moments ago
	exclusive  bool
	sentCookie bool // this request's response carries the session cookie
	// pending changes
	cleared     bool
	userSet     bool
	flagsSet    bool
	timeoutsSet bool
	renew       bool // save under a fresh ID and retire the current one
	logout      bool // the retirement is a logout
	rememberNew bool // issue a remember-me token at commit
	// remember-me delivery
	deliver      bool
	clearSite    bool // an error response keeps Clear-Site-Data
	dropRemember bool // clear a useless remember-me cookie
}

// sessionExtra is the state of a Session that most requests never use,
// kept apart so that the Session, allocated for every request, stays
// small (see TestSizes). Session.extra allocates it; s.x == nil reads as
// its zero value.
type sessionExtra struct {
	// Pending changes that only logins, renewals and SetTimeouts make.
	// user and authTime are valid when Session.userSet is, flags when
	// flagsSet is, idle and absolute when timeoutsSet is.
	user     string
	authTime msTime
	flags    uint64
	idle     time.Duration
	absolute time.Duration
	retire   []Key // keys to delete at commit: IDs renewed or destroyed

	newIP string // the session moved to this network (PolicyLog)

	// A session restored from a remember-me token, to deliver at commit.
	deliverRemember string
	rememberExpires time.Time
	delivered       []string // Set-Cookie values that an error response keeps

	// Flash state of this request.
	flashNow []Message
	popped   map[string]Message // flash keys consumed by this request
}

// extra returns s.x, allocated if it was not. The caller holds s.mu.
func (s *Session) extra() *sessionExtra {
	if s.x == nil {
		s.x = new(sessionExtra)
	}
	return s.x
}

// newIP returns the network the session moved to, if any (PolicyLog).
// The caller holds s.mu.
func (s *Session) newIP() string {
	if s.x == nil {
		return ""
	}
	return s.x.newIP
}

// setNewIP sets what newIP returns. The caller holds s.mu.
func (s *Session) setNewIP(ip string) {
	if ip != "" || s.x != nil {
		s.extra().newIP = ip
	}
}

// retiring returns the keys the commit is to delete. The caller holds
// s.mu.
func (s *Session) retiring() []Key {
	if s.x == nil {
		return nil
	}
	return s.x.retire
}

// retireKey adds the current key to those the commit deletes. The caller
// holds s.mu.
func (s *Session) retireKey() {
	x := s.extra()
	x.retire = append(x.retire, s.key)
}

// dropPopped forgets the flash messages this request popped. The caller
// holds s.mu.
func (s *Session) dropPopped() {
	if s.x != nil {
		s.x.popped = nil
	}
}

type sessState uint8

const (
	sessUnloaded sessState = iota
	sessLoaded
)

type change struct {
	val []byte
	del bool
}

// changeSet is a request's pending changes, by full key. A request changes
// few keys, so a slice searched linearly beats a map.
type changeSet []keyChange

type keyChange struct {
	key string
	change
}

func (cs changeSet) get(k string) (change, bool) {
	for i := range cs {
		if cs[i].key == k {
			return cs[i].change, true
		}
	}
	return change{}, false
}

func (cs *changeSet) set(k string, c change) {
	for i := range *cs {
		if (*cs)[i].key == k {
			(*cs)[i].change = c
			return
		}
	}
	*cs = append(*cs, keyChange{k, c})
}

func (cs *changeSet) remove(k string) {
	for i := range *cs {
		if (*cs)[i].key == k {
			*cs = append((*cs)[:i], (*cs)[i+1:]...)
			return
		}
	}
}

// applyTo returns base with the changes applied, in buf if it fits.
// base is not modified.
func (cs changeSet) applyTo(base, buf values) values {
	out := buf[:0]
	if n := len(base) + len(cs); n > cap(buf) {
		out = make(values, 0, n)
	}
	out = append(out, base...)
	for _, c := range cs {
		i, found := out.index(c.key)
		switch {
		case c.del && found:
			out = slices.Delete(out, i, i+1)
		case c.del:
		case found:
			out[i].val = c.val
		default:
			out = slices.Insert(out, i, value{c.key, c.val})
		}
	}
	return out
}

type ctxKey struct{}

// requestCtx is the request's context with its session in it: what
// context.WithValue(ctx, ctxKey{}, s) gives, allocated with the session.
type requestCtx struct {
	context.Context
	s *Session
}

// Value implements [context.Context].
func (c *requestCtx) Value(key any) any {
	if _, ok := key.(ctxKey); ok {
		return c.s
	}
	return c.Context.Value(key)
}

// commitCtx is the context that a session's commits run under: the
// request's values, without its cancellation and deadline, as
// context.WithoutCancel(&s.ctx) gives it, but allocated with the session.
// A commit must finish even when the client has gone: what the store
// holds and what the browser was told must not diverge.
type commitCtx Session

func (s *Session) commitCtx() context.Context { return (*commitCtx)(s) }

// Deadline implements [context.Context]: there is none.
func (*commitCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements [context.Context]: it is never done.
func (*commitCtx) Done() <-chan struct{} { return nil }

// Err implements [context.Context]: it is never canceled.
func (*commitCtx) Err() error { return nil }

// Value implements [context.Context] with the request context's values.
func (c *commitCtx) Value(key any) any { return c.ctx.Value(key) }

// FromContext returns the session of the request whose context is ctx.
// Outside the manager's middleware it returns a session on which every
// read finds nothing and every write fails with ErrNoMiddleware.
func FromContext(ctx context.Context) *Session {
	if s, ok := ctx.Value(ctxKey{}).(*Session); ok && s != nil {
		return s
	}
	return &Session{detached: true, state: sessLoaded, failed: ErrNoMiddleware}
}

// ensure loads the session if it is not loaded yet and reports whether it
// is usable. The caller holds s.mu.
func (s *Session) ensure() bool {
	if s.state == sessUnloaded {
		s.state = sessLoaded
		s.failed = s.loadLocked()
	}
	return s.failed == nil
}

// loadLocked finds the live session among the request's cookies.
func (s *Session) loadLocked() error {
	m := s.m
	var candBuf [maxCandidates]sessionID
	cands := m.candidates(s.req, candBuf[:0])
	if len(cands) == 0 {
		return s.restoreLocked()
	}
	s.presented = true
	ctx := s.req.Context()
	var keys [maxCandidates]Key
	for i, id := range cands {
		keys[i] = id.storeKey()
	}
	if s.exclusive && len(cands) == 1 {
		if err := s.lock(keys[0]); err != nil {
			return err
		}
	}
	var liveBuf [maxCandidates]int
	live := liveBuf[:0] // indexes of the candidates that are live
	var found loaded
	for i, id := range cands {
		l, st, err := m.load(ctx, id, keys[i])
		if err != nil {
			return err
		}
		switch st {
		case stateLive:
			live = append(live, i)
			found = l
		case stateGone:
			s.gone = true
		}
	}
	switch len(live) {
	case 0:
		if s.gone {
			return nil
		}
		s.report(EventUnknownSession, "", "")
		return s.restoreLocked()
	case 1:
	default:
		// Two valid sessions in one request: a cookie was tossed in from a
		// sibling domain or path. Trust neither.
		s.report(EventDuplicateCookie, "", "several valid session cookies; none used")
		s.gone = false
		return nil
	}
	s.gone = false
	s.id, s.key = cands[live[0]], keys[live[0]]
	if s.exclusive && s.unlock == nil {
		if err := s.lock(s.key); err != nil {
			return err
		}
		l, st, err := m.load(ctx, s.id, s.key)
		if err != nil {
			return err
		}
		if st != stateLive {
			s.gone = st == stateGone
			return nil
		}
		found = l
	}
	keep, newIP := s.checkBinding(found.rec)
	if !keep {
		s.key = Key{}
		return nil
	}
	s.rec, s.version, s.loadedAt = found.rec, found.version, found.at
	s.setNewIP(newIP)
	return nil
}

// restoreLocked restores a session from the request's remember-me cookie,
// if any; in exclusive mode it then locks the restored session and
// reloads it under the lock, since parallel requests restored from the
// same cookie share one session (see restore).
func (s *Session) restoreLocked() error {
	if err := s.restore(); err != nil {
		return err
	}
	return s.lockAdopted()
}

// lockAdopted locks a session adopted from a remember-me token, in
// exclusive mode, and reloads it: what was read before the lock may be
// stale already.
func (s *Session) lockAdopted() error {
	if !s.exclusive || !s.deliver || s.unlock != nil {
		return nil
	}
	if err := s.lock(s.key); err != nil {
		return err
	}
	l, st, err := s.m.load(s.req.Context(), s.id, s.key)
	if err != nil {
		return err
	}
	if st != stateLive {
		// Ended in between (revoked): nothing to adopt.
		s.id, s.key, s.rec, s.version, s.deliver = sessionID{}, Key{}, nil, 0, false
		return nil
	}
	s.rec, s.version = l.rec, l.version
	return nil
}

// Report sends an event about this request's session to the manager's
// observer, with the session's handle, user, client IP and user agent
// filled in. Packages built on sesh (csrf, for one) report through it.
func (s *Session) Report(kind EventKind, detail string) {
	if s.detached {
		return
	}
	s.report(kind, s.User(), detail)
}

// withoutSession returns ctx with no session, for manager calls made
// while s.mu is held.
func withoutSession(ctx context.Context) context.Context {
	return context.WithValue(ctx, ctxKey{}, (*Session)(nil))
}

// report sends an event about this request's session.
func (s *Session) report(kind EventKind, user, detail string) {
	if !s.m.wants(s.req.Context(), kind) {
		return
	}
	e := Event{Kind: kind, User: user, IP: s.m.clientIPString(s.req), UserAgent: userAgent(s.req), Detail: detail}
	if !s.key.IsZero() {
		e.Handle = handle(s.key)
	}
	s.m.Report(s.req.Context(), e)
}

func (s *Session) lock(key Key) error {
	ctx, cancel := context.WithTimeout(s.req.Context(), s.m.cfg.LockTimeout)
	defer cancel()
	fail := func(err error) error {
		if ctx.Err() != nil && s.req.Context().Err() == nil {
			return ErrLockTimeout
		}
		return fmt.Errorf("%w: lock: %w", ErrStoreUnavailable, err)
	}
	// Requests of this process queue here first, in order, so that only
	// one of them at a time contends for the store's lock: a store lock
	// is polled, and many pollers of one key would time out and flood the
	// store.
	local, err := s.m.local.Lock(ctx, key, 0)
	if err != nil {
		return fail(err)
	}
	if s.m.locker == Locker(s.m.local) {
		s.unlock = local
		return nil
	}
	// This process holds the key's local lock, so no request of its own
	// holds the store's: release one that an earlier request could not.
	s.m.releaseStale(ctx, key)
	until := s.m.now().Add(s.m.cfg.LockTTL)
	remote, err := s.m.locker.Lock(ctx, key, s.m.cfg.LockTTL)
	if err != nil {
		local(ctx)
		return fail(err)
	}
	s.unlock = func(ctx context.Context) error {
		err := remote(ctx)
		if err != nil && !errors.Is(err, ErrLockLost) {
			s.m.keepStale(key, remote, until)
		}
		local(ctx)
		return err
	}
	return nil
}

// release drops the exclusive lock, if held.
func (s *Session) release() {
	s.mu.Lock()
	unlock := s.unlock
	s.unlock = nil
	s.mu.Unlock()
	if unlock == nil {
		return
	}
	ctx, cancel := s.m.storeCtx(s.commitCtx())
	defer cancel()
	if err := unlock(ctx); err != nil && !errors.Is(err, ErrLockLost) {
		s.m.cfg.Logger.LogAttrs(ctx, slog.LevelWarn,
			"sesh: exclusive lock not released; the next exclusive request of this process retries, others wait until LockTTL",
			slog.String("error", err.Error()))
	}
}

// Err returns the error that made the session unusable, if any: a store
// failure while loading, or ErrNoMiddleware. The middleware answers such a
// request through the error handler, whatever the handler writes.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	return s.failed
}

// Scope is where values live: a [*Session] or one of its [Bag]s.
type Scope interface {
	scope() (*Session, string)
}

func (s *Session) scope() (*Session, string) { return s, "" }

// Bag is a namespace of values inside a session, such as a cart or a
// wizard's state, so that parts of an application cannot clash on key
// names. Its keys are separate from the session's own.
type Bag struct {
	s      *Session
	prefix string
}

func (b Bag) scope() (*Session, string) { return b.s, b.prefix }

// Bag returns the bag called name. Names follow the rules of value keys.
func (s *Session) Bag(name string) Bag {
	return Bag{s: s, prefix: bagPrefix + name + "\x00"}
}

const (
	internalPrefix = "\x00" // library data, such as flash messages
	bagPrefix      = "\x01"
	maxKeyLen      = 256
)

func validKey(k string) bool {
	return k != "" && len(k) <= maxKeyLen && k[0] != 0 && k[0] != 1 && utf8.ValidString(k)
}

// value returns the current raw value of full key k. The caller holds s.mu
// and has called ensure.
func (s *Session) value(k string) ([]byte, bool) {
	if c, ok := s.changes.get(k); ok {
		return c.val, !c.del
	}
	if s.cleared || s.rec == nil {
		return nil, false
	}
	return s.rec.values.get(k)
}

func (s *Session) setChange(k string, c change) {
	s.grow()
	s.changes.set(k, c)
}

// changeBuf is the room of a request's first few changes: their change
// set and the arena of their scalar values. Three changes keep a draftBuf
// within the allocator's 480-byte size class (TestSizes); a fourth
// grows the set.
type changeBuf struct {
	changes [3]keyChange // a request changes a few keys
	arena   [16]byte     // room for a few small values
}

// draftBuf is a changeBuf with the record that the commit of a session
// with no live record creates.
type draftBuf struct {
	changeBuf
	rec record
}

// grow gives the pending changes their room, if they have none: on a
// request's first change, one allocation for them and the arena, and for
// a session with no live record, for the record its commit creates too.
// The arena is never dropped, so a later round of changes (after a
// commit, Clear or Destroy) needs only a change set. The caller holds
// s.mu.
func (s *Session) grow() {
	switch {
	case s.changes != nil:
		return
	case s.arena != nil:
		s.changes = make(changeSet, 0, len(changeBuf{}.changes))
		return
	}
	var b *changeBuf
	if s.rec == nil && s.draft == nil {
		d := new(draftBuf)
		b, s.draft = &d.changeBuf, &d.rec
	} else {
		b = new(changeBuf)
	}
	s.changes, s.arena = b.changes[:0], b.arena[:0]
}

// keys returns the sorted full keys with the given prefix that have a
// value. The caller holds s.mu.
func (s *Session) keys(prefix string, root bool) []string {
	var out []string
	add := func(k string) {
		if !strings.HasPrefix(k, prefix) {
			return
		}
		if root && (k[0] == 0 || k[0] == 1) {
			return
		}
		if _, ok := s.value(k); ok {
			out = append(out, k)
		}
	}
	if s.rec != nil && !s.cleared {
		for _, v := range s.rec.values {
			add(v.key)
		}
	}
	for _, kc := range s.changes {
		add(kc.key)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// size returns the encoded size of the session as it would be saved.
func (s *Session) sizeWith(k string, v []byte) int {
	n := 64
	if s.userSet {
		n += len(s.x.user)
	}
	if s.rec != nil {
		n += len(s.rec.user) + len(s.rec.ip) + len(s.rec.ua)
	}
	seen := func(key string, val []byte) {
		if key == k {
			return
		}
		n += len(key) + len(val) + 4
	}
	if s.rec != nil && !s.cleared {
		for _, v := range s.rec.values {
			if _, changed := s.changes.get(v.key); !changed {
				seen(v.key, v.val)
			}
		}
	}
	for _, kc := range s.changes {
		if !kc.del {
			seen(kc.key, kc.val)
		}
	}
	return n + len(k) + len(v) + 4
}

// setRaw stores v under full key k.
func (s *Session) setRaw(k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setRawLocked(k, v)
}

func (s *Session) setRawLocked(k string, v []byte) error {
	if !s.ensure() {
		return s.failed
	}
	if n := s.sizeWith(k, v); n > s.m.cfg.MaxSize {
		return fmt.Errorf("%w: session data would be about %d bytes, limit %d", ErrTooLarge, n, s.m.cfg.MaxSize)
	}
	s.setChange(k, change{val: v})
	return nil
}

func (s *Session) getRaw(k string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() {
		return nil, false, s.failed
	}
	v, ok := s.value(k)
	return v, ok, nil
}

func (s *Session) deleteRaw(k string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() {
		return nil, false
	}
	v, ok := s.value(k)
	if ok {
		s.setChange(k, change{del: true})
	}
	return v, ok
}

func fullKey(sc Scope, key string) (*Session, string, error) {
	s, prefix := sc.scope()
	if s == nil {
		return nil, "", ErrNoMiddleware
	}
	if !validKey(key) {
		return s, "", fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	if prefix == "" {
		return s, key, nil
	}
	return s, prefix + key, nil
}

// Lookup decodes the value under key into a T. It returns ErrNoValue when
// the key has no value, the codec's error when the value is not a T, and
// the session's error when it could not be loaded.
func Lookup[T any](sc Scope, key string) (T, error) {
	var v T
	s, k, err := fullKey(sc, key)
	if err != nil {
		return v, err
	}
	if s.detached {
		return v, ErrNoMiddleware
	}
	raw, ok, err := s.getRaw(k)
	if err != nil {
		return v, err
	}
	if !ok {
		return v, ErrNoValue
	}
	if _, ok := s.m.cfg.Codec.(JSONCodec); ok && decodeJSONScalar(raw, &v) {
		return v, nil
	}
	// A pointer passed to the codec escapes, so only this path allocates.
	p := new(T)
	if err := s.m.cfg.Codec.Decode(raw, p); err != nil {
		return v, fmt.Errorf("sesh: decoding %q: %w", key, err)
	}
	return *p, nil
}

// Get returns the value under key as a T, and whether there was one that
// decodes as a T. Use [Lookup] to tell the reasons for a miss apart.
func Get[T any](sc Scope, key string) (T, bool) {
	v, err := Lookup[T](sc, key)
	return v, err == nil
}

// Pop returns the value under key as a T and deletes it. The key is
// deleted even when its value does not decode as a T.
func Pop[T any](sc Scope, key string) (T, bool) {
	var v T
	s, k, err := fullKey(sc, key)
	if err != nil || s.detached {
		return v, false
	}
	raw, ok := s.deleteRaw(k)
	if !ok {
		return v, false
	}
	if err := s.m.cfg.Codec.Decode(raw, &v); err != nil {
		var zero T
		return zero, false
	}
	return v, true
}

// Set encodes v with the manager's codec and stores it under key. It
// fails with ErrTooLarge, before anything is written, when the session
// would exceed its size limit.
func (s *Session) Set(key string, v any) error { return set(s, key, v) }

// Set stores v under key in the bag; see [Session.Set].
func (b Bag) Set(key string, v any) error { return set(b, key, v) }

func set(sc Scope, key string, v any) error {
	s, k, err := fullKey(sc, key)
	if err != nil {
		return err
	}
	if s.detached {
		return ErrNoMiddleware
	}
	if _, ok := s.m.cfg.Codec.(JSONCodec); ok {
		if done, err := s.setScalar(k, v); done {
			return err
		}
	}
	raw, err := s.m.cfg.Codec.Encode(v)
	if err != nil {
		return fmt.Errorf("sesh: encoding %q: %w", key, err)
	}
	return s.setRaw(k, raw)
}

// setScalar sets k to v encoded by JSONCodec's fast path into the
// session's arena, if v takes it (done), saving an allocation per value.
// The arena only grows: records and pending changes may point into it.
func (s *Session) setScalar(k string, v any) (done bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure() // for grow: whether there is a live record (an error is setRawLocked's)
	s.grow()
	start := len(s.arena)
	arena, ok := appendJSONScalar(s.arena, v)
	if !ok {
		return false, nil
	}
	s.arena = arena
	return true, s.setRawLocked(k, arena[start:len(arena):len(arena)])
}

// Delete removes key's value, if any.
func (s *Session) Delete(key string) { del(s, key) }

// Delete removes key's value from the bag, if any.
func (b Bag) Delete(key string) { del(b, key) }

func del(sc Scope, key string) {
	if s, k, err := fullKey(sc, key); err == nil && !s.detached {
		s.deleteRaw(k)
	}
}

// Has reports whether key has a value.
func (s *Session) Has(key string) bool { return has(s, key) }

// Has reports whether key has a value in the bag.
func (b Bag) Has(key string) bool { return has(b, key) }

func has(sc Scope, key string) bool {
	s, k, err := fullKey(sc, key)
	if err != nil || s.detached {
		return false
	}
	_, ok, _ := s.getRaw(k)
	return ok
}

// Keys returns the session's own keys (not those of its bags), sorted.
func (s *Session) Keys() []string { return keysOf(s) }

// Keys returns the bag's keys, sorted.
func (b Bag) Keys() []string { return keysOf(b) }

func keysOf(sc Scope) []string {
	s, prefix := sc.scope()
	if s == nil || s.detached {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() {
		return nil
	}
	full := s.keys(prefix, prefix == "")
	for i, k := range full {
		full[i] = k[len(prefix):]
	}
	return full
}

// Clear removes every key of the bag.
func (b Bag) Clear() {
	s := b.s
	if s == nil || s.detached {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() {
		return
	}
	for _, k := range s.keys(b.prefix, false) {
		s.setChange(k, change{del: true})
	}
}

// Clear removes every value of the session, its bags and its flash
// messages. The session itself, its ID and its user stay.
func (s *Session) Clear() {
	if s.detached {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() {
		return
	}
	s.cleared = true
	s.changes = nil
}

// IsNew reports whether the session has no stored record yet: the request
// carried no valid session cookie, or the session it named has ended.
func (s *Session) IsNew() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure()
	return s.version == 0
}

// Renew gives the session a new ID at commit, keeping its data, and ends
// the old ID: requests still using it can neither write to it nor replace
// the new cookie. Call it whenever privileges change; [Session.Login]
// calls it for you.
func (s *Session) Renew() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ensure() {
		s.renew = true
		s.dropSecrets()
	}
}

// Destroy ends the session: its record is deleted at commit, its ID dies,
// and the browser is told to delete the cookie. Values set afterwards go
// to a new session with a new ID.
func (s *Session) Destroy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() {
		return
	}
	if s.version > 0 {
		s.retireKey()
	}
	s.rec, s.version = nil, 0
	s.changes, s.cleared = nil, false
	s.userSet, s.flagsSet, s.timeoutsSet, s.renew = false, false, false, false
	s.dropPopped()
	s.setNewIP("")
	// A session restored by this request and destroyed at once needs no
	// cookie; Logout clears the remember-me cookie itself.
	s.deliver = false
}

// Login renews the session ID, binds the session to user and records the
// authentication time. Pass the user's stable identifier, never a secret.
// Data of an anonymous session is kept (a cart survives logging in); data
// of a session bound to another user is dropped, values, bags and flash
// alike.
func (s *Session) Login(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() {
		return
	}
	cur := ""
	if s.userSet {
		cur = s.x.user
	} else if s.rec != nil {
		cur = s.rec.user
	}
	if cur != "" && cur != user {
		s.cleared, s.changes = true, nil
		s.dropPopped()
	}
	s.renew = true
	s.dropSecrets()
	x := s.extra()
	s.userSet, x.user, x.authTime = true, user, toMS(s.m.now())
	s.flagsSet, x.flags = true, 0
}

// Logout destroys the session (see [Session.Destroy]), reports a logout
// event, and asks the browser to clear the site's cookies with
// Clear-Site-Data (see Config.ClearSiteData).
func (s *Session) Logout() {
	if s.detached {
		return
	}
	s.Destroy()
	s.mu.Lock()
	s.logout = true
	s.mu.Unlock()
}

// User returns the user the session is bound to, or "".
func (s *Session) User() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() {
		return ""
	}
	if s.userSet {
		return s.x.user
	}
	if s.rec != nil {
		return s.rec.user
	}
	return ""
}

// Created returns when the session was created; zero for a new session.
func (s *Session) Created() time.Time {
	return s.meta(func(r *record) time.Time { return r.created.Time() })
}

// LastSeen returns the previous activity recorded for the session; zero
// for a new session.
func (s *Session) LastSeen() time.Time {
	return s.meta(func(r *record) time.Time { return r.lastSeen.Time() })
}

// AuthTime returns when the user last authenticated in this session; zero
// if never.
func (s *Session) AuthTime() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() {
		return time.Time{}
	}
	if s.userSet {
		return s.x.authTime.Time()
	}
	if s.rec != nil {
		return s.rec.authTime.Time()
	}
	return time.Time{}
}

// AuthAge returns how long ago the user last authenticated, and false if
// the session is not authenticated. Use it to demand re-authentication
// before sensitive actions.
func (s *Session) AuthAge() (time.Duration, bool) {
	t := s.AuthTime()
	if t.IsZero() {
		return 0, false
	}
	return s.m.now().Sub(t), true
}

func (s *Session) meta(f func(*record) time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() || s.rec == nil {
		return time.Time{}
	}
	return f(s.rec)
}

// SetTimeouts shortens this session's idle and absolute timeouts, for
// example for a privileged session. A zero value keeps the manager's
// default; values above the manager's are capped to it.
func (s *Session) SetTimeouts(idle, absolute time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ensure() {
		x := s.extra()
		s.timeoutsSet, x.idle, x.absolute = true, max(idle, 0), max(absolute, 0)
	}
}

// dirty reports whether the session has changes to save. Caller holds mu.
func (s *Session) dirty() bool {
	return len(s.changes) > 0 || s.cleared || s.userSet || s.flagsSet || s.timeoutsSet || s.renew || s.newIP() != ""
}

// apply returns base with the pending changes applied, as of now, in a
// new record; base is not modified.
func (s *Session) apply(base *record, now time.Time) *record {
	var next *record
	switch {
	case base != nil:
		next = new(record)
		*next = *base
	case s.draft != nil:
		// Used once: a commit that fails drops it, one that succeeds
		// makes it s.rec.
		next, s.draft = s.draft, nil
	default:
		next = new(record)
	}
	s.applyTo(next, base != nil, now)
	return next
}

// applyTo applies the pending changes to next, as of now. next is a copy
// of the live record (live), or a zero record for a new session. It is
// idempotent: applying the same changes again gives the same record,
// which is what lets saveLive apply them to s.rec in place.
func (s *Session) applyTo(next *record, live bool, now time.Time) {
	var old values
	if live {
		if !s.cleared {
			old = next.values
		}
	} else {
		next.created = toMS(now)
		next.ip = s.m.clientIPString(s.req)
		next.ua = userAgent(s.req)
		next.device = newDeviceID(&s.rnd)
	}
	next.values = s.changes.applyTo(old, next.inline[:0])
	if s.userSet {
		next.user, next.authTime = s.x.user, s.x.authTime
	}
	if s.flagsSet {
		next.flags = s.x.flags
	}
	if s.timeoutsSet {
		next.idle, next.absolute = s.x.idle, s.x.absolute
	}
	if ip := s.newIP(); ip != "" {
		next.ip = ip
	}
	next.lastSeen = toMS(now)
}

func (s *Session) resetPending() {
	s.changes, s.cleared = nil, false
	s.userSet, s.flagsSet, s.timeoutsSet, s.renew = false, false, false, false
	s.logout, s.rememberNew = false, false
	if s.x != nil {
		s.x.retire = nil
	}
	s.setNewIP("")
}

// hasContent reports whether a record is worth storing.
func hasContent(r *record) bool { return len(r.values) > 0 || r.user != "" }

// maxAttempts bounds compare-and-set retries of one commit. Every round
// some writer succeeds, so this is only reached under extreme contention.
const maxAttempts = 256

// Commit saves the session now, for handlers that stream their response
// and want errors before the first byte. It sets the cookie if the
// response headers are not sent yet; once they are, a new session cannot
// be committed and Commit returns ErrHeadersSent. The middleware commits
// again at the end if there are further changes.
func (s *Session) Commit() error {
	if s.detached {
		return ErrNoMiddleware
	}
	headersSent := s.w != nil && s.w.wroteHeader
	return s.commit(headersSent, 0)
}

// commit saves pending changes. status is the response status, or 0 when
// not known yet.
func (s *Session) commit(headersSent bool, status int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != sessLoaded {
		return nil
	}
	if s.failed != nil {
		return s.failed
	}
	var hdr http.Header
	if s.w != nil && !headersSent {
		hdr = s.w.Header()
		s.deliverCookies(hdr)
	}
	if status >= 500 && !s.m.cfg.SaveOnServerError {
		s.resetPending()
		return nil
	}
	if !s.dirty() && len(s.retiring()) == 0 && !s.logout &&
		(s.version == 0 || !s.m.touchDue(s.rec, s.loadedAt)) {
		return nil // nothing to write: no context, no store call
	}
	ctx, cancel := s.m.storeCtx(s.commitCtx())
	defer cancel()
	return s.commitLocked(ctx, hdr)
}

// commitLocked does the work of commit. hdr is nil once headers are sent.
func (s *Session) commitLocked(ctx context.Context, hdr http.Header) error {
	m := s.m
	now := m.now()
	if s.version > 0 && !s.renew {
		if s.dirty() {
			return s.saveLive(ctx, now, false)
		}
		if m.touchDue(s.rec, toMS(now)) {
			return s.saveLive(ctx, now, true)
		}
		return nil
	}
	if s.gone && !s.renew && len(s.retiring()) == 0 && s.dirty() {
		// The ID was ended by another request while this one ran; saving
		// under a new ID would replace the browser's new cookie.
		s.resetPending()
		return ErrSessionGone
	}
	next := s.apply(s.rec, now)
	created, renewed, login, logout := false, s.version > 0 || len(s.retiring()) > 0, s.userSet && next.user != "", s.logout
	if logout && hdr != nil {
		if err := s.forgetToken(ctx, hdr); err != nil {
			return err
		}
	}
	if hasContent(next) {
		if hdr == nil {
			return ErrHeadersSent
		}
		if s.version > 0 {
			s.retireKey()
		}
		var err error
		if created, err = s.create(ctx, next, hdr); err != nil {
			return err
		}
		if s.rememberNew && next.user != "" {
			if err := s.issueToken(ctx, hdr, next); err != nil {
				m.undoCreate(ctx, s.key, m.expires(next))
				s.rec, s.version = nil, 0
				hdr.Del("Set-Cookie")
				return err
			}
		}
	}
	if retire := s.retiring(); len(retire) > 0 {
		tomb := now.Add(m.cfg.TombstoneTTL)
		for _, k := range retire {
			err := m.retire(ctx, k, tomb)
			if err != nil {
				if created {
					// Do not leave two live sessions: undo the new one.
					m.undoCreate(ctx, s.key, m.expires(next))
					s.rec, s.version = nil, 0
					hdr.Del("Set-Cookie")
				} else if hdr != nil && s.presented {
					// The store kept the session, but the browser is still
					// told to forget it; the error response reports the
					// failure, and carries these cookies.
					setCookie(hdr, m.cookie("", time.Time{}))
					x := s.extra()
					x.delivered = append(x.delivered, hdr.Values("Set-Cookie")...)
					s.clearSite = logout && m.cfg.ClearSiteData != "-"
				}
				m.cfg.Logger.LogAttrs(ctx, slog.LevelError, "sesh: session could not be deleted; it stays valid until it expires",
					slog.String("session", handle(k)), slog.String("error", err.Error()))
				return fmt.Errorf("%w: delete: %w", ErrStoreUnavailable, err)
			}
		}
	}
	if !created && s.presented && len(s.retiring()) > 0 && hdr != nil {
		setCookie(hdr, m.cookie("", time.Time{}))
	}
	retired := len(s.retiring()) > 0
	if logout && retired && hdr != nil && m.cfg.ClearSiteData != "-" {
		hdr.Set("Clear-Site-Data", m.cfg.ClearSiteData)
	}
	s.resetPending()
	switch {
	case logout && retired:
		s.report(EventLogout, "", "")
	case retired && !created:
		s.report(EventDestroyed, "", "")
	}
	if created {
		kind := EventCreated
		if renewed {
			kind = EventRenewed
		}
		s.report(kind, next.user, "")
		if login {
			s.report(EventLogin, next.user, "")
		}
	}
	return nil
}

// create saves next under a fresh ID and sets the cookie.
func (s *Session) create(ctx context.Context, next *record, hdr http.Header) (bool, error) {
	for range 3 {
		id, err := newSessionID(&s.rnd)
		if err != nil {
			return false, err
		}
		key := id.storeKey()
		err = s.m.sealSave(ctx, id, key, next, 1, 0)
		if errors.Is(err, ErrConflict) {
			continue // a 2^-256 event, or a broken random source
		}
		if err != nil {
			return false, err
		}
		s.id, s.key, s.rec, s.version = id, key, next, 1
		s.gone = false
		_, abs := s.m.deadlines(next)
		setCookieLine(hdr, s.m.cfg.Cookie.Name, s.m.sessionCookie(id, abs))
		s.sentCookie = true
		return true, nil
	}
	return false, fmt.Errorf("%w: could not create a unique session", ErrStoreUnavailable)
}

// saveLive writes the pending changes to the live record with
// compare-and-set, re-applying them to the newest version on conflict.
// A touch (no changes, only the activity time) gives up on conflict:
// the writer that won recorded the activity.
func (s *Session) saveLive(ctx context.Context, now time.Time, touch bool) error {
	m := s.m
	for attempt := 0; ; attempt++ {
		// s.rec is this request's own copy of the stored record, and
		// applying the changes is idempotent: it takes them in place,
		// whether or not the save below succeeds.
		next := s.rec
		s.applyTo(next, true, now)
		err := m.sealSave(ctx, s.id, s.key, next, s.version+1, s.version)
		if err == nil {
			s.version++
			s.resetPending()
			if m.cfg.Cookie.Persistent && s.w != nil && !s.w.wroteHeader {
				_, abs := m.deadlines(next)
				setCookieLine(s.w.Header(), m.cfg.Cookie.Name, m.sessionCookie(s.id, abs))
			}
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return err
		}
		if touch {
			return nil
		}
		if attempt == maxAttempts {
			return fmt.Errorf("%w: save: too many concurrent writers", ErrStoreUnavailable)
		}
		l, st, err := m.load(ctx, s.id, s.key)
		if err != nil {
			return err
		}
		if st != stateLive {
			s.rec, s.version = nil, 0
			s.resetPending()
			s.dropPopped()
			return ErrSessionGone
		}
		s.rec, s.version = l.rec, l.version
		// Flash messages this request popped but another request popped
		// first are not this request's to show.
		if s.x == nil {
			continue
		}
		for k := range s.x.popped {
			if c, pending := s.changes.get(k); !pending || !c.del {
				continue
			}
			if _, ok := l.rec.values.get(k); !ok {
				delete(s.x.popped, k)
				s.changes.remove(k)
			}
		}
	}
}

// setCookie replaces any session cookie already in hdr with c, and marks
// the response uncacheable.
func setCookie(hdr http.Header, c *http.Cookie) {
	setCookieLine(hdr, c.Name, c.String())
}

// setCookieLine is setCookie for a formatted Set-Cookie line of the
// cookie named name.
func setCookieLine(hdr http.Header, name, line string) {
	if line != "" && hdr["Set-Cookie"] == nil && hdr["Cache-Control"] == nil && hdr["Vary"] == nil {
		// A response without these headers yet, as most are: one
		// allocation for the three. (Each slice is full, so appending to
		// one cannot touch the next.)
		vs := []string{line, "no-store", "Cookie"}
		hdr["Set-Cookie"], hdr["Cache-Control"], hdr["Vary"] = vs[0:1:1], vs[1:2:2], vs[2:3:3]
		return
	}
	kept := hdr["Set-Cookie"][:0]
	for _, v := range hdr["Set-Cookie"] {
		if !(strings.HasPrefix(v, name) && strings.HasPrefix(v[len(name):], "=")) {
			kept = append(kept, v)
		}
	}
	hdr["Set-Cookie"] = kept
	if line != "" {
		hdr["Set-Cookie"] = append(kept, line)
	}
	hdr.Set("Cache-Control", "no-store")
	addVary(hdr)
}

func addVary(hdr http.Header) {
	for _, v := range hdr.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "Cookie") {
				return
			}
		}
	}
	hdr.Add("Vary", "Cookie")
}
