package storeurl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/filestore"
	"github.com/seshgo/sesh/memcachedstore"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/mysqlstore"
	"github.com/seshgo/sesh/pgstore"
	"github.com/seshgo/sesh/redisstore"
	"github.com/seshgo/sesh/sqlitestore"
)

// sqlitePragmas are applied to every connection of an SQLite database.
const sqlitePragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"

// guard calls f, turning a panic (the store constructors panic on a bad
// prefix) into an error.
func guard[T any](r *redactor, scheme string, f func() T) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			if e, ok := p.(error); ok {
				err = r.errorf("%s: %w", scheme, e)
			} else {
				err = r.errorf("%s: %v", scheme, p)
			}
		}
	}()
	return f(), nil
}

func openMemory(r *redactor, rest string) (sesh.Store, io.Closer, error) {
	if rest != "" && rest != "//" {
		return nil, nil, r.errorf("memory: takes no path or options (write memory:)")
	}
	return memstore.New(), newCloser(nil, nil), nil
}

func openFile(r *redactor, rest string) (sesh.Store, io.Closer, error) {
	path, o, err := parsePath(r, "file", rest)
	if err != nil {
		return nil, nil, err
	}
	if err := o.none(""); err != nil {
		return nil, nil, err
	}
	s, err := filestore.New(path)
	if err != nil {
		return nil, nil, r.errorf("file: %w", err)
	}
	return s, newCloser(nil, nil), nil
}

func openSQLite(ctx context.Context, r *redactor, rest string) (sesh.Store, io.Closer, error) {
	path, o, err := parsePath(r, "sqlite", rest)
	if err != nil {
		return nil, nil, err
	}
	if path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, nil, r.errorf("sqlite: %q: give the path of a database file (for sessions in memory, use memory:)", path)
	}
	var opts []sqlitestore.Option
	if _, ok := o.q["table"]; ok {
		opts = append(opts, sqlitestore.WithTable(o.take("table")))
	}
	migrate, err := o.migrate()
	if err != nil {
		return nil, nil, err
	}
	if err := o.none("table, migrate"); err != nil {
		return nil, nil, err
	}
	path = filepath.Clean(path)
	if dir := filepath.Dir(path); dir != "." {
		if fi, err := os.Stat(dir); err != nil {
			return nil, nil, r.errorf("sqlite: directory of the database: %w", err)
		} else if !fi.IsDir() {
			return nil, nil, r.errorf("sqlite: %s is not a directory", dir)
		}
	}
	db, err := sql.Open("sqlite", "file:"+sqliteURIPath(path)+"?"+sqlitePragmas)
	if err != nil {
		return nil, nil, r.errorf("sqlite: %w", err)
	}
	store, err := sqlitestore.New(db, opts...)
	if err != nil {
		db.Close()
		return nil, nil, r.errorf("sqlite: %w", err)
	}
	// A new database is private to its owner; SQLite gives the -wal and
	// -shm files the database file's mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		db.Close()
		return nil, nil, r.errorf("sqlite: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, r.errorf("sqlite: cannot open %s: %w", path, err)
	}
	if migrate {
		if err := store.Migrate(ctx); err != nil {
			db.Close()
			return nil, nil, r.errorf("sqlite: migrating %s: %w", path, err)
		}
	}
	return store, newCloser(db, db.Close), nil
}

// sqliteURIPath escapes path for an SQLite "file:" URI.
func sqliteURIPath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(path))
}

// redisStoreOptions takes the options of redisstore from o; the others
// are go-redis's.
func redisStoreOptions(o *options) []redisstore.Option {
	var opts []redisstore.Option
	if _, ok := o.q["prefix"]; ok {
		opts = append(opts, redisstore.WithPrefix(o.take("prefix")))
	}
	return opts
}

