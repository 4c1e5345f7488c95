package sesh

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func sampleRecord() *record {
	return &record{
		created:  1_700_000_000_000,
		lastSeen: 1_700_000_100_000,
		authTime: 1_700_000_050_000,
		idle:     time.Minute,
		absolute: time.Hour,
		flags:    flagRemembered,
		user:     "alice",
		ip:       "192.0.2.1",
		ua:       "Mozilla/5.0",
		values: values{
			{"\x00f0001", []byte("info\x00hi")},
			{"\x01cart\x00id", []byte(`"x"`)},
			{"a", []byte(`1`)},
			{"empty", []byte{}},
		},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := sampleRecord()
	b := r.appendEncode(nil)
	if len(b) > r.encodedSize() {
		t.Fatalf("encodedSize %d below actual %d", r.encodedSize(), len(b))
	}
	got, err := decodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.appendEncode(nil), b) {
		t.Fatal("re-encoding differs")
	}
	if got.user != "alice" || got.authTime != r.authTime || got.idle != time.Minute || len(got.values) != 4 {
		t.Fatalf("got %+v", got)
	}
}

func TestRecordDecodeRejects(t *testing.T) {
	good := sampleRecord().appendEncode(nil)
	cases := map[string][]byte{
		"empty":      nil,
		"format":     append([]byte{2}, good[1:]...),
		"trailing":   append(append([]byte{}, good...), 0),
		"huge count": {1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"zero created": func() []byte {
			r := sampleRecord()
			r.created = 0
			return r.appendEncode(nil)
		}(),
	}
	for i := 1; i < len(good); i++ {
		cases["truncated"+strings.Repeat("+", i)] = good[:i]
	}
	// Unordered keys: swap two encoded keys by hand-building a record.
	dup := []byte{1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 'a', 0, 1, 'a', 0}
	cases["duplicate key"] = dup
	for name, b := range cases {
		if _, err := decodeRecord(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: got %v, want errCorrupt", name, err)
		}
	}
}

// FuzzDecodeRecord: arbitrary bytes never panic, never allocate beyond
// their size, and what decodes re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(sampleRecord().appendEncode(nil))
	f.Add([]byte{1})
	f.Add([]byte{1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 'a', 0, 1, 'b', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		if len(r.values) > len(b) {
			t.Fatalf("%d values from %d bytes", len(r.values), len(b))
		}
		if again := r.appendEncode(nil); !bytes.Equal(again, b) {
			// Varints have one canonical form per value only if minimal;
			// accept non-minimal input but require a stable re-encoding.
			r2, err := decodeRecord(again)
			if err != nil || !bytes.Equal(r2.appendEncode(nil), again) {
				t.Fatalf("re-encoding is not stable: %v", err)
			}
		}
	})
}

// FuzzParseSessionID: only canonical 43-character base64url of 32 bytes
// parses, and parsing round-trips exactly.
func FuzzParseSessionID(f *testing.F) {
	id, _ := newSessionID(new(randBuf))
	f.Add(id.encode())
	f.Add("")
	f.Add(strings.Repeat("A", 43))
	f.Add(strings.Repeat("_", 43))
	f.Add("../../../../etc/passwd")
	f.Add(id.encode()[:42] + "B") // low bits set: not canonical
	f.Add(id.encode()[:20] + "=" + id.encode()[21:])
	f.Add(id.encode()[:20] + "\n" + id.encode()[21:])
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := parseSessionID(s)
		// It accepts exactly what the standard library's strict decoder
		// decodes to 32 bytes from 43 characters, with the same result.
		want, err := idEncoding.DecodeString(s)
		if std := err == nil && len(s) == idLen && len(want) == idBytes; ok != std || ok && !bytes.Equal(id[:], want) {
			t.Fatalf("%q: parsed %v (%x), encoding/base64 %v (%x, %v)", s, ok, id, std, want, err)
		}
		if !ok {
			return
		}
		if id.encode() != s {
			t.Fatalf("parsed %q but re-encodes as %q", s, id.encode())
		}
	})
}

