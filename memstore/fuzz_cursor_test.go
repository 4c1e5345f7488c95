package memstore_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memstore"
)

// FuzzListCursor feeds arbitrary cursors and limits to List, on a store
// holding five live records ({k0} to {k4} in the input stand for their
// hex keys), a tombstone and a dead record. List must refuse a limit
// below one and a cursor it could not have made; otherwise its pages
// hold only live records, none twice, and from a live record's key go on
// exactly where a listing from the start does.
func FuzzListCursor(f *testing.F) {
	for _, c := range []string{"", "{k0}", "{k3}", "{K0}", "{k1}0", "{k2}"[:3], strings.Repeat("f", 64), strings.Repeat("0", 64), strings.Repeat("g", 64), "end"} {
		for _, limit := range []int{1, 2, 100, 0, -1} {
			f.Add(c, limit)
		}
	}
	f.Fuzz(func(t *testing.T, cursor string, limit int) {
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		s := memstore.New(memstore.WithClock(func() time.Time { return now }))
		live, names := fillStore(t, s, now)
		cursor = strings.NewReplacer(names...).Replace(cursor)
		checkCursor(t, s.List, live, cursor, limit, false)
	})
}

// fillStore saves five live records, a tombstone and a dead record, and
// returns the live keys and the placeholders of their hex keys.
func fillStore(t *testing.T, s sesh.Store, now time.Time) ([]sesh.Key, []string) {
	t.Helper()
	ctx := context.Background()
	var live []sesh.Key
	var names []string
	for i := range 7 {
		k := sesh.Key(sha256.Sum256([]byte(fmt.Sprint("key ", i))))
		rec := sesh.Record{Data: []byte("d"), Version: 1, Expires: now.Add(time.Hour), Kind: sesh.KindSession}
		switch i {
		case 5:
			rec.Expires = now.Add(-time.Second)
		case 6:
			if err := s.Delete(ctx, k, now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			continue
		default:
			live = append(live, k)
			names = append(names, fmt.Sprintf("{k%d}", i), k.String(), fmt.Sprintf("{K%d}", i), strings.ToUpper(k.String()))
		}
		if err := s.Save(ctx, k, rec, 0); err != nil {
			t.Fatal(err)
		}
	}
	return live, names
}

type lister func(ctx context.Context, cursor string, limit int) ([]sesh.Entry, string, error)

// checkCursor checks one List call and the pages that follow it. With
// keyOrder, the store lists in key order, and the pages after any valid
// cursor must be exactly the live keys above it.
func checkCursor(t *testing.T, list lister, live []sesh.Key, cursor string, limit int, keyOrder bool) {
	ctx := context.Background()
	entries, next, err := list(ctx, cursor, limit)
	valid := cursor == "" || len(cursor) == 64 && strings.Trim(cursor, "0123456789abcdef") == ""
	if limit < 1 || !valid {
		if err == nil {
			t.Fatalf("List(%q, %d): no error", cursor, limit)
		}
		return
	}
	if err != nil {
		t.Fatalf("List(%q, %d): %v", cursor, limit, err)
	}
	// The full order, one record at a time.
	var order []sesh.Key
	for c := ""; ; {
		es, n, err := list(ctx, c, 1)
		if err != nil || len(es) > 1 || len(order) > len(live) {
			t.Fatalf("listing one by one: %d entries, %v", len(es), err)
		}
		for _, e := range es {
			order = append(order, e.Key)
		}
		if n == "" {
			break
		}
		c = n
	}
	if !sameKeys(order, live) {
		t.Fatalf("a full listing gave %d keys, want the %d live ones", len(order), len(live))
	}
	var got []sesh.Key
	for page := 0; ; page++ {
		if len(entries) > limit || page > len(live) {
			t.Fatalf("List(%q, %d): page %d of %d entries", cursor, limit, page, len(entries))
		}
		for _, e := range entries {
			if slices.Contains(got, e.Key) || !slices.Contains(live, e.Key) {
				t.Fatalf("List(%q, %d): key %s repeated or not live", cursor, limit, e.Key)
			}
			got = append(got, e.Key)
		}
		if next == "" {
			break
		}
		if len(entries) != limit || next != entries[len(entries)-1].Key.String() {
			t.Fatalf("List(%q, %d): cursor %q after %d entries", cursor, limit, next, len(entries))
		}
		if entries, next, err = list(ctx, next, limit); err != nil {
			t.Fatal(err)
		}
	}
	var want []sesh.Key
	switch {
	case cursor == "":
		want = order
	case keyOrder:
		for _, k := range order {
			if k.String() > cursor {
				want = append(want, k)
			}
		}
	default:
		i := slices.IndexFunc(order, func(k sesh.Key) bool { return k.String() == cursor })
		if i < 0 {
			return // a cursor the store never made: any subset will do
		}
		want = order[i+1:]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List(%q, %d): got %d keys, want %d", cursor, limit, len(got), len(want))
	}
}

func sameKeys(a, b []sesh.Key) bool {
	if len(a) != len(b) {
		return false
	}
	for _, k := range a {
		if !slices.Contains(b, k) {
			return false
		}
	}
	return true
}
