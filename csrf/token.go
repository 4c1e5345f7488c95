package csrf

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"

	"github.com/seshgo/sesh"
)

// secretName is the name of the session secret tokens are derived from.
const secretName = "csrf"

const (
	secretLen   = 32
	tokenPrefix = "v1."
	// tokenLen is the length of every token: the prefix and 64 bytes
	// (pad ‖ pad⊕secret) in unpadded base64url.
	tokenLen = len(tokenPrefix) + (2*secretLen*8+5)/6
)

var enc = base64.RawURLEncoding.Strict()

// Token returns a token for the request's session, masked afresh: every
// call returns a different string, and all of them stay valid until the
// session logs in, renews or ends. It creates the session's secret, and so
// the session, if needed; call it before the response starts, so that the
// session cookie can be set.
//
// Put the token in a hidden form field or give it to scripts (in a <meta>
// element, for the header); never in a URL. A response carrying a token
// belongs to one session: sesh marks it Vary: Cookie, but keep it out of
// shared caches (Cache-Control: private or no-store).
func Token(r *http.Request) (string, error) {
	secret, err := sesh.FromContext(r.Context()).Secret(secretName, true)
	if err != nil {
		return "", fmt.Errorf("csrf: %w", err)
	}
	var pad [secretLen]byte
	if _, err := rand.Read(pad[:]); err != nil {
		return "", fmt.Errorf("csrf: reading random pad: %w", err)
	}
	return mask(secret, pad[:]), nil
}

// TemplateField returns a hidden form field carrying a fresh [Token] for
// the request, named after [Config.FieldName]:
//
//	<input type="hidden" name="csrf_token" value="...">
//
// It returns "" if no token could be made (the request has no usable
// session); the form then fails the check, and the error is logged.
func (p *Protection) TemplateField(r *http.Request) template.HTML {
	tok, err := Token(r)
	if err != nil {
		p.logf().ErrorContext(r.Context(), "csrf: no token for the form", "error", err.Error())
		return ""
	}
	return template.HTML(`<input type="hidden" name="` + template.HTMLEscapeString(p.fieldName()) +
		`" value="` + tok + `">`) // tok is base64url and "v1.": nothing to escape
}

// mask returns the token of secret under pad, both secretLen bytes.
func mask(secret, pad []byte) string {
	var buf [2 * secretLen]byte
	copy(buf[:secretLen], pad)
	subtle.XORBytes(buf[secretLen:], pad, secret)
	return tokenPrefix + enc.EncodeToString(buf[:])
}

// decode returns the unmasked secret of a well-formed token. It checks
// the length, prefix and alphabet before decoding, and accepts only the
// canonical encoding.
func decode(tok string) ([secretLen]byte, bool) {
	var out [secretLen]byte
	if len(tok) != tokenLen || tok[:len(tokenPrefix)] != tokenPrefix {
		return out, false
	}
	body := tok[len(tokenPrefix):]
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return out, false
		}
	}
	var buf [2 * secretLen]byte
	n, err := enc.Decode(buf[:], []byte(body))
	if err != nil || n != len(buf) {
		return out, false
	}
	subtle.XORBytes(out[:], buf[:secretLen], buf[secretLen:])
	return out, true
}

// verify reports whether tok is a masking of secret. The comparison is in
// constant time; nothing is compared unless both are well formed.
func verify(secret []byte, tok string) bool {
	if len(secret) != secretLen {
		return false
	}
	got, ok := decode(tok)
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare(got[:], secret) == 1
}
