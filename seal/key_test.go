package seal_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/seshgo/sesh/seal"
)

func TestNewRingRejects(t *testing.T) {
	good := testKey(1).Secret
	example, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(seal.ExampleKey, "1:"))
	if err != nil {
		t.Fatal(err)
	}
	gcmSpecKey, _ := hex.DecodeString("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
	tests := []struct {
		name    string
		keys    []seal.Key
		weak    bool   // error must match ErrWeakKey
		msgPart string // error text must contain this
	}{
		{"no keys", nil, true, "no keys"},
		{"short", []seal.Key{{ID: 2, Secret: good[:16]}}, true, "seal: key 2: secret is 16 bytes, want 32"},
		{"long", []seal.Key{{ID: 3, Secret: append(bytes.Clone(good), 1)}}, true, "secret is 33 bytes, want 32"},
		{"missing", []seal.Key{{ID: 4}}, true, "secret is 0 bytes, want 32"},
		{"zero", []seal.Key{{ID: 5, Secret: make([]byte, 32)}}, true, "single repeated byte"},
		{"repeated byte", []seal.Key{{ID: 6, Secret: bytes.Repeat([]byte{0xa5}, 32)}}, true, "single repeated byte"},
		{"ExampleKey", []seal.Key{{ID: 1, Secret: example}}, true, "published example key"},
		{"ExampleKey secret under another ID", []seal.Key{testKey(1), {ID: 9, Secret: example}}, true, "key 9: secret is a published"},
		{"GCM spec key", []seal.Key{{ID: 7, Secret: gcmSpecKey}}, true, "published example key"},
		{"ID 0", []seal.Key{{ID: 0, Secret: good}}, false, "nonzero"},
		{"duplicate IDs", []seal.Key{testKey(1), {ID: 1, Secret: testKey(2).Secret}}, false, "key 1: duplicate key ID"},
		{"shared secret", []seal.Key{testKey(1), {ID: 2, Secret: good}}, true, "key 2: same secret as key 1"},
		{"weak old key", []seal.Key{testKey(1), {ID: 2, Secret: good[:31]}}, true, "key 2: secret is 31 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := seal.NewRing(tt.keys...)
			if err == nil {
				t.Fatalf("NewRing: got ring %v, want an error", r.IDs())
			}
			if got := errors.Is(err, seal.ErrWeakKey); got != tt.weak {
				t.Errorf("errors.Is(%q, ErrWeakKey): got %v, want %v", err, got, tt.weak)
			}
			if !strings.Contains(err.Error(), tt.msgPart) {
				t.Errorf("error text: got %q, want it to contain %q", err, tt.msgPart)
			}
			for _, k := range tt.keys {
				assertNoSecret(t, err.Error(), k.Secret)
			}
		})
	}
}

// assertNoSecret fails if text shows secret in any usual encoding.
func assertNoSecret(t *testing.T, text string, secret []byte) {
	t.Helper()
	if len(secret) < 4 {
		return
	}
	for _, enc := range []string{
		base64.RawURLEncoding.EncodeToString(secret),
		base64.StdEncoding.EncodeToString(secret),
		hex.EncodeToString(secret),
		fmt.Sprint(secret),
		string(secret),
	} {
		if strings.Contains(text, enc) {
			t.Errorf("text %q reveals the secret", text)
		}
	}
}

func TestParseRing(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	std := base64.StdEncoding.EncodeToString(k2.Secret) // padded, may use + and /
	tests := []struct {
		in   string
		want []uint32
	}{
		{k1.Encode(), []uint32{1}},
		{k2.Encode() + "," + k1.Encode(), []uint32{2, 1}},
		{"  " + k2.Encode() + " ,\t" + k1.Encode() + "\n", []uint32{2, 1}},
		{k1.Encode() + "=", []uint32{1}},
		{"2:" + std, []uint32{2}},
		{"4294967295:" + base64.RawURLEncoding.EncodeToString(k1.Secret), []uint32{4294967295}},
	}
	for _, tt := range tests {
		r, err := seal.ParseRing(tt.in)
		if err != nil {
			t.Errorf("ParseRing(item list %v): got error %v, want nil", tt.want, err)
			continue
		}
		if got := r.IDs(); !slices.Equal(got, tt.want) {
			t.Errorf("IDs: got %v, want %v", got, tt.want)
		}
		if got := r.Current(); got != tt.want[0] {
			t.Errorf("Current: got %d, want %d", got, tt.want[0])
		}
	}

	// Keys parsed from their String form are the same keys.
	env := mustSeal(t, mustRing(t, k2, k1).Box("p"), []byte("x"), nil)
	r, err := seal.ParseRing(k2.Encode() + "," + k1.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Box("p").Open(nil, env, nil); err != nil {
		t.Errorf("Open with parsed ring: got %v, want nil", err)
	}
}

func TestParseRingRejects(t *testing.T) {
	valid := base64.RawURLEncoding.EncodeToString(testKey(1).Secret)
	valid2 := base64.RawURLEncoding.EncodeToString(testKey(2).Secret)
	tests := []struct {
		in      string
		weak    bool
		msgPart string
	}{
		{"", true, "no keys"},
		{"   ", true, "no keys"},
		{",", false, "item 1: empty"},
		{"1:" + valid + ",", false, "item 2: empty"},
		{"1", false, `item 1: missing ":"`},
		{valid, false, `item 1: missing ":"`},
		{"x:abc", false, "item 1: key ID is not a decimal number"},
		{"-1:" + valid, false, "key ID is not a decimal number"},
		{"4294967296:" + valid, false, "key ID is not a decimal number"},
		{"0:" + valid, false, "nonzero"},
		{":" + valid, false, "key ID is not a decimal number"},
		{"1:!!", false, "item 1: key 1: secret is not valid base64url"},
		{"1:" + valid[:10] + "!" + valid[11:], false, "not valid base64url"},
		{"1:-" + valid[1:] + "+", false, "not valid base64url"}, // mixed alphabets
		{"1:", true, "secret is 0 bytes"},
		{"1:abc", true, "secret is 2 bytes"},
		{"1:" + valid + ",1:" + valid2, false, "key 1: duplicate key ID"},
		{"1:" + valid + ",2:" + valid, true, "same secret"},
		{seal.ExampleKey, true, "published example key"},
		{"5:" + strings.TrimPrefix(seal.ExampleKey, "1:"), true, "published example key"},
		{"1:" + base64.RawURLEncoding.EncodeToString(make([]byte, 32)), true, "single repeated byte"},
	}
	for _, tt := range tests {
		r, err := seal.ParseRing(tt.in)
		if err == nil {
			t.Errorf("ParseRing(%q): got ring %v, want an error", tt.in, r.IDs())
			continue
		}
		if got := errors.Is(err, seal.ErrWeakKey); got != tt.weak {
			t.Errorf("ParseRing(%q): errors.Is(%q, ErrWeakKey): got %v, want %v", tt.in, err, got, tt.weak)
		}
		if !strings.Contains(err.Error(), tt.msgPart) {
			t.Errorf("ParseRing(%q): error text %q, want it to contain %q", tt.in, err, tt.msgPart)
		}
		for _, s := range []string{valid, valid2, valid[:10], valid[11:]} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("ParseRing(%q): error %q reveals the secret", tt.in, err)
			}
		}
	}
}

