package sesh

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/seshgo/sesh/seal"
)

// Administration: listing every session, ending any of them, and
// re-sealing records under the current key. These need a store that
// implements [Lister]; they return ErrNotListable otherwise. Each call
// does bounded work and returns a cursor, so a tool can show progress
// and a large store is never held up.

// ErrNotListable is returned by the administration methods when the store
// does not implement [Lister].
var ErrNotListable = errors.New("sesh: the store cannot list its records")

// SessionInfo describes a stored session, for administration. Like
// [Device], it names the session by its handle, never its token.
type SessionInfo struct {
	Handle     string
	User       string // "" for an anonymous session
	Created    time.Time
	LastSeen   time.Time
	AuthTime   time.Time
	Expires    time.Time
	IP         string
	UserAgent  string
	Remembered bool
	KeyID      uint32 // the key that sealed the record
	Unreadable bool   // sealed under a key this manager does not have

	idle, abs time.Time // the manager's deadlines
}

func (m *Manager) lister() (Lister, error) {
	l, ok := m.store.(Lister)
	if !ok {
		return nil, ErrNotListable
	}
	return l, nil
}

// ListSessions returns up to limit stored sessions after cursor (start
// with ""), and the cursor of the next page, "" at the end. Records of
// other kinds, such as remember-me tokens, are skipped but count towards
// limit. A session sealed under a key the manager lacks is listed as
// Unreadable rather than failing the listing.
func (m *Manager) ListSessions(ctx context.Context, cursor string, limit int) ([]SessionInfo, string, error) {
	l, err := m.lister()
	if err != nil {
		return nil, "", err
	}
	entries, next, err := l.List(ctx, cursor, limit)
	if err != nil {
		return nil, "", fmt.Errorf("%w: list: %w", ErrStoreUnavailable, err)
	}
	now := m.now()
	out := make([]SessionInfo, 0, len(entries))
	for _, e := range entries {
		if e.Record.Kind != KindSession || !e.Record.Expires.After(now) {
			continue
		}
		si := m.info(e)
		if !si.Unreadable && (!now.Before(si.idle) || !now.Before(si.abs)) {
			continue // dead by the manager's own deadlines, as in Sessions
		}
		out = append(out, si)
	}
	return out, next, nil
}

func (m *Manager) info(e Entry) SessionInfo {
	si := SessionInfo{Handle: handle(e.Key), User: e.Record.User, Expires: e.Record.Expires}
	si.KeyID, _ = seal.KeyID(e.Record.Data)
	rec, err := m.open(e.Key, e.Record.Data)
	if err != nil {
		si.Unreadable = true
		return si
	}
	si.Created, si.LastSeen, si.AuthTime = rec.created.Time(), rec.lastSeen.Time(), rec.authTime.Time()
	si.idle, si.abs = m.deadlines(rec)
	si.IP, si.UserAgent, si.Remembered = rec.ip, rec.ua, rec.flags&flagRemembered != 0
	return si
}

