package storeurl_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/seal"
	"github.com/seshgo/sesh/storeurl"
)

// quiet discards go-redis's log lines, which the tests of unreachable
// servers would fill with failed dials.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	os.Exit(m.Run())
}

// need returns the value of the SESH_TEST_* variable name. It skips the
// test when the variable is unset, and fails it when CI=true.
func need(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set (CI=true): run the tests under scripts/testservers.sh", name)
		}
		t.Skipf("%s is not set; run under scripts/testservers.sh", name)
	}
	return v
}

// randomName returns a fresh identifier with the given prefix.
func randomName(prefix string) string {
	b := make([]byte, 5)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// aclUser creates a Redis user with a password on the servers at addrs,
// removed at the end of the test, to check that credentials reach the
// server that needs them.
func aclUser(t *testing.T, addrs ...string) (user, pass string) {
	t.Helper()
	user, pass = randomName("storeurl-"), randomName("pw-")
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		err := c.Do(t.Context(), "ACL", "SETUSER", user, "reset", "on", ">"+pass, "~*", "&*", "+@all").Err()
		if err != nil {
			c.Close()
			t.Fatalf("ACL SETUSER on %s: %v", addr, err)
		}
		t.Cleanup(func() {
			defer c.Close()
			if err := c.Do(context.Background(), "ACL", "DELUSER", user).Err(); err != nil {
				t.Logf("ACL DELUSER on %s: %v", addr, err)
			}
		})
	}
	return user, pass
}

// wrongPassword checks that Open of rawURL, whose password is wrong, fails
// without quoting it.
func wrongPassword(t *testing.T, rawURL, pass string) {
	t.Helper()
	_, _, err := storeurl.Open(t.Context(), rawURL)
	if err == nil {
		t.Fatalf("Open(%s) with a wrong password succeeded", storeurl.Redact(rawURL))
	}
	for _, msg := range errorTexts(err) {
		if strings.Contains(msg, pass) {
			t.Fatalf("error contains the password: %s", msg)
		}
	}
	if !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("error %q does not say the password is wrong", err)
	}
}

// open opens rawURL, failing the test on error, and closes the store at
// the end of the test.
func open(t *testing.T, rawURL string) sesh.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	store, c, err := storeurl.Open(ctx, rawURL)
	if err != nil {
		t.Fatalf("Open(%s): %v", storeurl.Redact(rawURL), err)
	}
	if store == nil || c == nil {
		t.Fatalf("Open(%s) returned a nil store or closer", storeurl.Redact(rawURL))
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := c.Close(); err != nil { // a second Close is harmless
			t.Errorf("second Close: %v", err)
		}
	})
	return store
}

