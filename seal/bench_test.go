package seal_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/seshgo/sesh/seal"
)

var benchSizes = []int{256, 2048}

func benchBox(b *testing.B) *seal.Box {
	return mustRing(b, testKey(2), testKey(1)).Box("session")
}

var (
	benchAD     = []byte("0123456789abcdef0123456789abcdef") // a SHA-256 store key
	benchSecret = []byte("Yq3u0cJ9mX8sVZtq2H3a7bQk1fL0pR5eN4wD6yU8iOc")
)

func BenchmarkSeal(b *testing.B) {
	box := benchBox(b)
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			pt := bytes.Repeat([]byte("x"), n)
			dst := make([]byte, 0, n+seal.Overhead)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = box.Seal(dst[:0], pt, benchAD); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	box := benchBox(b)
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			env := mustSeal(b, box, bytes.Repeat([]byte("x"), n), benchAD)
			dst := make([]byte, 0, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, _, err = box.Open(dst[:0], env, benchAD); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSealBound(b *testing.B) {
	box := benchBox(b)
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			pt := bytes.Repeat([]byte("x"), n)
			dst := make([]byte, 0, n+seal.Overhead)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = box.SealBound(dst[:0], pt, benchAD, benchSecret); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpenBound(b *testing.B) {
	box := benchBox(b)
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			env := mustSealBound(b, box, bytes.Repeat([]byte("x"), n), benchAD, benchSecret)
			dst := make([]byte, 0, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, _, err = box.OpenBound(dst[:0], env, benchAD, benchSecret); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRingBox measures a cached Ring.Box lookup.
func BenchmarkRingBox(b *testing.B) {
	ring := mustRing(b, testKey(2), testKey(1))
	ring.Box("session")
	b.ReportAllocs()
	for b.Loop() {
		ring.Box("session")
	}
}
