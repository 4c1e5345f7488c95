package memcachedstore

import (
	"bytes"
	"testing"
	"time"

	"github.com/seshgo/sesh"
)

func TestExpiration(t *testing.T) {
	for _, tt := range []struct {
		ms   int64
		want int32
	}{
		{1, 2}, {999, 2}, {1000, 2}, {1001, 3}, {3_600_000, 3601},
		{(30*24*3600 - 1) * 1000, 30 * 24 * 3600},
	} {
		if got := expiration(tt.ms); got != tt.want {
			t.Errorf("expiration(%d ms): got %d, want %d", tt.ms, got, tt.want)
		}
	}
	// Past 30 days: an absolute Unix time.
	d := int64(31 * 24 * 3600)
	got := int64(expiration(d * 1000))
	now := time.Now().Unix()
	if got < now+d || got > now+d+5 {
		t.Errorf("expiration(31 days): got %d, want about %d", got, now+d+1)
	}
	if got := expiration(100 * 365 * 24 * 3600 * 1000); got != 0 {
		t.Errorf("expiration(100 years): got %d, want 0 (none: past 2038)", got)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	exp := time.UnixMilli(1_800_000_000_123)
	rec := sesh.Record{Data: []byte("hello"), Version: 7, Expires: exp, User: "alice", Kind: sesh.KindToken}
	got, expMs, tomb, err := decode(encodeRecord(rec, exp.UnixMilli()))
	if err != nil || tomb || expMs != exp.UnixMilli() || !bytes.Equal(got.Data, rec.Data) ||
		got.Version != 7 || got.User != "alice" || got.Kind != sesh.KindToken || !got.Expires.Equal(exp) {
		t.Fatalf("round trip: got (%+v, %d, %v, %v)", got, expMs, tomb, err)
	}
	if _, expMs, tomb, err := decode(encodeTombstone(42)); err != nil || !tomb || expMs != 42 {
		t.Fatalf("tombstone: got (%d, %v, %v)", expMs, tomb, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encodeRecord(sesh.Record{Data: []byte("d"), Version: 3, User: "u"}, 1000))
	f.Add(encodeTombstone(5))
	f.Fuzz(func(t *testing.T, v []byte) {
		rec, expMs, tomb, err := decode(v)
		if err != nil || tomb {
			return
		}
		rec2, exp2, _, err := decode(encodeRecord(rec, expMs))
		if err != nil || exp2 != expMs || !bytes.Equal(rec2.Data, rec.Data) || rec2.User != rec.User || rec2.Version != rec.Version || rec2.Kind != rec.Kind {
			t.Fatalf("re-decode of %x: got (%+v, %v)", v, rec2, err)
		}
	})
}