func TestSessionIDNeverPrints(t *testing.T) {
	id, err := newSessionID(new(randBuf))
	if err != nil {
		t.Fatal(err)
	}
	if s := id.String(); strings.Contains(s, id.encode()) {
		t.Fatal("String reveals the ID")
	}
	if v := id.LogValue().String(); strings.Contains(v, id.encode()) {
		t.Fatal("LogValue reveals the ID")
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestRandomFailureFailsClosed(t *testing.T) {
	old := randReader
	randReader = failReader{}
	defer func() { randReader = old }()
	if _, err := newSessionID(new(randBuf)); err == nil {
		t.Fatal("got an ID from a failing random source")
	}
}

// countingReader fills each read with the next bytes of a counter, and
// counts the reads.
type countingReader struct {
	next  byte
	reads int
}

func (r *countingReader) Read(p []byte) (int, error) {
	r.reads++
	for i := range p {
		p[i] = r.next
		r.next++
	}
	return len(p), nil
}

// TestRandBuf: a new session's device ID and session ID come from one
// read of the random source, and no byte is handed out twice; what is
// left of a block too short for the next request is discarded.
func TestRandBuf(t *testing.T) {
	src := &countingReader{}
	old := randReader
	randReader = src
	defer func() { randReader = old }()
	var rb randBuf
	dev, err1 := rb.take(deviceIDBytes)
	id, err2 := rb.take(idBytes)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if src.reads != 1 {
		t.Fatalf("device and session ID took %d reads, want 1", src.reads)
	}
	seen := map[byte]bool{}
	for _, b := range append(slices.Clone(dev), id...) {
		if seen[b] {
			t.Fatalf("byte %d handed out twice", b)
		}
		seen[b] = true
	}
	next, err := rb.take(idBytes)
	if err != nil {
		t.Fatal(err)
	}
	if src.reads != 2 || next[0] != byte(len(rb.b)) {
		t.Fatalf("after the block: %d reads, next byte %d; want 2 reads and byte %d", src.reads, next[0], len(rb.b))
	}
	randReader = failReader{}
	rb.left = 0
	if _, err := rb.take(1); err == nil {
		t.Fatal("got bytes from a failing random source")
	}
	if rb.left != 0 {
		t.Fatalf("a failed read left %d bytes to hand out", rb.left)
	}
}

// FuzzParseRemember: only the canonical selector.validator form parses,
// and parsing round-trips.
func FuzzParseRemember(f *testing.F) {
	sel, _ := randomBytes(selectorBytes)
	val, _ := randomBytes(validatorBytes)
	f.Add(encodeRemember(sel, val))
	f.Add("")
	f.Add(".")
	f.Add(strings.Repeat("A", 22) + "." + strings.Repeat("A", 43))
	f.Fuzz(func(t *testing.T, s string) {
		sel, val, ok := parseRemember(s)
		if !ok {
			return
		}
		if got := encodeRemember(sel, val); got != s {
			t.Fatalf("parsed %q but re-encodes as %q", s, got)
		}
	})
}

// FuzzDecodeToken: token records never panic the decoder, and decoded
// ones re-encode stably.
func FuzzDecodeToken(f *testing.F) {
	h := hashValidator([]byte("v"))
	good := (&rememberToken{user: "alice", created: time.UnixMilli(1), expires: time.UnixMilli(2), hash: h}).encode()
	f.Add(good)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := decodeToken(b)
		if err != nil {
			return
		}
		again := tok.encode()
		tok2, err := decodeToken(again)
		if err != nil || !bytes.Equal(tok2.encode(), again) {
			t.Fatalf("unstable re-encoding: %v", err)
		}
	})
}

func TestCandidates(t *testing.T) {
	m := &Manager{cfg: Config{Cookie: CookieConfig{Name: "__Host-sesh"}}}
	a, _ := newSessionID(new(randBuf))
	b, _ := newSessionID(new(randBuf))
	ea, eb := a.encode(), b.encode()
	cases := []struct {
		name   string
		header []string
		want   []sessionID
	}{
		{"none", nil, nil},
		{"one", []string{"__Host-sesh=" + ea}, []sessionID{a}},
		{"among others", []string{"x=1; __Host-sesh=" + ea + "; y=2"}, []sessionID{a}},
		{"spaces and tabs", []string{" \t__Host-sesh=" + ea + " \t"}, []sessionID{a}},
		{"two headers", []string{"__Host-sesh=" + ea, "__Host-sesh=" + eb}, []sessionID{a, b}},
		{"duplicate", []string{"__Host-sesh=" + ea + "; __Host-sesh=" + ea}, []sessionID{a}},
		{"other name", []string{"__Host-sesh2=" + ea + "; sesh=" + ea + "; __host-sesh=" + ea}, nil},
		{"encoded name", []string{"__%48ost-sesh=" + ea}, nil},
		{"quoted", []string{`__Host-sesh="` + ea + `"`}, nil},
		{"bad value first", []string{"__Host-sesh=junk; __Host-sesh=" + eb}, []sessionID{b}},
	}
	for _, tc := range cases {
		r := &http.Request{Header: http.Header{"Cookie": tc.header}}
		got := m.candidates(r, nil)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %d IDs, want %d", tc.name, len(got), len(tc.want))
		}
	}
	// At most maxCandidates are examined.
	var sb strings.Builder
	for range 10 {
		id, _ := newSessionID(new(randBuf))
		sb.WriteString("__Host-sesh=" + id.encode() + "; ")
	}
	r := &http.Request{Header: http.Header{"Cookie": {sb.String()}}}
	if got := m.candidates(r, nil); len(got) != maxCandidates {
		t.Fatalf("flood: got %d candidates, want %d", len(got), maxCandidates)
	}
}

