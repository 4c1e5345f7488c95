package redisstore

import (
	"bytes"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/seshgo/sesh"
)

func TestCodecRoundTrip(t *testing.T) {
	exp := time.UnixMilli(1_800_000_000_123)
	for _, rec := range []sesh.Record{
		{Data: []byte("hello"), Version: 1, Expires: exp, User: "alice"},
		{Data: nil, Version: math.MaxUint64, Expires: exp, Kind: 255},
		{Data: bytes.Repeat([]byte{0}, 300), Version: 2, Expires: exp, User: string(bytes.Repeat([]byte{0xff}, 200))},
	} {
		got, expMs, tomb, err := decode(encodeRecord(rec, exp.UnixMilli()))
		if err != nil || tomb || expMs != exp.UnixMilli() {
			t.Fatalf("decode: got (%d, %v, %v)", expMs, tomb, err)
		}
		if !bytes.Equal(got.Data, rec.Data) || got.Version != rec.Version || !got.Expires.Equal(rec.Expires) || got.User != rec.User || got.Kind != rec.Kind {
			t.Fatalf("round trip: got %+v, want %+v", got, rec)
		}
	}
	_, expMs, tomb, err := decode(encodeTombstone(42))
	if err != nil || !tomb || expMs != 42 {
		t.Fatalf("tombstone: got (%d, %v, %v)", expMs, tomb, err)
	}
}

func TestKeyNames(t *testing.T) {
	s := &Store{prefix: "p:"}
	k := sesh.Key{0x3f, 0xa4}
	k[31] = 0xe1
	want := "p:{3f}a4" + "0000000000000000000000000000000000000000000000000000000000e1"
	if got := s.recordKey(k); got != want {
		t.Fatalf("recordKey: got %q, want %q", got, want)
	}
	if got, ok := s.parseRecordKey(want); !ok || got != k {
		t.Fatalf("parseRecordKey(%q): got (%x, %v)", want, got, ok)
	}
	if got := s.lockKey(k); got != "p:l{3f}a4"+want[8:] {
		t.Fatalf("lockKey: got %q", got)
	}
	if got := s.indexPrefix(k); got != "p:u{3f}" {
		t.Fatalf("indexPrefix: got %q", got)
	}
	for _, bad := range []string{"p:{3F}" + want[6:], "p:u{3f}" + want[6:], "p:{3f}" + want[6:] + "0", "q:{3f}" + want[6:], "p:{3f}a4" + want[8:len(want)-1] + "g"} {
		if _, ok := s.parseRecordKey(bad); ok {
			t.Errorf("parseRecordKey(%q): ok, want rejected", bad)
		}
	}
}

func TestListCursor(t *testing.T) {
	for _, c := range []listCursor{{}, {scan: 17, addr: "127.0.0.1:7101"}, {done: true, pending: []sesh.Key{{1, 2}, {3}}, addr: "/tmp/a.b.sock"}} {
		got, err := parseCursor(c.String())
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("parseCursor(%q): got (%+v, %v), want %+v", c.String(), got, err, c)
		}
	}
	for _, bad := range []string{"x", "1.2", "a..", "1.zz.", "-1..x", "1.0102.", "end.ab"} {
		if _, err := parseCursor(bad); err == nil {
			t.Errorf("parseCursor(%q): no error", bad)
		}
	}
}

// FuzzDecode checks that decode never panics and that whatever it accepts
// re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(encodeRecord(sesh.Record{Data: []byte("d"), Version: 3, User: "u"}, 1000))
	f.Add(encodeTombstone(5))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0x80})
	f.Fuzz(func(t *testing.T, v []byte) {
		rec, expMs, tomb, err := decode(v)
		if err != nil {
			return
		}
		if tomb {
			if again := encodeTombstone(expMs); !bytes.Equal(again, v) {
				t.Fatalf("decode(%x) then encode: got %x", v, again)
			}
		} else {
			// Records re-encode to an equivalent value (a non-minimal
			// uvarint length becomes minimal).
			again := encodeRecord(rec, expMs)
			if rec2, exp2, _, err := decode(again); err != nil || exp2 != expMs || !bytes.Equal(rec2.Data, rec.Data) || rec2.User != rec.User || rec2.Version != rec.Version || rec2.Kind != rec.Kind {
				t.Fatalf("re-decode of %x: got (%+v, %v)", again, rec2, err)
			}
		}
	})
}
