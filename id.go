package sesh

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
)

// idBytes is the size of a session ID: 256 bits.
const idBytes = 32

// idLen is the length of an encoded session ID (unpadded base64url).
const idLen = 43

// randReader is the source of IDs and tokens; tests swap it to prove
// that a failing source fails closed.
var randReader io.Reader = rand.Reader

var idEncoding = base64.RawURLEncoding.Strict()

// sessionID is a raw 256-bit session ID. It never reaches a store or a log.
type sessionID [idBytes]byte

// newSessionID returns a random session ID, taken from rnd.
func newSessionID(rnd *randBuf) (sessionID, error) {
	b, err := rnd.take(idBytes)
	if err != nil {
		return sessionID{}, fmt.Errorf("sesh: reading random session ID: %w", err)
	}
	return sessionID(b), nil
}

// randBuf hands out bytes read from randReader a block at a time, each
// byte once, so that a new session's device ID and session ID cost one
// read of the source instead of two. A Session keeps one on the heap
// already (a local array would escape through the io.Reader and cost an
// allocation). The zero value is empty.
type randBuf struct {
	b    [idBytes + deviceIDBytes]byte
	left uint8 // bytes at the end of b not handed out yet
}

// take returns the next n random bytes, n <= len(r.b), reading a new
// block when fewer are left.
func (r *randBuf) take(n int) ([]byte, error) {
	if int(r.left) < n {
		if _, err := io.ReadFull(randReader, r.b[:]); err != nil {
			r.left = 0
			return nil, err
		}
		r.left = uint8(len(r.b))
	}
	i := len(r.b) - int(r.left)
	r.left -= uint8(n)
	return r.b[i : i+n : i+n], nil
}

// idValues is the inverse of idEncoding's alphabet: the value of each of
// its characters, 0xff for any other byte. The alphabet is read from
// idEncoding itself: a byte's first character carries its top six bits.
var idValues = func() (v [256]byte) {
	for i := range v {
		v[i] = 0xff
	}
	for i := range 64 {
		var c [2]byte
		idEncoding.Encode(c[:], []byte{byte(i << 2)})
		v[c[0]] = byte(i)
	}
	return v
}()

// parseSessionID decodes a cookie value. Anything but the exact canonical
// encoding of 32 bytes is refused, before any store is asked: what
// idEncoding.Decode accepts for 43 characters, without its copy of the
// string and its general loop, since every request with a cookie parses
// one.
func parseSessionID(s string) (sessionID, bool) {
	var id sessionID
	if len(s) != idLen {
		return id, false
	}
	var bad byte        // any character outside the alphabet sets its top bits
	for i := range 10 { // 4 characters make 3 bytes
		g, o := s[4*i:4*i+4], id[3*i:3*i+3]
		a, b, c, d := idValues[g[0]], idValues[g[1]], idValues[g[2]], idValues[g[3]]
		bad |= a | b | c | d
		v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(d)
		o[0], o[1], o[2] = byte(v>>16), byte(v>>8), byte(v)
	}
	// The last three characters carry 18 bits: two bytes, then two bits
	// that the canonical encoding leaves zero.
	a, b, c := idValues[s[40]], idValues[s[41]], idValues[s[42]]
	bad |= a | b | c
	v := uint32(a)<<12 | uint32(b)<<6 | uint32(c)
	if bad&0xc0 != 0 || v&3 != 0 {
		return sessionID{}, false
	}
	id[30], id[31] = byte(v>>10), byte(v>>2)
	return id, true
}

// encode returns the cookie form of the ID.
func (id sessionID) encode() string {
	var b [idLen]byte
	idEncoding.Encode(b[:], id[:])
	return string(b[:])
}

// String and LogValue keep IDs out of logs and error text even when one
// is printed by mistake.
func (id sessionID) String() string { return "REDACTED" }

// LogValue implements [slog.LogValuer].
func (id sessionID) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// deviceIDBytes is the size of a device ID: 96 bits.
const deviceIDBytes = 12

// newDeviceID returns a random ID naming one browser's sessions across
// renewals, so that revoking a session can find its remember-me token.
// It is not a credential: without a random source it is left out.
func newDeviceID(rnd *randBuf) string {
	b, err := rnd.take(deviceIDBytes)
	if err != nil {
		return ""
	}
	var s [16]byte
	idEncoding.Encode(s[:], b)
	return string(s[:])
}

// storeKey derives the store key of a session ID. The prefix separates
// session keys from other record kinds.
func (id sessionID) storeKey() Key {
	h := sha256.New()
	h.Write([]byte("sesh/v1/session\x00"))
	h.Write(id[:])
	var k Key
	h.Sum(k[:0])
	return k
}
