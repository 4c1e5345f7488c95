package storetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/seshgo/sesh"
)

// wantUser checks that UserRecords(user) holds exactly the keys in want
// with their records (other subtests' records cannot carry this user).
func (e *env) wantUser(user string, want map[sesh.Key]sesh.Record) {
	e.t.Helper()
	entries, err := e.userIndexer().UserRecords(e.ctx, user)
	if err != nil {
		e.t.Fatalf("UserRecords(%q): got error %v, want nil", user, err)
	}
	op := fmt.Sprintf("UserRecords(%q)", user)
	got := entriesByKey(e.t, op, entries)
	for k, r := range got {
		w, ok := want[k]
		if !ok {
			e.t.Errorf("%s: got key %s (Data %s), want it absent", op, short(k), showBytes(r.Data))
			continue
		}
		checkRecord(e.t, fmt.Sprintf("%s[%s]", op, short(k)), r, w)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			e.t.Errorf("%s: key %s missing, want it listed", op, short(k))
		}
	}
	if len(entries) != len(want) {
		e.t.Errorf("%s: got %d entries, want %d", op, len(entries), len(want))
	}
}

func (s suite) testUserIndexer(t *testing.T) {
	t.Run("Listed", func(t *testing.T) {
		e := s.parallel(t)
		u, v := randomName(t, "u-"), randomName(t, "v-")
		want := map[sesh.Key]sesh.Record{}
		for i := range 3 {
			k := newKey()
			r := e.rec(fmt.Sprint("rec ", i), 1)
			r.User = u
			if i == 2 {
				r.Kind = sesh.KindToken
			}
			e.save(k, r, 0)
			want[k] = r
		}
		kv := newKey()
		rv := e.rec("other user", 1)
		rv.User = v
		e.save(kv, rv, 0)
		e.save(newKey(), e.rec("no user", 1), 0)
		e.wantUser(u, want)
		e.wantUser(v, map[sesh.Key]sesh.Record{kv: rv})
	})
	t.Run("UserChanged", func(t *testing.T) {
		e := s.parallel(t)
		u, v := randomName(t, "u-"), randomName(t, "v-")
		k := newKey()
		r := e.rec("x", 1)
		r.User = u
		e.save(k, r, 0)
		r2 := e.rec("y", 2)
		r2.User = v
		e.save(k, r2, 1)
		e.wantUser(u, nil)
		e.wantUser(v, map[sesh.Key]sesh.Record{k: r2})
		r3 := e.rec("z", 3)
		e.save(k, r3, 2)
		e.wantUser(v, nil)
	})
	t.Run("Replaced", func(t *testing.T) {
		e := s.parallel(t)
		u := randomName(t, "u-")
		k := newKey()
		r := e.rec("x", 1)
		r.User = u
		e.save(k, r, 0)
		r2 := e.rec("y", 2)
		r2.User = u
		e.save(k, r2, 1)
		e.wantUser(u, map[sesh.Key]sesh.Record{k: r2})
	})
	t.Run("Deleted", func(t *testing.T) {
		e := s.parallel(t)
		u := randomName(t, "u-")
		k1, k2 := newKey(), newKey()
		r := e.rec("x", 1)
		r.User = u
		e.save(k1, r, 0)
		e.save(k2, r, 0)
		e.delete(k1, time.Time{})
		e.wantUser(u, map[sesh.Key]sesh.Record{k2: r})
		e.delete(k2, e.clock.Now().Add(time.Minute)) // tombstone
		e.wantUser(u, nil)
	})
	t.Run("Expired", func(t *testing.T) {
		e := s.parallel(t)
		u := randomName(t, "u-")
		live, soon, dead := newKey(), newKey(), newKey()
		rl := e.rec("live", 1)
		rl.User = u
		e.save(live, rl, 0)
		rs := e.rec("soon", 1)
		rs.User, rs.Expires = u, e.clock.Now().Add(time.Minute)
		e.save(soon, rs, 0)
		rd := e.rec("dead", 1)
		rd.User, rd.Expires = u, e.clock.Now().Add(-time.Minute)
		e.save(dead, rd, 0)
		e.wantUser(u, map[sesh.Key]sesh.Record{live: rl, soon: rs})
		e.clock.Advance(time.Minute)
		e.wantUser(u, map[sesh.Key]sesh.Record{live: rl})
	})
	t.Run("RecreatedAfterExpiry", func(t *testing.T) {
		e := s.parallel(t)
		u, v := randomName(t, "u-"), randomName(t, "v-")
		k := newKey()
		r := e.rec("x", 4)
		r.User, r.Expires = u, e.clock.Now().Add(time.Minute)
		e.save(k, r, 0)
		e.clock.Advance(2 * time.Minute)
		r2 := e.rec("y", 1)
		r2.User = v
		e.save(k, r2, 0)
		e.wantUser(u, nil)
		e.wantUser(v, map[sesh.Key]sesh.Record{k: r2})
	})
	if s.taker {
		t.Run("Taken", func(t *testing.T) {
			e := s.parallel(t)
			u := randomName(t, "u-")
			k := newKey()
			r := e.rec("x", 1)
			r.User = u
			e.save(k, r, 0)
			if _, err := e.taker().Take(e.ctx, k); err != nil {
				t.Fatalf("Take: got error %v, want nil", err)
			}
			e.wantUser(u, nil)
		})
	}
	t.Run("UnknownUser", func(t *testing.T) {
		e := s.parallel(t)
		u := randomName(t, "nobody-")
		entries, err := e.userIndexer().UserRecords(e.ctx, u)
		if err != nil || len(entries) != 0 {
			t.Fatalf("UserRecords(%q): got (%d entries, %v), want (0 entries, nil)", u, len(entries), err)
		}
	})
	t.Run("HostileUserNames", func(t *testing.T) {
		e := s.parallel(t)
		tag := randomName(t, "")
		names := []string{
			"a", "a/", "a/b", "A", "a\x00", "a\x00b", "../../etc/passwd", "..", ".",
			"/", "\\", "..\\..\\x", "with space", "tab\tnew\nline\r", "*", "?", "%", "%2e%2e%2f",
			"'; DROP TABLE sessions; --", "\"", "{a}", "$HOME", "~", "名前", "Zoë", "ZOË",
			"\xff\xfe", "\u202eevil", strings200(),
		}
		want := make(map[string]sesh.Key, len(names))
		recs := make(map[sesh.Key]sesh.Record, len(names))
		for i, n := range names {
			// The random tag keeps names unique per subtest; putting it
			// last keeps the hostile part at the start of the name.
			user := n + "#" + tag
			k := newKey()
			r := e.rec(fmt.Sprint("user ", i), 1)
			r.User = user
			e.save(k, r, 0)
			want[user] = k
			recs[k] = r
		}
		for user, k := range want {
			e.wantUser(user, map[sesh.Key]sesh.Record{k: recs[k]})
		}
	})
	t.Run("ManyRecords", func(t *testing.T) {
		e := s.parallel(t)
		u := randomName(t, "u-")
		want := map[sesh.Key]sesh.Record{}
		for i := range 60 {
			k := newKey()
			r := e.rec(fmt.Sprint("rec ", i), 1)
			r.User = u
			e.save(k, r, 0)
			want[k] = r
		}
		e.wantUser(u, want)
	})
}

