package seal_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/seshgo/sesh/seal"
)

func TestConstants(t *testing.T) {
	if seal.Overhead != 33 {
		t.Errorf("Overhead = %d, want 33", seal.Overhead)
	}
	if seal.HeaderSize != 17 {
		t.Errorf("header size = %d, want 17", seal.HeaderSize)
	}
}

func TestRoundTrip(t *testing.T) {
	box := mustRing(t, testKey(1)).Box("session")
	ad := []byte("store-key")
	for _, m := range modes {
		for _, n := range []int{0, 1, 16, 100, 2000, 70000} {
			t.Run(fmt.Sprintf("%s/%d", m.name, n), func(t *testing.T) {
				pt := bytes.Repeat([]byte{'x'}, n)
				env := m.seal(t, box, pt, ad)
				if got, want := len(env), n+seal.Overhead; got != want {
					t.Fatalf("envelope length: got %d, want %d", got, want)
				}
				got, current, err := m.open(box)(nil, env, ad)
				if err != nil {
					t.Fatalf("open: got error %v, want nil", err)
				}
				if !current {
					t.Errorf("current: got false, want true")
				}
				if !bytes.Equal(got, pt) {
					t.Errorf("plaintext: got %q, want %q", got, pt)
				}
			})
		}
	}
}

func TestAppendsToDst(t *testing.T) {
	box := mustRing(t, testKey(1)).Box("session")
	pt, ad := []byte("hello"), []byte("ad")
	prefix := []byte("prefix:")
	dst := append(make([]byte, 0, 100), prefix...)
	env, err := box.Seal(dst, pt, ad)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(env, prefix) {
		t.Fatalf("Seal result %q does not start with dst %q", env, prefix)
	}
	if got, want := len(env), len(prefix)+len(pt)+seal.Overhead; got != want {
		t.Fatalf("Seal result length: got %d, want %d", got, want)
	}
	out, _, err := box.Open([]byte("out:"), env[len(prefix):], ad)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "out:hello"; got != want {
		t.Errorf("Open result: got %q, want %q", got, want)
	}
}

func TestSealIsRandomized(t *testing.T) {
	box := mustRing(t, testKey(1)).Box("session")
	for _, m := range modes {
		a := m.seal(t, box, []byte("same"), nil)
		b := m.seal(t, box, []byte("same"), nil)
		if bytes.Equal(a, b) {
			t.Errorf("%s: two seals of the same plaintext are equal: %x", m.name, a)
		}
		if bytes.Equal(a[5:17], b[5:17]) {
			t.Errorf("%s: two seals share the nonce %x", m.name, a[5:17])
		}
	}
}

func TestEmptyAndNilADAreEqual(t *testing.T) {
	box := mustRing(t, testKey(1)).Box("session")
	env := mustSeal(t, box, []byte("x"), nil)
	if _, _, err := box.Open(nil, env, []byte{}); err != nil {
		t.Errorf("Open with empty ad of a nil-ad envelope: got %v, want nil", err)
	}
}

func TestBitFlips(t *testing.T) {
	box := mustRing(t, testKey(1)).Box("session")
	ad := []byte("store-key")
	for _, m := range modes {
		env := m.seal(t, box, []byte("a session record of some length"), ad)
		for i := range env {
			for bit := range 8 {
				bad := bytes.Clone(env)
				bad[i] ^= 1 << bit
				_, _, err := m.open(box)(nil, bad, ad)
				// A flipped key ID names a key this ring lacks; the
				// envelope cannot tell that apart from a retired key.
				if i >= 1 && i < 5 && errors.Is(err, seal.ErrUnknownKey) {
					continue
				}
				if !errors.Is(err, seal.ErrInvalid) {
					t.Errorf("%s: byte %d bit %d flipped: got %v, want ErrInvalid", m.name, i, bit, err)
				}
			}
		}
	}
}

func TestTruncated(t *testing.T) {
	box := mustRing(t, testKey(1)).Box("session")
	for _, m := range modes {
		env := m.seal(t, box, []byte("a session record"), nil)
		for n := range len(env) {
			if _, _, err := m.open(box)(nil, env[:n], nil); !errors.Is(err, seal.ErrInvalid) {
				t.Errorf("%s: truncated to %d of %d bytes: got %v, want ErrInvalid", m.name, n, len(env), err)
			}
		}
	}
}

