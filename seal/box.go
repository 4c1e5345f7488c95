package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

const (
	versionRing  = 1 // sealed with the per-purpose subkey
	versionBound = 2 // sealed with a key derived from the subkey and a per-record secret

	nonceSize  = 12
	tagSize    = 16
	headerSize = HeaderSize

	// HeaderSize is the length of an envelope's header: the plaintext's
	// encryption starts this many bytes into the envelope.
	HeaderSize = 1 + 4 + nonceSize

	// Overhead is how many bytes an envelope adds to its plaintext.
	Overhead = headerSize + tagSize

	infoPrefix = "sesh/v1/"
	infoBound  = "sesh/v1/bound"

	// maxPooledAD bounds the ad kept in pooled scratch buffers; longer ad
	// is handled with a one-off allocation.
	maxPooledAD = 1024
)

// randReader is the nonce source; tests replace it.
var randReader io.Reader = rand.Reader

var errEmptySecret = errors.New("seal: bound secret is empty")

// Box seals and opens envelopes for one purpose. It is immutable and safe
// for concurrent use. Get one from [Ring.Box].
type Box struct {
	purpose string
	keys    []boxKey // ring order: keys[0] is current
}

type boxKey struct {
	id   uint32
	aead cipher.AEAD   // AES-256-GCM under sub
	sub  [KeySize]byte // HKDF(master, info "sesh/v1/"+purpose)
}

func newBox(keys []Key, purpose string) *Box {
	b := &Box{purpose: purpose, keys: make([]boxKey, len(keys))}
	for i, k := range keys {
		sub, err := hkdf.Key(sha256.New, k.Secret, nil, infoPrefix+purpose, KeySize)
		if err != nil {
			panic("seal: hkdf: " + err.Error()) // cannot happen for 32-byte output
		}
		bk := &b.keys[i]
		bk.id = k.ID
		copy(bk.sub[:], sub)
		clear(sub)
		bk.aead = newGCM(bk.sub[:])
	}
	return b
}

func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("seal: " + err.Error()) // key is always 32 bytes
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("seal: " + err.Error())
	}
	return aead
}

// boundAEAD derives the data key for a bound envelope. The salt is
// SHA-256(secret) rather than secret itself because HMAC, which HKDF keys
// with the salt, zero-pads short keys and hashes long ones: secrets "ab"
// and "ab\x00" would otherwise derive the same key.
func boundAEAD(k *boxKey, secret []byte) cipher.AEAD {
	salt := sha256.Sum256(secret)
	dk, err := hkdf.Key(sha256.New, k.sub[:], salt[:], infoBound, KeySize)
	if err != nil {
		panic("seal: hkdf: " + err.Error())
	}
	aead := newGCM(dk)
	clear(dk)
	return aead
}

// lookup returns the key with the given ID and whether it is current.
func (b *Box) lookup(id uint32) (*boxKey, bool) {
	for i := range b.keys {
		if b.keys[i].id == id {
			return &b.keys[i], i == 0
		}
	}
	return nil, false
}

var adPool = sync.Pool{New: func() any {
	buf := make([]byte, 0, headerSize+64)
	return &buf
}}

// gcmAD returns header || ad in a scratch buffer; release it with putAD.
func gcmAD(header, ad []byte) (*[]byte, []byte) {
	if len(ad) > maxPooledAD {
		buf := make([]byte, 0, len(header)+len(ad))
		return nil, append(append(buf, header...), ad...)
	}
	p := adPool.Get().(*[]byte)
	buf := append(append((*p)[:0], header...), ad...)
	*p = buf
	return p, buf
}

func putAD(p *[]byte) {
	if p != nil {
		adPool.Put(p)
	}
}

// Seal encrypts plaintext under the current key, binding it to ad (such
// as the store key), and appends the envelope to dst. The envelope is
// len(plaintext)+[Overhead] bytes. Seal fails only if the system random
// source fails.
//
// dst must not overlap plaintext, with one exception, which seals in
// place: plaintext may start exactly [HeaderSize] bytes past the end of
// dst, in dst's spare capacity, which must then hold the whole envelope.
func (b *Box) Seal(dst, plaintext, ad []byte) ([]byte, error) {
	if b == nil || len(b.keys) == 0 {
		return nil, errors.New("seal: Seal on a zero Box")
	}
	return b.seal(dst, plaintext, ad, versionRing, &b.keys[0], b.keys[0].aead)
}