// newKeys returns a fresh key ring.
func newKeys(t *testing.T) *seal.Ring {
	t.Helper()
	k, err := seal.GenerateKey(1)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := seal.NewRing(k)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// smoke runs a login, a write and a read through a manager on store, as
// HTTP requests, and lists the user's sessions if the store can.
func smoke(t *testing.T, store sesh.Store) {
	t.Helper()
	m, err := sesh.New(store, sesh.Config{Keys: newKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	smokeManager(t, m, "https://example.com")
}

func smokeManager(t *testing.T, m *sesh.Manager, origin string) {
	t.Helper()
	user := randomName("user-")
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		s.Login(user)
		if err := s.Set("n", 42); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		n, _ := sesh.Get[int](s, "n")
		fmt.Fprintf(w, "%s %d", s.User(), n)
	})
	h := m.Handler(mux)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", origin+"/login", nil))
	if rec.Code != 200 {
		t.Fatalf("/login: %d %s", rec.Code, rec.Body)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) == 0 {
		t.Fatal("/login set no cookie")
	}
	req := httptest.NewRequest("GET", origin+"/get", nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got, want := rec.Body.String(), user+" 42"; rec.Code != 200 || got != want {
		t.Fatalf("/get: %d %q, want 200 %q", rec.Code, got, want)
	}
	if _, ok := m.Store().(sesh.UserIndexer); ok {
		devices, err := m.Sessions(t.Context(), user)
		if err != nil || len(devices) != 1 {
			t.Fatalf("Sessions: %v, %v; want one", devices, err)
		}
	}
}

func TestOpenMemory(t *testing.T) {
	for _, u := range []string{"memory:", "memory://", "MEMORY:", " memory: "} {
		t.Run(u, func(t *testing.T) { smoke(t, open(t, u)) })
	}
}

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ url, dir string }{
		{"file:" + dir + "/abs", dir + "/abs"},
		{"file://" + dir + "/three-slashes", dir + "/three-slashes"},
		{"file://localhost" + dir + "/localhost", dir + "/localhost"},
		{"file:" + dir + "/with%20space%3F", dir + "/with space?"},
		{"file:" + dir + "/new/nested", dir + "/new/nested"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			smoke(t, open(t, tt.url))
			if fi, err := os.Stat(tt.dir); err != nil || !fi.IsDir() {
				t.Errorf("directory %s: %v", tt.dir, err)
			}
		})
	}
	t.Run("relative", func(t *testing.T) {
		t.Chdir(dir)
		for _, u := range []string{"file:rel", "file:./dot/rel"} {
			smoke(t, open(t, u))
		}
		for _, d := range []string{"rel", "dot/rel"} {
			if _, err := os.Stat(filepath.Join(dir, d)); err != nil {
				t.Error(err)
			}
		}
	})
}

func TestOpenSQLite(t *testing.T) {
	dir := t.TempDir()
	for _, u := range []string{
		"sqlite:" + dir + "/abs.db",
		"sqlite://" + dir + "/three.db",
		"sqlite:" + dir + "/tables.db?table=my_sessions",
		"sqlite:" + dir + "/odd%3Fname%23%25.db",
	} {
		t.Run(u, func(t *testing.T) { smoke(t, open(t, u)) })
	}
	t.Run("file mode", func(t *testing.T) {
		smoke(t, open(t, "sqlite:"+dir+"/mode.db")) // open while checking: -wal and -shm go on close
		for _, name := range []string{"abs.db", "mode.db", "mode.db-wal", "mode.db-shm"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s has mode %v, want 0600", name, perm)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "odd?name#%.db")); err != nil {
			t.Errorf("escaped name: %v", err)
		}
	})
	t.Run("relative", func(t *testing.T) {
		t.Chdir(dir)
		smoke(t, open(t, "sqlite:rel.db"))
		if _, err := os.Stat(filepath.Join(dir, "rel.db")); err != nil {
			t.Error(err)
		}
	})
	t.Run("migrate=false", func(t *testing.T) {
		path := dir + "/nomigrate.db"
		// Without the tables, the store fails.
		store := open(t, "sqlite:"+path+"?migrate=false")
		if _, err := store.Load(t.Context(), sesh.Key{1}); err == nil || errors.Is(err, sesh.ErrNotFound) {
			t.Fatalf("Load without tables: %v, want a store error", err)
		}
		open(t, "sqlite:"+path) // migrates
		smoke(t, open(t, "sqlite:"+path+"?migrate=false"))
		smoke(t, open(t, "sqlite:"+path+"?migrate=true")) // idempotent
	})
}

func TestOpenRedis(t *testing.T) {
	base := need(t, "SESH_TEST_REDIS") // redis://127.0.0.1:6379/0
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	prefix := randomName("storeurl-test:")
	t.Run("redis", func(t *testing.T) { smoke(t, open(t, base)) })
	t.Run("prefix and options", func(t *testing.T) {
		smoke(t, open(t, "redis://"+u.Host+"/1?prefix="+url.QueryEscape(prefix)+"&dial_timeout=2s&pool_size=4"))
	})
	t.Run("credentials", func(t *testing.T) {
		user, pass := aclUser(t, u.Host)
		smoke(t, open(t, "redis://"+user+":"+pass+"@"+u.Host+"/0"))
		wrongPassword(t, "redis://"+user+":"+pass+"x@"+u.Host+"/0", pass)
	})
}

