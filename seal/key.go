package seal

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
)

// KeySize is the length of a master key secret in bytes.
const KeySize = 32

// ExampleKey is a syntactically valid key list, in the form [ParseRing]
// reads, for documentation and examples: key ID 1 with the secret
// 0x00, 0x01, …, 0x1f. Because it is published, [NewRing] and [ParseRing]
// refuse it (and any key with this secret) with [ErrWeakKey]. Generate
// real keys with [GenerateKey].
const ExampleKey = "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"

var (
	// ErrUnknownKey means the envelope is well formed but sealed under a
	// key ID that is not in the ring: a deployment fault, such as an old
	// key retired too early or a server lacking a new key.
	ErrUnknownKey = errors.New("seal: unknown key ID")
	// ErrInvalid means the envelope is malformed, truncated, has trailing
	// bytes, has an unknown format version, or fails authentication
	// (tampering, or the wrong ad, purpose or bound secret).
	ErrInvalid = errors.New("seal: invalid envelope")
	// ErrWeakKey means a key list is empty, or a key's secret is not 32
	// bytes, is a single repeated byte (such as all zeros), is a published
	// example key, or is shared by two key IDs.
	ErrWeakKey = errors.New("seal: weak key")
)

// publishedSecrets are secrets that appear in documentation or well-known
// test vectors and must never protect real data.
var publishedSecrets = [][]byte{
	// ExampleKey: 0x00..0x1f.
	{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
		0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f},
	// The AES-256 key of the GCM specification's test cases 13-18.
	{0xfe, 0xff, 0xe9, 0x92, 0x86, 0x65, 0x73, 0x1c, 0x6d, 0x6a, 0x8f, 0x94, 0x67, 0x30, 0x83, 0x08,
		0xfe, 0xff, 0xe9, 0x92, 0x86, 0x65, 0x73, 0x1c, 0x6d, 0x6a, 0x8f, 0x94, 0x67, 0x30, 0x83, 0x08},
}

// Key is one master key of a ring.
type Key struct {
	ID     uint32 // nonzero
	Secret []byte // exactly KeySize bytes
}

// GenerateKey returns a key with the given nonzero ID and a random secret
// from crypto/rand.
func GenerateKey(id uint32) (Key, error) {
	if id == 0 {
		return Key{}, errors.New("seal: key ID must be nonzero")
	}
	secret := make([]byte, KeySize)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, fmt.Errorf("seal: generating key: %w", err)
	}
	return Key{ID: id, Secret: secret}, nil
}

// Encode returns the key as "ID:secret" with the secret in unpadded
// base64url: one item of the list [ParseRing] reads. It reveals the secret:
// use it only to write configuration.
func (k Key) Encode() string {
	return strconv.FormatUint(uint64(k.ID), 10) + ":" + base64.RawURLEncoding.EncodeToString(k.Secret)
}

// String implements [fmt.Stringer] without the secret, so a key printed
// by mistake with %v or in an error does not leak; use [Key.Encode] to
// write configuration.
func (k Key) String() string {
	return "seal.Key{ID:" + strconv.FormatUint(uint64(k.ID), 10) + ", Secret:<redacted>}"
}

// GoString implements [fmt.GoStringer] for %#v, without the secret.
func (k Key) GoString() string {
	return "seal.Key{ID:" + strconv.FormatUint(uint64(k.ID), 10) + ", Secret:<redacted>}"
}

// LogValue implements [slog.LogValuer]: it logs the key ID, never the secret.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.Uint64("id", uint64(k.ID)))
}

// keyError describes a bad key without revealing its secret.
type keyError struct {
	id  uint32 // 0 when unknown
	msg string
	err error // sentinel, may be nil
}

func (e *keyError) Error() string {
	if e.id == 0 {
		return "seal: " + e.msg
	}
	return "seal: key " + strconv.FormatUint(uint64(e.id), 10) + ": " + e.msg
}

func (e *keyError) Unwrap() error { return e.err }

// checkSecret reports why secret is unusable, or nil.
func checkSecret(id uint32, secret []byte) error {
	if len(secret) != KeySize {
		return &keyError{id, fmt.Sprintf("secret is %d bytes, want %d", len(secret), KeySize), ErrWeakKey}
	}
	if bytes.Count(secret, secret[:1]) == len(secret) {
		return &keyError{id, "secret is a single repeated byte", ErrWeakKey}
	}
	for _, p := range publishedSecrets {
		if subtle.ConstantTimeCompare(secret, p) == 1 {
			return &keyError{id, "secret is a published example key; generate one with seal.GenerateKey", ErrWeakKey}
		}
	}
	return nil
}