// SealBound is like [Box.Seal] but also binds the envelope to secret, a
// per-record secret the store does not hold (such as the raw session ID):
// the data key is derived from the purpose subkey and secret. The
// envelope opens only with [Box.OpenBound] and the same secret. secret
// must not be empty.
func (b *Box) SealBound(dst, plaintext, ad, secret []byte) ([]byte, error) {
	if b == nil || len(b.keys) == 0 {
		return nil, errors.New("seal: SealBound on a zero Box")
	}
	if len(secret) == 0 {
		return nil, errEmptySecret
	}
	k := &b.keys[0]
	return b.seal(dst, plaintext, ad, versionBound, k, boundAEAD(k, secret))
}

func (b *Box) seal(dst, plaintext, ad []byte, version byte, k *boxKey, aead cipher.AEAD) ([]byte, error) {
	// Build the header in scratch so that nothing is written to dst
	// before the AEAD has checked the buffers for overlap.
	var hdr [headerSize]byte // copied, does not escape
	p, scratch := gcmAD(hdr[:], ad)
	defer putAD(p)
	scratch[0] = version
	binary.BigEndian.PutUint32(scratch[1:5], k.id)
	nonce := scratch[5:headerSize]
	if _, err := io.ReadFull(randReader, nonce); err != nil {
		return nil, fmt.Errorf("seal: reading nonce: %w", err)
	}
	ret, out := sliceForAppend(dst, headerSize+len(plaintext)+tagSize)
	aead.Seal(out[headerSize:headerSize], nonce, plaintext, scratch)
	copy(out, scratch[:headerSize])
	return ret, nil
}

// Open authenticates and decrypts an envelope made by [Box.Seal] with the
// same purpose and ad, and appends the plaintext to dst. current reports
// whether the envelope was sealed with the ring's current key; if not, the
// caller should re-seal the plaintext on its next write. Errors match
// [ErrInvalid] or [ErrUnknownKey].
//
// dst must not overlap envelope, except that envelope[HeaderSize:HeaderSize]
// as dst opens in place: the plaintext then overwrites the envelope, which
// is clobbered even when Open fails.
func (b *Box) Open(dst, envelope, ad []byte) (plaintext []byte, current bool, err error) {
	k, current, err := b.parse(envelope, versionRing)
	if err != nil {
		return nil, false, err
	}
	return b.open(dst, envelope, ad, k.aead, current)
}

// OpenBound is like [Box.Open] for envelopes made by [Box.SealBound] with
// the same purpose, ad and secret. secret must not be empty.
func (b *Box) OpenBound(dst, envelope, ad, secret []byte) ([]byte, bool, error) {
	if len(secret) == 0 {
		return nil, false, errEmptySecret
	}
	k, current, err := b.parse(envelope, versionBound)
	if err != nil {
		return nil, false, err
	}
	return b.open(dst, envelope, ad, boundAEAD(k, secret), current)
}

func (b *Box) open(dst, envelope, ad []byte, aead cipher.AEAD, current bool) ([]byte, bool, error) {
	p, scratch := gcmAD(envelope[:headerSize], ad)
	pt, err := aead.Open(dst, envelope[5:headerSize], envelope[headerSize:], scratch)
	putAD(p)
	if err != nil {
		return nil, false, fmt.Errorf("%w: authentication failed", ErrInvalid)
	}
	return pt, current, nil
}

// parse checks the envelope header and finds its key.
func (b *Box) parse(envelope []byte, version byte) (*boxKey, bool, error) {
	if b == nil || len(b.keys) == 0 {
		return nil, false, errors.New("seal: Open on a zero Box")
	}
	id, err := KeyID(envelope)
	if err != nil {
		return nil, false, err
	}
	if envelope[0] != version {
		if version == versionRing {
			return nil, false, fmt.Errorf("%w: bound envelope (version %d) needs OpenBound", ErrInvalid, envelope[0])
		}
		return nil, false, fmt.Errorf("%w: envelope is not bound (version %d)", ErrInvalid, envelope[0])
	}
	k, current := b.lookup(id)
	if k == nil {
		return nil, false, fmt.Errorf("%w %d", ErrUnknownKey, id)
	}
	return k, current, nil
}

// KeyID returns the ID of the key that sealed envelope, reading only its
// header. It does not authenticate the envelope. Errors match [ErrInvalid].
func KeyID(envelope []byte) (uint32, error) {
	if len(envelope) < Overhead {
		return 0, fmt.Errorf("%w: %d bytes, shorter than the %d-byte minimum", ErrInvalid, len(envelope), Overhead)
	}
	if v := envelope[0]; v != versionRing && v != versionBound {
		return 0, fmt.Errorf("%w: unknown format version %d", ErrInvalid, v)
	}
	id := binary.BigEndian.Uint32(envelope[1:5])
	if id == 0 {
		return 0, fmt.Errorf("%w: key ID 0", ErrInvalid)
	}
	return id, nil
}

// sliceForAppend extends in by n bytes, returning the whole slice and the
// n new bytes.
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	tail = head[len(in):]
	return
}