// TestOpenRediss checks that rediss: speaks TLS, verifying the server's
// certificate unless skip_verify=true, against a TLS listener that
// records handshakes (there is no TLS Redis among the test servers).
func TestOpenRediss(t *testing.T) {
	srv := httptest.NewTLSServer(nil) // for its certificate, valid for 127.0.0.1
	cert := srv.TLS.Certificates[0]
	srv.Close()
	hellos := make(chan string, 100)
	handshakes := make(chan error, 100)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			hellos <- chi.ServerName
			return nil, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handshakes <- c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, _, err = storeurl.Open(ctx, fmt.Sprintf("rediss://localhost:%d/0?max_retries=-1", port))
	if err == nil || !strings.Contains(err.Error(), "x509: certificate") {
		t.Errorf("an unverifiable certificate: %v", err)
	}
	if name := <-hellos; name != "localhost" {
		t.Errorf("SNI %q, want localhost", name)
	}

	ctx, cancel = context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, _, err = storeurl.Open(ctx, fmt.Sprintf("rediss://localhost:%d/0?max_retries=-1&skip_verify=true", port))
	if err == nil {
		t.Fatal("Open succeeded against a server that is no Redis")
	}
	for {
		select {
		case err := <-handshakes:
			if err == nil {
				return // a TLS handshake completed
			}
		case <-ctx.Done():
			t.Fatal("no TLS handshake completed with skip_verify=true")
		}
	}
}