// Ring is an ordered set of master keys: the first is current and seals,
// the others only open. A Ring is safe for concurrent use.
type Ring struct {
	keys  []Key    // private copies; keys[0] is current
	boxes sync.Map // purpose string -> *Box
}

// NewRing returns a ring of keys, the first being current. It copies the
// secrets. It rejects an empty list, a zero or duplicate ID, and any weak
// key (see [ErrWeakKey]).
func NewRing(keys ...Key) (*Ring, error) {
	if len(keys) == 0 {
		return nil, &keyError{0, "no keys", ErrWeakKey}
	}
	r := &Ring{keys: make([]Key, len(keys))}
	for i, k := range keys {
		if k.ID == 0 {
			return nil, &keyError{0, fmt.Sprintf("key #%d: key ID must be nonzero", i+1), nil}
		}
		if err := checkSecret(k.ID, k.Secret); err != nil {
			return nil, err
		}
		for _, prev := range r.keys[:i] {
			if prev.ID == k.ID {
				return nil, &keyError{k.ID, "duplicate key ID", nil}
			}
			if subtle.ConstantTimeCompare(prev.Secret, k.Secret) == 1 {
				return nil, &keyError{k.ID, fmt.Sprintf("same secret as key %d", prev.ID), ErrWeakKey}
			}
		}
		r.keys[i] = Key{ID: k.ID, Secret: bytes.Clone(k.Secret)}
	}
	return r, nil
}

// ParseRing parses a key list such as the SESH_KEYS environment variable:
// comma-separated "ID:secret" items, current key first, spaces around
// items allowed. Secrets are unpadded base64url as [Key.String] writes
// them; padding and the standard base64 alphabet are accepted too. Errors
// name the item and never contain a secret.
func ParseRing(s string) (*Ring, error) {
	if strings.TrimSpace(s) == "" {
		return nil, &keyError{0, "no keys", ErrWeakKey}
	}
	var keys []Key
	for i, item := range strings.Split(s, ",") {
		k, err := parseKey(item)
		if err != nil {
			return nil, fmt.Errorf("seal: key list item %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	return NewRing(keys...)
}

// parseErr is an error in a key list item; it never quotes the input.
type parseErr string

func (e parseErr) Error() string { return string(e) }

func parseKey(item string) (Key, error) {
	item = strings.TrimSpace(item)
	if item == "" {
		return Key{}, parseErr("empty item")
	}
	idStr, secStr, ok := strings.Cut(item, ":")
	if !ok {
		return Key{}, parseErr(`missing ":" between key ID and secret`)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(idStr), 10, 32)
	if err != nil {
		return Key{}, parseErr("key ID is not a decimal number between 1 and 4294967295")
	}
	if id == 0 {
		return Key{}, parseErr("key ID must be nonzero")
	}
	secStr = strings.TrimRight(strings.TrimSpace(secStr), "=")
	enc := base64.RawURLEncoding
	if strings.ContainsAny(secStr, "+/") {
		enc = base64.RawStdEncoding
	}
	secret, err := enc.Strict().DecodeString(secStr)
	if err != nil {
		// err only carries a byte offset, never the input.
		return Key{}, fmt.Errorf("key %d: secret is not valid base64url: %w", id, err)
	}
	return Key{ID: uint32(id), Secret: secret}, nil
}

// Current returns the ID of the current key, which seals.
func (r *Ring) Current() uint32 { return r.keys[0].ID }

// IDs returns the key IDs in ring order, current first.
func (r *Ring) IDs() []uint32 {
	ids := make([]uint32, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.ID
	}
	return ids
}

// Box returns the [Box] for purpose, deriving its keys on first use and
// caching it. Distinct purposes (for example "session" and "csrf") get
// independent keys. Box panics if purpose is empty.
func (r *Ring) Box(purpose string) *Box {
	if purpose == "" {
		panic("seal: empty purpose")
	}
	if b, ok := r.boxes.Load(purpose); ok {
		return b.(*Box)
	}
	b, _ := r.boxes.LoadOrStore(purpose, newBox(r.keys, purpose))
	return b.(*Box)
}
