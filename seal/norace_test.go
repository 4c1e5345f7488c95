//go:build !race

package seal_test

import (
	"bytes"
	"testing"

	"github.com/seshgo/sesh/seal"
)

// TestAllocs runs without the race detector only: under it sync.Pool
// drops items, so the count would be meaningless.
func TestAllocs(t *testing.T) {
	box := mustRing(t, testKey(2), testKey(1)).Box("session")
	pt := bytes.Repeat([]byte("x"), 1000)
	ad := []byte("0123456789abcdef0123456789abcdef")
	env := make([]byte, 0, len(pt)+seal.Overhead)
	out := make([]byte, 0, len(pt))
	var err error
	if n := testing.AllocsPerRun(100, func() {
		env, err = box.Seal(env[:0], pt, ad)
	}); n != 0 || err != nil {
		t.Errorf("Seal into a large enough dst: got %v allocs (err %v), want 0", n, err)
	}
	if n := testing.AllocsPerRun(100, func() {
		out, _, err = box.Open(out[:0], env, ad)
	}); n != 0 || err != nil {
		t.Errorf("Open into a large enough dst: got %v allocs (err %v), want 0", n, err)
	}
	if n := testing.AllocsPerRun(100, func() {
		env, err = box.Seal(nil, pt, ad)
	}); n != 1 || err != nil {
		t.Errorf("Seal into nil dst: got %v allocs (err %v), want 1", n, err)
	}
}