func TestTrailingBytes(t *testing.T) {
	box := mustRing(t, testKey(1)).Box("session")
	for _, m := range modes {
		env := m.seal(t, box, []byte("a session record"), nil)
		for _, extra := range [][]byte{{0}, {0xff}, env[len(env)-1:], []byte("more")} {
			bad := append(bytes.Clone(env), extra...)
			if _, _, err := m.open(box)(nil, bad, nil); !errors.Is(err, seal.ErrInvalid) {
				t.Errorf("%s: with trailing %x: got %v, want ErrInvalid", m.name, extra, err)
			}
		}
	}
}

func TestWrongAD(t *testing.T) {
	box := mustRing(t, testKey(1)).Box("session")
	ad := []byte("store-key-A")
	for _, m := range modes {
		env := m.seal(t, box, []byte("record"), ad)
		for _, wrong := range [][]byte{nil, []byte("store-key-B"), []byte("store-key-"), []byte("store-key-AA")} {
			if _, _, err := m.open(box)(nil, env, wrong); !errors.Is(err, seal.ErrInvalid) {
				t.Errorf("%s: ad %q instead of %q: got %v, want ErrInvalid", m.name, wrong, ad, err)
			}
		}
	}
}

func TestWrongPurpose(t *testing.T) {
	ring := mustRing(t, testKey(1))
	for _, m := range modes {
		env := m.seal(t, ring.Box("session"), []byte("record"), nil)
		for _, p := range []string{"csrf", "Session", "session ", "sessio"} {
			if _, _, err := m.open(ring.Box(p))(nil, env, nil); !errors.Is(err, seal.ErrInvalid) {
				t.Errorf("%s: purpose %q instead of %q: got %v, want ErrInvalid", m.name, p, "session", err)
			}
		}
	}
}

func TestBound(t *testing.T) {
	box := mustRing(t, testKey(1)).Box("session")
	ad, secret := []byte("store-key"), []byte("raw-session-id")
	bound := mustSealBound(t, box, []byte("record"), ad, secret)

	for _, wrong := range [][]byte{[]byte("raw-session-iD"), []byte("raw-session-id\x00"), []byte("r")} {
		if _, _, err := box.OpenBound(nil, bound, ad, wrong); !errors.Is(err, seal.ErrInvalid) {
			t.Errorf("OpenBound with secret %q instead of %q: got %v, want ErrInvalid", wrong, secret, err)
		}
	}
	if _, _, err := box.Open(nil, bound, ad); !errors.Is(err, seal.ErrInvalid) {
		t.Errorf("Open of a bound envelope: got %v, want ErrInvalid", err)
	}
	// Relabelling the envelope as a ring envelope must not help.
	relabelled := bytes.Clone(bound)
	relabelled[0] = 1
	if _, _, err := box.Open(nil, relabelled, ad); !errors.Is(err, seal.ErrInvalid) {
		t.Errorf("Open of a bound envelope relabelled as version 1: got %v, want ErrInvalid", err)
	}

	plain := mustSeal(t, box, []byte("record"), ad)
	if _, _, err := box.OpenBound(nil, plain, ad, secret); !errors.Is(err, seal.ErrInvalid) {
		t.Errorf("OpenBound of a ring envelope: got %v, want ErrInvalid", err)
	}
	relabelled = bytes.Clone(plain)
	relabelled[0] = 2
	if _, _, err := box.OpenBound(nil, relabelled, ad, secret); !errors.Is(err, seal.ErrInvalid) {
		t.Errorf("OpenBound of a ring envelope relabelled as version 2: got %v, want ErrInvalid", err)
	}

	if _, err := box.SealBound(nil, []byte("record"), ad, nil); err == nil {
		t.Errorf("SealBound with empty secret: got nil error, want an error")
	}
	if _, _, err := box.OpenBound(nil, bound, ad, []byte{}); err == nil {
		t.Errorf("OpenBound with empty secret: got nil error, want an error")
	}
}

