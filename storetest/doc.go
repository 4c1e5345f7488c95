// Package storetest checks that a session store honours the [sesh.Store]
// contract and every optional capability it implements ([sesh.UserIndexer],
// [sesh.Lister], [sesh.Sweeper], [sesh.Locker] and [sesh.Taker]), in the
// manner of testing/fstest.
//
// A store package calls [Run] from one of its tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, now func() time.Time) sesh.Store {
//			return memstore.New(memstore.WithClock(now))
//		})
//	}
//
// Run it under the race detector (go test -race): several properties are
// only checked for data races by concurrent use.
//
// # What stores must do to pass
//
// The store returned by newStore must take every decision about the expiry
// of records and tombstones from the now function it is given, so that the
// suite can move time forward with [Clock.Advance] instead of sleeping. A
// record is live while its Expires is after now, and a tombstone while its
// instant is after now. Leases taken with [sesh.Locker] are the exception:
// a store may run them on its own (or its server's) real clock, so the
// lease subtests let real time pass, a fraction of a second.
//
// Stores keep Expires with at least millisecond precision: a store may
// truncate it to a whole millisecond, but never round it up, so the Expires
// it returns lies in [want.Truncate(time.Millisecond), want].
//
// Record.Data up to 256 KiB must round-trip; a store may return
// [sesh.ErrTooLarge] only above that. Versions up to math.MaxInt64 must
// round-trip (SQL stores keep a signed 64-bit integer). Record.User is an
// opaque Go string: any bytes, including NUL, '/', newlines and invalid
// UTF-8, must round-trip and index exactly. Expires up to ten years ahead
// must be accepted.
//
// # Sharing a database
//
// Every subtest makes fresh random keys and user names with crypto/rand,
// so a server store may hand every subtest the same database; newStore must
// then return a store whose other contents do not matter. Most subtests run
// in parallel. The Sweeper subtests run one at a time, each advancing its
// clock by only a few seconds, so a shared-database sweep cannot remove a
// record that another subtest still expects to be live. Listings and user
// lookups may return records of other subtests; the suite checks only its
// own keys in them, plus that no returned record is dead. Two Run calls
// must not share one database at the same time: each Sweeper subtest
// counts on being the only sweeper while it runs.
//
// Capability subtests are registered only for the capabilities the store
// implements (never skipped), and Run logs which ones it found.
package storetest
