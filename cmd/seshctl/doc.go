// Command seshctl administers the sessions of a sesh store, for
// operators: it lists, shows and revokes sessions, sweeps expired
// records, counts what the store holds, generates keys and re-seals
// records under a new key. It works on any store that package storeurl
// opens (memory:, file:PATH, sqlite:PATH, redis://, redis+cluster://,
// redis+sentinel://, postgres://, mysql://, memcached://), with the
// application's own environment:
//
//	SESH_STORE   the store URL, unless --store URL is given
//	SESH_KEYS    the application's key ring, current key first (every
//	             command but keygen needs it)
//	SESH_*       the other variables, as sesh.ConfigFromEnv reads them
//	             (SESH_TOMBSTONE_TTL, for one, applies to revocations)
//
// Usage:
//
//	seshctl [--store URL] COMMAND [flags]
//
//	list   [--user U] [--limit N] [--json]   live sessions, all or one user's
//	show   HANDLE [--json]                   one session, by its handle
//	revoke --handle H | --user U | --all --yes
//	                                         end sessions (--user and --all
//	                                         also end remember-me tokens)
//	sweep  [--batch N]                       delete expired records and tombstones
//	stats  [--json]                          count sessions, users, tokens, keys
//	keygen [--id N]                          print a new key for SESH_KEYS
//	reseal [--batch N]                       re-seal records under the current key
//	help   [COMMAND]                         usage
//
// Flags may come before or after a command's arguments; a handle that
// starts with '-' goes after "--" (seshctl show -- -q3n0hWcA2ZyQkTl). Tables are for
// people; --json prints JSON for scripts (snake_case fields, RFC 3339
// times in UTC, unknown times left out). Progress of long runs (revoke
// --all, sweep, reseal, stats) goes to standard error. seshctl exits with
// status 0 on success, 1 on failure (including an unknown handle) and 2 on
// a usage error.
//
// stats counts live records: sessions, of which authenticated and
// anonymous, remembered (restored by a remember-me token) and unreadable
// (sealed under a key SESH_KEYS lacks; the user name, which stores keep
// in the clear for their index, is still known); distinct users;
// remember-me tokens; the oldest session's creation time; and sessions
// and tokens by the ID of the key that sealed them, each key "current"
// (the first of SESH_KEYS), "old" (another of SESH_KEYS) or "unknown".
//
// Examples:
//
//	export SESH_STORE=postgres://app@db.internal/app SESH_KEYS=...
//	seshctl list --limit 20
//	seshctl list --user alice@example.com --json | jq -r '.[].handle'
//	seshctl show q3n0hWcA2ZyQkTl1
//	seshctl revoke --user alice@example.com     # "log out everywhere"
//	seshctl revoke --all --yes                  # breach response
//	seshctl --store file:/var/lib/myapp/sessions sweep   # from cron
//	seshctl stats --json
//
// Rotating the key: run `seshctl keygen`, which prints a key with the
// next free ID. Add it at the end of SESH_KEYS on every instance, so that
// all of them can open what it seals; then move it to the front, making
// it current; then run `seshctl reseal` to re-seal the stored records
// under it, and `seshctl stats` to check that no record is left under the
// old key. Keep the old key for one absolute timeout if the application
// uses Config.BindDataToID (see sesh.Manager.Reseal).
//
// User names and user agents come from clients: seshctl shows them with
// control characters escaped, so that they cannot drive the terminal.
package main
