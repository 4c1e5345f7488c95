package sesh

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrNotSupported is returned by user and device operations when the
// store does not implement [UserIndexer].
var ErrNotSupported = errors.New("sesh: the store does not index sessions by user")

// ErrNoSuchSession is returned by [Manager.Revoke] for a handle that does
// not name one of the user's live sessions.
var ErrNoSuchSession = errors.New("sesh: no such session")

// Device describes one of a user's live sessions, for a "your devices"
// page. It carries an opaque handle, never the session's token.
type Device struct {
	Handle     string
	Created    time.Time
	LastSeen   time.Time
	AuthTime   time.Time
	IP         string
	UserAgent  string
	Current    bool // the session of the request whose context was passed
	Remembered bool // restored by a remember-me token
}

// userSession is a decoded live session of a user.
type userSession struct {
	key Key
	rec *record
}

// userSessions returns the user's live sessions, decoded.
func (m *Manager) userSessions(ctx context.Context, user string) ([]userSession, error) {
	idx, ok := m.store.(UserIndexer)
	if !ok {
		return nil, ErrNotSupported
	}
	if user == "" {
		return nil, nil
	}
	sctx, cancel := m.storeCtx(ctx)
	defer cancel()
	entries, err := idx.UserRecords(sctx, user)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	now := m.now()
	out := make([]userSession, 0, len(entries))
	for _, e := range entries {
		if e.Record.Kind != KindSession || !e.Record.Expires.After(now) {
			continue
		}
		rec, err := m.open(e.Key, e.Record.Data)
		if err != nil || rec.user != user {
			continue
		}
		if idle, abs := m.deadlines(rec); !now.Before(idle) || !now.Before(abs) {
			continue
		}
		out = append(out, userSession{key: e.Key, rec: rec})
	}
	return out, nil
}

// currentKey returns the store key of the session in ctx, if it is live.
func currentKey(ctx context.Context) (Key, bool) {
	s := FromContext(ctx)
	if s.detached {
		return Key{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() || s.version == 0 {
		return Key{}, false
	}
	return s.key, true
}

// currentDevice returns the device ID of the session in ctx, if loaded.
func currentDevice(ctx context.Context) string {
	s := FromContext(ctx)
	if s.detached {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec == nil {
		return ""
	}
	return s.rec.device
}

// Sessions lists the live sessions of user, most recently active first.
// The session of the request whose context is ctx, if it is one of them,
// is marked Current.
func (m *Manager) Sessions(ctx context.Context, user string) ([]Device, error) {
	list, err := m.userSessions(ctx, user)
	if err != nil {
		return nil, err
	}
	cur, hasCur := currentKey(ctx)
	out := make([]Device, 0, len(list))
	for _, us := range list {
		r := us.rec
		out = append(out, Device{
			Handle:     handle(us.key),
			Created:    r.created.Time(),
			LastSeen:   r.lastSeen.Time(),
			AuthTime:   r.authTime.Time(),
			IP:         r.ip,
			UserAgent:  r.ua,
			Current:    hasCur && us.key == cur,
			Remembered: r.flags&flagRemembered != 0,
		})
	}
	slices.SortFunc(out, func(a, b Device) int { return b.LastSeen.Compare(a.LastSeen) })
	return out, nil
}

// Revoke ends the session of user named by handle. It returns
// ErrNoSuchSession when the handle names no live session of that user, so
// one user can never end another's session. Revoking the current session
// destroys it as [Session.Destroy] would.
func (m *Manager) Revoke(ctx context.Context, user, handleStr string) error {
	list, err := m.userSessions(ctx, user)
	if err != nil {
		return err
	}
	for _, us := range list {
		if handle(us.key) == handleStr {
			_, err := m.revoke(ctx, user, []userSession{us}, Key{}, false)
			return err
		}
	}
	return ErrNoSuchSession
}

// RevokeOthers ends every session of the current request's user except
// the current one, and returns how many it ended.
func (m *Manager) RevokeOthers(ctx context.Context) (int, error) {
	s := FromContext(ctx)
	user := s.User()
	if user == "" {
		return 0, nil
	}
	cur, _ := currentKey(ctx)
	list, err := m.userSessions(ctx, user)
	if err != nil {
		return 0, err
	}
	return m.revoke(ctx, user, list, cur, true)
}

// RevokeAll ends every session of user, for "log out everywhere", an
// administrator, or a disabled account. If the current request's session
// is one of them, it is destroyed as [Session.Logout] would.
func (m *Manager) RevokeAll(ctx context.Context, user string) (int, error) {
	list, err := m.userSessions(ctx, user)
	if err != nil {
		return 0, err
	}
	n, err := m.revoke(ctx, user, list, Key{}, false)
	if err == nil {
		err = m.revokeTokens(ctx, user)
	}
	return n, err
}

// revoke deletes the listed sessions, except keep, and the remember-me
// tokens of their devices, so a revoked browser cannot sign itself back
// in. Revoked sessions leave no tombstone: unlike a renewal, a revocation
// gives the browser no newer cookie to protect, so its next request simply
// starts anonymous (a request in flight still cannot write the session
// back: its compare-and-set finds the record gone).
func (m *Manager) revoke(ctx context.Context, user string, list []userSession, keep Key, skipKeep bool) (int, error) {
	cur, hasCur := currentKey(ctx)
	// The browser of the current request keeps its remember-me token
	// unless its own session is revoked: revoking an older session of the
	// same browser (left behind when it restarted and was signed in again
	// by that token) must not sign it out on its next restart.
	kept := ""
	if hasCur && (!slices.ContainsFunc(list, func(us userSession) bool { return us.key == cur }) || skipKeep && keep == cur) {
		kept = currentDevice(ctx)
	}
	n := 0
	devices := make(map[string]bool)
	for _, us := range list {
		if skipKeep && us.key == keep {
			continue
		}
		if hasCur && us.key == cur {
			FromContext(ctx).Logout() // its own token goes with the logout
			n++
			continue
		}
		if err := m.retire(context.WithoutCancel(ctx), us.key, time.Time{}); err != nil {
			return n, fmt.Errorf("%w: revoke: %w", ErrStoreUnavailable, err)
		}
		n++
		if us.rec.device != "" && us.rec.device != kept {
			devices[us.rec.device] = true
		}
		m.Report(ctx, Event{Kind: EventRevoked, User: user, Handle: handle(us.key), IP: us.rec.ip, UserAgent: us.rec.ua})
	}
	if len(devices) > 0 {
		if err := m.revokeDeviceTokens(ctx, user, devices); err != nil {
			return n, err
		}
	}
	return n, nil
}

// PasswordChanged ends every other session of the current request's user
// and every remember-me token of that user, and renews the current
// session's ID. Call it after a password or second-factor change.
func (m *Manager) PasswordChanged(ctx context.Context) error {
	s := FromContext(ctx)
	user := s.User()
	if user == "" {
		return nil
	}
	if _, err := m.RevokeOthers(ctx); err != nil {
		return err
	}
	if err := m.revokeTokens(ctx, user); err != nil {
		return err
	}
	s.Renew()
	return nil
}
