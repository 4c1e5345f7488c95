package csrf_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/seshgo/sesh/csrf"
)

// refVerify is an independent statement of what a valid token is: "v1."
// and the canonical unpadded base64url encoding of pad ‖ pad⊕secret.
func refVerify(secret []byte, tok string) bool {
	body, ok := strings.CutPrefix(tok, "v1.")
	if !ok || len(secret) != 32 || strings.ContainsAny(body, "\r\n") {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) != 64 || base64.RawURLEncoding.EncodeToString(raw) != body {
		return false
	}
	for i := range 32 {
		if raw[i]^raw[32+i] != secret[i] {
			return false
		}
	}
	return true
}

// FuzzVerifyToken: arbitrary strings never panic and never verify unless
// they are a masking of the secret; every masking of the secret verifies,
// and no masking of another secret does.
func FuzzVerifyToken(f *testing.F) {
	secret := bytes.Repeat([]byte{0xA5, 0x3C, 0x00, 0xFF}, 8)
	pad := make([]byte, 32)
	tok := csrf.Mask(secret, pad)
	f.Add(tok, pad)
	f.Add(csrf.Mask(secret, secret), secret)
	f.Add("", []byte{})
	f.Add("v1.", []byte{1})
	f.Add("v1."+strings.Repeat("A", csrf.TokenLen-3), bytes.Repeat([]byte{7}, 32))
	f.Add(tok[:len(tok)-1]+"B", []byte("short"))
	f.Add(tok+"=", bytes.Repeat([]byte{0xFF}, 40))
	f.Add("v1."+strings.Repeat("+/", 43), []byte(nil))
	f.Add(strings.Replace(tok, "A", "\n", 1), pad)
	f.Add(nonCanonical(tok), pad)
	f.Fuzz(func(t *testing.T, tok string, pad []byte) {
		if got, want := csrf.Verify(secret, tok), refVerify(secret, tok); got != want {
			t.Fatalf("Verify(%q): got %v, want %v", tok, got, want)
		}
		for _, s := range [][]byte{nil, {}, secret[:31], append(secret[:32:32], 0)} {
			if csrf.Verify(s, tok) {
				t.Fatalf("Verify with a %d-byte secret accepted %q", len(s), tok)
			}
		}
		if len(pad) < 32 {
			return
		}
		pad = pad[:32]
		minted := csrf.Mask(secret, pad)
		if len(minted) != csrf.TokenLen {
			t.Fatalf("Mask: got length %d, want %d", len(minted), csrf.TokenLen)
		}
		if !csrf.Verify(secret, minted) {
			t.Fatalf("Verify(Mask(secret, %x)) = false, want true", pad)
		}
		other := bytes.Clone(secret)
		other[pad[0]%32] ^= 1 << (pad[1] % 8)
		if csrf.Verify(other, minted) {
			t.Fatalf("a token of one secret verified for another")
		}
	})
}