func openRedis(ctx context.Context, r *redactor, n *netURL) (sesh.Store, io.Closer, error) {
	o := n.options(r)
	sopts := redisStoreOptions(o)
	addr, err := n.one(r, "6379", " (for several, use redis+cluster:// or redis+sentinel://)")
	if err != nil {
		return nil, nil, err
	}
	// The credentials are set below, so that go-redis never sees them in
	// a URL it might quote.
	gu := url.URL{Scheme: n.scheme, Host: addr, Path: n.path, RawQuery: o.q.Encode()}
	ro, err := redis.ParseURL(gu.String())
	if err != nil {
		return nil, nil, r.errorf("%s: %w", n.scheme, err)
	}
	ro.Username, ro.Password = n.credentials()
	ro.ContextTimeoutEnabled = true
	client := redis.NewClient(ro)
	return finishRedis(ctx, r, n.scheme, client, sopts, func(ctx context.Context) error {
		return client.Ping(ctx).Err()
	})
}

func openSentinel(ctx context.Context, r *redactor, n *netURL) (sesh.Store, io.Closer, error) {
	o := n.options(r)
	sopts := redisStoreOptions(o)
	addrs, err := n.addrs(r, "26379")
	if err != nil {
		return nil, nil, err
	}
	master := strings.Trim(n.path, "/")
	if master == "" {
		return nil, nil, r.errorf("redis+sentinel: missing master name, as in redis+sentinel://HOST:26379[,HOST:PORT...]/MASTER")
	}
	if strings.Contains(master, "/") {
		return nil, nil, r.errorf("redis+sentinel: the path is the master's name alone (got %q); give a database number as ?db=N", master)
	}
	for _, k := range []string{"master_name", "username", "password"} {
		if _, ok := o.q[k]; ok {
			return nil, nil, r.errorf("redis+sentinel: option %q: the master's name is the URL's path, its credentials the URL's user:password@", k)
		}
	}
	sentinelUser, sentinelPass := o.take("sentinel_username"), o.take("sentinel_password")
	o.q.Set("master_name", master)
	for _, a := range addrs[1:] {
		o.q.Add("addr", a)
	}
	gu := url.URL{Scheme: "redis", Host: addrs[0], RawQuery: o.q.Encode()}
	fo, err := redis.ParseFailoverURL(gu.String())
	if err != nil {
		return nil, nil, r.errorf("redis+sentinel: %w", err)
	}
	fo.Username, fo.Password = n.credentials()
	fo.SentinelUsername, fo.SentinelPassword = sentinelUser, sentinelPass
	fo.ContextTimeoutEnabled = true
	client := redis.NewFailoverClient(fo)
	return finishRedis(ctx, r, n.scheme, client, sopts, func(ctx context.Context) error {
		// A failover client retries until ctx ends when no sentinel
		// answers or none knows the master: ask them first.
		if err := askSentinels(ctx, fo); err != nil {
			return err
		}
		return client.Ping(ctx).Err()
	})
}

