package filestore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/seshgo/sesh"
)

// A lease file holds:
//
//	0  4  magic "SESL"
//	4  1  format version, 1
//	5  3  zero
//	8  8  expiry, Unix nanoseconds on the wall clock (big-endian)
//	16 16 random owner token
const (
	leaseMagic = "SESL"
	leaseLen   = 32

	// maxLeaseWait caps the pause between two looks at a lease held by
	// another process.
	maxLeaseWait = 20 * time.Millisecond
)

type lease struct {
	expires time.Time
	token   [16]byte
}

func (l *lease) encode() []byte {
	b := make([]byte, leaseLen)
	copy(b, leaseMagic)
	b[4] = 1
	binary.BigEndian.PutUint64(b[8:], uint64(l.expires.UnixNano()))
	copy(b[16:], l.token[:])
	return b
}

// readLease reads a lease file; ok is false if there is none or it is
// unreadable, which makes it free for the taking.
func readLease(path string) (l lease, ok bool) {
	b, err := readFile(path)
	if err != nil || len(b) != leaseLen || string(b[:4]) != leaseMagic || b[4] != 1 {
		return l, false
	}
	l.expires = time.Unix(0, int64(binary.BigEndian.Uint64(b[8:])))
	copy(l.token[:], b[16:])
	return l, true
}

// errTTL is returned by Lock for a ttl that is not positive.
var errTTL = errors.New("filestore: lock ttl must be positive")

// Lock waits until it holds the lease on key, or ctx is done, in which
// case it returns ctx's error. The lease is a file, taken under the
// fan-out directory's flock, so it excludes other processes sharing the
// directory too. It lapses after ttl on the wall clock, and may then be
// taken over. Waiters in this process wake when it is released; others
// look again after a short, growing pause.
//
// The returned unlock removes the lease if it still holds this caller's
// token, and otherwise does nothing.
func (s *Store) Lock(ctx context.Context, key sesh.Key, ttl time.Duration) (func(context.Context) error, error) {
	if ttl <= 0 {
		return nil, errTTL
	}
	mine := lease{}
	rand.Read(mine.token[:])
	i := int(key[0])
	path := s.recordPath(&key) + ".lease"
	pause := time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		release, err := s.lockFan(i)
		if err != nil {
			return nil, err
		}
		cur, held := readLease(path)
		now := time.Now()
		if !held || !now.Before(cur.expires) {
			mine.expires = now.Add(ttl)
			// No fsync: a lease does not outlive a crash of the machine.
			err := writeAtomic(s.fanDir(i), path, mine.encode(), false)
			release()
			if err != nil {
				return nil, err
			}
			return func(context.Context) error { return s.unlock(i, path, mine.token) }, nil
		}
		f := &s.fans[i]
		if f.wake == nil {
			f.wake = make(chan struct{})
		}
		wake := f.wake
		release()
		timer := time.NewTimer(min(pause, cur.expires.Sub(now)))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-wake:
		case <-timer.C:
		}
		timer.Stop()
		pause = min(2*pause, maxLeaseWait)
	}
}

// unlock removes the lease at path if it still holds token.
func (s *Store) unlock(i int, path string, token [16]byte) error {
	release, err := s.lockFan(i)
	if err != nil {
		return err
	}
	defer release()
	cur, held := readLease(path)
	if !held || cur.token != token {
		return sesh.ErrLockLost
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("filestore: %w", err)
	}
	f := &s.fans[i]
	if f.wake != nil {
		close(f.wake)
		f.wake = nil
	}
	return nil
}
