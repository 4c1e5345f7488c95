package seal_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/seshgo/sesh/seal"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The known-answer inputs. Changing the envelope format or the key
// derivation changes the golden envelopes below; that breaks every
// stored session, so it needs a new format version, not a new golden.
var (
	katKey = seal.Key{
		ID: 0x01020304,
		// An arbitrary fixed secret: SHA-256("1").
		Secret: []byte{
			0x6b, 0x86, 0xb2, 0x73, 0xff, 0x34, 0xfc, 0xe1, 0x9d, 0x6b, 0x80, 0x4e, 0xff, 0x5a, 0x3f, 0x57,
			0x47, 0xad, 0xa4, 0xea, 0xa2, 0x2f, 0x1d, 0x49, 0xc0, 0x1e, 0x52, 0xdd, 0xb7, 0x87, 0x5b, 0x4b,
		},
	}
	katPurpose = "session"
	katPlain   = []byte(`{"user":42}`)
	katAD      = []byte("store-key")
	katSecret  = []byte("raw-session-id")
	katNonce   = []byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab}
)

// Golden envelopes: version | key ID | nonce | ciphertext | tag.
const (
	katRing  = "0101020304a0a1a2a3a4a5a6a7a8a9aaab28074e8b9cf2c3104b76404b90b15297b4ad30128102ac0afd406d"
	katBound = "0201020304a0a1a2a3a4a5a6a7a8a9aaabc13065a163d6ff35f06f0fba8e493ea3b7e2a8c5259a814bd62250"
)

func TestKnownAnswer(t *testing.T) {
	defer seal.SetRandReader(fixedReader(katNonce))()
	box := mustRing(t, katKey).Box(katPurpose)

	env := mustSeal(t, box, katPlain, katAD)
	if got := hex.EncodeToString(env); got != katRing {
		t.Errorf("Seal envelope:\ngot  %s\nwant %s", got, katRing)
	}
	bound := mustSealBound(t, box, katPlain, katAD, katSecret)
	if got := hex.EncodeToString(bound); got != katBound {
		t.Errorf("SealBound envelope:\ngot  %s\nwant %s", got, katBound)
	}

	// The goldens open, and only as what they are.
	if pt, current, err := box.Open(nil, unhex(t, katRing), katAD); err != nil || !current || !bytes.Equal(pt, katPlain) {
		t.Errorf("Open(golden): got %q, %v, %v, want %q, true, nil", pt, current, err, katPlain)
	}
	if pt, current, err := box.OpenBound(nil, unhex(t, katBound), katAD, katSecret); err != nil || !current || !bytes.Equal(pt, katPlain) {
		t.Errorf("OpenBound(golden): got %q, %v, %v, want %q, true, nil", pt, current, err, katPlain)
	}
}

// hkdfSHA256 is RFC 5869 written out with crypto/hmac, independent of
// crypto/hkdf and of the argument order of its API.
func hkdfSHA256(ikm, salt, info []byte, n int) []byte {
	if salt == nil {
		salt = make([]byte, sha256.Size)
	}
	ext := hmac.New(sha256.New, salt)
	ext.Write(ikm)
	prk := ext.Sum(nil)
	var out, prev []byte
	for i := byte(1); len(out) < n; i++ {
		exp := hmac.New(sha256.New, prk)
		exp.Write(prev)
		exp.Write(info)
		exp.Write([]byte{i})
		prev = exp.Sum(nil)
		out = append(out, prev...)
	}
	return out[:n]
}

func TestHKDFReference(t *testing.T) {
	// RFC 5869, test case 1.
	got := hkdfSHA256(
		unhex(t, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
		unhex(t, "000102030405060708090a0b0c"),
		unhex(t, "f0f1f2f3f4f5f6f7f8f9"), 42)
	want := unhex(t, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
	if !bytes.Equal(got, want) {
		t.Errorf("reference HKDF, RFC 5869 case 1:\ngot  %x\nwant %x", got, want)
	}
}

// TestConstruction rebuilds envelopes from the documented format with
// the primitives alone and checks that Seal produces exactly them.
func TestConstruction(t *testing.T) {
	defer seal.SetRandReader(fixedReader(katNonce))()
	box := mustRing(t, katKey).Box(katPurpose)

	gcmSeal := func(key []byte, version byte) []byte {
		block, err := aes.NewCipher(key)
		if err != nil {
			t.Fatal(err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			t.Fatal(err)
		}
		header := append([]byte{version, 0x01, 0x02, 0x03, 0x04}, katNonce...)
		return aead.Seal(header, katNonce, katPlain, append(bytes.Clone(header), katAD...))
	}
	sub := hkdfSHA256(katKey.Secret, nil, []byte("sesh/v1/"+katPurpose), 32)

	want := gcmSeal(sub, 1)
	if got := mustSeal(t, box, katPlain, katAD); !bytes.Equal(got, want) {
		t.Errorf("Seal:\ngot  %x\nwant %x", got, want)
	}

	salt := sha256.Sum256(katSecret)
	want = gcmSeal(hkdfSHA256(sub, salt[:], []byte("sesh/v1/bound"), 32), 2)
	if got := mustSealBound(t, box, katPlain, katAD, katSecret); !bytes.Equal(got, want) {
		t.Errorf("SealBound:\ngot  %x\nwant %x", got, want)
	}
}

// TestAESGCMVector checks the AEAD layer against the GCM specification
// (McGrew and Viega), test case 16: AES-256 with additional data.
func TestAESGCMVector(t *testing.T) {
	block, err := aes.NewCipher(unhex(t, "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	got := aead.Seal(nil,
		unhex(t, "cafebabefacedbaddecaf888"),
		unhex(t, "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"),
		unhex(t, "feedfacedeadbeeffeedfacedeadbeefabaddad2"))
	want := unhex(t, "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"+
		"76fc6ece0f4e1768cddf8853bb2d551b")
	if !bytes.Equal(got, want) {
		t.Errorf("AES-256-GCM test case 16:\ngot  %x\nwant %x", got, want)
	}
}
