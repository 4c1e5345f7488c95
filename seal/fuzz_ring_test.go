package seal_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/seshgo/sesh/seal"
)

// FuzzParseRing feeds arbitrary key lists (the SESH_KEYS variable) to
// ParseRing. It must never panic; its errors must never quote a secret,
// since configuration errors end up in logs; and a ring it accepts has
// one key per item, current first, whatever the spaces around the items.
func FuzzParseRing(f *testing.F) {
	k1, k2 := testKey(1), testKey(2)
	std := strings.NewReplacer("-", "+", "_", "/").Replace(k2.Encode())
	for _, s := range []string{
		k1.Encode(),
		k2.Encode() + "," + k1.Encode(),
		" " + k2.Encode() + " ,\t" + k1.Encode() + "= ",
		std + "==",
		k1.Encode() + "," + k1.Encode(),
		k1.Encode()[:20],
		k1.Encode() + "A",
		"0:" + k1.Encode()[2:],
		"4294967296:" + k1.Encode()[2:],
		"1:" + strings.Repeat("A", 43),
		seal.ExampleKey,
		"1:",
		":",
		",",
		"",
		"1:not valid base64url at all",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := seal.ParseRing(s)
		items := strings.Split(s, ",")
		if err != nil {
			for _, it := range items {
				_, secret, _ := strings.Cut(it, ":")
				secret = strings.TrimSpace(secret)
				if len(secret) >= 12 && strings.Trim(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=") == "" &&
					strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q quotes a secret", err)
				}
			}
			return
		}
		ids := r.IDs()
		if len(ids) != len(items) || ids[0] != r.Current() {
			t.Fatalf("%d items gave IDs %v, current %d", len(items), ids, r.Current())
		}
		spaced := make([]string, len(items))
		for i, it := range items {
			spaced[i] = "\t " + it + " "
		}
		r2, err := seal.ParseRing(strings.Join(spaced, ","))
		if err != nil || !slices.Equal(r2.IDs(), ids) {
			t.Fatalf("with spaces around the items: got %v, %v, want IDs %v", r2, err, ids)
		}
		env := mustSeal(t, r.Box("fuzz"), []byte("pt"), nil)
		if pt, current, err := r2.Box("fuzz").Open(nil, env, nil); err != nil || !current || !bytes.Equal(pt, []byte("pt")) {
			t.Fatalf("the same list with spaces does not open an envelope: %v", err)
		}
	})
}
