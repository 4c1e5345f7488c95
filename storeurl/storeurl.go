// Package storeurl opens a [sesh.Store] named by a URL, so that an
// application can choose its session store with one setting, and builds a
// whole [sesh.Manager] from the environment with [NewManager]:
//
//	m, closer, err := storeurl.NewManager(ctx, os.Getenv) // SESH_STORE, SESH_KEYS, ...
//	if err != nil { ... }
//	defer closer.Close()
//	http.ListenAndServeTLS(addr, cert, key, m.Handler(mux))
//
// This module imports the driver of every store below; an application
// that uses one store only and wants no other drivers in its build can
// call that store's package directly.
//
// # URL forms
//
//	memory:
//
// An in-process memory store (package memstore): sessions are lost on
// restart and not shared between processes. For development and tests.
//
//	file:sessions                 (relative to the working directory)
//	file:/var/lib/myapp/sessions
//	file:///var/lib/myapp/sessions
//
// A directory of files (package filestore), shared by the processes of one
// machine. It is created (mode 0700) if missing.
//
//	sqlite:sessions.db
//	sqlite:/var/lib/myapp/sessions.db?table=sessions
//	sqlite:///var/lib/myapp/sessions.db
//
// An SQLite database file (sqlitestore, through the pure-Go
// modernc.org/sqlite), opened with the pragmas busy_timeout(5000) and
// journal_mode(WAL). Its directory must exist; a new file is created with
// mode 0600. ":memory:" is refused (every pooled connection would get its
// own database): use memory: instead.
//
//	redis://localhost:6379/0
//	redis://user:secret@redis.internal:6379/2?prefix=myapp:sesh:&dial_timeout=3s
//	rediss://:secret@redis.example.com:6380/0
//
// A standalone Redis server (redisstore on redis.NewClient, with the
// options of redis.ParseURL): the path is the database number, rediss
// uses TLS (skip_verify=true turns verification off, for tests only).
//
//	redis+sentinel://sentinel1:26379,sentinel2:26379/mymaster
//	redis+sentinel://:secret@sentinel1:26379,sentinel2:26379/mymaster?db=2&sentinel_password=other
//
// A Redis master found through Sentinel (redis.NewFailoverClient, with
// the options of redis.ParseFailoverURL). The hosts are the sentinels
// (default port 26379), the path is the master's name, and the database
// number, if not 0, goes in ?db=N. The userinfo holds the master's
// credentials; sentinel_username and sentinel_password, the sentinels'
// if they need any.
//
//	redis+cluster://node1:6379,node2:6379,node3:6379
//	redis+cluster://:secret@node1:6379?prefix=myapp:
//
// A Redis Cluster (redis.NewClusterClient, with the options of
// redis.ParseClusterURL); the hosts are seed nodes.
//
// Every Redis client is made with ContextTimeoutEnabled, so that a call
// ends at its context's deadline (the manager's StoreTimeout) rather than
// at go-redis's ReadTimeout (see redisstore's documentation).
//
//	postgres://app:secret@db.internal:5432/app?sslmode=verify-full
//	postgresql://app@db1,db2/app?table=sessions&schema=auth&pool_max_conns=20
//
// A PostgreSQL database (pgstore on a pgxpool.Pool). The URL, less the
// options table, schema and migrate, is passed to pgx, which takes
// libpq's parameters, several hosts, the PG* environment variables and
// .pgpass. connect_timeout defaults to 5 (seconds), so that the pool's
// background connection attempts cannot hang on a server that accepts
// connections and never answers (see pgstore's documentation).
//
//	mysql://app:secret@db.internal:3306/app
//	mysql://app:secret@db.internal/app?tls=true&table=sessions&interpolateParams=true
//
// A MySQL or MariaDB database (mysqlstore, through
// github.com/go-sql-driver/mysql). The URL is turned into the driver's DSN
// (app:secret@tcp(db.internal:3306)/app?...) through its Config type;
// other query parameters are the driver's own. The default port is 3306.
//
//	memcached://127.0.0.1:11211
//	memcached://cache1:11211,cache2:11211?prefix=myapp:&timeout=200ms
//
// memcached servers (memcachedstore, through gomemcache); keys are spread
// over them by hash. memcached keeps no user index, so the store does not
// implement [sesh.UserIndexer]: device lists and "log out everywhere" do
// not work (memcachedstore.NewIndexed keeps the index in another store;
// build that by hand). Nor can it list sessions. memcached is a cache: it
// may evict a session, a tombstone or a lock.
//
// Scheme names are case-insensitive. A path, user name or password may
// hold any character written as a %-escape: in a password, '/', '?', '#',
// '@' and '%' must be (in a URL without userinfo, an '@' after the hosts
// is refused, as it most likely ends a password with an unescaped '/');
// in file: and sqlite: paths, '%', '?' and '#' must be.
//
// # Options
//
// Options go in the query; an option a scheme does not know is an error.
//
//   - sqlite, postgres, mysql: table=NAME (the store's table, default
//     sesh_records) and migrate=false. postgres also takes schema=NAME.
//   - redis, rediss, redis+sentinel, redis+cluster: prefix=P, the key
//     prefix (default "sesh:"); the others are go-redis's, such as db,
//     dial_timeout, read_timeout, pool_size, protocol or client_name.
//   - memcached: prefix=P (default "sesh:"), timeout=DURATION (socket
//     timeout, default 500ms), max_idle_conns=N (per server, default 2),
//     max_item_size=BYTES (the servers' -I setting, default 1 MiB).
//   - memory and file take none.
//
// # Connections, migration and errors
//
// Open checks that the store answers before it returns: it pings Redis
// (every master of a cluster; for Sentinel, it first asks the sentinels
// for the master), PostgreSQL, MySQL, SQLite and each memcached server, so
// that a wrong address or password fails at start-up with a clear error. The SQL stores' tables are then created with the
// store's Migrate, which is idempotent (CREATE ... IF NOT EXISTS) and so
// runs at every start unless the URL says migrate=false (when a DBA
// applies the DDL and the application lacks the CREATE privilege). All of
// this is bounded by the context given to Open, or by 10 seconds if it has
// no deadline.
//
// Errors never contain the URL's password, nor the value of any query
// parameter whose name contains "pass", "secret" or "token": the URL is
// shown as [Redact] writes it, and such values (of four characters or
// more) are scrubbed from the drivers' messages too. Driver errors stay in
// the chain, for [errors.Is] and [errors.As], except those that hold the
// URL itself (pgx's parse errors).
package storeurl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/seshgo/sesh"
)