func TestRotation(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	old := mustRing(t, k1).Box("session")
	ad := []byte("store-key")

	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			env1 := m.seal(t, old, []byte("record"), ad)
			if id, err := seal.KeyID(env1); err != nil || id != 1 {
				t.Fatalf("KeyID: got %d, %v, want 1, nil", id, err)
			}

			// Step 1: key 2 pre-seeded as open-only; key 1 still seals.
			pre := mustRing(t, k1, k2).Box("session")
			if pt, current, err := m.open(pre)(nil, env1, ad); err != nil || !current || string(pt) != "record" {
				t.Errorf("pre-seeded ring: got %q, %v, %v, want %q, true, nil", pt, current, err, "record")
			}

			// Step 2: key 2 current.
			rotated := mustRing(t, k2, k1).Box("session")
			pt, current, err := m.open(rotated)(nil, env1, ad)
			if err != nil || current || string(pt) != "record" {
				t.Fatalf("rotated ring opening key 1: got %q, %v, %v, want %q, false, nil", pt, current, err, "record")
			}
			env2 := m.seal(t, rotated, pt, ad)
			if id, err := seal.KeyID(env2); err != nil || id != 2 {
				t.Errorf("KeyID of re-sealed record: got %d, %v, want 2, nil", id, err)
			}
			if _, current, err := m.open(rotated)(nil, env2, ad); err != nil || !current {
				t.Errorf("rotated ring opening key 2: got current=%v, %v, want true, nil", current, err)
			}
			// Servers still on step 1 read records sealed by step-2 servers.
			if _, current, err := m.open(pre)(nil, env2, ad); err != nil || current {
				t.Errorf("pre-seeded ring opening key 2: got current=%v, %v, want false, nil", current, err)
			}

			// Step 3: key 1 retired.
			retired := mustRing(t, k2).Box("session")
			_, _, err = m.open(retired)(nil, env1, ad)
			if !errors.Is(err, seal.ErrUnknownKey) {
				t.Errorf("retired ring opening key 1: got %v, want ErrUnknownKey", err)
			}
			if errors.Is(err, seal.ErrInvalid) {
				t.Errorf("retired ring opening key 1: got %v, which must not match ErrInvalid", err)
			}
			if _, _, err := m.open(retired)(nil, env2, ad); err != nil {
				t.Errorf("retired ring opening key 2: got %v, want nil", err)
			}
		})
	}
}

func TestKeyID(t *testing.T) {
	box := mustRing(t, seal.Key{ID: 0xdeadbeef, Secret: testKey(1).Secret}).Box("p")
	env := mustSeal(t, box, []byte("x"), nil)
	if id, err := seal.KeyID(env); err != nil || id != 0xdeadbeef {
		t.Errorf("KeyID: got %#x, %v, want 0xdeadbeef, nil", id, err)
	}
	bound := mustSealBound(t, box, []byte("x"), nil, []byte("s"))
	if id, err := seal.KeyID(bound); err != nil || id != 0xdeadbeef {
		t.Errorf("KeyID of bound envelope: got %#x, %v, want 0xdeadbeef, nil", id, err)
	}

	bad := map[string][]byte{
		"empty":     nil,
		"short":     env[:seal.Overhead-1],
		"version 0": append([]byte{0}, env[1:]...),
		"version 3": append([]byte{3}, env[1:]...),
		"key ID 0":  append([]byte{1, 0, 0, 0, 0}, env[5:]...),
	}
	for name, e := range bad {
		if _, err := seal.KeyID(e); !errors.Is(err, seal.ErrInvalid) {
			t.Errorf("KeyID(%s): got %v, want ErrInvalid", name, err)
		}
		if _, _, err := box.Open(nil, e, nil); !errors.Is(err, seal.ErrInvalid) {
			t.Errorf("Open(%s): got %v, want ErrInvalid", name, err)
		}
	}
}

func TestLargeAD(t *testing.T) {
	box := mustRing(t, testKey(1)).Box("session")
	ad := bytes.Repeat([]byte("a"), 5000)
	for _, m := range modes {
		env := m.seal(t, box, []byte("record"), ad)
		if _, _, err := m.open(box)(nil, env, ad); err != nil {
			t.Errorf("%s: open with %d-byte ad: got %v, want nil", m.name, len(ad), err)
		}
		if _, _, err := m.open(box)(nil, env, ad[1:]); !errors.Is(err, seal.ErrInvalid) {
			t.Errorf("%s: open with shortened ad: got %v, want ErrInvalid", m.name, err)
		}
	}
}

func TestZeroBox(t *testing.T) {
	var b seal.Box
	if _, err := b.Seal(nil, []byte("x"), nil); err == nil {
		t.Error("Seal on a zero Box: got nil error, want an error")
	}
	if _, err := b.SealBound(nil, []byte("x"), nil, []byte("s")); err == nil {
		t.Error("SealBound on a zero Box: got nil error, want an error")
	}
	env := mustSeal(t, mustRing(t, testKey(1)).Box("p"), []byte("x"), nil)
	if _, _, err := b.Open(nil, env, nil); err == nil {
		t.Error("Open on a zero Box: got nil error, want an error")
	}
}

