package sesh

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Remember-me tokens.
//
// The cookie holds selector.validator: 16 random bytes that name the token
// and 32 that prove it. The store keeps, under a hash of the selector, a
// sealed record with the user and only a SHA-256 of the validator, so a
// copy of the store cannot be replayed as cookies. Every use rotates the
// validator. Requests racing with a rotation (a browser opening several
// tabs at once) present the old validator within a short grace period and
// are given the same successor and the same new session; an old validator
// outside the grace period means the cookie was copied, and every token
// and session of the user is revoked.

const (
	selectorBytes  = 16
	validatorBytes = 32
	tokenFormat    = 1
)

var errBadToken = errors.New("sesh: corrupt remember-me token record")

// rememberToken is the decoded content of a token record.
type rememberToken struct {
	user        string
	created     time.Time // when the user logged in with the password
	expires     time.Time // hard expiry
	hash        []byte    // SHA-256 of the current validator
	prevHash    []byte    // SHA-256 of the previous validator, during grace
	prevUntil   time.Time
	next        []byte // the current validator in clear (sealed), during grace
	nextSession []byte // the session made by the last rotation, during grace
	device      string // the device ID of the sessions it restores
}

func (t *rememberToken) encode() []byte {
	b := []byte{tokenFormat}
	b = binary.AppendUvarint(b, unixMilli(t.created))
	b = binary.AppendUvarint(b, unixMilli(t.expires))
	b = binary.AppendUvarint(b, unixMilli(t.prevUntil))
	b = appendString(b, t.user)
	for _, f := range [][]byte{t.hash, t.prevHash, t.next, t.nextSession} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return appendString(b, t.device)
}

func decodeToken(b []byte) (*rememberToken, error) {
	if len(b) == 0 || b[0] != tokenFormat {
		return nil, errBadToken
	}
	d := newDecoder(b)
	d.off = 1
	t := &rememberToken{created: d.instant(), expires: d.instant(), prevUntil: d.instant()}
	t.user = d.string()
	t.hash, t.prevHash, t.next, t.nextSession = d.bytes(), d.bytes(), d.bytes(), d.bytes()
	t.device = d.string()
	if d.err || d.rest() != 0 || len(t.hash) != sha256.Size || t.user == "" ||
		(len(t.prevHash) != 0 && len(t.prevHash) != sha256.Size) ||
		(len(t.next) != 0 && len(t.next) != validatorBytes) ||
		(len(t.nextSession) != 0 && len(t.nextSession) != idBytes) {
		return nil, errBadToken
	}
	return t, nil
}

// parseRemember splits a remember-me cookie value. Anything but the exact
// canonical form is refused.
func parseRemember(v string) (selector, validator []byte, ok bool) {
	sel, val, found := strings.Cut(v, ".")
	if !found || len(sel) != 22 || len(val) != 43 {
		return nil, nil, false
	}
	selector, err1 := idEncoding.DecodeString(sel)
	validator, err2 := idEncoding.DecodeString(val)
	if err1 != nil || err2 != nil || len(selector) != selectorBytes || len(validator) != validatorBytes {
		return nil, nil, false
	}
	return selector, validator, true
}

func encodeRemember(selector, validator []byte) string {
	return idEncoding.EncodeToString(selector) + "." + idEncoding.EncodeToString(validator)
}

func tokenKey(selector []byte) Key {
	h := sha256.New()
	h.Write([]byte("sesh/v1/remember\x00"))
	h.Write(selector)
	var k Key
	h.Sum(k[:0])
	return k
}

func hashValidator(v []byte) []byte {
	h := sha256.Sum256(v)
	return h[:]
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(randReader, b); err != nil {
		return nil, fmt.Errorf("sesh: reading random token: %w", err)
	}
	return b, nil
}

// rememberCookie returns the remember-me cookie; "" gives the deletion one.
func (m *Manager) rememberCookie(value string, expires time.Time) *http.Cookie {
	c := m.cookie(value, time.Time{})
	c.Name = m.cfg.RememberCookie
	if value != "" {
		c.MaxAge = max(int(expires.Sub(m.now())/time.Second), 1)
	}
	return c
}

// loadToken reads and opens the token of selector.
func (m *Manager) loadToken(ctx context.Context, key Key) (*rememberToken, uint64, error) {
	ctx, cancel := m.storeCtx(ctx)
	defer cancel()
	sr, err := m.store.Load(ctx, key)
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrGone) {
			return nil, 0, ErrNotFound
		}
		if errors.Is(err, ErrCorrupt) {
			m.remove(ctx, key)
			return nil, 0, ErrNotFound
		}
		return nil, 0, fmt.Errorf("%w: load token: %w", ErrStoreUnavailable, err)
	}
	if sr.Kind != KindToken || !sr.Expires.After(m.now()) || len(sr.Data) > 4096 {
		return nil, 0, ErrNotFound
	}
	pt, _, err := m.tokenBox.Open(nil, sr.Data, key[:])
	if err != nil {
		return nil, 0, ErrNotFound
	}
	t, err := decodeToken(pt)
	if err != nil || !t.expires.After(m.now()) {
		return nil, 0, ErrNotFound
	}
	return t, sr.Version, nil
}

