// Package sesh is secure, store-backed HTTP session management for
// net/http.
//
// A [Manager] loads a request's session lazily from a [Store], hands it to
// handlers through the request context, and commits it before the first
// byte of the response:
//
//	keys, err := seal.ParseRing(os.Getenv("SESH_KEYS"))
//	...
//	m, err := sesh.New(filestore.New(dir), sesh.Config{Keys: keys})
//	...
//	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
//		s := sesh.FromContext(r.Context())
//		n, _ := sesh.Get[int](s, "visits")
//		s.Set("visits", n+1)
//	})
//	http.ListenAndServeTLS(addr, certFile, keyFile, m.Handler(mux))
//
// # Sessions
//
// Values are stored per key, encoded by the manager's [Codec] (JSON by
// default) when set and decoded into the caller's type when read: [Get],
// [Lookup], [Pop], [Session.Set], [Session.Delete], [Session.Has],
// [Session.Keys], [Session.Clear]. No type needs registering. [Bag]s
// namespace values; [Flash] holds one-hop messages. [Session.Login] renews
// the ID and binds a user; [Session.Logout] destroys the session;
// [Session.Remember] issues a remember-me token.
//
// A session costs nothing until used: no store read until a handler
// touches it, no write and no cookie while it holds nothing, and a
// read-only request writes only when the idle deadline needs moving and
// the last recorded activity is older than Config.TouchInterval.
//
// # Security
//
// Session IDs are 256 random bits in a __Host- cookie (Secure, HttpOnly,
// SameSite=Lax, Path=/). The store key is a SHA-256 of the ID, and every
// record is sealed with AES-256-GCM under a rotating key ring (package
// seal), bound to its store key; optionally values are sealed under a key
// derived from the ID too (Config.BindDataToID). IDs the server did not
// issue, or issued and ended, are never adopted. Idle and absolute
// deadlines are checked on every load, by the manager. A destroyed or
// renewed ID leaves a tombstone, so a request still in flight with it can
// neither write it back nor replace the browser's new cookie.
//
// Package csrf adds cross-origin protection and session-bound tokens.
// Remember-me tokens are split into a selector and a validator of which
// only a hash is stored, rotated on every use, and a stale validator
// revokes all of the user's tokens and sessions. [Manager.Sessions] lists a
// user's devices by opaque handle; [Manager.Revoke], [Manager.RevokeOthers],
// [Manager.RevokeAll] and [Manager.PasswordChanged] end them. Lifecycle and
// security events go to an [Observer]; no session ID, remember token or
// CSRF secret ever reaches it.
//
// # Failures
//
// A store error is never mistaken for "no session": a failed load or
// commit is answered by Config.ErrorHandler (503 by default) with no
// cookie, so an outage never logs anyone out. Commits use a context that a
// disconnecting client cannot cancel, and changes made by a response with
// status 500 or above are dropped unless Config.SaveOnServerError is set.
//
// # Concurrency
//
// Records carry a version. A commit writes only the keys the request
// changed, with compare-and-set, and re-applies them to the newest version
// on conflict, so parallel requests writing different keys never lose each
// other's writes. For read-modify-write of one key, wrap the route with
// [Manager.Exclusive], which serialises requests on one session.
//
// # Stores
//
// A [Store] has three methods: Load, Save with compare-and-set, and Delete
// with a tombstone. Optional capabilities are found by type assertion:
// [UserIndexer] (device lists), [Lister] (administration), [Sweeper]
// (explicit expiry), [Locker] (exclusive mode across processes) and
// [Taker] (single-use records). Package storetest checks a store against
// the whole contract. Packages memstore and filestore are in this module;
// Redis, PostgreSQL, MySQL/MariaDB, SQLite and memcached stores are
// modules of their own, so an application pulls in only the driver it
// uses. Nothing sweeps in the background: call [Manager.Sweep] on a ticker.
package sesh