func strings200() string {
	b := make([]byte, 200)
	for i := range b {
		b[i] = "abc/\\."[i%6]
	}
	return string(b)
}

// listAll pages through the store's listing with limit, checking the
// properties of every page, and returns what it saw of keys in ours.
func (e *env) listAll(limit int, ours map[sesh.Key]bool) map[sesh.Key]sesh.Record {
	e.t.Helper()
	l := e.lister()
	seen := map[sesh.Key]sesh.Record{}
	cursor := ""
	now := e.clock.Now()
	for page := 0; ; page++ {
		if page > 1_000_000 {
			e.t.Fatalf("List(limit %d): no end after %d pages", limit, page)
		}
		entries, next, err := l.List(e.ctx, cursor, limit)
		if err != nil {
			e.t.Fatalf("List(%q, %d): got error %v, want nil", cursor, limit, err)
		}
		if len(entries) > limit {
			e.t.Fatalf("List(%q, %d): got %d entries, want at most %d", cursor, limit, len(entries), limit)
		}
		for _, en := range entries {
			if !en.Record.Expires.After(now) {
				e.t.Errorf("List(%q, %d): got dead record %s (Expires %v, now %v)", cursor, limit, short(en.Key), en.Record.Expires, now)
			}
			if !ours[en.Key] {
				continue
			}
			if _, dup := seen[en.Key]; dup {
				e.t.Errorf("List(limit %d): key %s listed twice", limit, short(en.Key))
			}
			seen[en.Key] = en.Record
		}
		if next == "" {
			return seen
		}
		if next == cursor {
			e.t.Fatalf("List(%q, %d): got next cursor equal to the cursor given, want progress", cursor, limit)
		}
		cursor = next
	}
}

