package seal_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/seshgo/sesh/seal"
)

var fuzzSecret = []byte("fuzz-session-id")

type sealedRecord struct {
	pt, ad []byte
	bound  bool
}

// FuzzOpen feeds arbitrary envelopes and ad to Open and OpenBound. They
// must never panic, must fail with ErrInvalid or ErrUnknownKey, and must
// succeed only for an envelope sealed by the seed setup, with its ad.
func FuzzOpen(f *testing.F) {
	// Deterministic nonces make the seeds, and so the set of envelopes
	// that may open, the same in every run and every fuzz worker.
	restore := seal.SetRandReader(&counterReader{})
	ring := mustRing(f, testKey(2), testKey(1))
	box := ring.Box("session")
	oldBox := mustRing(f, testKey(1)).Box("session")
	valid := map[string]sealedRecord{}
	add := func(env, ad []byte) {
		f.Add(env, ad)
		f.Add(env, append(bytes.Clone(ad), 0))
		f.Add(env[:len(env)-1], ad)
		f.Add(append(bytes.Clone(env), 0), ad)
		f.Add(env[:seal.Overhead], ad)
		for _, i := range []int{0, 1, 4, 5, 16, 17, len(env) - 1} {
			bad := bytes.Clone(env)
			bad[i] ^= 0x01
			f.Add(bad, ad)
		}
	}
	for _, pt := range [][]byte{nil, []byte("x"), []byte(`{"user":42,"csrf":"abc"}`), bytes.Repeat([]byte{0xff}, 300)} {
		for _, ad := range [][]byte{nil, []byte("store-key")} {
			for _, b := range []*seal.Box{box, oldBox} {
				env := mustSeal(f, b, pt, ad)
				valid[string(env)] = sealedRecord{pt: pt, ad: ad}
				add(env, ad)
				env = mustSealBound(f, b, pt, ad, fuzzSecret)
				valid[string(env)] = sealedRecord{pt: pt, ad: ad, bound: true}
				add(env, ad)
			}
		}
	}
	restore()
	f.Add([]byte{}, []byte{})
	f.Add(make([]byte, seal.Overhead), []byte{})

	check := func(t *testing.T, name string, env, ad, pt []byte, err error, bound bool) {
		if err != nil {
			if !errors.Is(err, seal.ErrInvalid) && !errors.Is(err, seal.ErrUnknownKey) {
				t.Fatalf("%s: got error %v, want ErrInvalid or ErrUnknownKey", name, err)
			}
			if pt != nil {
				t.Fatalf("%s: got plaintext %x with error %v, want nil", name, pt, err)
			}
			return
		}
		rec, ok := valid[string(env)]
		if ok && rec.bound == bound && bytes.Equal(rec.ad, ad) && bytes.Equal(rec.pt, pt) {
			return
		}
		// Not one of the seeds (the committed corpus holds envelopes of
		// its own): it may open only if it is exactly what sealing pt
		// with ad under one of the ring's keys, with its nonce, makes.
		if !ok && resealsTo(env, pt, ad, bound, map[uint32]*seal.Box{ring.Current(): box, 1: oldBox}) {
			return
		}
		t.Fatalf("%s opened an envelope it must not: env %x ad %x -> %x", name, env, ad, pt)
	}
	f.Fuzz(func(t *testing.T, env, ad []byte) {
		id, kerr := seal.KeyID(env)
		pt, current, err := box.Open(nil, env, ad)
		check(t, "Open", env, ad, pt, err, false)
		if err == nil && (kerr != nil || current != (id == ring.Current())) {
			t.Fatalf("Open: current=%v but KeyID = %d, %v", current, id, kerr)
		}
		pt, _, err = box.OpenBound(nil, env, ad, fuzzSecret)
		check(t, "OpenBound", env, ad, pt, err, true)
	})
}

// resealsTo reports whether sealing pt with ad (bound to fuzzSecret if
// bound) under the key that env names, with env's nonce, gives env.
func resealsTo(env, pt, ad []byte, bound bool, boxes map[uint32]*seal.Box) bool {
	id, err := seal.KeyID(env)
	b := boxes[id]
	if err != nil || b == nil {
		return false
	}
	restore := seal.SetRandReader(bytes.NewReader(env[5:seal.HeaderSize]))
	defer restore()
	var again []byte
	if bound {
		again, err = b.SealBound(nil, pt, ad, fuzzSecret)
	} else {
		again, err = b.Seal(nil, pt, ad)
	}
	return err == nil && bytes.Equal(again, env)
}

// FuzzRoundTrip checks that every plaintext, ad and secret round-trips and
// that the envelope is bound to its ad and secret.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello"), []byte("store-key"), []byte("sid"))
	f.Add([]byte{}, []byte{}, []byte{})
	f.Add(bytes.Repeat([]byte{0}, 100), []byte{0}, []byte{0})
	box := mustRing(f, testKey(1)).Box("session")
	f.Fuzz(func(t *testing.T, pt, ad, secret []byte) {
		env, err := box.Seal(nil, pt, ad)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if len(env) != len(pt)+seal.Overhead {
			t.Fatalf("envelope length: got %d, want %d", len(env), len(pt)+seal.Overhead)
		}
		got, current, err := box.Open(nil, env, ad)
		if err != nil || !current || !bytes.Equal(got, pt) {
			t.Fatalf("Open: got %x, %v, %v, want %x, true, nil", got, current, err, pt)
		}
		if _, _, err := box.Open(nil, env, append(bytes.Clone(ad), 'x')); !errors.Is(err, seal.ErrInvalid) {
			t.Fatalf("Open with longer ad: got %v, want ErrInvalid", err)
		}

		env, err = box.SealBound(nil, pt, ad, secret)
		if len(secret) == 0 {
			if err == nil {
				t.Fatal("SealBound with empty secret: got nil error, want an error")
			}
			return
		}
		if err != nil {
			t.Fatalf("SealBound: %v", err)
		}
		got, current, err = box.OpenBound(nil, env, ad, secret)
		if err != nil || !current || !bytes.Equal(got, pt) {
			t.Fatalf("OpenBound: got %x, %v, %v, want %x, true, nil", got, current, err, pt)
		}
		if _, _, err := box.OpenBound(nil, env, ad, append(bytes.Clone(secret), 0)); !errors.Is(err, seal.ErrInvalid) {
			t.Fatalf("OpenBound with longer secret: got %v, want ErrInvalid", err)
		}
	})
}
