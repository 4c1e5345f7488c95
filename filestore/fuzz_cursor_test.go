package filestore_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/filestore"
)

// FuzzListCursor feeds arbitrary cursors and limits to List, on a store
// holding five live records ({k0} to {k4} in the input stand for their
// hex keys), a tombstone and a dead record. List must refuse a limit
// below one and a cursor it could not have made; otherwise its pages,
// followed to the end, hold exactly the live records whose keys sort
// after the cursor, in key order, each once. (A cursor reaches no file
// name: a path in it is refused.)
func FuzzListCursor(f *testing.F) {
	for _, c := range []string{"", "{k0}", "{k3}", "{K0}", "{k1}0", "../../{k2}"[:10], "../" + strings.Repeat("0", 61), strings.Repeat("f", 64), strings.Repeat("0", 64), "end"} {
		for _, limit := range []int{1, 2, 100, 0, -1} {
			f.Add(c, limit)
		}
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s, err := filestore.New(filepath.Join(f.TempDir(), "store"), filestore.WithClock(func() time.Time { return now }))
	if err != nil {
		f.Fatal(err)
	}
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
				f.Fatal(err)
			}
			continue
		default:
			live = append(live, k)
			names = append(names, fmt.Sprintf("{k%d}", i), k.String(), fmt.Sprintf("{K%d}", i), strings.ToUpper(k.String()))
		}
		if err := s.Save(ctx, k, rec, 0); err != nil {
			f.Fatal(err)
		}
	}
	slices.SortFunc(live, func(a, b sesh.Key) int { return strings.Compare(a.String(), b.String()) })
	f.Fuzz(func(t *testing.T, cursor string, limit int) {
		cursor = strings.NewReplacer(names...).Replace(cursor)
		entries, next, err := s.List(ctx, cursor, limit)
		valid := cursor == "" || len(cursor) == 64 && strings.Trim(cursor, "0123456789abcdef") == ""
		if limit < 1 || !valid {
			if err == nil {
				t.Fatalf("List(%q, %d): no error", cursor, limit)
			}
			return
		}
		var got []sesh.Key
		for page := 0; ; page++ {
			if err != nil || len(entries) > limit || page > len(live) {
				t.Fatalf("List(%q, %d), page %d: %d entries, %v", cursor, limit, page, len(entries), err)
			}
			for _, e := range entries {
				got = append(got, e.Key)
			}
			if next == "" {
				break
			}
			if len(entries) != limit || next != entries[len(entries)-1].Key.String() {
				t.Fatalf("List(%q, %d): cursor %q after %d entries", cursor, limit, next, len(entries))
			}
			entries, next, err = s.List(ctx, next, limit)
		}
		var want []sesh.Key
		for _, k := range live {
			if k.String() > cursor {
				want = append(want, k)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("List(%q, %d): got keys %v, want %v", cursor, limit, got, want)
		}
	})
}