func TestOpenRedisSentinel(t *testing.T) {
	sentinel := need(t, "SESH_TEST_REDIS_SENTINEL") // 127.0.0.1:26479
	master := need(t, "SESH_TEST_REDIS_SENTINEL_MASTER")
	smoke(t, open(t, "redis+sentinel://"+sentinel+"/"+master))
	smoke(t, open(t, "redis+sentinel://"+sentinel+",127.0.0.1:1/"+master+"?db=2&prefix="+randomName("t")+":"))
	_, _, err := storeurl.Open(t.Context(), "redis+sentinel://"+sentinel+"/no-such-master")
	if want := `storeurl: redis+sentinel: cannot reach redis+sentinel://` + sentinel + `/no-such-master: sentinel ` + sentinel + ` knows no master "no-such-master"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("unknown master: %v, want %s", err, want)
	}
	t.Run("credentials", func(t *testing.T) {
		// The userinfo is the master's: the sentinel has no such user.
		c := redis.NewSentinelClient(&redis.Options{Addr: sentinel})
		addr, err := c.GetMasterAddrByName(t.Context(), master).Result()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		user, pass := aclUser(t, net.JoinHostPort(addr[0], addr[1]))
		smoke(t, open(t, "redis+sentinel://"+user+":"+pass+"@"+sentinel+"/"+master))
		wrongPassword(t, "redis+sentinel://"+user+":"+pass+"x@"+sentinel+"/"+master, pass)
	})
}

func TestOpenRedisCluster(t *testing.T) {
	nodes := need(t, "SESH_TEST_REDIS_CLUSTER") // 127.0.0.1:7101,127.0.0.1:7102,...
	smoke(t, open(t, "redis+cluster://"+nodes))
	first, _, _ := strings.Cut(nodes, ",")
	smoke(t, open(t, "redis+cluster://"+first+"?prefix="+randomName("t")+":&read_timeout=2s"))
	t.Run("credentials", func(t *testing.T) {
		user, pass := aclUser(t, strings.Split(nodes, ",")...)
		smoke(t, open(t, "redis+cluster://"+user+":"+pass+"@"+nodes))
		wrongPassword(t, "redis+cluster://"+user+":"+pass+"x@"+nodes, pass)
	})
}

// dropTables removes the tables of a SQL store test.
func dropPostgres(t *testing.T, dsn string, tables ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			t.Log(err)
			return
		}
		defer pool.Close()
		for _, tb := range tables {
			if _, err := pool.Exec(ctx, `DROP TABLE IF EXISTS "`+tb+`", "`+tb+`_locks"`); err != nil {
				t.Log(err)
			}
		}
	})
}

func TestOpenPostgres(t *testing.T) {
	base := need(t, "SESH_TEST_POSTGRES") // postgres://postgres@127.0.0.1:5432/test?sslmode=disable
	table := randomName("storeurl_")
	dropPostgres(t, base, table)
	withQuery := func(scheme string, q url.Values) string {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		u.Scheme = scheme
		v := u.Query()
		for k, vs := range q {
			v[k] = vs
		}
		u.RawQuery = v.Encode()
		return u.String()
	}
	t.Run("postgres", func(t *testing.T) {
		smoke(t, open(t, withQuery("postgres", url.Values{"table": {table}})))
	})
	t.Run("postgresql, schema, pgx options", func(t *testing.T) {
		smoke(t, open(t, withQuery("postgresql", url.Values{
			"table": {table}, "schema": {"public"}, "pool_max_conns": {"3"}, "application_name": {"storeurl test"},
		})))
	})
	t.Run("migrate=false", func(t *testing.T) {
		other := randomName("storeurl_")
		dropPostgres(t, base, other)
		store := open(t, withQuery("postgres", url.Values{"table": {other}, "migrate": {"false"}}))
		if _, err := store.Load(t.Context(), sesh.Key{1}); err == nil || errors.Is(err, sesh.ErrNotFound) {
			t.Fatalf("Load without tables: %v, want a store error", err)
		}
		smoke(t, open(t, withQuery("postgres", url.Values{"table": {table}, "migrate": {"false"}})))
	})
	t.Run("default table name", func(t *testing.T) {
		// The default table may be shared with other tests: only open it.
		open(t, withQuery("postgres", nil))
	})
}

// mysqlURL converts the driver DSN of SESH_TEST_MYSQL to a mysql:// URL.
func mysqlURL(t *testing.T, q url.Values) (rawURL, dsn string) {
	dsn = need(t, "SESH_TEST_MYSQL") // root@tcp(127.0.0.1:3306)/test
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u := url.URL{Scheme: "mysql", User: url.User(cfg.User), Host: cfg.Addr, Path: "/" + cfg.DBName, RawQuery: q.Encode()}
	if cfg.Passwd != "" {
		u.User = url.UserPassword(cfg.User, cfg.Passwd)
	}
	return u.String(), dsn
}

func dropMySQL(t *testing.T, dsn string, tables ...string) {
	t.Cleanup(func() {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Log(err)
			return
		}
		defer db.Close()
		for _, tb := range tables {
			if _, err := db.Exec("DROP TABLE IF EXISTS `" + tb + "`, `" + tb + "_locks`"); err != nil {
				t.Log(err)
			}
		}
	})
}

func TestOpenMySQL(t *testing.T) {
	table := randomName("storeurl_")
	u, dsn := mysqlURL(t, url.Values{"table": {table}, "parseTime": {"true"}, "timeout": {"5s"}})
	dropMySQL(t, dsn, table)
	smoke(t, open(t, u))
	t.Run("migrate=false", func(t *testing.T) {
		other := randomName("storeurl_")
		dropMySQL(t, dsn, other)
		u, _ := mysqlURL(t, url.Values{"table": {other}, "migrate": {"false"}})
		store := open(t, u)
		if _, err := store.Load(t.Context(), sesh.Key{1}); err == nil || errors.Is(err, sesh.ErrNotFound) {
			t.Fatalf("Load without tables: %v, want a store error", err)
		}
		u, _ = mysqlURL(t, url.Values{"table": {table}, "migrate": {"false"}, "interpolateParams": {"true"}})
		smoke(t, open(t, u))
	})
}

func TestOpenMemcached(t *testing.T) {
	addr := need(t, "SESH_TEST_MEMCACHED") // 127.0.0.1:11311
	smoke(t, open(t, "memcached://"+addr))
	store := open(t, "memcached://"+addr+","+addr+"?prefix="+randomName("t")+":&timeout=1s&max_idle_conns=4&max_item_size=2097152")
	smoke(t, store)
	if _, ok := store.(sesh.UserIndexer); ok {
		t.Error("a memcached store has no user index")
	}
}

func TestOpenBadURL(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ url, want string }{
		{"", `storeurl: empty store URL (want one of the schemes memory, file, sqlite, redis, rediss, redis+sentinel, redis+cluster, postgres, mysql, memcached)`},
		{"   ", `storeurl: empty store URL`},
		{"ftp://example.com/x", `storeurl: unsupported scheme "ftp" (want memory, file, sqlite, redis, rediss, redis+sentinel, redis+cluster, postgres, mysql, memcached)`},
		{"localhost:6379", `storeurl: unsupported scheme "localhost"`},
		{"Redis+Ring://h", `storeurl: unsupported scheme "redis+ring"`},
		{"/var/lib/sessions", `storeurl: the store URL has no scheme`},
		{"sessions", `storeurl: the store URL has no scheme`},
		{"1redis://h", `storeurl: the store URL has no scheme`},
		{"memory:x", `storeurl: memory: takes no path or options`},
		{"memory:?shards=4", `storeurl: memory: takes no path or options`},
		// file
		{"file:", `storeurl: file: missing path`},
		{"file://", `storeurl: file: missing path`},
		{"file://server/share", `storeurl: file: host "server": only local paths can be opened`},
		{"file:/x?mode=0700", `storeurl: file: unknown option "mode" (it takes none)`},
		{"file:/x#y", `storeurl: file: a '#' in a path must be written %23`},
		{"file:/x%zz", `storeurl: file: invalid %-escape in the path`},
		{"file:" + notDir, `storeurl: file: filestore: ` + notDir + ` is not a directory`},
		// sqlite
		{"sqlite:", `storeurl: sqlite: missing path`},
		{"sqlite::memory:", `storeurl: sqlite: ":memory:": give the path of a database file`},
		{"sqlite:file:x.db", `storeurl: sqlite: "file:x.db": give the path`},
		{"sqlite:" + dir + "/x.db?table=bad-name", `storeurl: sqlite: sqlitestore: invalid table name "bad-name"`},
		{"sqlite:" + dir + "/x.db?migrate=maybe", `storeurl: sqlite: migrate="maybe": want true or false`},
		{"sqlite:" + dir + "/x.db?journal=off", `storeurl: sqlite: unknown option "journal" (want table, migrate)`},
		{"sqlite:" + dir + "/missing/x.db", `storeurl: sqlite: directory of the database: stat ` + dir + `/missing: no such file or directory`},
		{"sqlite:" + notDir + "/x.db", `storeurl: sqlite: ` + notDir + ` is not a directory`},
		// redis
		{"redis:localhost", `storeurl: redis: want redis://HOST... (got redis:localhost)`},
		{"redis://", `storeurl: redis: missing host in redis://`},
		{"redis://h:6379/x", `storeurl: redis: redis: invalid database number: "x"`},
		{"redis://h:6379/0/1", `storeurl: redis: redis: invalid URL path: /0/1`},
		{"redis://h1:6379,h2:6379/0", `storeurl: redis: takes one host, not 2 (for several, use redis+cluster:// or redis+sentinel://)`},
		{"redis://h:port/0", `storeurl: redis: invalid host "h:port"`},
		{"redis://h:0/0", `storeurl: redis: invalid port in host "h:0"`},
		{"redis://,h/0", `storeurl: redis: empty host in the list ",h"`},
		{"redis://h/0?prefix=a%20b", `storeurl: redis: redisstore: key prefix "a b" contains ' '`},
		{"redis://h/0?bogus=1&wrte_timeout=1", `storeurl: redis: redis: unexpected option: bogus, wrte_timeout`},
		{"redis://h/0?dial_timeout=soon", `storeurl: redis: redis: invalid dial_timeout duration`},
		{"redis://h/0#frag", `storeurl: redis: malformed URL redis://h/0#frag: a '#' must be written %23`},
		{"rediss://h/0?password=x", `storeurl: rediss: redis: unexpected option: password`},
		{"redis+sentinel://h:26379", `storeurl: redis+sentinel: missing master name`},
		{"redis+sentinel://h:26379/", `storeurl: redis+sentinel: missing master name`},
		{"redis+sentinel://h/m/1", `storeurl: redis+sentinel: the path is the master's name alone (got "m/1"); give a database number as ?db=N`},
		{"redis+sentinel://h/m?master_name=n", `storeurl: redis+sentinel: option "master_name": the master's name is the URL's path`},
		{"redis+sentinel://h/m?password=x", `storeurl: redis+sentinel: option "password"`},
		{"redis+sentinel://h/m?db=x", `storeurl: redis+sentinel: redis: invalid database number`},
		{"redis+sentinel:///m", `storeurl: redis+sentinel: missing host`},
		{"redis+cluster://", `storeurl: redis+cluster: missing host`},
		{"redis+cluster://h:7000/3", `storeurl: redis+cluster: takes no path (got "3")`},
		{"redis+cluster://h:7000?db=1", `storeurl: redis+cluster: redis: unexpected option: db`},
		// postgres
		{"postgres://h/db?table=bad-name", `storeurl: postgres: pgstore: invalid table name "bad-name"`},
		{"postgresql://h/db?schema=a.b", `storeurl: postgresql: pgstore: invalid schema name "a.b"`},
		{"postgres://h:99999/db", `storeurl: postgres: cannot parse`},
		{"postgres://h/db?migrate=2", `storeurl: postgres: migrate="2": want true or false`},
		{"postgres:h/db", `storeurl: postgres: want postgres://HOST...`},
		// mysql
		{"mysql://h", `storeurl: mysql: the path must be the database name`},
		{"mysql://h/", `storeurl: mysql: the path must be the database name`},
		{"mysql://h/a/b", `storeurl: mysql: the path must be the database name`},
		{"mysql://h1,h2/db", `storeurl: mysql: takes one host, not 2`},
		{"mysql://h/db?table=bad-name", `storeurl: mysql: mysqlstore: invalid table name "bad-name"`},
		{"mysql://h/db?parseTime=maybe", `storeurl: mysql: invalid bool value: maybe`},
		{"mysql://h/db?tls=nosuchconfig", `storeurl: mysql: invalid value / unknown config name: nosuchconfig`},
		// memcached
		{"memcached://", `storeurl: memcached: missing host`},
		{"memcached://u:p@h", `storeurl: memcached: takes no user name or password`},
		{"memcached://h/x", `storeurl: memcached: takes no path (got "x")`},
		{"memcached://h?prefix=a%20b", `storeurl: memcached: memcachedstore: key prefix "a b" contains ' '`},
		{"memcached://h?timeout=0", `storeurl: memcached: timeout="0": want a positive duration`},
		{"memcached://h?max_idle_conns=-1", `storeurl: memcached: max_idle_conns="-1": want a positive number`},
		{"memcached://h?max_item_size=big", `storeurl: memcached: max_item_size="big": want a positive number`},
		{"memcached://h?ttl=1", `storeurl: memcached: unknown option "ttl" (want prefix, timeout, max_idle_conns, max_item_size)`},
		{"memcached://no-such-host.invalid:11211", `storeurl: memcached: lookup no-such-host.invalid`},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			store, c, err := storeurl.Open(t.Context(), tt.url)
			if err == nil {
				c.Close()
				t.Fatalf("no error; got %T", store)
			}
			if store != nil || c != nil {
				t.Errorf("a failed Open returned %v, %v", store, c)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n\t%v\ndoes not contain\n\t%s", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x.db")); err == nil {
		t.Error("a failed Open left a database file behind")
	}
}