// openTimeout bounds Open when its context has no deadline.
const openTimeout = 10 * time.Second

// schemeList is the list of schemes that errors quote.
const schemeList = "memory, file, sqlite, redis, rediss, redis+sentinel, redis+cluster, postgres, mysql, memcached"

// Open opens the store named by rawURL (see the package documentation for
// the forms). The returned io.Closer releases the client or pool that Open
// made (it does nothing for memory: and file:); close it once the store is
// no longer used, after the manager's last request. Open checks that the
// store answers and, for SQL stores, creates its tables unless the URL
// says migrate=false, all within ctx (or 10 seconds if ctx has no
// deadline). Its errors never contain a password.
func Open(ctx context.Context, rawURL string) (sesh.Store, io.Closer, error) {
	store, c, err := open(ctx, rawURL)
	if err != nil {
		return nil, nil, prefixed("storeurl: ", err)
	}
	return store, c, nil
}

// NewManager builds a manager from the environment, read through getenv
// (os.Getenv in production, a nil getenv meaning os.Getenv; a map lookup
// in tests): the store from the URL in SESH_STORE, opened with [Open], and
// the configuration from SESH_KEYS and the other variables that
// [sesh.ConfigFromEnv] reads. SESH_STORE has no default: a program that
// wants one passes a getenv that supplies it, for example
//
//	getenv := func(name string) string {
//		if v := os.Getenv(name); v != "" || name != "SESH_STORE" {
//			return v
//		}
//		return "file:sessions"
//	}
//
// The configuration is read and checked before the store is opened, so a
// bad variable costs no connection; every bad variable is reported at
// once. The io.Closer releases the store's client, as with Open. A program
// that needs more (a Logger, an Observer) calls sesh.ConfigFromEnv, Open
// and sesh.New itself.
func NewManager(ctx context.Context, getenv func(string) string) (*sesh.Manager, io.Closer, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var errs []error
	rawURL := strings.TrimSpace(getenv("SESH_STORE"))
	if rawURL == "" {
		errs = append(errs, errors.New("storeurl: SESH_STORE is not set: set it to a store URL such as memory:, file:/var/lib/myapp/sessions, redis://localhost:6379/0 or postgres://user@host/db"))
	}
	cfg, err := sesh.ConfigFromEnv(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	store, c, err := open(ctx, rawURL)
	if err != nil {
		return nil, nil, prefixed("storeurl: SESH_STORE: ", err)
	}
	m, err := sesh.New(store, cfg)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return m, c, nil
}

// open is Open without the "storeurl: " prefix on its errors, which are
// all *urlError.
func open(ctx context.Context, rawURL string) (sesh.Store, io.Closer, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, openTimeout)
		defer cancel()
	}
	r := newRedactor(rawURL)
	raw := strings.TrimSpace(rawURL)
	if raw == "" {
		return nil, nil, r.errorf("empty store URL (want one of the schemes %s)", schemeList)
	}
	colon := strings.IndexByte(raw, ':')
	if colon <= 0 || !validScheme(raw[:colon]) {
		// Do not quote the value: without a scheme, it cannot be redacted.
		return nil, nil, r.errorf("the store URL has no scheme (want one of %s, as in memory:, file:PATH or redis://HOST:PORT/DB)", schemeList)
	}
	scheme := strings.ToLower(raw[:colon])
	rest := raw[colon+1:]
	switch scheme {
	case "memory":
		return openMemory(r, rest)
	case "file":
		return openFile(r, rest)
	case "sqlite":
		return openSQLite(ctx, r, rest)
	case "redis", "rediss", "redis+sentinel", "redis+cluster", "postgres", "postgresql", "mysql", "memcached":
		n, err := parseNet(r, scheme, rest)
		if err != nil {
			return nil, nil, err
		}
		switch scheme {
		case "redis", "rediss":
			return openRedis(ctx, r, n)
		case "redis+sentinel":
			return openSentinel(ctx, r, n)
		case "redis+cluster":
			return openCluster(ctx, r, n)
		case "postgres", "postgresql":
			return openPostgres(ctx, r, n)
		case "mysql":
			return openMySQL(ctx, r, n)
		default:
			return openMemcached(ctx, r, n)
		}
	}
	return nil, nil, r.errorf("unsupported scheme %q (want %s)", scheme, schemeList)
}