func (s suite) testLister(t *testing.T) {
	for _, limit := range []int{1, 2, 3, 1000} {
		t.Run(fmt.Sprintf("Paging/limit=%d", limit), func(t *testing.T) {
			e := s.parallel(t)
			ours := map[sesh.Key]bool{}
			live := map[sesh.Key]sesh.Record{}
			for i := range 7 {
				k := newKey()
				r := e.rec(fmt.Sprint("live ", i), uint64(i+1))
				r.User = randomName(t, "u-")
				e.save(k, r, 0)
				live[k], ours[k] = r, true
			}
			// Dead ones: saved dead, expired by the clock, deleted, tombstoned.
			dead := e.rec("dead", 1)
			dead.Expires = e.clock.Now().Add(-time.Second)
			k := newKey()
			e.save(k, dead, 0)
			ours[k] = true
			k = newKey()
			soon := e.rec("soon", 1)
			soon.Expires = e.clock.Now().Add(time.Minute)
			e.save(k, soon, 0)
			ours[k] = true
			for _, ts := range []time.Time{{}, e.clock.Now().Add(time.Hour)} {
				k = newKey()
				e.save(k, e.rec("deleted", 1), 0)
				e.delete(k, ts)
				ours[k] = true
			}
			e.clock.Advance(2 * time.Minute)

			seen := e.listAll(limit, ours)
			for k, r := range seen {
				w, ok := live[k]
				if !ok {
					t.Errorf("List(limit %d): got dead or deleted key %s, want it skipped", limit, short(k))
					continue
				}
				checkRecord(t, fmt.Sprintf("List(limit %d)[%s]", limit, short(k)), r, w)
			}
			for k := range live {
				if _, ok := seen[k]; !ok {
					t.Errorf("List(limit %d): live key %s never listed", limit, short(k))
				}
			}
		})
	}
	t.Run("ConcurrentWrites", func(t *testing.T) {
		// Records live throughout a listing appear exactly once even while
		// other records are saved and deleted.
		e := s.parallel(t)
		ours := map[sesh.Key]bool{}
		live := map[sesh.Key]sesh.Record{}
		for i := range 20 {
			k := newKey()
			r := e.rec(fmt.Sprint("live ", i), 1)
			e.save(k, r, 0)
			live[k], ours[k] = r, true
		}
		ctx, cancel := context.WithCancel(e.ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			for ctx.Err() == nil {
				k := newKey()
				if err := e.s.Save(ctx, k, e.rec("churn", 1), 0); err != nil && ctx.Err() == nil {
					t.Errorf("Save: got error %v, want nil", err)
					return
				}
				if err := e.s.Delete(ctx, k, time.Time{}); err != nil && ctx.Err() == nil {
					t.Errorf("Delete: got error %v, want nil", err)
					return
				}
				runtime.Gosched()
			}
		})
		seen := e.listAll(2, ours)
		cancel()
		wg.Wait()
		for k := range live {
			if _, ok := seen[k]; !ok {
				t.Errorf("List during writes: live key %s never listed", short(k))
			}
		}
	})
}