// TestOpenUnreachable checks that Open fails fast, naming the URL, when
// nothing listens.
func TestOpenUnreachable(t *testing.T) {
	for _, u := range []string{
		"redis://127.0.0.1:1/0",
		"redis+sentinel://127.0.0.1:1,127.0.0.1:2/master",
		"redis+cluster://127.0.0.1:1,127.0.0.1:2",
		"postgres://u@127.0.0.1:1/db?sslmode=disable",
		"mysql://u@127.0.0.1:1/db",
		"memcached://127.0.0.1:1",
	} {
		t.Run(u, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			_, _, err := storeurl.Open(t.Context(), u)
			if err == nil {
				t.Fatal("no error")
			}
			if want := "cannot reach " + u; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
			if d := time.Since(start); d > 8*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestOpenContext checks that Open gives up when its context ends.
func TestOpenContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, u := range []string{"redis://127.0.0.1:1/0", "postgres://u@127.0.0.1:1/db", "mysql://u@127.0.0.1:1/db", "memcached://127.0.0.1:1"} {
		_, _, err := storeurl.Open(ctx, u)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want context.Canceled in the chain", u, err)
		}
	}
}

// errorTexts returns the messages of err and of every error in its chain.
func errorTexts(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		out = append(out, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}

func TestOpenRedactsPasswords(t *testing.T) {
	const pw = "s3cr3tPW"
	tests := []string{
		"ftp://user:" + pw + "@example.com/",
		"redis://:" + pw + "@127.0.0.1:1/0",
		"redis://user:" + pw + "@127.0.0.1:1/x",
		"rediss://:" + pw + "@h:1/0?bogus=1",
		"redis://:" + pw + "@h:port/0",
		"redis://:p%40ss%3A" + pw + "@127.0.0.1:1/0",
		"redis://:" + pw + "/x@127.0.0.1:1/0",
		"redis://:" + pw + "?x@127.0.0.1:1/0",
		"redis://:" + pw + "%zz@127.0.0.1:1/0",
		"redis+sentinel://:" + pw + "@127.0.0.1:1/m?sentinel_password=" + pw + "2",
		"redis+sentinel://127.0.0.1:1/m?sentinel_password=" + pw,
		"redis+cluster://u:" + pw + "@127.0.0.1:1",
		"redis+cluster://u:" + pw + "@127.0.0.1:1/0",
		"postgres://u:" + pw + "@127.0.0.1:1/db",
		"postgres://u:" + pw + "@h:99999/db",
		"postgres://u@127.0.0.1:1/db?password=" + pw,
		"postgres://u:" + pw + "@h/db?table=bad-name",
		"postgresql://u:" + pw + "@h/db?sslmode=bogus",
		"mysql://u:" + pw + "@127.0.0.1:1/db",
		"mysql://u:" + pw + "@h/db?tls=bogus",
		"mysql://u:" + pw + "@h/",
		"memcached://u:" + pw + "@h:1",
		"sqlite:/nonexistent/x.db?password=" + pw,
	}
	if dsn := os.Getenv("SESH_TEST_MYSQL"); dsn != "" {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		tests = append(tests, "mysql://"+cfg.User+":"+pw+"@"+cfg.Addr+"/"+cfg.DBName)
	}
	for _, u := range tests {
		t.Run(storeurl.Redact(u), func(t *testing.T) {
			t.Parallel()
			_, c, err := storeurl.Open(t.Context(), u)
			if err == nil {
				c.Close()
				t.Fatal("no error")
			}
			for _, msg := range errorTexts(err) {
				if strings.Contains(msg, pw) || strings.Contains(msg, "p@ss") {
					t.Fatalf("error contains the password: %s", msg)
				}
			}
			if !strings.Contains(err.Error(), "storeurl: ") {
				t.Errorf("error %q", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"memory:", "memory:"},
		{"file:/var/lib/x", "file:/var/lib/x"},
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://app:s3cret@redis.internal:6379/0", "redis://app:xxxxx@redis.internal:6379/0"},
		{"redis://:s3cret@h/0", "redis://:xxxxx@h/0"},
		{"redis://user@h/0", "redis://user@h/0"},
		{"redis+sentinel://:pw@h1:26379,h2:26379/m?db=1&sentinel_password=pw2", "redis+sentinel://:xxxxx@h1:26379,h2:26379/m?db=1&sentinel_password=xxxxx"},
		{"postgres://u:p%40ss@h/db?sslmode=disable&password=x&sslpassword=y&Secret=z&api_token=t#f", "postgres://u:xxxxx@h/db?sslmode=disable&password=xxxxx&sslpassword=xxxxx&Secret=xxxxx&api_token=xxxxx#f"},
		{"mysql://u:a@b@h/db", "mysql://u:xxxxx@h/db"},
		{"redis://:pa/ss@h/0", "redis://xxxxx@h/0"},
		{"postgres://h/db?application_name=me@example.com", "postgres://xxxxx@example.com"},
		{"redis://u:pw@h?prefix=a", "redis://u:xxxxx@h?prefix=a"},
	}
	for _, tt := range tests {
		if got := storeurl.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNewManager(t *testing.T) {
	k, err := seal.GenerateKey(1)
	if err != nil {
		t.Fatal(err)
	}
	env := func(m map[string]string) func(string) string {
		return func(name string) string { return m[name] }
	}
	t.Run("memory", func(t *testing.T) {
		m, c, err := storeurl.NewManager(t.Context(), env(map[string]string{
			"SESH_STORE":           "memory:",
			"SESH_KEYS":            k.Encode(),
			"SESH_COOKIE_INSECURE": "true",
			"SESH_IDLE_TIMEOUT":    "10m",
		}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		smokeManager(t, m, "http://localhost") // InsecureHTTP: plain HTTP works
	})
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		m, c, err := storeurl.NewManager(t.Context(), env(map[string]string{
			"SESH_STORE": "file:" + dir + "/sessions",
			"SESH_KEYS":  k.Encode(),
		}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		smokeManager(t, m, "https://example.com")
	})
	t.Run("SESH_STORE unset", func(t *testing.T) {
		_, c, err := storeurl.NewManager(t.Context(), env(map[string]string{"SESH_KEYS": k.Encode()}))
		if err == nil || c != nil || !strings.Contains(err.Error(), "storeurl: SESH_STORE is not set") {
			t.Errorf("got %v, %v", c, err)
		}
	})
	t.Run("nothing set", func(t *testing.T) {
		_, _, err := storeurl.NewManager(t.Context(), env(nil))
		if err == nil || !strings.Contains(err.Error(), "SESH_STORE is not set") || !strings.Contains(err.Error(), "SESH_KEYS is not set") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("bad store URL", func(t *testing.T) {
		_, _, err := storeurl.NewManager(t.Context(), env(map[string]string{"SESH_STORE": "ftp://u:pw@h/", "SESH_KEYS": k.Encode()}))
		if err == nil || !strings.HasPrefix(err.Error(), `storeurl: SESH_STORE: unsupported scheme "ftp"`) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("bad configuration opens nothing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "sessions")
		_, _, err := storeurl.NewManager(t.Context(), env(map[string]string{
			"SESH_STORE":        "file:" + dir,
			"SESH_KEYS":         k.Encode(),
			"SESH_IDLE_TIMEOUT": "30x",
		}))
		if err == nil || !strings.Contains(err.Error(), `sesh: SESH_IDLE_TIMEOUT: "30x"`) {
			t.Errorf("got %v", err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the store was opened: %v", err)
		}
	})
	t.Run("os.Getenv", func(t *testing.T) {
		t.Setenv("SESH_STORE", "memory:")
		t.Setenv("SESH_KEYS", k.Encode())
		m, c, err := storeurl.NewManager(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		smokeManager(t, m, "https://example.com")
	})
}

// ExampleNewManager shows a program choosing its store from SESH_STORE, with a
// default for development.
func ExampleNewManager() {
	getenv := func(name string) string {
		if v := os.Getenv(name); v != "" || name != "SESH_STORE" {
			return v
		}
		return "file:sessions"
	}
	m, closer, err := storeurl.NewManager(context.Background(), getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer closer.Close()
	_ = m // http.ListenAndServeTLS(addr, cert, key, m.Handler(mux))
}

func ExampleRedact() {
	fmt.Println(storeurl.Redact("redis://app:s3cret@redis.internal:6379/0"))
	// Output: redis://app:xxxxx@redis.internal:6379/0
}