// validScheme reports whether s is a URL scheme (RFC 3986).
func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// urlError is an error of Open. Its message has the URL's secrets
// replaced; the driver error it wraps is left as it is.
type urlError struct {
	msg string
	err error
}

func (e *urlError) Error() string { return e.msg }
func (e *urlError) Unwrap() error { return e.err }

// prefixed returns err, an error of open, with p before its message.
func prefixed(p string, err error) error {
	var ue *urlError
	if errors.As(err, &ue) {
		return &urlError{msg: p + ue.msg, err: ue.err}
	}
	return fmt.Errorf("%s%w", p, err) // not reached: open returns *urlError
}

// minSecret is the length below which secrets are not scrubbed from
// messages.
const minSecret = 4

// redactor makes the errors of one Open call: it knows the URL's secrets
// and scrubs them from messages.
type redactor struct {
	raw     string
	secrets []string // longest first
}

func newRedactor(raw string) *redactor {
	r := &redactor{raw: raw}
	add := func(s string) {
		// Shorter strings would match ordinary words of messages, and are
		// no secret anyway.
		if len(s) < minSecret {
			return
		}
		r.secrets = append(r.secrets, s)
		if u, err := url.PathUnescape(s); err == nil && u != s && len(u) >= minSecret {
			r.secrets = append(r.secrets, u)
		}
		if u, err := url.QueryUnescape(s); err == nil && u != s && len(u) >= minSecret {
			r.secrets = append(r.secrets, u)
		}
	}
	userinfo, query := splitSecrets(raw)
	if _, pass, ok := strings.Cut(userinfo, ":"); ok {
		add(pass)
	}
	for kv := range strings.SplitSeq(query, "&") {
		if k, v, ok := strings.Cut(kv, "="); ok && secretKey(k) {
			add(v)
		}
	}
	// Longest first, so that a secret containing another is replaced whole.
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return r
}

// scrub replaces every secret in s.
func (r *redactor) scrub(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "xxxxx")
	}
	return s
}

// errorf formats an error (%w keeps the wrapped error in the chain) and
// scrubs its message.
func (r *redactor) errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &urlError{msg: r.scrub(err.Error()), err: errors.Unwrap(err)}
}

