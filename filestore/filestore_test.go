package filestore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) sesh.Store {
		s, err := New(t.TempDir(), WithClock(now))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return s
	})
}

func newStore(t testing.TB, opts ...Option) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := New(dir, opts...)
	if err != nil {
		t.Fatalf("New(%q): %v", dir, err)
	}
	return s, dir
}

func randKey() sesh.Key {
	var k sesh.Key
	rand.Read(k[:])
	return k
}

func rec(data string, version uint64) sesh.Record {
	return sesh.Record{Data: []byte(data), Version: version, Expires: time.Now().Add(time.Hour)}
}

func TestNewRefuses(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, dir string }{
		{"Empty", ""},
		{"File", file},
		{"Symlink", link},
	}
	if runtime.GOOS != "windows" {
		open := filepath.Join(base, "open")
		if err := os.Mkdir(open, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(open, 0o777); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct{ name, dir string }{"WorldWritable", open})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.dir); err == nil {
				t.Fatalf("New(%q): got nil error, want one", tt.dir)
			}
		})
	}
	// A missing directory is made, with its parents.
	nested := filepath.Join(base, "a", "b", "c")
	if _, err := New(nested); err != nil {
		t.Fatalf("New(%q): got error %v, want nil", nested, err)
	}
}

// TestPermissions checks that directories are 0700 and files 0600 under a
// umask that would give other modes.
func TestPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Log("no Unix permissions on windows; nothing to check")
		return
	}
	old := setUmask(0o277) // would make files 0400 and directories 0500
	s, dir := newStore(t)
	ctx := t.Context()
	k1, k2, k3 := randKey(), randKey(), randKey()
	r := rec("x", 1)
	r.User = "alice"
	err := errors.Join(
		s.Save(ctx, k1, r, 0),
		s.Save(ctx, k2, r, 0),
		s.Delete(ctx, k2, time.Now().Add(time.Hour)),
		s.Save(ctx, k3, rec("y", 1), 0),
	)
	unlock, lerr := s.Lock(ctx, k3, time.Minute)
	setUmask(old)
	if err != nil || lerr != nil {
		t.Fatal(err, lerr)
	}
	defer unlock(ctx)
	files := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = fs.ModeDir | 0o700
		} else {
			files++
		}
		if fi.Mode() != want {
			t.Errorf("%s: got mode %v, want %v", path, fi.Mode(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 6 { // 3 records, a marker, a lease, lock files
		t.Errorf("found %d files, want at least 6", files)
	}
}

// TestPathSafety checks that hostile keys and user names stay inside the
// directory, under hex names only.
func TestPathSafety(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var keys []sesh.Key
	for _, p := range []string{"/", ".", "../", "\\", "\x00", "\r\n", "*", "%", "\xff", ":", " "} {
		var k sesh.Key
		for i := range k {
			k[i] = p[i%len(p)]
		}
		k[31] |= 1 // never the zero key
		keys = append(keys, k)
	}
	for i, k := range keys {
		r := rec(fmt.Sprint(i), 1)
		r.User = "../../../" + string(k[:4]) + "/etc/passwd\x00"
		if err := s.Save(ctx, k, r, 0); err != nil {
			t.Fatalf("Save: %v", err)
		}
		unlock, err := s.Lock(ctx, k, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		unlock(ctx)
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "store" {
		t.Errorf("parent directory holds %v, want only store", entries)
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		ok := rel == "." || rel == "data" || rel == "users"
		switch {
		case parts[0] == "data" && len(parts) == 2:
			ok = len(parts[1]) == 2 && isKeyName(parts[1]+strings.Repeat("0", 62))
		case parts[0] == "data" && len(parts) == 3:
			n := strings.TrimSuffix(parts[2], ".lease")
			ok = parts[2] == ".lock" || isKeyName(n) && n[:2] == parts[1]
		case parts[0] == "users" && len(parts) == 2:
			ok = len(parts[1]) == 2
		case parts[0] == "users" && len(parts) == 3:
			ok = isKeyName(parts[2]) && parts[2][:2] == parts[1]
		case parts[0] == "users" && len(parts) == 4:
			ok = isKeyName(parts[3])
		}
		if !ok {
			t.Errorf("unexpected path %q", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSymlinks checks that a record file or fan-out directory that is a
// symbolic link is never followed: not for reading, not for writing.
func TestSymlinks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Log("symbolic links need privileges on windows; nothing to check")
		return
	}
	parent := t.TempDir()
	s, err := New(filepath.Join(parent, "store"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	t.Run("RecordFile", func(t *testing.T) {
		k := randKey()
		// A valid record for k, outside the store.
		outside := filepath.Join(parent, "outside")
		good := encode(&fileRecord{key: k, version: 1, exp: time.Now().Add(time.Hour).UnixMilli(), data: []byte("planted")})
		if err := os.WriteFile(outside, good, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := makeDir(s.fanDir(int(k[0]))); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, s.recordPath(&k)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Load(ctx, k); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Load through a symlink: got (%q, %v), want an error wrapping ErrCorrupt", got.Data, err)
		}
		if err := s.Save(ctx, k, rec("new", 2), 1); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Save over a symlink: got %v, want an error wrapping ErrCorrupt", err)
		}
		if err := s.Delete(ctx, k, time.Time{}); err != nil {
			t.Fatalf("Delete of a symlink: got %v, want nil", err)
		}
		if err := s.Save(ctx, k, rec("new", 1), 0); err != nil {
			t.Fatalf("Save after Delete: got %v, want nil", err)
		}
		if b, err := os.ReadFile(outside); err != nil || !bytes.Equal(b, good) {
			t.Fatalf("file outside the store changed: %v", err)
		}
		if fi, err := os.Lstat(s.recordPath(&k)); err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("record file after Save: %v, %v; want a regular file", fi, err)
		}
	})

	t.Run("FanOutDirectory", func(t *testing.T) {
		// Find a fan-out directory nothing has used yet.
		var k sesh.Key
		for {
			k = randKey()
			if _, err := os.Lstat(s.fanDir(int(k[0]))); errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
		elsewhere := filepath.Join(parent, "elsewhere")
		if err := os.Mkdir(elsewhere, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(elsewhere, s.fanDir(int(k[0]))); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, k, rec("x", 1), 0); err == nil {
			t.Fatal("Save into a symlinked fan-out directory: got nil error, want one")
		}
		if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
			t.Fatalf("the link's target got files: %v", entries)
		}
	})
}

// TestCorrupt checks that damaged record files give errors wrapping
// ErrCorrupt, never a panic or ErrNotFound, and that Delete clears them.
func TestCorrupt(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	good := func(k sesh.Key) []byte {
		return encode(&fileRecord{key: k, version: 3, exp: time.Now().Add(time.Hour).UnixMilli(), user: "u", data: []byte("some data")})
	}
	tests := []struct {
		name   string
		damage func(k sesh.Key, b []byte) []byte
	}{
		{"Empty", func(_ sesh.Key, b []byte) []byte { return nil }},
		{"Short", func(_ sesh.Key, b []byte) []byte { return b[:10] }},
		{"HeaderOnly", func(_ sesh.Key, b []byte) []byte { return b[:headerLen] }},
		{"Truncated", func(_ sesh.Key, b []byte) []byte { return b[:len(b)-1] }},
		{"Extended", func(_ sesh.Key, b []byte) []byte { return append(b, 0) }},
		{"Magic", func(_ sesh.Key, b []byte) []byte { b[0] = 'X'; return b }},
		{"FormatVersion", func(_ sesh.Key, b []byte) []byte { b[4] = 2; return b }},
		{"Flags", func(_ sesh.Key, b []byte) []byte { b[5] = 0x80; return b }},
		{"HugeLength", func(_ sesh.Key, b []byte) []byte { b[60], b[61] = 0xff, 0xff; return b }},
		{"BitFlip", func(_ sesh.Key, b []byte) []byte { b[headerLen+2] ^= 1; return b }},
		{"OtherKey", func(_ sesh.Key, b []byte) []byte { return good(randKey()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := randKey()
			if err := makeDir(s.fanDir(int(k[0]))); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.recordPath(&k), tt.damage(k, good(k)), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.Load(ctx, k)
			if !errors.Is(err, ErrCorrupt) || errors.Is(err, sesh.ErrNotFound) {
				t.Fatalf("Load: got %v, want an error wrapping ErrCorrupt", err)
			}
			if err := s.Save(ctx, k, rec("x", 1), 0); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Save: got %v, want an error wrapping ErrCorrupt", err)
			}
			if _, err := s.Take(ctx, k); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Take: got %v, want an error wrapping ErrCorrupt", err)
			}
			if _, _, err := s.List(ctx, "", 1000); err != nil {
				t.Fatalf("List: got %v, want nil (corrupt files are skipped)", err)
			}
			if err := s.Delete(ctx, k, time.Time{}); err != nil {
				t.Fatalf("Delete: got %v, want nil", err)
			}
			if _, err := s.Load(ctx, k); !errors.Is(err, sesh.ErrNotFound) {
				t.Fatalf("Load after Delete: got %v, want ErrNotFound", err)
			}
		})
	}
	t.Run("Directory", func(t *testing.T) {
		k := randKey()
		if err := makeDir(s.fanDir(int(k[0]))); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(s.recordPath(&k), 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(ctx, k); err == nil || errors.Is(err, sesh.ErrNotFound) {
			t.Fatalf("Load of a directory: got %v, want a store error", err)
		}
	})
}

func TestFormatRoundTrip(t *testing.T) {
	for i := range 200 {
		r := fileRecord{
			key:     randKey(),
			kind:    sesh.Kind(i),
			version: uint64(i) * 0x0102030405,
			exp:     time.Now().UnixMilli() + int64(i) - 100,
			user:    strings.Repeat("ü", i%7),
			data:    bytes.Repeat([]byte{byte(i)}, i*3),
		}
		if i%10 == 0 {
			r = fileRecord{key: r.key, tomb: true, exp: r.exp}
		}
		b := encode(&r)
		got, err := decode(b)
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", r, err)
		}
		if got.key != r.key || got.tomb != r.tomb || got.kind != r.kind || got.version != r.version ||
			got.exp != r.exp || got.user != r.user || !bytes.Equal(got.data, r.data) {
			t.Fatalf("decode(encode(r)): got %+v, want %+v", got, r)
		}
	}
}

func FuzzDecodeFile(f *testing.F) {
	var k sesh.Key
	copy(k[:], "fuzz key for the record decoder")
	f.Add(encode(&fileRecord{key: k, version: 1, exp: 1700000000000, user: "alice", data: []byte("data")}))
	f.Add(encode(&fileRecord{key: k, tomb: true, exp: 1700000000000}))
	f.Add(encode(&fileRecord{key: k, version: 1<<63 - 1, kind: 1, exp: -1}))
	f.Add([]byte(magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode: got error %v, want one wrapping ErrCorrupt", err)
			}
			return
		}
		// A valid encoding is canonical: it re-encodes to itself.
		if got := encode(&r); !bytes.Equal(got, b) {
			t.Fatalf("encode(decode(b)) != b\n got %x\nwant %x", got, b)
		}
	})
}

// TestSweepLeftovers checks that Sweep removes old temporary files, stale
// index markers and long-lapsed leases, and leaves fresh ones.
func TestSweepLeftovers(t *testing.T) {
	clock := storetest.NewClock()
	s, dir := newStore(t, WithClock(clock.Now))
	ctx := t.Context()
	k := randKey()
	if err := s.Save(ctx, k, rec("x", 1), 0); err != nil {
		t.Fatal(err)
	}
	fd := s.fanDir(int(k[0]))
	oldTmp, newTmp := filepath.Join(fd, ".tmp-old"), filepath.Join(fd, ".tmp-new")
	for _, p := range []string{oldTmp, newTmp} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * staleTemp)
	if err := os.Chtimes(oldTmp, past, past); err != nil {
		t.Fatal(err)
	}
	// A marker whose record does not carry the user (as a crash between
	// writing a record and unmarking its old user leaves).
	if err := s.addMarker("mallory", &k); err != nil {
		t.Fatal(err)
	}
	_, mdir := s.userDir("mallory")
	// A lease that lapsed long ago.
	lk := randKey()
	stale := lease{expires: time.Now().Add(-time.Hour)}
	if err := makeDir(s.fanDir(int(lk[0]))); err != nil {
		t.Fatal(err)
	}
	leasePath := s.recordPath(&lk) + ".lease"
	if err := os.WriteFile(leasePath, stale.encode(), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sweep(ctx, 10); err != nil || n != 0 {
		t.Fatalf("Sweep: got (%d, %v), want (0, nil)", n, err)
	}
	for _, tc := range []struct {
		path string
		want bool
	}{{oldTmp, false}, {newTmp, true}, {mdir, false}, {leasePath, false}, {s.recordPath(&k), true}} {
		_, err := os.Lstat(tc.path)
		if got := err == nil; got != tc.want {
			rel, _ := filepath.Rel(dir, tc.path)
			t.Errorf("after Sweep, %s exists: got %v, want %v", rel, got, tc.want)
		}
	}
}

// TestSweepResumes checks that a Sweep stopping at its limit resumes where
// it stopped, and that each record is removed once.
func TestSweepResumes(t *testing.T) {
	clock := storetest.NewClock()
	s, _ := newStore(t, WithClock(clock.Now))
	ctx := t.Context()
	const n = 40
	for i := range n {
		r := rec("x", 1)
		r.Expires = clock.Now().Add(time.Minute)
		r.User = fmt.Sprint("user", i%3)
		if err := s.Save(ctx, randKey(), r, 0); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Minute)
	total := 0
	for calls := 0; ; calls++ {
		got, err := s.Sweep(ctx, 7)
		if err != nil {
			t.Fatal(err)
		}
		total += got
		if got < 7 {
			break
		}
		if calls > n {
			t.Fatal("Sweep never finished")
		}
	}
	if total != n {
		t.Fatalf("Sweep removed %d in all, want %d", total, n)
	}
	users, err := readNames(s.usersDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		names, _ := readNames(filepath.Join(s.usersDir, u))
		if len(names) != 0 {
			t.Errorf("users/%s holds %v after sweeping every record, want nothing", u, names)
		}
	}
}

const (
	childDirEnv     = "FILESTORE_TEST_CHILD_DIR"
	childCounterEnv = "FILESTORE_TEST_CHILD_COUNTER"
	childRounds     = 15
)

// multiKey is the key the processes of TestMultiProcess share.
var multiKey = sesh.Key(sha256.Sum256([]byte("filestore multi-process test")))

// TestMultiProcess runs this test binary as three child processes sharing
// one directory. Each does compare-and-set increments on one key, and
// increments of a plain file under Lock; both counts must come out exact.
func TestMultiProcess(t *testing.T) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		runChild(t, dir, os.Getenv(childCounterEnv))
		return
	}
	if !crossProcess {
		t.Logf("no flock on %s: filestore locks are in-process only; nothing to check", runtime.GOOS)
		return
	}
	s, dir := newStore(t)
	ctx := t.Context()
	if err := s.Save(ctx, multiKey, rec("0", 1), 0); err != nil {
		t.Fatal(err)
	}
	counter := filepath.Join(t.TempDir(), "counter")
	if err := os.WriteFile(counter, []byte("0"), 0o600); err != nil {
		t.Fatal(err)
	}
	const procs = 3
	cmds := make([]*exec.Cmd, procs)
	outs := make([]bytes.Buffer, procs)
	for i := range cmds {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestMultiProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childCounterEnv+"="+counter)
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("child %d: %v\n%s", i, err, outs[i].String())
		}
	}
	got, err := s.Load(ctx, multiKey)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(procs * childRounds); string(got.Data) != want {
		t.Errorf("compare-and-set counter: got %s, want %s", got.Data, want)
	}
	b, err := os.ReadFile(counter)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(procs * childRounds); string(b) != want {
		t.Errorf("counter file incremented under Lock: got %s, want %s", b, want)
	}
}