func (s suite) testSweeper(t *testing.T) {
	// Sweeper subtests run one at a time: a sweep on a shared database
	// removes other subtests' dead records too, and counts them.
	for _, limit := range []int{1, 2, 5, 100} {
		t.Run(fmt.Sprintf("RemovesDead/limit=%d", limit), func(t *testing.T) {
			e := s.setup(t)
			u := randomName(t, "u-")
			now := e.clock.Now()
			live := map[sesh.Key]sesh.Record{}
			for i := range 3 {
				k := newKey()
				r := e.rec(fmt.Sprint("live ", i), 1)
				r.User = u
				e.save(k, r, 0)
				live[k] = r
			}
			var dead []sesh.Key
			for i := range 3 {
				// Saved dead.
				k := newKey()
				r := e.rec(fmt.Sprint("dead ", i), 1)
				r.User, r.Expires = u, now.Add(-time.Second)
				e.save(k, r, 0)
				dead = append(dead, k)
				// Expiring when the clock moves.
				k = newKey()
				r.Expires = now.Add(time.Second)
				e.save(k, r, 0)
				dead = append(dead, k)
				// Tombstones lapsing when the clock moves.
				k = newKey()
				e.save(k, r, 0)
				e.delete(k, now.Add(time.Second))
				dead = append(dead, k)
			}
			liveTomb := newKey()
			e.save(liveTomb, e.rec("tombstoned", 1), 0)
			e.delete(liveTomb, now.Add(time.Hour))
			// Only a small step, so that on a shared database no other
			// subtest's live record becomes dead.
			e.clock.Advance(2 * time.Second)

			total := e.sweepAll(limit)
			if total < len(dead) {
				t.Errorf("Sweep(limit %d): removed %d in all, want at least %d", limit, total, len(dead))
			}
			for k, r := range live {
				e.wantLoad(k, r)
			}
			e.wantLoadErr(liveTomb, sesh.ErrGone)
			for _, k := range dead {
				e.wantLoadErr(k, sesh.ErrNotFound)
			}
			if s.userIndexer {
				e.wantUser(u, live)
			}
			// Swept keys are free again.
			for _, k := range dead {
				e.save(k, e.rec("reborn", 1), 0)
			}
			if s.userIndexer {
				e.wantUser(u, live)
			}
		})
	}
	t.Run("LiveOnly", func(t *testing.T) {
		e := s.setup(t)
		k := newKey()
		r := e.rec("live", 1)
		e.save(k, r, 0)
		e.sweepAll(3)
		e.wantLoad(k, r)
	})
}

// sweepAll calls Sweep with limit until it returns less than limit and
// returns the total removed.
func (e *env) sweepAll(limit int) int {
	e.t.Helper()
	sw := e.sweeper()
	total := 0
	for calls := 1; ; calls++ {
		if calls > 100_000 {
			e.t.Fatalf("Sweep(limit %d): still returning %d after %d calls", limit, limit, calls)
		}
		n, err := sw.Sweep(e.ctx, limit)
		if err != nil {
			e.t.Fatalf("Sweep(%d): got error %v, want nil", limit, err)
		}
		if n < 0 || n > limit {
			e.t.Fatalf("Sweep(%d): got %d, want between 0 and %d", limit, n, limit)
		}
		total += n
		if n < limit {
			return total
		}
	}
}

// lockOrFail takes the lock on k, failing the test on error.
func (e *env) lockOrFail(k sesh.Key, ttl, wait time.Duration) func(context.Context) error {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, wait)
	defer cancel()
	unlock, err := e.locker().Lock(ctx, k, ttl)
	if err != nil {
		e.t.Fatalf("Lock(ttl %v, waiting up to %v): got error %v, want nil", ttl, wait, err)
	}
	if unlock == nil {
		e.t.Fatalf("Lock: got a nil unlock func")
	}
	return unlock
}

