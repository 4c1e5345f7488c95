//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package filestore

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// crossProcess reports whether locks hold across processes: here they
// do, with flock(2).
const crossProcess = true

// readFile reads a record or lease file, checking its size before
// allocating. It opens with O_NOFOLLOW, so a symbolic link is never
// followed, and O_NONBLOCK, so a FIFO cannot block it; it uses the system
// calls directly, as the os package would add several to each open.
func readFile(path string) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		if err == syscall.ENOENT {
			return nil, errAbsent
		}
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%w: %s is a symbolic link", ErrCorrupt, path)
		}
		return nil, fmt.Errorf("filestore: %w", &fs.PathError{Op: "open", Path: path, Err: err})
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("filestore: %w", &fs.PathError{Op: "fstat", Path: path, Err: err})
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrCorrupt, path)
	}
	if st.Size > maxFileLen {
		return nil, fmt.Errorf("%w: %s is too large (%d bytes)", ErrCorrupt, path, st.Size)
	}
	buf := make([]byte, st.Size)
	for n := 0; n < len(buf); {
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("filestore: %w", &fs.PathError{Op: "read", Path: path, Err: err})
		}
		if m == 0 {
			return nil, fmt.Errorf("%w: %s: shorter than its size", ErrCorrupt, path)
		}
		n += m
	}
	return buf, nil
}

// lockFile opens (creating, mode 0600) the lock file at path and takes an
// exclusive flock(2) on it, waiting as long as it takes. If chmod is set
// it also sets the file's mode, whatever the umask.
func lockFile(path string, chmod bool) (unlock func(), err error) {
	var fd int
	for {
		fd, err = syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", &fs.PathError{Op: "open", Path: path, Err: err})
	}
	if chmod {
		if err := syscall.Fchmod(fd, 0o600); err != nil {
			syscall.Close(fd)
			return nil, fmt.Errorf("filestore: %w", &fs.PathError{Op: "chmod", Path: path, Err: err})
		}
	}
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("filestore: %w", &fs.PathError{Op: "flock", Path: path, Err: err})
	}
	return func() {
		syscall.Flock(fd, syscall.LOCK_UN)
		syscall.Close(fd)
	}, nil
}