func runChild(t *testing.T, dir, counter string) {
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for range childRounds {
		// A compare-and-set increment, retried on conflict.
		for {
			cur, err := s.Load(ctx, multiKey)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := strconv.Atoi(string(cur.Data))
			err = s.Save(ctx, multiKey, rec(strconv.Itoa(n+1), cur.Version+1), cur.Version)
			if err == nil {
				break
			}
			if !errors.Is(err, sesh.ErrConflict) {
				t.Fatal(err)
			}
		}
		// A plain read-modify-write of a file, under the lease.
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		unlock, err := s.Lock(lctx, multiKey, time.Minute)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(counter)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(string(b))
		if err := os.WriteFile(counter, []byte(strconv.Itoa(n+1)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	keys := make([]sesh.Key, 256)
	for i := range keys {
		keys[i] = randKey()
		r := rec(strings.Repeat("x", 256), 1)
		r.User = "user"
		if err := s.Save(ctx, keys[i], r, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Load(ctx, keys[i%len(keys)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkSave(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	k := randKey()
	r := rec(strings.Repeat("x", 256), 1)
	r.User = "user"
	if err := s.Save(ctx, k, r, 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		prev := r.Version
		r.Version++
		if err := s.Save(ctx, k, r, prev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSaveParallel(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		k := randKey()
		r := rec(strings.Repeat("x", 256), 1)
		prev := uint64(0)
		for pb.Next() {
			r.Version = prev + 1
			if err := s.Save(ctx, k, r, prev); err != nil {
				b.Fatal(err)
			}
			prev++
		}
	})
}
