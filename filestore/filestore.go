// Package filestore is a [sesh.Store] on the local file system: the
// embedded default store, one small file per record.
//
// A [Store] implements [sesh.Store], [sesh.UserIndexer], [sesh.Lister],
// [sesh.Sweeper], [sesh.Locker] and [sesh.Taker]. It is safe for
// concurrent use by many goroutines and, on systems with flock(2) (Linux,
// macOS and the BSDs), by several processes sharing one directory:
// compare-and-set, Delete, Take and leases hold across processes. On other
// systems (Windows among them) the locks are in-process only, so only one
// process may use a directory at a time.
//
// # Layout
//
// File names come only from [sesh.Key.String] (hex) and from the SHA-256
// of user names, never from anything else a client could choose:
//
//	dir/data/ab/abcd…ef          record or tombstone (0600)
//	dir/data/ab/abcd…ef.lease    lease of Store.Lock
//	dir/data/ab/.lock            flock(2) file guarding the keys ab…
//	dir/data/ab/.tmp-…           write in progress
//	dir/users/12/1234…/abcd…ef   user index marker: key abcd…ef has user 1234…
//
// Directories are made 0700 and files 0600, whatever the umask. Records
// are written to a temporary file in the same directory, synced and
// renamed over the old one, so a reader sees the old record or the new
// one, never a mix, and a crash of the process loses nothing saved. (The
// directory is not synced, so a power failure may lose the last writes.)
// Record files are opened without following symbolic links where the
// system allows (O_NOFOLLOW); a record file that is a link is reported as
// corrupt. Each file starts with a magic number and a format version and
// ends with a CRC-32C; a file that fails to decode gives an error wrapping
// [ErrCorrupt], not [sesh.ErrNotFound]. Delete removes such a file.
// Listings and user lookups skip it.
//
// Expires is kept in whole Unix milliseconds (truncated). Record.Data may
// be up to 16 MiB and Record.User up to 64 KiB; Save returns
// [sesh.ErrTooLarge] above that.
//
// # Concurrency and errors
//
// Load, List and UserRecords take no lock: they read files that writers
// replace whole. Save, Delete, Take and leases lock the key's fan-out
// directory (1/256 of the keys) with a mutex and flock(2), for one file
// write. Every method checks ctx when it starts and between files; a wait
// for another process's flock, which lasts one write, is not interrupted.
//
// Errors are the sesh sentinels, errors wrapping [ErrCorrupt], the
// context's error, or file system errors prefixed "filestore:", which the
// manager treats as store failures. On Windows, where an open file cannot
// be replaced, a Save racing a Load of the same key may fail.
//
// # Cleanup
//
// New starts no goroutines. Dead records, lapsed tombstones, stale index
// markers, leftover temporary files (older than an hour) and long-lapsed
// leases stay on disk until [Store.Sweep] removes them; call it
// periodically (the sesh manager does). Each Sweep call makes at most one
// pass over the directory from where the last call stopped, and locks
// only one key's fan-out directory at a time, while it removes a file.
//
// Leases of [Store.Lock] run on the real wall clock, which processes
// share, not on the clock given with [WithClock].
//
// The zero Store is not usable; call [New].
package filestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/seshgo/sesh"
)

// Compile-time checks of the capabilities.
var (
	_ sesh.Store       = (*Store)(nil)
	_ sesh.UserIndexer = (*Store)(nil)
	_ sesh.Lister      = (*Store)(nil)
	_ sesh.Sweeper     = (*Store)(nil)
	_ sesh.Locker      = (*Store)(nil)
	_ sesh.Taker       = (*Store)(nil)
)

const (
	sep = string(filepath.Separator)

	// staleTemp is the age after which Sweep removes a temporary file.
	staleTemp = time.Hour
	// staleLease is how long after lapsing Sweep removes a lease file.
	staleLease = time.Minute
)

// Store is a session store in a directory. Make one with [New].
type Store struct {
	dataDir  string
	usersDir string
	now      func() time.Time
	fans     [256]fan

	sweepMu    sync.Mutex
	sweepPos   int    // position in the sweep ring: data fans, then user fans
	sweepAfter string // last name handled at sweepPos
}

// fan is the in-process state of one fan-out directory, dir/data/xx, which
// holds the keys whose first byte is xx.
type fan struct {
	mu    sync.Mutex    // excludes goroutines; flock excludes processes
	ready bool          // the directory has been made or checked
	wake  chan struct{} // closed when a lease here is released
}

