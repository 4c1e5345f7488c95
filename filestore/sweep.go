package filestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/seshgo/sesh"
)

// The sweep ring: the 256 data fan-out directories, then the 256 user
// index fan-out directories.
const ringSize = 512

// Sweep removes up to limit dead records and lapsed tombstones, with their
// index markers, and returns how many it removed. Along the way it also
// removes stale index markers, temporary files left for over an hour by
// crashed writers, long-lapsed lease files and, after an hour, record files
// it cannot decode; these do not count towards limit.
//
// A call resumes where the last one stopped and makes at most one pass
// over the directory, so a result below limit means no dead record was
// left when it looked. It holds a lock only while it removes one file,
// and only the lock of that file's fan-out directory. Concurrent calls in
// one process take turns.
func (s *Store) Sweep(ctx context.Context, limit int) (int, error) {
	if limit <= 0 {
		return 0, ctx.Err()
	}
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	sw := sweep{s: s, ctx: ctx, limit: limit, now: s.now().UnixMilli(), realNow: time.Now()}
	pos, after := s.sweepPos, s.sweepAfter
	// One pass: the rest of the current directory, every other one, then
	// the current one again from its start.
	for range ringSize + 1 {
		var last string
		var err error
		if pos < 256 {
			last, err = sw.dataFan(pos, after)
		} else {
			err = sw.userFan(pos-256, after)
		}
		if err != nil || sw.deleted == limit {
			s.sweepPos, s.sweepAfter = pos, last
			return sw.deleted, err
		}
		pos, after = (pos+1)%ringSize, ""
	}
	s.sweepPos, s.sweepAfter = pos, ""
	return sw.deleted, nil
}

type sweep struct {
	s       *Store
	ctx     context.Context
	limit   int
	deleted int
	now     int64     // Unix ms on the store's clock
	realNow time.Time // for temporary files and leases
}

// dataFan sweeps data fan-out directory i from after the name after. It
// returns the last name it handled when it stops at the limit.
func (sw *sweep) dataFan(i int, after string) (string, error) {
	dir := sw.s.fanDir(i)
	names, err := readNames(dir)
	if err != nil {
		return "", err
	}
	for _, name := range names {
		if name <= after {
			continue
		}
		if err := sw.ctx.Err(); err != nil {
			return name, err
		}
		switch {
		case isKeyName(name):
			if err := sw.record(parseKeyName(name)); err != nil {
				return name, err
			}
			if sw.deleted == sw.limit {
				return name, nil
			}
		case strings.HasSuffix(name, ".lease") && isKeyName(strings.TrimSuffix(name, ".lease")):
			if err := sw.lease(parseKeyName(strings.TrimSuffix(name, ".lease"))); err != nil {
				return name, err
			}
		case strings.HasPrefix(name, ".tmp-"):
			path := dir + sep + name
			if fi, err := os.Lstat(path); err == nil && sw.realNow.Sub(fi.ModTime()) > staleTemp {
				os.Remove(path)
			}
		}
	}
	return "", nil
}

// record removes k's file if it is dead, checking again under the lock.
func (sw *sweep) record(k sesh.Key) error {
	s := sw.s
	r, ok, err := s.read(&k)
	corrupt := errors.Is(err, ErrCorrupt)
	if err != nil && !corrupt {
		return err
	}
	if corrupt {
		fi, err := os.Lstat(s.recordPath(&k))
		if err != nil || sw.realNow.Sub(fi.ModTime()) <= staleTemp {
			return nil
		}
	} else if !ok || r.exp > sw.now {
		return nil
	}
	release, err := s.lockFan(int(k[0]))
	if err != nil {
		return err
	}
	defer release()
	r, ok, err = s.read(&k)
	switch {
	case corrupt && errors.Is(err, ErrCorrupt):
		// Still undecodable an hour on: nothing can use it.
		os.Remove(s.recordPath(&k))
		return nil
	case err != nil:
		return err
	case !ok || r.exp > sw.now:
		return nil
	}
	if err := os.Remove(s.recordPath(&k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if !r.tomb && r.user != "" {
		s.removeMarker(r.user, &k)
	}
	sw.deleted++
	return nil
}

// lease removes k's lease file if it lapsed long ago.
func (sw *sweep) lease(k sesh.Key) error {
	s := sw.s
	path := s.recordPath(&k) + ".lease"
	l, ok := readLease(path)
	if ok && sw.realNow.Sub(l.expires) <= staleLease {
		return nil
	}
	release, err := s.lockFan(int(k[0]))
	if err != nil {
		return err
	}
	defer release()
	l2, ok2 := readLease(path)
	if ok2 && (!ok || l2.token != l.token || sw.realNow.Sub(l2.expires) <= staleLease) {
		return nil
	}
	os.Remove(path)
	return nil
}

// userFan sweeps user index fan-out directory i from after the user
// directory named after, removing markers whose record is gone, dead or
// another user's, and user directories left empty.
func (sw *sweep) userFan(i int, after string) error {
	s := sw.s
	parent := s.usersDir + sep + string([]byte{hexDigits[i>>4], hexDigits[i&15]})
	users, err := readNames(parent)
	if err != nil {
		return err
	}
	for _, u := range users {
		if u <= after || !isKeyName(u) {
			continue
		}
		dir := parent + sep + u
		names, err := readNames(dir)
		if err != nil {
			return err
		}
		for _, name := range names {
			if err := sw.ctx.Err(); err != nil {
				return err
			}
			if !isKeyName(name) {
				continue
			}
			k := parseKeyName(name)
			match := func(r fileRecord) bool {
				sum := sha256.Sum256([]byte(r.user))
				return hex.EncodeToString(sum[:]) == u
			}
			r, ok, err := s.read(&k)
			if err == nil && ok && !r.tomb && r.exp > sw.now && match(r) {
				continue
			}
			if err := s.dropStaleMarker(dir, &k, match); err != nil {
				return err
			}
		}
		os.Remove(dir) // fails unless empty
	}
	return nil
}
