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

// newSessionID returns a random session ID, reading it through scratch,
// which the caller keeps on the heap already (a local array would escape
// through the io.Reader and cost an allocation on every new session).
func newSessionID(scratch *[idBytes]byte) (sessionID, error) {
	if _, err := io.ReadFull(randReader, scratch[:]); err != nil {
		return sessionID{}, fmt.Errorf("sesh: reading random session ID: %w", err)
	}
	return sessionID(*scratch), nil
}

// parseSessionID decodes a cookie value. Anything but the exact canonical
// encoding of 32 bytes is refused, before any store is asked.
func parseSessionID(s string) (sessionID, bool) {
	var id sessionID
	if len(s) != idLen {
		return id, false
	}
	n, err := idEncoding.Decode(id[:], []byte(s))
	if err != nil || n != idBytes {
		return sessionID{}, false
	}
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

// newDeviceID returns a random ID naming one browser's sessions across
// renewals, so that revoking a session can find its remember-me token.
// It is not a credential. scratch is as for newSessionID.
func newDeviceID(scratch *[idBytes]byte) string {
	b := scratch[:12]
	if _, err := io.ReadFull(randReader, b); err != nil {
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
