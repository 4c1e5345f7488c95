package seal_test

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"testing"

	"github.com/seshgo/sesh/seal"
)

// testKey returns a deterministic, non-weak key for tests.
func testKey(id uint32) seal.Key {
	sum := sha256.Sum256([]byte("seal test key " + strconv.FormatUint(uint64(id), 10)))
	return seal.Key{ID: id, Secret: sum[:]}
}

func mustRing(t testing.TB, keys ...seal.Key) *seal.Ring {
	t.Helper()
	r, err := seal.NewRing(keys...)
	if err != nil {
		t.Fatalf("NewRing: %v", err)
	}
	return r
}

func mustSeal(t testing.TB, b *seal.Box, pt, ad []byte) []byte {
	t.Helper()
	env, err := b.Seal(nil, pt, ad)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return env
}

func mustSealBound(t testing.TB, b *seal.Box, pt, ad, secret []byte) []byte {
	t.Helper()
	env, err := b.SealBound(nil, pt, ad, secret)
	if err != nil {
		t.Fatalf("SealBound: %v", err)
	}
	return env
}

// fixedReader returns the same bytes on every read: a fixed nonce.
type fixedReader []byte

func (r fixedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r[i%len(r)]
	}
	return len(p), nil
}

// counterReader yields a distinct deterministic nonce for every read.
type counterReader struct{ n uint64 }

func (r *counterReader) Read(p []byte) (int, error) {
	clear(p)
	r.n++
	if len(p) >= 8 {
		binary.BigEndian.PutUint64(p[len(p)-8:], r.n)
	}
	return len(p), nil
}

var errRNG = errors.New("test: entropy source failed")

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errRNG }

// shortReader returns fewer bytes than asked, then EOF.
type shortReader struct{ done bool }

func (r *shortReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	r.done = true
	return len(p) / 2, nil
}

// opener is Box.Open or a Box.OpenBound bound to a secret.
type opener func(dst, env, ad []byte) ([]byte, bool, error)

type mode struct {
	name string
	seal func(t testing.TB, b *seal.Box, pt, ad []byte) []byte
	open func(b *seal.Box) opener
}

var modes = []mode{
	{
		name: "ring",
		seal: func(t testing.TB, b *seal.Box, pt, ad []byte) []byte { return mustSeal(t, b, pt, ad) },
		open: func(b *seal.Box) opener { return b.Open },
	},
	{
		name: "bound",
		seal: func(t testing.TB, b *seal.Box, pt, ad []byte) []byte {
			return mustSealBound(t, b, pt, ad, []byte("session-id-123"))
		},
		open: func(b *seal.Box) opener {
			return func(dst, env, ad []byte) ([]byte, bool, error) {
				return b.OpenBound(dst, env, ad, []byte("session-id-123"))
			}
		},
	},
}