// saveToken seals and writes t with compare-and-set.
func (m *Manager) saveToken(ctx context.Context, key Key, t *rememberToken, prev uint64) error {
	data, err := m.tokenBox.Seal(nil, t.encode(), key[:])
	if err != nil {
		return err
	}
	ctx, cancel := m.storeCtx(ctx)
	defer cancel()
	return m.store.Save(ctx, key, Record{Data: data, Version: prev + 1, Expires: t.expires, User: t.user, Kind: KindToken}, prev)
}

// Remember asks for a remember-me token for the session's user, set as a
// long-lived cookie at commit. Call it at login, after [Session.Login],
// when the user ticked "remember me". Each token is per device: logging
// out on one device revokes only that device's token.
func (s *Session) Remember() {
	if s.detached {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ensure() {
		s.rememberNew = true
	}
}

// deliver sets the cookies of a session restored from a remember-me
// token. It runs whatever happens to the rest of the commit: the token was
// rotated, and a browser left with the old validator would later look
// like a thief. The caller holds s.mu.
func (s *Session) deliverCookies(hdr http.Header) {
	m := s.m
	if s.deliver {
		s.deliver = false
		_, abs := m.deadlines(s.rec)
		sc := m.cookie(s.id.encode(), abs)
		x := s.extra()
		rc := m.rememberCookie(x.deliverRemember, x.rememberExpires)
		x.delivered = []string{sc.String(), rc.String()}
		setCookie(hdr, sc)
		setCookie(hdr, rc)
		s.sentCookie = true
		return
	}
	if s.dropRemember {
		s.dropRemember = false
		setCookie(hdr, m.rememberCookie("", time.Time{}))
	}
}

// Remembered reports whether the session was restored from a remember-me
// token rather than a password login. Demand a fresh login before
// sensitive actions in such a session.
func (s *Session) Remembered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() {
		return false
	}
	if s.flagsSet {
		return s.x.flags&flagRemembered != 0
	}
	return s.rec != nil && s.rec.flags&flagRemembered != 0
}

// issueToken creates a new token for the user of the session rec and sets
// its cookie. The token carries the session's device ID, so revoking the
// session revokes the token too.
func (s *Session) issueToken(ctx context.Context, hdr http.Header, rec *record) error {
	user, authTime := rec.user, rec.authTime.Time()
	m := s.m
	sel, err := randomBytes(selectorBytes)
	if err != nil {
		return err
	}
	val, err := randomBytes(validatorBytes)
	if err != nil {
		return err
	}
	now := m.now()
	if authTime.IsZero() {
		authTime = now
	}
	t := &rememberToken{user: user, created: authTime, expires: now.Add(m.cfg.RememberTTL), hash: hashValidator(val), device: rec.device}
	if err := m.saveToken(ctx, tokenKey(sel), t, 0); err != nil {
		return fmt.Errorf("%w: save token: %w", ErrStoreUnavailable, err)
	}
	setCookie(hdr, m.rememberCookie(encodeRemember(sel, val), t.expires))
	return nil
}