// url returns the URL for messages, redacted.
func (r *redactor) url() string { return Redact(strings.TrimSpace(r.raw)) }

// Redact returns rawURL with the password of its userinfo, and the values
// of query parameters whose names contain "pass", "secret" or "token",
// replaced by "xxxxx", for logs and messages:
//
//	Redact("redis://app:s3cret@redis.internal:6379/0") == "redis://app:xxxxx@redis.internal:6379/0"
//
// It works on multi-host URLs and on malformed ones: when it cannot tell
// where a userinfo ends (say, a password with an unescaped '/'), it
// replaces all that might be one.
func Redact(rawURL string) string {
	s := rawURL
	if i := strings.Index(s, "://"); i >= 0 {
		start := i + 3
		rest := s[start:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		atAuth := strings.LastIndexByte(rest[:end], '@')
		atAll := strings.LastIndexByte(rest, '@')
		switch {
		case atAuth >= 0:
			userinfo := rest[:atAuth]
			if c := strings.IndexByte(userinfo, ':'); c >= 0 {
				userinfo = userinfo[:c+1] + "xxxxx"
			}
			s = s[:start] + userinfo + rest[atAuth:]
		case atAll >= 0:
			// An '@' after the authority: in a path or query, or ending a
			// malformed userinfo. Assume the worst.
			s = s[:start] + "xxxxx" + rest[atAll:]
		}
	}
	q := strings.IndexByte(s, '?')
	if q < 0 {
		return s
	}
	query, frag := s[q+1:], ""
	if h := strings.IndexByte(query, '#'); h >= 0 {
		query, frag = query[:h], query[h:]
	}
	parts := strings.Split(query, "&")
	for i, kv := range parts {
		if k, _, ok := strings.Cut(kv, "="); ok && secretKey(k) {
			parts[i] = k + "=xxxxx"
		}
	}
	return s[:q+1] + strings.Join(parts, "&") + frag
}

// splitSecrets returns the raw userinfo and query of a URL, found as
// Redact finds them.
func splitSecrets(raw string) (userinfo, query string) {
	s := raw
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
			userinfo = rest[:at]
		} else if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			userinfo = rest[:at]
			if c := strings.IndexByte(userinfo, ':'); c >= 0 {
				userinfo = userinfo[c:] // all of it is suspect
			} else {
				userinfo = ":" + userinfo
			}
		}
		s = rest[len(userinfo):]
	}
	if q := strings.IndexByte(s, '?'); q >= 0 {
		query = s[q+1:]
		if h := strings.IndexByte(query, '#'); h >= 0 {
			query = query[:h]
		}
	}
	return userinfo, query
}

// secretKey reports whether a query parameter's value is secret.
func secretKey(k string) bool {
	if u, err := url.QueryUnescape(k); err == nil {
		k = u
	}
	k = strings.ToLower(k)
	return strings.Contains(k, "pass") || strings.Contains(k, "secret") || strings.Contains(k, "token")
}

// closer is the io.Closer that Open returns: it closes once, and keeps
// the client for the package's tests.
type closer struct {
	once   sync.Once
	close  func() error
	err    error
	client any
}

func newCloser(client any, close func() error) *closer {
	return &closer{client: client, close: close}
}

// Close releases the client; later calls do nothing and return the
// first call's result.
func (c *closer) Close() error {
	c.once.Do(func() {
		if c.close != nil {
			c.err = c.close()
		}
	})
	return c.err
}

// options are the query options of a URL that the package itself reads.
type options struct {
	r      *redactor
	scheme string
	q      url.Values
}

// take removes name from the options and returns its last value.
func (o *options) take(name string) string {
	vs := o.q[name]
	delete(o.q, name)
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// migrate reads the migrate option.
func (o *options) migrate() (bool, error) {
	switch v := o.take("migrate"); strings.ToLower(v) {
	case "", "true", "1", "yes":
		return true, nil
	case "false", "0", "no":
		return false, nil
	default:
		return false, o.r.errorf("%s: migrate=%q: want true or false", o.scheme, v)
	}
}

// none fails if options are left that the scheme does not know.
func (o *options) none(known string) error {
	scheme := o.scheme
	if len(o.q) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(o.q))
	if known == "" {
		return o.r.errorf("%s: unknown option %s (it takes none)", scheme, quoteList(names))
	}
	return o.r.errorf("%s: unknown option %s (want %s)", scheme, quoteList(names), known)
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