// wantLockHeld checks that k cannot be locked within a short wait.
func (e *env) wantLockHeld(k sesh.Key) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 50*time.Millisecond)
	defer cancel()
	unlock, err := e.locker().Lock(ctx, k, time.Minute)
	if err == nil {
		unlock(e.ctx)
		e.t.Fatalf("Lock on a held key: got the lock, want an error wrapping %v", context.DeadlineExceeded)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		e.t.Fatalf("Lock on a held key: got error %v, want one wrapping %v", err, context.DeadlineExceeded)
	}
}

func (s suite) testLocker(t *testing.T) {
	t.Run("MutualExclusion", func(t *testing.T) {
		e := s.parallel(t)
		k := newKey()
		l := e.locker()
		const workers, each = 4, 10
		counter := 0 // a plain int: the lock must protect it
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range each {
					ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
					unlock, err := l.Lock(ctx, k, time.Minute)
					cancel()
					if err != nil {
						t.Errorf("Lock: got error %v, want nil", err)
						return
					}
					c := counter
					runtime.Gosched()
					counter = c + 1
					if err := unlock(e.ctx); err != nil {
						t.Errorf("unlock: got error %v, want nil", err)
						return
					}
				}
			})
		}
		wg.Wait()
		if counter != workers*each {
			t.Fatalf("counter incremented under the lock: got %d, want %d", counter, workers*each)
		}
	})
	t.Run("ContextDoneWhileHeld", func(t *testing.T) {
		e := s.parallel(t)
		k := newKey()
		unlock := e.lockOrFail(k, time.Minute, 5*time.Second)
		defer unlock(e.ctx)
		e.wantLockHeld(k)
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		if unlock2, err := e.locker().Lock(ctx, k, time.Minute); !errors.Is(err, context.Canceled) {
			if err == nil {
				unlock2(e.ctx)
			}
			t.Fatalf("Lock(canceled ctx) on a held key: got error %v, want one wrapping %v", err, context.Canceled)
		}
	})
	t.Run("UnlockThenLock", func(t *testing.T) {
		e := s.parallel(t)
		k := newKey()
		for range 3 {
			unlock := e.lockOrFail(k, time.Minute, 5*time.Second)
			if err := unlock(e.ctx); err != nil {
				t.Fatalf("unlock: got error %v, want nil", err)
			}
			if err := unlock(e.ctx); !errors.Is(err, sesh.ErrLockLost) {
				t.Fatalf("second unlock: got error %v, want ErrLockLost", err)
			}
		}
	})
	t.Run("IndependentKeys", func(t *testing.T) {
		e := s.parallel(t)
		k1, k2 := newKey(), newKey()
		u1 := e.lockOrFail(k1, time.Minute, 5*time.Second)
		defer u1(e.ctx)
		u2 := e.lockOrFail(k2, time.Minute, 5*time.Second)
		defer u2(e.ctx)
	})
	t.Run("Lapses", func(t *testing.T) {
		// Real time must pass: a store may run leases on its server's
		// clock. The clock is advanced too, for stores that use it.
		e := s.parallel(t)
		k := newKey()
		e.lockOrFail(k, 100*time.Millisecond, 5*time.Second) // never unlocked
		e.clock.Advance(time.Second)
		unlock := e.lockOrFail(k, time.Minute, 5*time.Second)
		if err := unlock(e.ctx); err != nil {
			t.Fatalf("unlock: got error %v, want nil", err)
		}
	})
	t.Run("StaleUnlock", func(t *testing.T) {
		// An unlock from a holder that has lost the lock, by unlocking
		// already or by letting it lapse, must not release the new holder's.
		for _, lapse := range []bool{false, true} {
			t.Run(map[bool]string{false: "AfterUnlock", true: "AfterLapse"}[lapse], func(t *testing.T) {
				e := s.parallel(t)
				k := newKey()
				var stale func(context.Context) error
				if lapse {
					stale = e.lockOrFail(k, 100*time.Millisecond, 5*time.Second)
					e.clock.Advance(time.Second)
				} else {
					stale = e.lockOrFail(k, time.Minute, 5*time.Second)
					if err := stale(e.ctx); err != nil {
						t.Fatalf("unlock: got error %v, want nil", err)
					}
				}
				holder := e.lockOrFail(k, time.Minute, 5*time.Second)
				if err := stale(e.ctx); !errors.Is(err, sesh.ErrLockLost) {
					t.Fatalf("stale unlock: got error %v, want ErrLockLost", err)
				}
				e.wantLockHeld(k)
				if err := holder(e.ctx); err != nil {
					t.Fatalf("unlock: got error %v, want nil", err)
				}
				unlock := e.lockOrFail(k, time.Minute, 5*time.Second)
				unlock(e.ctx)
			})
		}
	})
}