// forgetToken deletes the token presented by the request, if its
// validator is right, and clears the cookie.
func (s *Session) forgetToken(ctx context.Context, hdr http.Header) error {
	m := s.m
	c, err := s.req.Cookie(m.cfg.RememberCookie)
	if err != nil {
		return nil
	}
	setCookie(hdr, m.rememberCookie("", time.Time{}))
	sel, val, ok := parseRemember(c.Value)
	if !ok {
		return nil
	}
	key := tokenKey(sel)
	t, _, err := m.loadToken(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	h := hashValidator(val)
	if subtle.ConstantTimeCompare(h, t.hash) == 1 || (len(t.prevHash) > 0 && subtle.ConstantTimeCompare(h, t.prevHash) == 1) {
		dctx, cancel := m.storeCtx(ctx)
		defer cancel()
		if err := m.store.Delete(dctx, key, time.Time{}); err != nil {
			return fmt.Errorf("%w: delete token: %w", ErrStoreUnavailable, err)
		}
	}
	return nil
}

// restore tries the request's remember-me cookie when no session was
// found. On success the session is live, logged in and marked remembered,
// and both cookies will be sent at commit. The caller holds s.mu.
func (s *Session) restore() error {
	m := s.m
	c, err := s.req.Cookie(m.cfg.RememberCookie)
	if err != nil {
		return nil
	}
	sel, val, ok := parseRemember(c.Value)
	if !ok {
		s.dropRemember = true
		return nil
	}
	ctx := s.req.Context()
	key := tokenKey(sel)
	h := hashValidator(val)
	for range 4 {
		t, version, err := m.loadToken(ctx, key)
		if errors.Is(err, ErrNotFound) {
			s.dropRemember = true
			return nil
		}
		if err != nil {
			return err
		}
		now := m.now()
		switch {
		case subtle.ConstantTimeCompare(h, t.hash) == 1:
			// Rotate: make the new session first, then claim the rotation
			// with compare-and-set; a loser drops its session and takes
			// the winner's.
			next, err := randomBytes(validatorBytes)
			if err != nil {
				return err
			}
			id, rec, err := s.restoreSession(ctx, t, now)
			if err != nil {
				return err
			}
			rotated := *t
			rotated.prevHash, rotated.prevUntil = t.hash, now.Add(m.cfg.RememberGrace)
			rotated.hash, rotated.next, rotated.nextSession = hashValidator(next), next, id[:]
			err = m.saveToken(ctx, key, &rotated, version)
			if errors.Is(err, ErrConflict) {
				m.remove(ctx, id.storeKey())
				continue
			}
			if err != nil {
				m.remove(ctx, id.storeKey())
				return fmt.Errorf("%w: rotate token: %w", ErrStoreUnavailable, err)
			}
			s.adopt(id, rec, 1, encodeRemember(sel, next), t.expires)
			s.report(EventRememberUsed, t.user, "")
			return nil
		case len(t.prevHash) > 0 && subtle.ConstantTimeCompare(h, t.prevHash) == 1 && now.Before(t.prevUntil):
			// A parallel request rotated this token a moment ago: share
			// its successor and its session.
			var id sessionID
			copy(id[:], t.nextSession)
			l, st, err := m.load(ctx, id, id.storeKey())
			if err != nil {
				return err
			}
			if st != stateLive {
				return nil
			}
			s.adopt(id, l.rec, l.version, encodeRemember(sel, t.next), t.expires)
			return nil
		default:
			// A validator that is neither current nor just replaced: the
			// cookie was copied and used elsewhere.
			s.report(EventTheftSuspected, t.user, "stale remember-me token presented")
			s.dropRemember = true
			ctx := withoutSession(ctx) // s.mu is held
			list, err := m.userSessions(ctx, t.user)
			if err != nil && !errors.Is(err, ErrNotSupported) {
				return err
			}
			if _, err := m.revoke(ctx, t.user, list, Key{}, false); err != nil {
				return err
			}
			return m.revokeTokens(ctx, t.user)
		}
	}
	return fmt.Errorf("%w: remember-me token contended", ErrStoreUnavailable)
}

// restoreSession stores a new remembered session for t's user.
func (s *Session) restoreSession(ctx context.Context, t *rememberToken, now time.Time) (sessionID, *record, error) {
	id, err := newSessionID(&s.rnd)
	if err != nil {
		return id, nil, err
	}
	rec := &record{
		created: toMS(now), lastSeen: toMS(now), authTime: toMS(t.created), flags: flagRemembered,
		user: t.user, ip: s.m.clientIPString(s.req), ua: userAgent(s.req), device: t.device,
	}
	sctx, cancel := s.m.storeCtx(ctx)
	defer cancel()
	if err := s.m.sealSave(sctx, id, id.storeKey(), rec, 1, 0); err != nil {
		return id, nil, err
	}
	return id, rec, nil
}

// adopt makes the restored session this request's, to be delivered with
// its remember cookie at commit. The caller holds s.mu.
func (s *Session) adopt(id sessionID, rec *record, version uint64, remember string, expires time.Time) {
	s.id, s.key, s.rec, s.version = id, id.storeKey(), rec, version
	s.gone = false
	s.deliver = true
	x := s.extra()
	x.deliverRemember, x.rememberExpires = remember, expires
}

// revokeTokens deletes every remember-me token of user.
func (m *Manager) revokeTokens(ctx context.Context, user string) error {
	return m.revokeDeviceTokens(ctx, user, nil)
}

// revokeDeviceTokens deletes the remember-me tokens of user whose device
// is in devices, or all of them when devices is nil.
func (m *Manager) revokeDeviceTokens(ctx context.Context, user string, devices map[string]bool) error {
	idx, ok := m.store.(UserIndexer)
	if !ok || user == "" {
		return nil
	}
	sctx, cancel := m.storeCtx(context.WithoutCancel(ctx))
	defer cancel()
	entries, err := idx.UserRecords(sctx, user)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	for _, e := range entries {
		if e.Record.Kind != KindToken {
			continue
		}
		if devices != nil {
			pt, _, err := m.tokenBox.Open(nil, e.Record.Data, e.Key[:])
			if err != nil {
				continue
			}
			if t, err := decodeToken(pt); err != nil || !devices[t.device] {
				continue
			}
		}
		if err := m.store.Delete(sctx, e.Key, time.Time{}); err != nil {
			return fmt.Errorf("%w: revoke token: %w", ErrStoreUnavailable, err)
		}
		m.Report(ctx, Event{Kind: EventRevoked, User: user, Detail: "remember-me token"})
	}
	return nil
}