func TestRandFailure(t *testing.T) {
	box := mustRing(t, testKey(1)).Box("session")
	defer seal.SetRandReader(failingReader{})()
	env, err := box.Seal(nil, []byte("record"), nil)
	if !errors.Is(err, errRNG) || env != nil {
		t.Errorf("Seal with failing RNG: got %x, %v, want nil, %v", env, err, errRNG)
	}
	env, err = box.SealBound(nil, []byte("record"), nil, []byte("s"))
	if !errors.Is(err, errRNG) || env != nil {
		t.Errorf("SealBound with failing RNG: got %x, %v, want nil, %v", env, err, errRNG)
	}

	seal.SetRandReader(&shortReader{})
	env, err = box.Seal(nil, []byte("record"), nil)
	if err == nil || env != nil {
		t.Errorf("Seal with short RNG read: got %x, %v, want nil and an error", env, err)
	}
}

func TestConcurrent(t *testing.T) {
	ring := mustRing(t, testKey(2), testKey(1))
	oldEnv := mustSeal(t, mustRing(t, testKey(1)).Box("session"), []byte("old"), []byte("ad"))
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			box := ring.Box("session") // concurrent cache use too
			ad := fmt.Appendf(nil, "store-key-%d", g)
			secret := fmt.Appendf(nil, "sid-%d", g)
			var env, out []byte
			for i := range 200 {
				pt := fmt.Appendf(nil, "goroutine %d record %d", g, i)
				var err error
				if i%2 == 0 {
					env, err = box.Seal(env[:0], pt, ad)
				} else {
					env, err = box.SealBound(env[:0], pt, ad, secret)
				}
				if err != nil {
					errs <- err
					return
				}
				var current bool
				if i%2 == 0 {
					out, current, err = box.Open(out[:0], env, ad)
				} else {
					out, current, err = box.OpenBound(out[:0], env, ad, secret)
				}
				if err != nil || !current || !bytes.Equal(out, pt) {
					errs <- fmt.Errorf("goroutine %d round %d: got %q, %v, %v, want %q, true, nil", g, i, out, current, err, pt)
					return
				}
				if out, current, err = box.Open(out[:0], oldEnv, []byte("ad")); err != nil || current || string(out) != "old" {
					errs <- fmt.Errorf("goroutine %d: old record: got %q, %v, %v", g, out, current, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestInPlace seals a plaintext that sits HeaderSize bytes past the end
// of dst, and opens an envelope into its own storage, as the documented
// exceptions to "must not overlap" allow.
func TestInPlace(t *testing.T) {
	box := mustRing(t, testKey(1)).Box("session")
	ad := []byte("ad")
	for _, n := range []int{0, 1, 100, 5000} {
		want := bytes.Repeat([]byte{'p'}, n)
		buf := make([]byte, seal.HeaderSize, seal.HeaderSize+n+seal.Overhead)
		buf = append(buf, want...)
		env, err := box.Seal(buf[:0], buf[seal.HeaderSize:], ad)
		if err != nil {
			t.Fatal(err)
		}
		if &env[0] != &buf[0] {
			t.Fatalf("n=%d: Seal allocated instead of sealing in place", n)
		}
		if len(env) != n+seal.Overhead {
			t.Fatalf("n=%d: envelope length %d", n, len(env))
		}
		// The same envelope sealed the usual way must open: in place
		// sealing made a real envelope, not one that only opens in place.
		if got, _, err := box.Open(nil, env, ad); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("n=%d: Open: %v, plaintext %q", n, err, got)
		}
		got, _, err := box.Open(env[seal.HeaderSize:seal.HeaderSize], env, ad)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("n=%d: in-place Open: %v, plaintext %q", n, err, got)
		}
		if n > 0 && &got[0] != &env[seal.HeaderSize] {
			t.Fatalf("n=%d: Open allocated instead of opening in place", n)
		}
	}
	// A tampered envelope opened in place fails like any other.
	env, _ := box.Seal(nil, []byte("secret"), ad)
	env[len(env)-1] ^= 1
	if _, _, err := box.Open(env[seal.HeaderSize:seal.HeaderSize], env, ad); !errors.Is(err, seal.ErrInvalid) {
		t.Fatalf("tampered in-place Open: got %v, want ErrInvalid", err)
	}
}
