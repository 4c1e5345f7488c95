//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package filestore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// crossProcess reports whether locks hold across processes. On this
// system filestore has no flock(2): its locks are in-process only.
const crossProcess = false

// readFile reads a record or lease file, checking its size before
// allocating. Without O_NOFOLLOW it refuses a symbolic link by checking
// with Lstat first, which a concurrent rename could defeat.
func readFile(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errAbsent
		}
		return nil, fmt.Errorf("filestore: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%w: %s is a symbolic link", ErrCorrupt, path)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errAbsent
		}
		return nil, fmt.Errorf("filestore: %w", err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrCorrupt, path)
	}
	if fi.Size() > maxFileLen {
		return nil, fmt.Errorf("%w: %s is too large (%d bytes)", ErrCorrupt, path, fi.Size())
	}
	buf := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return buf, nil
}

// lockFile is a no-op here: the in-process mutex is the only lock.
func lockFile(path string, chmod bool) (unlock func(), err error) {
	return func() {}, nil
}