type options struct {
	now func() time.Time
}

// Option configures a [Store].
type Option func(*options)

// WithClock makes the store take all its expiry decisions from now instead
// of time.Now. Tests pass a controllable clock. Leases are not affected.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// New returns a store keeping its files under dir. It creates dir (0700)
// if it is missing. It refuses a dir that is not a directory or is a
// symbolic link (resolve it first if that is intended) and, on Unix, one
// that group or others may write. It starts no goroutines.
func New(dir string, opts ...Option) (*Store, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if dir == "" {
		return nil, errors.New("filestore: empty directory name")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	fi, err := os.Lstat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("filestore: %w", err)
		}
		if err := os.Chmod(abs, 0o700); err != nil {
			return nil, fmt.Errorf("filestore: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("filestore: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, fmt.Errorf("filestore: %s is a symbolic link", abs)
	case !fi.IsDir():
		return nil, fmt.Errorf("filestore: %s is not a directory", abs)
	case runtime.GOOS != "windows" && fi.Mode().Perm()&0o022 != 0:
		return nil, fmt.Errorf("filestore: %s is writable by group or others (mode %v)", abs, fi.Mode().Perm())
	}
	s := &Store{
		dataDir:  abs + sep + "data",
		usersDir: abs + sep + "users",
		now:      o.now,
	}
	for _, d := range []string{s.dataDir, s.usersDir} {
		if err := makeDir(d); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// makeDir makes directory path with mode 0700, or checks that the
// existing path is a directory and not a symbolic link.
func makeDir(path string) error {
	err := os.Mkdir(path, 0o700)
	if err == nil {
		if err := os.Chmod(path, 0o700); err != nil {
			return fmt.Errorf("filestore: %w", err)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("filestore: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("filestore: %s is not a directory", path)
	}
	return nil
}

const hexDigits = "0123456789abcdef"

func (s *Store) fanDir(i int) string {
	return s.dataDir + sep + string([]byte{hexDigits[i>>4], hexDigits[i&15]})
}

func (s *Store) recordPath(k *sesh.Key) string {
	h := k.String()
	return s.dataDir + sep + h[:2] + sep + h
}

// userDir returns the index directory of user and its parent.
func (s *Store) userDir(user string) (parent, dir string) {
	sum := sha256.Sum256([]byte(user))
	h := hex.EncodeToString(sum[:])
	parent = s.usersDir + sep + h[:2]
	return parent, parent + sep + h
}

// lockFan takes the in-process and the cross-process lock on fan-out
// directory i, making the directory if needed.
func (s *Store) lockFan(i int) (release func(), err error) {
	f := &s.fans[i]
	f.mu.Lock()
	dir := s.fanDir(i)
	first := !f.ready
	if first {
		if err := makeDir(dir); err != nil {
			f.mu.Unlock()
			return nil, err
		}
	}
	unlock, err := lockFile(dir+sep+".lock", first)
	if err != nil {
		f.mu.Unlock()
		return nil, err
	}
	f.ready = true
	return func() {
		unlock()
		f.mu.Unlock()
	}, nil
}

// errAbsent is returned by readFile for a missing file.
var errAbsent = errors.New("filestore: no such file")

// read returns the record file of k; ok is false if there is none.
func (s *Store) read(k *sesh.Key) (r fileRecord, ok bool, err error) {
	path := s.recordPath(k)
	buf, err := readFile(path)
	if err == errAbsent {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	r, err = decode(buf)
	if err != nil {
		return r, false, fmt.Errorf("%w (%s)", err, path)
	}
	if r.key != *k {
		return r, false, fmt.Errorf("%w: %s holds key %x", ErrCorrupt, path, r.key)
	}
	return r, true, nil
}

// writeAtomic writes b to path through a temporary file in dir, which it
// syncs first if sync is set, then renames over path.
func writeAtomic(dir, path string, b []byte, sync bool) (err error) {
	var f *os.File
	var tmp string
	for attempt := 0; ; attempt++ {
		tmp = dir + sep + ".tmp-" + strconv.FormatUint(rand.Uint64(), 16)
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || attempt == 10 {
			return fmt.Errorf("filestore: %w", err)
		}
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("filestore: %w", err)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Load returns the live record under key. It takes no lock: writes replace
// files atomically.
func (s *Store) Load(ctx context.Context, key sesh.Key) (sesh.Record, error) {
	if err := ctx.Err(); err != nil {
		return sesh.Record{}, err
	}
	r, ok, err := s.read(&key)
	if err != nil {
		return sesh.Record{}, err
	}
	if !ok || r.exp <= s.now().UnixMilli() {
		return sesh.Record{}, sesh.ErrNotFound
	}
	if r.tomb {
		return sesh.Record{}, sesh.ErrGone
	}
	return r.record(), nil
}

// errVersion is returned by Save when the caller breaks the rule that
// rec.Version exceeds prev.
var errVersion = errors.New("filestore: rec.Version must be greater than prev")

// Save writes rec under key with compare-and-set on the version; see
// [sesh.Store]. The compare-and-set holds across processes that share the
// directory, where the system has flock(2).
func (s *Store) Save(ctx context.Context, key sesh.Key, rec sesh.Record, prev uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rec.Version <= prev {
		return fmt.Errorf("%w (version %d, prev %d)", errVersion, rec.Version, prev)
	}
	if len(rec.Data) > maxData || len(rec.User) > maxUser {
		return sesh.ErrTooLarge
	}
	b := encode(&fileRecord{
		key:     key,
		kind:    rec.Kind,
		version: rec.Version,
		exp:     rec.Expires.UnixMilli(),
		user:    rec.User,
		data:    rec.Data,
	})
	release, err := s.lockFan(int(key[0]))
	if err != nil {
		return err
	}
	defer release()
	cur, ok, err := s.read(&key)
	if err != nil {
		return err
	}
	live := ok && cur.exp > s.now().UnixMilli() // a live record or tombstone
	if prev == 0 {
		if live {
			return sesh.ErrConflict
		}
	} else if !live || cur.tomb || cur.version != prev {
		return sesh.ErrConflict
	}
	// Mark first, unmark last: a crash may leave a stale marker, which
	// readers skip and remove, but never an unindexed record.
	if rec.User != "" {
		if err := s.addMarker(rec.User, &key); err != nil {
			return err
		}
	}
	if err := writeAtomic(s.fanDir(int(key[0])), s.recordPath(&key), b, true); err != nil {
		return err
	}
	if ok && !cur.tomb && cur.user != "" && cur.user != rec.User {
		s.removeMarker(cur.user, &key)
	}
	return nil
}

// Delete removes the record under key and, if tombstone is after now,
// leaves a tombstone until then. A live tombstone is never shortened.
func (s *Store) Delete(ctx context.Context, key sesh.Key, tombstone time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	release, err := s.lockFan(int(key[0]))
	if err != nil {
		return err
	}
	defer release()
	cur, ok, err := s.read(&key)
	corrupt := errors.Is(err, ErrCorrupt)
	if err != nil && !corrupt {
		return err
	}
	now := s.now().UnixMilli()
	ts := tombstone.UnixMilli()
	leave := !tombstone.IsZero() && ts > now
	path := s.recordPath(&key)
	if ok && cur.tomb && cur.exp > now && (!leave || ts <= cur.exp) {
		return nil // a live tombstone, at least as long
	}
	if leave {
		b := encode(&fileRecord{key: key, tomb: true, exp: ts})
		if err := writeAtomic(s.fanDir(int(key[0])), path, b, true); err != nil {
			return err
		}
	} else if ok || corrupt {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("filestore: %w", err)
		}
	}
	if ok && !cur.tomb && cur.user != "" {
		s.removeMarker(cur.user, &key)
	}
	return nil
}

// Take removes the live record under key and returns it. It leaves no
// tombstone.
func (s *Store) Take(ctx context.Context, key sesh.Key) (sesh.Record, error) {
	if err := ctx.Err(); err != nil {
		return sesh.Record{}, err
	}
	release, err := s.lockFan(int(key[0]))
	if err != nil {
		return sesh.Record{}, err
	}
	defer release()
	cur, ok, err := s.read(&key)
	if err != nil {
		return sesh.Record{}, err
	}
	if !ok || cur.exp <= s.now().UnixMilli() {
		return sesh.Record{}, sesh.ErrNotFound
	}
	if cur.tomb {
		return sesh.Record{}, sesh.ErrGone
	}
	if err := os.Remove(s.recordPath(&key)); err != nil {
		return sesh.Record{}, fmt.Errorf("filestore: %w", err)
	}
	if cur.user != "" {
		s.removeMarker(cur.user, &key)
	}
	return cur.record(), nil
}

// addMarker records in the user index that key has user.
func (s *Store) addMarker(user string, key *sesh.Key) error {
	parent, dir := s.userDir(user)
	name := dir + sep + key.String()
	for range 10 {
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			err = f.Chmod(0o600)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("filestore: %w", err)
			}
			return nil
		}
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("filestore: %w", err)
		}
		// Make the directories; another goroutine removing the user's
		// directory as it empties may race us, so try again.
		if err := makeDir(parent); err != nil {
			return err
		}
		if err := makeDir(dir); err != nil {
			return err
		}
	}
	return fmt.Errorf("filestore: cannot create index marker %s", name)
}

// removeMarker removes key from user's index, and the user's directory if
// that leaves it empty. Errors are ignored: a stale marker is harmless and
// removed later.
func (s *Store) removeMarker(user string, key *sesh.Key) {
	_, dir := s.userDir(user)
	removeMarkerIn(dir, key.String())
}

func removeMarkerIn(dir, name string) {
	os.Remove(dir + sep + name)
	os.Remove(dir) // fails unless empty
}

// readNames returns the sorted names in dir; none if it does not exist.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// isKeyName reports whether name is a key in lower-case hex.
func isKeyName(name string) bool {
	if len(name) != 2*len(sesh.Key{}) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// parseKeyName parses a name for which isKeyName holds.
func parseKeyName(name string) sesh.Key {
	var k sesh.Key
	hex.Decode(k[:], []byte(name))
	return k
}

// UserRecords returns the live records whose User is user. It skips
// record files it cannot read as corrupt, and removes index markers that
// no longer match their record.
func (s *Store) UserRecords(ctx context.Context, user string) ([]sesh.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if user == "" {
		return nil, nil
	}
	_, dir := s.userDir(user)
	names, err := readNames(dir)
	if err != nil {
		return nil, err
	}
	var out []sesh.Entry
	now := s.now().UnixMilli()
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !isKeyName(name) {
			continue
		}
		k := parseKeyName(name)
		r, ok, err := s.read(&k)
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				continue
			}
			return nil, err
		}
		if ok && !r.tomb && r.exp > now && r.user == user {
			out = append(out, sesh.Entry{Key: k, Record: r.record()})
			continue
		}
		if err := s.dropStaleMarker(dir, &k, func(r fileRecord) bool { return r.user == user }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dropStaleMarker removes the marker of k in the user directory dir if,
// under k's lock, k holds no live record whose user matches.
func (s *Store) dropStaleMarker(dir string, k *sesh.Key, match func(fileRecord) bool) error {
	release, err := s.lockFan(int(k[0]))
	if err != nil {
		return err
	}
	defer release()
	r, ok, err := s.read(k)
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil
		}
		return err
	}
	if ok && !r.tomb && r.exp > s.now().UnixMilli() && match(r) {
		return nil
	}
	removeMarkerIn(dir, k.String())
	return nil
}

// Errors returned by List for a cursor it did not make or a limit that is
// not positive.
var (
	errCursor = errors.New("filestore: invalid list cursor")
	errLimit  = errors.New("filestore: list limit must be positive")
)

// List returns up to limit live records after cursor, in key order. The
// cursor is the hex key of the last record returned. It skips record files
// it cannot read as corrupt. Each call reads one fan-out directory's names
// at a time and takes no lock.
func (s *Store) List(ctx context.Context, cursor string, limit int) ([]sesh.Entry, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		return nil, "", errLimit
	}
	start := 0
	if cursor != "" {
		if !isKeyName(cursor) {
			return nil, "", errCursor
		}
		k := parseKeyName(cursor)
		start = int(k[0])
	}
	now := s.now().UnixMilli()
	var out []sesh.Entry
	for i := start; i < len(s.fans); i++ {
		names, err := readNames(s.fanDir(i))
		if err != nil {
			return nil, "", err
		}
		for _, name := range names {
			if !isKeyName(name) || name <= cursor {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, "", err
			}
			k := parseKeyName(name)
			r, ok, err := s.read(&k)
			if err != nil {
				if errors.Is(err, ErrCorrupt) {
					continue
				}
				return nil, "", err
			}
			if !ok || r.tomb || r.exp <= now {
				continue
			}
			out = append(out, sesh.Entry{Key: k, Record: r.record()})
			if len(out) == limit {
				return out, name, nil
			}
		}
	}
	return out, "", nil
}
