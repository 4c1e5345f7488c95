package sesh

import (
	"encoding/json"
	"strconv"
)

// Codec turns values into bytes and back. Values are encoded when they are
// set and decoded on demand into the caller's type, so no type needs
// registering. Decode must treat its input as untrusted: sealed records
// are authenticated, but a codec should still never instantiate types
// chosen by the data (encoding/gob is therefore not recommended).
type Codec interface {
	Encode(v any) ([]byte, error)
	Decode(data []byte, v any) error
}

// JSONCodec is the default [Codec], built on encoding/json. Integers,
// booleans and plain ASCII strings take a fast path that produces exactly
// the bytes encoding/json would.
type JSONCodec struct{}

// Encode implements [Codec].
func (JSONCodec) Encode(v any) ([]byte, error) {
	if b, ok := appendJSONScalar(nil, v); ok {
		return b, nil
	}
	return json.Marshal(v)
}

// appendJSONScalar appends the JSON of v to dst if v is an integer, a
// boolean or a plain string (the bytes encoding/json would write), and
// reports whether it was.
func appendJSONScalar(dst []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case int:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int64:
		return strconv.AppendInt(dst, x, 10), true
	case bool:
		return strconv.AppendBool(dst, x), true
	case string:
		if plainString(x) {
			dst = append(dst, '"')
			dst = append(dst, x...)
			return append(dst, '"'), true
		}
	}
	return dst, false
}

// Decode implements [Codec].
func (JSONCodec) Decode(data []byte, v any) error {
	if decodeJSONScalar(data, v) {
		return nil
	}
	return json.Unmarshal(data, v)
}

// decodeJSONScalar decodes data into v if v points to an integer, a
// boolean or a string and data is its plain JSON, the bytes that
// appendJSONScalar writes, and reports whether it did. It keeps v out of
// the heap: Lookup calls it before the Codec interface, through which a
// pointer to its result would escape.
func decodeJSONScalar(data []byte, v any) bool {
	switch p := v.(type) {
	case *int:
		if n, ok := plainIntValue(data, strconv.IntSize); ok {
			*p = int(n)
			return true
		}
	case *int64:
		if n, ok := plainIntValue(data, 64); ok {
			*p = n
			return true
		}
	case *bool:
		switch string(data) {
		case "true":
			*p = true
			return true
		case "false":
			*p = false
			return true
		}
	case *string:
		if n := len(data); n >= 2 && data[0] == '"' && data[n-1] == '"' && plainString(string(data[1:n-1])) {
			*p = string(data[1 : n-1])
			return true
		}
	}
	return false
}

// plainString reports whether encoding/json writes s between quotes
// unchanged: printable ASCII without quote, backslash or the HTML
// characters it escapes.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// plainIntValue returns the value of b if it is a JSON integer (see
// plainInt) that fits in bitSize bits. Up to 18 digits, which cannot
// overflow an int64, it adds them up itself.
func plainIntValue(b []byte, bitSize int) (int64, bool) {
	if !plainInt(b) {
		return 0, false
	}
	if len(b) > 18 {
		n, err := strconv.ParseInt(string(b), 10, bitSize)
		return n, err == nil
	}
	d := b
	if d[0] == '-' {
		d = d[1:]
	}
	var n int64
	for _, c := range d {
		n = n*10 + int64(c-'0')
	}
	if b[0] == '-' {
		n = -n
	}
	if bitSize < 64 && (n < -1<<(bitSize-1) || n > 1<<(bitSize-1)-1) {
		return 0, false
	}
	return n, true
}

// plainInt reports whether b is a JSON integer: -?(0|[1-9][0-9]*).
func plainInt(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
