package sesh_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/seal"
)

func TestAdminListFindRevoke(t *testing.T) {
	h := newHarness(t, nil)
	a, b, anon := h.client(), h.client(), h.client()
	h.do(a, "POST", "/login?u=alice", "")
	h.do(b, "POST", "/login?u=bob&remember=1", "")
	h.get(anon, "/put?k=x&v=1")

	var all []sesh.SessionInfo
	cursor := ""
	for {
		page, next, err := h.m.ListSessions(t.Context(), cursor, 1)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(all) != 3 {
		t.Fatalf("listed %d sessions, want 3 (tokens are not sessions)", len(all))
	}
	var bobs sesh.SessionInfo
	for _, si := range all {
		if si.Unreadable || si.Created.IsZero() || si.KeyID != 1 {
			t.Fatalf("bad info: %+v", si)
		}
		if si.User == "bob" {
			bobs = si
		}
	}
	got, err := h.m.FindSession(t.Context(), bobs.Handle)
	if err != nil || got.User != "bob" {
		t.Fatalf("FindSession: %+v, %v", got, err)
	}
	if _, err := h.m.FindSession(t.Context(), "nope"); !errors.Is(err, sesh.ErrNoSuchSession) {
		t.Fatalf("FindSession of unknown handle: got %v", err)
	}
	if err := h.m.RevokeSession(t.Context(), bobs.Handle); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.FindSession(t.Context(), bobs.Handle); !errors.Is(err, sesh.ErrNoSuchSession) {
		t.Fatalf("revoked session still found: %v", err)
	}
	// Revoking bob's session took his device's remember-me token too, so
	// alice's and the anonymous session are all that is left.
	n, err := h.m.RevokeEverything(t.Context(), nil)
	if err != nil || n != 2 {
		t.Fatalf("RevokeEverything: %d, %v; want 2", n, err)
	}
	for _, c := range []*http.Client{a, b} {
		if r := h.get(c, "/whoami"); r.body != "anon" {
			t.Fatalf("after RevokeEverything: got %q", r.body)
		}
	}
	if r := h.get(anon, "/get?k=x"); r.body != "" {
		t.Fatalf("anonymous session after RevokeEverything: got %q", r.body)
	}
}

func TestAdminRevokeSessionEndsIt(t *testing.T) {
	h := newHarness(t, nil)
	a := h.client()
	h.do(a, "POST", "/login?u=alice", "")
	list, _, _ := h.m.ListSessions(t.Context(), "", 10)
	if len(list) != 1 {
		t.Fatalf("got %d sessions", len(list))
	}
	if err := h.m.RevokeSession(t.Context(), list[0].Handle); err != nil {
		t.Fatal(err)
	}
	if r := h.get(a, "/whoami"); r.body != "anon" {
		t.Fatalf("after RevokeSession: got %q", r.body)
	}
}

func TestAdminReseal(t *testing.T) {
	store := memstore.New()
	k1, k2 := mustKey(t, 1), mustKey(t, 2)
	var cookies []*http.Cookie
	for range 5 {
		res := onStore(t, store, mustRing(t, k1), nil, func(w http.ResponseWriter, r *http.Request) {
			s := sesh.FromContext(r.Context())
			s.Login("alice")
			s.Remember()
		})
		cookies = append(cookies, res.Cookies()[0])
	}
	m, err := sesh.New(store, sesh.Config{Keys: mustRing(t, k2, k1)})
	if err != nil {
		t.Fatal(err)
	}
	total, cursor := 0, ""
	for {
		n, next, err := m.Reseal(t.Context(), cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if next == "" {
			break
		}
		cursor = next
	}
	if total != 10 {
		t.Fatalf("resealed %d records, want 10 (5 sessions, 5 tokens)", total)
	}
	es, _, _ := store.List(t.Context(), "", 100)
	for _, e := range es {
		if id, _ := seal.KeyID(e.Record.Data); id != 2 {
			t.Fatalf("record still under key %d", id)
		}
	}
	// k1 retired: every session still reads.
	for _, c := range cookies {
		var user string
		onStore(t, store, mustRing(t, k2), c, func(w http.ResponseWriter, r *http.Request) {
			user = sesh.FromContext(r.Context()).User()
		})
		if user != "alice" {
			t.Fatalf("after reseal and retiring k1: got %q", user)
		}
	}
}
