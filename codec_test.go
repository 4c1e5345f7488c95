package sesh

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// The fast paths must agree with encoding/json byte for byte, and decode
// what it decodes.
func TestJSONCodecMatchesEncodingJSON(t *testing.T) {
	var c JSONCodec
	for _, v := range []any{0, -1, 42, math.MaxInt, math.MinInt, int64(math.MinInt64), true, false,
		"", "plain text", "<b>", "a&b", `q"uote`, "back\\slash", "tab\t", "é", "\u2028", "\x00", 3.5, []int{1}} {
		got, err := c.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(v)
		if !bytes.Equal(got, want) {
			t.Errorf("Encode(%#v): got %s, want %s", v, got, want)
		}
	}
}

func FuzzJSONCodecDecode(f *testing.F) {
	for _, s := range []string{"0", "-0", "01", "1e3", "-", "123456789012345678901234567890", "999999999999999999", "-9223372036854775808", "9223372036854775808", `"x"`, `"\u0041"`, `"a\"b"`, "true", "null", " 1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c JSONCodec
		var i1, i2 int
		e1, e2 := c.Decode(b, &i1), json.Unmarshal(b, &i2)
		if (e1 == nil) != (e2 == nil) || i1 != i2 {
			t.Fatalf("int %q: got %d, %v; encoding/json %d, %v", b, i1, e1, i2, e2)
		}
		var l1, l2 int64
		e1, e2 = c.Decode(b, &l1), json.Unmarshal(b, &l2)
		if (e1 == nil) != (e2 == nil) || l1 != l2 {
			t.Fatalf("int64 %q: got %d, %v; encoding/json %d, %v", b, l1, e1, l2, e2)
		}
		var s1, s2 string
		e1, e2 = c.Decode(b, &s1), json.Unmarshal(b, &s2)
		if (e1 == nil) != (e2 == nil) || s1 != s2 {
			t.Fatalf("string %q: got %q, %v; encoding/json %q, %v", b, s1, e1, s2, e2)
		}
		var b1, b2 bool
		e1, e2 = c.Decode(b, &b1), json.Unmarshal(b, &b2)
		if (e1 == nil) != (e2 == nil) || b1 != b2 {
			t.Fatalf("bool %q: mismatch", b)
		}
	})
}