func (s suite) testTaker(t *testing.T) {
	t.Run("ReturnsAndDeletes", func(t *testing.T) {
		e := s.parallel(t)
		k := newKey()
		r := e.rec("single use", 1)
		r.User, r.Kind = randomName(t, "u-"), sesh.KindToken
		e.save(k, r, 0)
		got, err := e.taker().Take(e.ctx, k)
		if err != nil {
			t.Fatalf("Take: got error %v, want nil", err)
		}
		checkRecord(t, "Take", got, r)
		e.wantLoadErr(k, sesh.ErrNotFound)
		if _, err := e.taker().Take(e.ctx, k); !errors.Is(err, sesh.ErrNotFound) {
			t.Fatalf("second Take: got error %v, want ErrNotFound", err)
		}
		// Take leaves no tombstone.
		r2 := e.rec("again", 1)
		e.save(k, r2, 0)
		e.wantLoad(k, r2)
	})
	t.Run("Concurrent", func(t *testing.T) {
		e := s.parallel(t)
		k := newKey()
		e.save(k, e.rec("once", 1), 0)
		const n = 20
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				_, errs[i] = e.taker().Take(e.ctx, k)
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, sesh.ErrNotFound):
				t.Errorf("concurrent Take %d: got error %v, want nil or ErrNotFound", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d concurrent Takes: got %d successes, want exactly 1", n, wins)
		}
	})
	t.Run("Absent", func(t *testing.T) {
		e := s.parallel(t)
		if _, err := e.taker().Take(e.ctx, newKey()); !errors.Is(err, sesh.ErrNotFound) {
			t.Fatalf("Take of an absent key: got error %v, want ErrNotFound", err)
		}
	})
	t.Run("Expired", func(t *testing.T) {
		e := s.parallel(t)
		k1, k2 := newKey(), newKey()
		r := e.rec("dead", 1)
		r.Expires = e.clock.Now().Add(-time.Second)
		e.save(k1, r, 0)
		e.save(k2, e.rec("soon", 1), 0)
		e.clock.Advance(2 * time.Hour)
		for _, k := range []sesh.Key{k1, k2} {
			if _, err := e.taker().Take(e.ctx, k); !errors.Is(err, sesh.ErrNotFound) {
				t.Fatalf("Take of an expired record: got error %v, want ErrNotFound", err)
			}
		}
	})
	t.Run("Tombstoned", func(t *testing.T) {
		e := s.parallel(t)
		k := newKey()
		e.save(k, e.rec("x", 1), 0)
		e.delete(k, e.clock.Now().Add(time.Minute))
		_, err := e.taker().Take(e.ctx, k)
		if !errors.Is(err, sesh.ErrGone) && !errors.Is(err, sesh.ErrNotFound) {
			t.Fatalf("Take under a tombstone: got error %v, want ErrGone or ErrNotFound", err)
		}
		e.wantLoadErr(k, sesh.ErrGone)
	})
}
