package sesh_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/seal"
)

func mustKey(t *testing.T, id uint32) seal.Key {
	t.Helper()
	k, err := seal.GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRing(t *testing.T, keys ...seal.Key) *seal.Ring {
	t.Helper()
	r, err := seal.NewRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// onStore runs one request against a manager with ring over store and
// returns the response.
func onStore(t *testing.T, store sesh.Store, ring *seal.Ring, cookie *http.Cookie, h http.HandlerFunc) *http.Response {
	t.Helper()
	m, err := sesh.New(store, sesh.Config{Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	b := browser{cookies: map[string]*http.Cookie{}}
	if cookie != nil {
		b.cookies[cookie.Name] = cookie
	}
	return b.do(m.Handler(h), "GET", "/").Result()
}

func TestKeyRotation(t *testing.T) {
	store := memstore.New()
	k1, k2 := mustKey(t, 1), mustKey(t, 2)
	set := func(v string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { sesh.FromContext(r.Context()).Set("v", v) }
	}
	var got string
	get := func(w http.ResponseWriter, r *http.Request) {
		got, _ = sesh.Get[string](sesh.FromContext(r.Context()), "v")
		if err := sesh.FromContext(r.Context()).Err(); err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		}
	}
	res := onStore(t, store, mustRing(t, k1), nil, set("one"))
	cookie := res.Cookies()[0]
	keyIDs := func() []uint32 {
		es, _, err := store.List(t.Context(), "", 10)
		if err != nil || len(es) != 1 {
			t.Fatalf("list: %v, %d entries", err, len(es))
		}
		id, err := seal.KeyID(es[0].Record.Data)
		if err != nil {
			t.Fatal(err)
		}
		return []uint32{id}
	}
	if ids := keyIDs(); ids[0] != 1 {
		t.Fatalf("sealed under key %d, want 1", ids[0])
	}
	// k2 current, k1 verify-only: the old record reads fine.
	rotated := mustRing(t, k2, k1)
	onStore(t, store, rotated, cookie, get)
	if got != "one" {
		t.Fatalf("old-key record under the rotated ring: got %q", got)
	}
	// The next write re-seals under k2.
	onStore(t, store, rotated, cookie, set("two"))
	if ids := keyIDs(); ids[0] != 2 {
		t.Fatalf("after a write: sealed under key %d, want 2", ids[0])
	}
	// A server with only k1 cannot read a k2 record: a configuration
	// fault, answered 503 and never "no session" (which would log out).
	res = onStore(t, store, mustRing(t, k1), cookie, get)
	if res.StatusCode != http.StatusServiceUnavailable || len(res.Cookies()) != 0 {
		t.Fatalf("unknown key: got %d with %d cookies, want 503 and none", res.StatusCode, len(res.Cookies()))
	}
	if ids := keyIDs(); ids[0] != 2 {
		t.Fatal("the record was touched by a server that could not read it")
	}
	// Once k1 is retired, k2 alone reads it.
	onStore(t, store, mustRing(t, k2), cookie, get)
	if got != "two" {
		t.Fatalf("after retiring k1: got %q", got)
	}
}

func TestOldKeyRecordUnreadableAfterRetirement(t *testing.T) {
	store := memstore.New()
	k1, k2 := mustKey(t, 1), mustKey(t, 2)
	res := onStore(t, store, mustRing(t, k1), nil, func(w http.ResponseWriter, r *http.Request) {
		sesh.FromContext(r.Context()).Set("v", "secret")
	})
	cookie := res.Cookies()[0]
	res = onStore(t, store, mustRing(t, k2), cookie, func(w http.ResponseWriter, r *http.Request) {
		if err := sesh.FromContext(r.Context()).Err(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("record under a removed key: got %d, want 503", res.StatusCode)
	}
}

func TestRecordCopiedToAnotherKeyDoesNotOpen(t *testing.T) {
	store := memstore.New()
	ring := mustRing(t, mustKey(t, 1))
	put := func(v string) *http.Cookie {
		return onStore(t, store, ring, nil, func(w http.ResponseWriter, r *http.Request) {
			sesh.FromContext(r.Context()).Set("v", v)
		}).Cookies()[0]
	}
	entries := func() []sesh.Entry {
		es, _, err := store.List(t.Context(), "", 10)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	put("victim-data")
	vrec := entries()[0]
	attacker := put("attacker-data")
	var arec sesh.Entry
	for _, e := range entries() {
		if e.Key != vrec.Key {
			arec = e
		}
	}
	swapped := arec.Record
	swapped.Data = vrec.Record.Data
	swapped.Version = arec.Record.Version + 1
	if err := store.Save(t.Context(), arec.Key, swapped, arec.Record.Version); err != nil {
		t.Fatal(err)
	}
	var got string
	res := onStore(t, store, ring, attacker, func(w http.ResponseWriter, r *http.Request) {
		got, _ = sesh.Get[string](sesh.FromContext(r.Context()), "v")
	})
	if got != "" || res.StatusCode != 200 {
		t.Fatalf("a record moved to another key opened: got %q (status %d)", got, res.StatusCode)
	}
}

func TestBindDataToID(t *testing.T) {
	store := memstore.New()
	ring := mustRing(t, mustKey(t, 1))
	newMgr := func(bound bool) *sesh.Manager {
		m, err := sesh.New(store, sesh.Config{Keys: ring, BindDataToID: bound})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	set := func(v string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s := sesh.FromContext(r.Context())
			s.Set("v", v)
			if s.User() == "" {
				s.Login("alice")
			}
		}
	}
	var got string
	get := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = sesh.Get[string](sesh.FromContext(r.Context()), "v")
	})
	var b browser
	b.do(newMgr(true).Handler(set("very-secret-value")), "GET", "/")

	// Someone with the store and the key ring, but no cookie, sees the
	// metadata but not the values.
	es, _, err := store.List(t.Context(), "", 10)
	if err != nil || len(es) != 1 {
		t.Fatalf("list: %v, %d", err, len(es))
	}
	pt, _, err := ring.Box("session").Open(nil, es[0].Record.Data, es[0].Key[:])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(pt), "very-secret-value") {
		t.Fatal("bound mode: the value is readable with the key ring alone")
	}
	if !strings.Contains(string(pt), "alice") {
		t.Fatal("bound mode: metadata should stay readable for device listings")
	}
	devs, err := newMgr(true).Sessions(t.Context(), "alice")
	if err != nil || len(devs) != 1 {
		t.Fatalf("device listing in bound mode: %v, %d", err, len(devs))
	}

	// With the cookie, both modes read it; a write in plain mode makes a
	// plain record that bound mode still reads.
	b.do(newMgr(false).Handler(get), "GET", "/")
	if got != "very-secret-value" {
		t.Fatalf("plain manager reading a bound record: got %q", got)
	}
	b.do(newMgr(false).Handler(set("plain")), "GET", "/")
	b.do(newMgr(true).Handler(get), "GET", "/")
	if got != "plain" {
		t.Fatalf("bound manager reading a plain record: got %q", got)
	}
}