func TestKeyFormatting(t *testing.T) {
	k := testKey(7)
	b64 := base64.RawURLEncoding.EncodeToString(k.Secret)
	if got, want := k.Encode(), "7:"+b64; got != want {
		t.Errorf("String: got %q, want %q", got, want)
	}

	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("loaded", "key", k)
	if !strings.Contains(buf.String(), "key.id=7") {
		t.Errorf("slog output %q, want it to contain key.id=7", buf.String())
	}
	assertNoSecret(t, buf.String(), k.Secret)
	buf.Reset()
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("loaded", "key", k)
	if !strings.Contains(buf.String(), `"key":{"id":7}`) {
		t.Errorf("slog JSON output %q, want it to contain %q", buf.String(), `"key":{"id":7}`)
	}
	assertNoSecret(t, buf.String(), k.Secret)

	gs := fmt.Sprintf("%#v", k)
	if want := "seal.Key{ID:7, Secret:<redacted>}"; gs != want {
		t.Errorf("%%#v: got %q, want %q", gs, want)
	}
	assertNoSecret(t, gs, k.Secret)
}

func TestGenerateKey(t *testing.T) {
	if _, err := seal.GenerateKey(0); err == nil {
		t.Error("GenerateKey(0): got nil error, want an error")
	}
	a, err := seal.GenerateKey(1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := seal.GenerateKey(2)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != 1 || len(a.Secret) != seal.KeySize {
		t.Errorf("GenerateKey(1): got ID %d, %d-byte secret, want 1, %d", a.ID, len(a.Secret), seal.KeySize)
	}
	if bytes.Equal(a.Secret, b.Secret) {
		t.Error("two generated secrets are equal")
	}
	if _, err := seal.ParseRing(a.Encode() + "," + b.Encode()); err != nil {
		t.Errorf("ParseRing of generated keys: got %v, want nil", err)
	}
}

func TestRing(t *testing.T) {
	k1 := testKey(1)
	secret := bytes.Clone(k1.Secret)
	r := mustRing(t, testKey(3), seal.Key{ID: 1, Secret: secret})
	env := mustSeal(t, mustRing(t, k1).Box("p"), []byte("x"), nil)
	clear(secret) // NewRing must have copied it
	if _, _, err := r.Box("p").Open(nil, env, nil); err != nil {
		t.Errorf("Open after the caller reused the secret slice: got %v, want nil", err)
	}

	if got := r.Current(); got != 3 {
		t.Errorf("Current: got %d, want 3", got)
	}
	ids := r.IDs()
	if !slices.Equal(ids, []uint32{3, 1}) {
		t.Errorf("IDs: got %v, want [3 1]", ids)
	}
	ids[0] = 99
	if got := r.Current(); got != 3 {
		t.Errorf("Current after modifying IDs result: got %d, want 3", got)
	}

	if a, b := r.Box("session"), r.Box("session"); a != b {
		t.Error("Box(session) twice: got two boxes, want the cached one")
	}
	if a, b := r.Box("session"), r.Box("csrf"); a == b {
		t.Error("Box(session) and Box(csrf): got the same box, want distinct")
	}

	defer func() {
		if recover() == nil {
			t.Error("Box(\"\"): got no panic, want a panic")
		}
	}()
	r.Box("")
}

func TestKeyPrintingHidesSecret(t *testing.T) {
	k, err := seal.GenerateKey(3)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %s", k, k, k), fmt.Sprint(struct{ K seal.Key }{k})} {
		assertNoSecret(t, s, k.Secret)
	}
	if !strings.HasPrefix(k.Encode(), "3:") {
		t.Fatalf("Encode: got %q", k.Encode())
	}
}
