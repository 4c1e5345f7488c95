package storeurl

import (
	"database/sql"
	"net/url"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestMySQLDSN(t *testing.T) {
	const pass = "p@ss:w/rd?#%&="
	tests := []struct {
		url  string
		dsn  string // as FormatDSN writes it
		user string
		pass string
		addr string
		db   string
		tls  string // ServerName of the TLS configuration, if any
	}{
		{url: "mysql://app@db.internal/app", dsn: "app@tcp(db.internal:3306)/app", user: "app", addr: "db.internal:3306", db: "app"},
		{url: "mysql://app:" + url.QueryEscape(pass) + "@db:3307/app", user: "app", pass: pass, addr: "db:3307", db: "app"},
		{url: "mysql://app:" + url.PathEscape(pass) + "@db:3307/app", user: "app", pass: pass, addr: "db:3307", db: "app"},
		{url: "mysql://root@[::1]:3306/my%20db?table=t&migrate=false&parseTime=true", dsn: "root@tcp([::1]:3306)/my%20db?parseTime=true", user: "root", addr: "[::1]:3306", db: "my db"},
		{url: "mysql://u:pw@db.example.com/app?tls=true&charset=utf8mb4,utf8&timeout=5s", user: "u", pass: "pw", addr: "db.example.com:3306", db: "app", tls: "db.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			r := newRedactor(tt.url)
			n, err := parseNet(r, "mysql", strings.TrimPrefix(tt.url, "mysql:"))
			if err != nil {
				t.Fatal(err)
			}
			dsn, err := mysqlDSN(r, n)
			if err != nil {
				t.Fatal(err)
			}
			if tt.dsn != "" && dsn != tt.dsn {
				t.Errorf("DSN %q, want %q", dsn, tt.dsn)
			}
			cfg, err := mysql.ParseDSN(dsn)
			if err != nil {
				t.Fatalf("the driver cannot parse %q: %v", dsn, err)
			}
			if cfg.User != tt.user || cfg.Passwd != tt.pass || cfg.Net != "tcp" || cfg.Addr != tt.addr || cfg.DBName != tt.db {
				t.Errorf("got %s:%s@%s(%s)/%s", cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName)
			}
			if _, ok := cfg.Params["table"]; ok {
				t.Error("the table option reached the driver")
			}
			if tt.tls != "" && (cfg.TLS == nil || cfg.TLS.ServerName != tt.tls) {
				t.Errorf("TLS %+v, want ServerName %q", cfg.TLS, tt.tls)
			}
			if strings.Contains(tt.url, "charset") && !strings.Contains(dsn, "charset=utf8mb4,utf8") {
				t.Errorf("DSN %q lost the charsets", dsn)
			}
		})
	}
}

func TestSQLitePragmas(t *testing.T) {
	_, c, err := Open(t.Context(), "sqlite:"+t.TempDir()+"/p.db")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	db := c.(*closer).client.(*sql.DB)
	var mode string
	var timeout int
	if err := db.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q, %v; want wal", mode, err)
	}
	if err := db.QueryRowContext(t.Context(), "PRAGMA busy_timeout").Scan(&timeout); err != nil || timeout != 5000 {
		t.Errorf("busy_timeout %d, %v; want 5000", timeout, err)
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct{ rest, path string }{
		{"rel", "rel"},
		{"./rel/x", "./rel/x"},
		{"/abs/x", "/abs/x"},
		{"///abs/x", "/abs/x"},
		{"//localhost/abs/x", "/abs/x"},
		{"//LOCALHOST/abs", "/abs"},
		{"/a%20b%3Fc%23d%25e", "/a b?c#d%e"},
		{"/x?table=t", "/x"},
	}
	for _, tt := range tests {
		path, _, err := parsePath(newRedactor(tt.rest), "file", tt.rest)
		if err != nil || path != tt.path {
			t.Errorf("parsePath(%q) = %q, %v; want %q", tt.rest, path, err, tt.path)
		}
	}
	if got := sqliteURIPath("/a b?c#d%e"); got != "/a b%3fc%23d%25e" {
		t.Errorf("sqliteURIPath: %q", got)
	}
}
