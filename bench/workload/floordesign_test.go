package workload

import (
	"crypto/sha256"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// TestFloorDesignStore checks the compare-and-set and expiry heap that
// floor-design's figures include: a create only where nothing lives, a
// write only over the version read, the heap's root the first to expire.
func TestFloorDesignStore(t *testing.T) {
	s := fdStore{m: map[[sha256.Size]byte]*fdEntry{}}
	key := func(i int) *[sha256.Size]byte { k := sha256.Sum256([]byte(strconv.Itoa(i))); return &k }
	const now = 1000
	if !s.save(key(1), []byte("a"), 1, 0, now+50, now) {
		t.Fatal("create refused")
	}
	if s.save(key(1), []byte("b"), 1, 0, now+50, now) {
		t.Error("create over a live record accepted")
	}
	if s.save(key(1), []byte("b"), 3, 2, now+50, now) {
		t.Error("write over another version accepted")
	}
	if !s.save(key(1), []byte("b"), 2, 1, now+70, now) {
		t.Error("write over the version read refused")
	}
	if env, v, ok := s.load(key(1), now); !ok || string(env) != "b" || v != 2 {
		t.Errorf("load = %q, %d, %v; want b, 2, true", env, v, ok)
	}
	if _, _, ok := s.load(key(1), now+70); ok {
		t.Error("an expired record loaded")
	}
	if !s.save(key(1), []byte("c"), 1, 0, now+200, now+70) {
		t.Error("create over an expired record refused")
	}
	for i, exp := range []int64{90, 30, 60, 10, 40} {
		s.save(key(i+2), nil, 1, 0, now+exp, now)
	}
	s.save(key(5), nil, 2, 1, now+300, now) // 10 moves to the end
	for i, e := range s.heap {
		if e.i != i {
			t.Fatalf("heap[%d] thinks it is at %d", i, e.i)
		}
		if c := 2*i + 1; c < len(s.heap) && s.heap[c].exp < e.exp || c+1 < len(s.heap) && s.heap[c+1].exp < e.exp {
			t.Fatalf("heap[%d] expires after a child", i)
		}
	}
	if got := s.heap[0].exp; got != now+30 {
		t.Errorf("root expires at %d, want %d", got, now+30)
	}
}

// TestFloorDesignReapply checks that a write that loses to another one
// re-applies its change to the newest version: floor-design, like sesh,
// loses no update.
func TestFloorDesignReapply(t *testing.T) {
	f, err := newFDServer()
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	f.rmw(w, httptest.NewRequest("GET", "/rmw", nil))
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	r := httptest.NewRequest("GET", "/rmw", nil)
	r.AddCookie(cookies[0])
	now := time.Now().UnixMilli()
	var a, b fdSession
	if !f.lookup(r, now, &a) || !f.lookup(r, now, &b) {
		t.Fatal("the new session does not load")
	}
	incr := func(rec *fdRecord) {
		n, _ := strconv.Atoi(rec.get("n"))
		rec.set("n", strconv.Itoa(n+1))
	}
	if err := f.write(&a, now, incr); err != nil {
		t.Fatal(err)
	}
	if err := f.write(&b, now, incr); err != nil { // b read version 1: it must re-apply
		t.Fatal(err)
	}
	var c fdSession
	if !f.lookup(r, now, &c) || c.rec.get("n") != "3" || c.version != 3 {
		t.Errorf("after two increments: n = %q, version %d; want 3, 3", c.rec.get("n"), c.version)
	}
	bad := httptest.NewRequest("GET", "/rmw", nil)
	bad.Header.Set("Cookie", FloorDesignCookie+"="+cookies[0].Value[:42]+"!")
	if f.lookup(bad, now, &c) {
		t.Error("a malformed cookie loaded a session")
	}
}