// Handles go on command lines and in URLs: never a leading '-', nothing
// to escape.
func TestHandleForm(t *testing.T) {
	for range 2000 {
		id, _ := newSessionID(new(randBuf))
		h := handle(id.storeKey())
		if len(h) != 24 || strings.Trim(h, "0123456789abcdef") != "" {
			t.Fatalf("handle %q is not 24 lower-case hex digits", h)
		}
	}
}

func TestApplyChanges(t *testing.T) {
	kv := func(pairs ...string) values {
		var vs values
		for i := 0; i < len(pairs); i += 2 {
			vs = append(vs, value{pairs[i], []byte(pairs[i+1])})
		}
		return vs
	}
	set := func(k, v string) keyChange { return keyChange{k, change{val: []byte(v)}} }
	del := func(k string) keyChange { return keyChange{k, change{del: true}} }
	for _, tc := range []struct {
		name    string
		base    values
		changes changeSet
		want    values
	}{
		{"empty", nil, nil, nil},
		{"insert in order", kv("b", "2", "d", "4"), changeSet{set("c", "3"), set("a", "1"), set("e", "5")},
			kv("a", "1", "b", "2", "c", "3", "d", "4", "e", "5")},
		{"replace and delete", kv("a", "1", "b", "2", "c", "3"), changeSet{set("b", "two"), del("a"), del("zz")},
			kv("b", "two", "c", "3")},
		{"delete all", kv("a", "1"), changeSet{del("a")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.base)
			var r record
			got := tc.changes.applyTo(tc.base, r.inline[:0])
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i].key != tc.want[i].key || !bytes.Equal(got[i].val, tc.want[i].val) {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			}
			if !slices.EqualFunc(before, tc.base, func(a, b value) bool { return a.key == b.key && bytes.Equal(a.val, b.val) }) {
				t.Fatalf("base changed: %q, was %q", tc.base, before)
			}
			// The encoding of the result decodes to the same list.
			enc := (&record{created: 1, values: got}).appendEncode(nil)
			dec, err := decodeRecord(enc)
			if err != nil || len(dec.values) != len(got) {
				t.Fatalf("decode: %v, %d values", err, len(dec.values))
			}
		})
	}
}

// The decoder's own uvarint reads what binary.Uvarint reads, and refuses
// what it refuses: truncated input and values beyond 64 bits.
func TestDecoderUvarint(t *testing.T) {
	inputs := [][]byte{{}, {0}, {1}, {0x7f}, {0x80}, {0x80, 1}, {0xff, 0xff, 0xff},
		binary.AppendUvarint(nil, 1<<53), binary.AppendUvarint(nil, math.MaxUint64),
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1},
		{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0}}
	for range 1000 {
		b := make([]byte, mrand.IntN(12))
		for i := range b {
			b[i] = byte(mrand.IntN(256))
		}
		inputs = append(inputs, b)
	}
	for _, b := range inputs {
		want, n := binary.Uvarint(b)
		d := newDecoder(b)
		got := d.uvarint()
		if n <= 0 {
			if !d.err {
				t.Errorf("%x: read %d, want an error", b, got)
			}
			continue
		}
		if d.err || got != want || d.off != n {
			t.Errorf("%x: got %d (%d bytes, error %v), want %d (%d bytes)", b, got, d.off, d.err, want, n)
		}
	}
}