// each calls f once for every live entry of the store, page by page,
// dropping the repeats a listing may contain.
func (m *Manager) each(ctx context.Context, f func(Entry) error) error {
	l, err := m.lister()
	if err != nil {
		return err
	}
	seen := make(map[Key]struct{})
	cursor := ""
	for {
		entries, next, err := l.List(ctx, cursor, 500)
		if err != nil {
			return fmt.Errorf("%w: list: %w", ErrStoreUnavailable, err)
		}
		for _, e := range entries {
			if _, dup := seen[e.Key]; dup {
				continue
			}
			seen[e.Key] = struct{}{}
			if err := f(e); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

var errFound = errors.New("found")

// findSession returns the entry of the session with handle h.
func (m *Manager) findSession(ctx context.Context, h string) (Entry, error) {
	var found Entry
	err := m.each(ctx, func(e Entry) error {
		if e.Record.Kind == KindSession && handle(e.Key) == h {
			found = e
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return found, nil
	case err != nil:
		return Entry{}, err
	}
	return Entry{}, ErrNoSuchSession
}

// FindSession returns the live session named by handle, whoever owns it.
// It scans the store; it is meant for administration, not for requests.
func (m *Manager) FindSession(ctx context.Context, h string) (SessionInfo, error) {
	e, err := m.findSession(ctx, h)
	if err != nil {
		return SessionInfo{}, err
	}
	return m.info(e), nil
}

// RevokeSession ends the live session named by handle, whoever owns it.
// It scans the store; it is meant for administration.
func (m *Manager) RevokeSession(ctx context.Context, h string) error {
	e, err := m.findSession(ctx, h)
	if err != nil {
		return err
	}
	if err := m.retire(ctx, e.Key, time.Time{}); err != nil {
		return fmt.Errorf("%w: revoke: %w", ErrStoreUnavailable, err)
	}
	m.Report(ctx, Event{Kind: EventRevoked, User: e.Record.User, Handle: h, Detail: "by an administrator"})
	if rec, err := m.open(e.Key, e.Record.Data); err == nil && rec.device != "" {
		return m.revokeDeviceTokens(ctx, e.Record.User, map[string]bool{rec.device: true})
	}
	return nil
}

// RevokeEverything ends every session and every remember-me token in the
// store, for a breach response. It reports progress through progress, if
// not nil, after each record.
func (m *Manager) RevokeEverything(ctx context.Context, progress func(done int)) (int, error) {
	n := 0
	err := m.each(ctx, func(e Entry) error {
		if err := m.retire(ctx, e.Key, time.Time{}); err != nil {
			return fmt.Errorf("%w: revoke: %w", ErrStoreUnavailable, err)
		}
		n++
		if progress != nil {
			progress(n)
		}
		return nil
	})
	if n > 0 {
		m.Report(ctx, Event{Kind: EventRevoked, Detail: fmt.Sprintf("%d records revoked by an administrator", n)})
	}
	return n, err
}

// Reseal rewrites, under the current key, up to limit records after cursor
// that were sealed under an older key, and returns how many it rewrote and
// the next cursor ("" at the end). Run it until the cursor is "" after
// making a new key current; then the old key can be retired once no
// bound-mode session needs it (values sealed with Config.BindDataToID can
// only be re-sealed by a request that carries the session's cookie, so
// keep the old key for one absolute timeout if you use that mode).
// A record written meanwhile is skipped: that write re-sealed it.
func (m *Manager) Reseal(ctx context.Context, cursor string, limit int) (int, string, error) {
	l, err := m.lister()
	if err != nil {
		return 0, "", err
	}
	entries, next, err := l.List(ctx, cursor, limit)
	if err != nil {
		return 0, "", fmt.Errorf("%w: list: %w", ErrStoreUnavailable, err)
	}
	current := m.cfg.Keys.Current()
	n := 0
	for _, e := range entries {
		if id, err := seal.KeyID(e.Record.Data); err != nil || id == current {
			continue
		}
		box := m.box
		if e.Record.Kind == KindToken {
			box = m.tokenBox
		}
		pt, _, err := box.Open(nil, e.Record.Data, e.Key[:])
		if err != nil {
			continue // not ours to read: leave it alone
		}
		data, err := box.Seal(nil, pt, e.Key[:])
		if err != nil {
			return n, "", err
		}
		rec := e.Record
		rec.Data, rec.Version = data, e.Record.Version+1
		sctx, cancel := m.storeCtx(ctx)
		err = m.store.Save(sctx, e.Key, rec, e.Record.Version)
		cancel()
		switch {
		case err == nil:
			n++
		case errors.Is(err, ErrConflict):
		default:
			return n, "", fmt.Errorf("%w: save: %w", ErrStoreUnavailable, err)
		}
	}
	return n, next, nil
}