// askSentinels asks the sentinels, in turn, for the master's address,
// and fails if none gives it.
func askSentinels(ctx context.Context, fo *redis.FailoverOptions) error {
	var errs []error
	for _, addr := range fo.SentinelAddrs {
		sc := redis.NewSentinelClient(&redis.Options{
			Addr:         addr,
			Username:     fo.SentinelUsername,
			Password:     fo.SentinelPassword,
			TLSConfig:    fo.TLSConfig,
			DialTimeout:  fo.DialTimeout,
			ReadTimeout:  fo.ReadTimeout,
			WriteTimeout: fo.WriteTimeout,
			MaxRetries:   -1,
		})
		_, err := sc.GetMasterAddrByName(ctx, fo.MasterName).Result()
		sc.Close()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, redis.Nil):
			errs = append(errs, fmt.Errorf("sentinel %s knows no master %q", addr, fo.MasterName))
		default:
			errs = append(errs, fmt.Errorf("sentinel %s: %w", addr, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

func openCluster(ctx context.Context, r *redactor, n *netURL) (sesh.Store, io.Closer, error) {
	o := n.options(r)
	sopts := redisStoreOptions(o)
	addrs, err := n.addrs(r, "6379")
	if err != nil {
		return nil, nil, err
	}
	if p := strings.Trim(n.path, "/"); p != "" {
		return nil, nil, r.errorf("redis+cluster: takes no path (got %q): a cluster has only database 0", p)
	}
	for _, a := range addrs[1:] {
		o.q.Add("addr", a)
	}
	gu := url.URL{Scheme: "redis", Host: addrs[0], RawQuery: o.q.Encode()}
	co, err := redis.ParseClusterURL(gu.String())
	if err != nil {
		return nil, nil, r.errorf("redis+cluster: %w", err)
	}
	co.Username, co.Password = n.credentials()
	co.ContextTimeoutEnabled = true
	client := redis.NewClusterClient(co)
	return finishRedis(ctx, r, n.scheme, client, sopts, func(ctx context.Context) error {
		return client.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		})
	})
}

// finishRedis makes the store on client and checks that Redis answers.
func finishRedis(ctx context.Context, r *redactor, scheme string, client redis.UniversalClient, sopts []redisstore.Option, ping func(context.Context) error) (sesh.Store, io.Closer, error) {
	store, err := guard(r, scheme, func() *redisstore.Store { return redisstore.New(client, sopts...) })
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	if err := ping(ctx); err != nil {
		client.Close()
		return nil, nil, r.errorf("%s: cannot reach %s: %w", scheme, r.url(), err)
	}
	return store, newCloser(client, client.Close), nil
}

func openPostgres(ctx context.Context, r *redactor, n *netURL) (sesh.Store, io.Closer, error) {
	o := n.options(r)
	var opts []pgstore.Option
	if _, ok := o.q["table"]; ok {
		opts = append(opts, pgstore.WithTable(o.take("table")))
	}
	if _, ok := o.q["schema"]; ok {
		opts = append(opts, pgstore.WithSchema(o.take("schema")))
	}
	migrate, err := o.migrate()
	if err != nil {
		return nil, nil, err
	}
	// The rest goes to pgx as written, less the options taken above.
	dsn := n.scheme + "://" + n.rawAuth + n.rawPath
	if q := o.q.Encode(); q != "" {
		dsn += "?" + q
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// Not wrapped: pgx's *ParseConfigError holds the connection
		// string, password and all (its message redacts it).
		return nil, nil, r.errorf("%s: %v", n.scheme, err)
	}
	if _, env := os.LookupEnv("PGCONNECT_TIMEOUT"); !env && cfg.ConnConfig.ConnectTimeout == 0 && !hasParam(dsn, "connect_timeout") {
		cfg.ConnConfig.ConnectTimeout = pgConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, r.errorf("%s: %w", n.scheme, err)
	}
	store, err := pgstore.New(pool, opts...)
	if err != nil {
		pool.Close()
		return nil, nil, r.errorf("%s: %w", n.scheme, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, r.errorf("%s: cannot reach %s: %w", n.scheme, r.url(), err)
	}
	if migrate {
		if err := store.Migrate(ctx); err != nil {
			pool.Close()
			return nil, nil, r.errorf("%s: migrating: %w", n.scheme, err)
		}
	}
	return store, newCloser(pool, func() error { pool.Close(); return nil }), nil
}

// pgConnectTimeout is connect_timeout unless the URL or the environment
// (PGCONNECT_TIMEOUT) sets it.
const pgConnectTimeout = 5 * time.Second

// hasParam reports whether the query of the URL dsn sets name, even to 0
// (libpq's "wait forever").
func hasParam(dsn, name string) bool {
	u, err := url.Parse(dsn)
	if err != nil {
		return false
	}
	_, ok := u.Query()[name]
	return ok
}

// mysqlDSN converts a mysql:// URL to a DSN of github.com/go-sql-driver/mysql,
// taking the package's own options from o.
func mysqlDSN(r *redactor, n *netURL) (string, error) {
	addr, err := n.one(r, "3306", "")
	if err != nil {
		return "", err
	}
	db := strings.TrimPrefix(n.path, "/")
	if db == "" || strings.Contains(db, "/") {
		return "", r.errorf("mysql: the path must be the database name, as in mysql://user:password@host:3306/app")
	}
	// The driver reads its parameters as written (some, such as charset,
	// unescaped), so pass them on as they are, less the package's own.
	var params []string
	for kv := range strings.SplitSeq(n.rawQuery, "&") {
		k, _, _ := strings.Cut(kv, "=")
		if u, err := url.QueryUnescape(k); err == nil {
			k = u
		}
		if kv != "" && k != "table" && k != "migrate" {
			params = append(params, kv)
		}
	}
	cfg, err := mysql.ParseDSN("/?" + strings.Join(params, "&"))
	if err != nil {
		return "", r.errorf("mysql: %w", err)
	}
	cfg.User, cfg.Passwd = n.credentials()
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", addr, db
	return cfg.FormatDSN(), nil
}

func openMySQL(ctx context.Context, r *redactor, n *netURL) (sesh.Store, io.Closer, error) {
	o := n.options(r)
	var opts []mysqlstore.Option
	if _, ok := o.q["table"]; ok {
		opts = append(opts, mysqlstore.WithTable(o.take("table")))
	}
	migrate, err := o.migrate()
	if err != nil {
		return nil, nil, err
	}
	dsn, err := mysqlDSN(r, n)
	if err != nil {
		return nil, nil, err
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, nil, r.errorf("mysql: %w", err)
	}
	store, err := mysqlstore.New(db, opts...)
	if err != nil {
		db.Close()
		return nil, nil, r.errorf("mysql: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, r.errorf("mysql: cannot reach %s: %w", r.url(), err)
	}
	if migrate {
		if err := store.Migrate(ctx); err != nil {
			db.Close()
			return nil, nil, r.errorf("mysql: migrating: %w", err)
		}
	}
	return store, newCloser(db, db.Close), nil
}

func openMemcached(ctx context.Context, r *redactor, n *netURL) (sesh.Store, io.Closer, error) {
	if n.user != nil {
		return nil, nil, r.errorf("memcached: takes no user name or password (the client has no authentication)")
	}
	if p := strings.Trim(n.path, "/"); p != "" {
		return nil, nil, r.errorf("memcached: takes no path (got %q)", p)
	}
	addrs, err := n.addrs(r, "11211")
	if err != nil {
		return nil, nil, err
	}
	o := n.options(r)
	var opts []memcachedstore.Option
	if _, ok := o.q["prefix"]; ok {
		opts = append(opts, memcachedstore.WithPrefix(o.take("prefix")))
	}
	var timeout time.Duration
	if v := o.take("timeout"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil || timeout <= 0 {
			return nil, nil, r.errorf("memcached: timeout=%q: want a positive duration such as 200ms", v)
		}
	}
	positive := func(name string) (int, error) {
		v := o.take(name)
		if v == "" {
			return 0, nil
		}
		i, err := strconv.Atoi(v)
		if err != nil || i <= 0 {
			return 0, r.errorf("memcached: %s=%q: want a positive number", name, v)
		}
		return i, nil
	}
	idle, err := positive("max_idle_conns")
	if err != nil {
		return nil, nil, err
	}
	maxItem, err := positive("max_item_size")
	if err != nil {
		return nil, nil, err
	}
	if maxItem > 0 {
		opts = append(opts, memcachedstore.WithMaxItemSize(maxItem))
	}
	if err := o.none("prefix, timeout, max_idle_conns, max_item_size"); err != nil {
		return nil, nil, err
	}
	ss := new(memcache.ServerList)
	client := memcache.NewFromSelector(ss)
	client.Timeout, client.MaxIdleConns = timeout, idle
	store, err := guard(r, "memcached", func() *memcachedstore.Store { return memcachedstore.New(client, opts...) })
	if err != nil {
		return nil, nil, err
	}
	// SetServers resolves the names (memcache.New would ignore its error).
	if err := ss.SetServers(addrs...); err != nil {
		return nil, nil, r.errorf("memcached: %w", err)
	}
	// gomemcache takes no context: its Ping is bounded by the client's
	// Timeout, and ctx by abandoning it.
	// A context already done wins over whatever the ping says.
	if err := ctx.Err(); err != nil {
		client.Close()
		return nil, nil, r.errorf("memcached: cannot reach %s: %w", r.url(), err)
	}
	done := make(chan error, 1)
	go func() { done <- client.Ping() }() // ends within client.Timeout
	select {
	case err = <-done:
	case <-ctx.Done():
	}
	if cerr := ctx.Err(); cerr != nil {
		err = cerr
	}
	if err != nil {
		client.Close()
		return nil, nil, r.errorf("memcached: cannot reach %s: %w", r.url(), err)
	}
	return store, newCloser(client, client.Close), nil
}
