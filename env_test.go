package sesh_test

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/seal"
)

// envKey returns a fresh SESH_KEYS item with the given ID.
func envKey(t *testing.T, id uint32) string {
	t.Helper()
	k, err := seal.GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k.Encode()
}

// envOf returns a getenv reading m.
func envOf(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

func TestConfigFromEnvGood(t *testing.T) {
	key1, key2 := envKey(t, 1), envKey(t, 2)
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c sesh.Config)
	}{
		{"keys only", nil, func(t *testing.T, c sesh.Config) {
			want := sesh.Config{Keys: c.Keys}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got %+v, want only Keys set", c)
			}
			if got := c.Keys.IDs(); !reflect.DeepEqual(got, []uint32{1}) {
				t.Errorf("key IDs %v", got)
			}
		}},
		{"two keys, current first", map[string]string{"SESH_KEYS": " " + key2 + " , " + key1 + " "}, func(t *testing.T, c sesh.Config) {
			if got := c.Keys.IDs(); !reflect.DeepEqual(got, []uint32{2, 1}) {
				t.Errorf("key IDs %v, want [2 1]", got)
			}
		}},
		{"SESH_IDLE_TIMEOUT", map[string]string{"SESH_IDLE_TIMEOUT": "45m"}, func(t *testing.T, c sesh.Config) {
			if c.IdleTimeout != 45*time.Minute || c.TouchInterval != 0 {
				t.Errorf("IdleTimeout %v, TouchInterval %v (want 45m, 0: not normalised)", c.IdleTimeout, c.TouchInterval)
			}
		}},
		{"SESH_IDLE_TIMEOUT with spaces", map[string]string{"SESH_IDLE_TIMEOUT": " 1h30m\t"}, func(t *testing.T, c sesh.Config) {
			if c.IdleTimeout != 90*time.Minute {
				t.Errorf("IdleTimeout %v", c.IdleTimeout)
			}
		}},
		{"SESH_ABSOLUTE_TIMEOUT", map[string]string{"SESH_ABSOLUTE_TIMEOUT": "24h"}, func(t *testing.T, c sesh.Config) {
			if c.AbsoluteTimeout != 24*time.Hour {
				t.Errorf("AbsoluteTimeout %v", c.AbsoluteTimeout)
			}
		}},
		{"SESH_TOUCH_INTERVAL", map[string]string{"SESH_TOUCH_INTERVAL": "90s", "SESH_IDLE_TIMEOUT": "10m"}, func(t *testing.T, c sesh.Config) {
			if c.TouchInterval != 90*time.Second || c.IdleTimeout != 10*time.Minute {
				t.Errorf("TouchInterval %v IdleTimeout %v", c.TouchInterval, c.IdleTimeout)
			}
		}},
		{"SESH_TOUCH_INTERVAL below the default idle timeout", map[string]string{"SESH_TOUCH_INTERVAL": "29m59s"}, func(t *testing.T, c sesh.Config) {
			if c.TouchInterval != 29*time.Minute+59*time.Second {
				t.Errorf("TouchInterval %v", c.TouchInterval)
			}
		}},
		{"SESH_TOMBSTONE_TTL", map[string]string{"SESH_TOMBSTONE_TTL": "10m"}, func(t *testing.T, c sesh.Config) {
			if c.TombstoneTTL != 10*time.Minute {
				t.Errorf("TombstoneTTL %v", c.TombstoneTTL)
			}
		}},
		{"SESH_STORE_TIMEOUT", map[string]string{"SESH_STORE_TIMEOUT": "500ms"}, func(t *testing.T, c sesh.Config) {
			if c.StoreTimeout != 500*time.Millisecond {
				t.Errorf("StoreTimeout %v", c.StoreTimeout)
			}
		}},
		{"SESH_LOCK_TIMEOUT", map[string]string{"SESH_LOCK_TIMEOUT": "3s"}, func(t *testing.T, c sesh.Config) {
			if c.LockTimeout != 3*time.Second {
				t.Errorf("LockTimeout %v", c.LockTimeout)
			}
		}},
		{"SESH_REMEMBER_TTL", map[string]string{"SESH_REMEMBER_TTL": "2160h"}, func(t *testing.T, c sesh.Config) {
			if c.RememberTTL != 90*24*time.Hour {
				t.Errorf("RememberTTL %v", c.RememberTTL)
			}
		}},
		{"SESH_REMEMBER_GRACE", map[string]string{"SESH_REMEMBER_GRACE": "1m"}, func(t *testing.T, c sesh.Config) {
			if c.RememberGrace != time.Minute {
				t.Errorf("RememberGrace %v", c.RememberGrace)
			}
		}},
		{"SESH_MAX_SIZE", map[string]string{"SESH_MAX_SIZE": "1024"}, func(t *testing.T, c sesh.Config) {
			if c.MaxSize != 1024 {
				t.Errorf("MaxSize %d", c.MaxSize)
			}
		}},
		{"SESH_MAX_SIZE at the limit", map[string]string{"SESH_MAX_SIZE": "16777216"}, func(t *testing.T, c sesh.Config) {
			if c.MaxSize != 16<<20 {
				t.Errorf("MaxSize %d", c.MaxSize)
			}
		}},
		{"SESH_COOKIE_NAME", map[string]string{"SESH_COOKIE_NAME": "__Host-app"}, func(t *testing.T, c sesh.Config) {
			if c.Cookie.Name != "__Host-app" {
				t.Errorf("Cookie.Name %q", c.Cookie.Name)
			}
		}},
		{"SESH_COOKIE_DOMAIN", map[string]string{"SESH_COOKIE_NAME": "__Secure-app", "SESH_COOKIE_DOMAIN": "example.com"}, func(t *testing.T, c sesh.Config) {
			if c.Cookie.Name != "__Secure-app" || c.Cookie.Domain != "example.com" {
				t.Errorf("Cookie %+v", c.Cookie)
			}
		}},
		{"SESH_COOKIE_DOMAIN with a leading dot", map[string]string{"SESH_COOKIE_NAME": "app", "SESH_COOKIE_DOMAIN": ".sub-1.Example.org"}, func(t *testing.T, c sesh.Config) {
			if c.Cookie.Domain != ".sub-1.Example.org" {
				t.Errorf("Cookie.Domain %q", c.Cookie.Domain)
			}
		}},
		{"SESH_COOKIE_SAMESITE lax", map[string]string{"SESH_COOKIE_SAMESITE": "lax"}, func(t *testing.T, c sesh.Config) {
			if c.Cookie.SameSite != http.SameSiteLaxMode {
				t.Errorf("SameSite %v", c.Cookie.SameSite)
			}
		}},
		{"SESH_COOKIE_SAMESITE Strict", map[string]string{"SESH_COOKIE_SAMESITE": "Strict"}, func(t *testing.T, c sesh.Config) {
			if c.Cookie.SameSite != http.SameSiteStrictMode {
				t.Errorf("SameSite %v", c.Cookie.SameSite)
			}
		}},
		{"SESH_COOKIE_SAMESITE NONE", map[string]string{"SESH_COOKIE_SAMESITE": "NONE"}, func(t *testing.T, c sesh.Config) {
			if c.Cookie.SameSite != http.SameSiteNoneMode {
				t.Errorf("SameSite %v", c.Cookie.SameSite)
			}
		}},
		{"SESH_COOKIE_PERSISTENT", map[string]string{"SESH_COOKIE_PERSISTENT": "true"}, func(t *testing.T, c sesh.Config) {
			if !c.Cookie.Persistent {
				t.Error("Persistent not set")
			}
		}},
		{"SESH_COOKIE_PERSISTENT false", map[string]string{"SESH_COOKIE_PERSISTENT": "0"}, func(t *testing.T, c sesh.Config) {
			if c.Cookie.Persistent {
				t.Error("Persistent set")
			}
		}},
		{"SESH_COOKIE_INSECURE", map[string]string{"SESH_COOKIE_INSECURE": "1"}, func(t *testing.T, c sesh.Config) {
			if !c.Cookie.InsecureHTTP || c.Cookie.Name != "" {
				t.Errorf("Cookie %+v", c.Cookie)
			}
		}},
		{"SESH_BIND_DATA_TO_ID", map[string]string{"SESH_BIND_DATA_TO_ID": "T"}, func(t *testing.T, c sesh.Config) {
			if !c.BindDataToID {
				t.Error("BindDataToID not set")
			}
		}},
		{"SESH_BIND_USER_AGENT", map[string]string{"SESH_BIND_USER_AGENT": "log"}, func(t *testing.T, c sesh.Config) {
			if c.BindUserAgent != sesh.PolicyLog {
				t.Errorf("BindUserAgent %v", c.BindUserAgent)
			}
		}},
		{"SESH_BIND_USER_AGENT off", map[string]string{"SESH_BIND_USER_AGENT": "Off"}, func(t *testing.T, c sesh.Config) {
			if c.BindUserAgent != sesh.PolicyOff {
				t.Errorf("BindUserAgent %v", c.BindUserAgent)
			}
		}},
		{"SESH_BIND_IP", map[string]string{"SESH_BIND_IP": "ENFORCE"}, func(t *testing.T, c sesh.Config) {
			if c.BindIP != sesh.PolicyEnforce {
				t.Errorf("BindIP %v", c.BindIP)
			}
		}},
		{"SESH_TRUSTED_PROXIES", map[string]string{"SESH_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7 ,::1,2001:db8::/32,,::ffff:172.16.0.0/108,::ffff:10.9.9.9"}, func(t *testing.T, c sesh.Config) {
			want := []netip.Prefix{
				netip.MustParsePrefix("10.0.0.0/8"),
				netip.MustParsePrefix("192.168.1.7/32"),
				netip.MustParsePrefix("::1/128"),
				netip.MustParsePrefix("2001:db8::/32"),
				netip.MustParsePrefix("172.16.0.0/12"),
				netip.MustParsePrefix("10.9.9.9/32"),
			}
			if !reflect.DeepEqual(c.TrustedProxies, want) {
				t.Errorf("TrustedProxies %v, want %v", c.TrustedProxies, want)
			}
		}},
		{"empty values are defaults", map[string]string{"SESH_IDLE_TIMEOUT": "", "SESH_COOKIE_NAME": "  ", "SESH_BIND_IP": ""}, func(t *testing.T, c sesh.Config) {
			if c.IdleTimeout != 0 || c.Cookie.Name != "" || c.BindIP != sesh.PolicyOff {
				t.Errorf("got %+v", c)
			}
		}},
		{"everything", map[string]string{
			"SESH_KEYS":              key1 + "," + key2,
			"SESH_IDLE_TIMEOUT":      "20m",
			"SESH_ABSOLUTE_TIMEOUT":  "8h",
			"SESH_TOUCH_INTERVAL":    "30s",
			"SESH_TOMBSTONE_TTL":     "2m",
			"SESH_STORE_TIMEOUT":     "1s",
			"SESH_LOCK_TIMEOUT":      "5s",
			"SESH_MAX_SIZE":          "32768",
			"SESH_COOKIE_NAME":       "devsesh",
			"SESH_COOKIE_DOMAIN":     "localhost",
			"SESH_COOKIE_SAMESITE":   "strict",
			"SESH_COOKIE_PERSISTENT": "true",
			"SESH_COOKIE_INSECURE":   "true",
			"SESH_BIND_DATA_TO_ID":   "true",
			"SESH_BIND_USER_AGENT":   "enforce",
			"SESH_BIND_IP":           "log",
			"SESH_TRUSTED_PROXIES":   "127.0.0.1",
			"SESH_REMEMBER_TTL":      "168h",
			"SESH_REMEMBER_GRACE":    "10s",
		}, func(t *testing.T, c sesh.Config) {
			want := sesh.Config{
				Keys:            c.Keys,
				IdleTimeout:     20 * time.Minute,
				AbsoluteTimeout: 8 * time.Hour,
				TouchInterval:   30 * time.Second,
				TombstoneTTL:    2 * time.Minute,
				StoreTimeout:    time.Second,
				LockTimeout:     5 * time.Second,
				MaxSize:         32768,
				Cookie: sesh.CookieConfig{
					Name: "devsesh", Domain: "localhost", SameSite: http.SameSiteStrictMode,
					Persistent: true, InsecureHTTP: true,
				},
				BindDataToID:   true,
				BindUserAgent:  sesh.PolicyEnforce,
				BindIP:         sesh.PolicyLog,
				TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
				RememberTTL:    7 * 24 * time.Hour,
				RememberGrace:  10 * time.Second,
			}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got  %+v\nwant %+v", c, want)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"SESH_KEYS": key1}
			for k, v := range tt.env {
				env[k] = v
			}
			c, err := sesh.ConfigFromEnv(envOf(env))
			if err != nil {
				t.Fatalf("ConfigFromEnv: %v", err)
			}
			tt.check(t, c)
			if _, err := sesh.New(memstore.New(), c); err != nil {
				t.Errorf("New refuses the configuration: %v", err)
			}
		})
	}
}

func TestConfigFromEnvBad(t *testing.T) {
	key := envKey(t, 1)
	tests := []struct {
		env  map[string]string
		want []string // substrings of the error
	}{
		// Durations.
		{map[string]string{"SESH_IDLE_TIMEOUT": "30x"}, []string{`sesh: SESH_IDLE_TIMEOUT: "30x": time: unknown unit "x" in duration "30x"`}},
		{map[string]string{"SESH_IDLE_TIMEOUT": "-5m"}, []string{`sesh: SESH_IDLE_TIMEOUT: "-5m": must not be negative`}},
		{map[string]string{"SESH_IDLE_TIMEOUT": "0"}, []string{`sesh: SESH_IDLE_TIMEOUT: "0": must be positive`}},
		{map[string]string{"SESH_ABSOLUTE_TIMEOUT": "12"}, []string{`sesh: SESH_ABSOLUTE_TIMEOUT: "12": time: missing unit`}},
		{map[string]string{"SESH_ABSOLUTE_TIMEOUT": "-1h"}, []string{`sesh: SESH_ABSOLUTE_TIMEOUT: "-1h": must not be negative`}},
		{map[string]string{"SESH_TOUCH_INTERVAL": "soon"}, []string{`sesh: SESH_TOUCH_INTERVAL: "soon": time: invalid duration`}},
		{map[string]string{"SESH_TOUCH_INTERVAL": "-1s"}, []string{`sesh: SESH_TOUCH_INTERVAL: "-1s": must not be negative`}},
		{map[string]string{"SESH_TOMBSTONE_TTL": "5 m"}, []string{`sesh: SESH_TOMBSTONE_TTL: "5 m": time:`}},
		{map[string]string{"SESH_TOMBSTONE_TTL": "0s"}, []string{`sesh: SESH_TOMBSTONE_TTL: "0s": must be positive`}},
		{map[string]string{"SESH_STORE_TIMEOUT": "2secs"}, []string{`sesh: SESH_STORE_TIMEOUT: "2secs": time: unknown unit`}},
		{map[string]string{"SESH_STORE_TIMEOUT": "-2s"}, []string{`sesh: SESH_STORE_TIMEOUT: "-2s": must not be negative`}},
		{map[string]string{"SESH_LOCK_TIMEOUT": "1e3"}, []string{`sesh: SESH_LOCK_TIMEOUT: "1e3": time:`}},
		{map[string]string{"SESH_LOCK_TIMEOUT": "-10s"}, []string{`sesh: SESH_LOCK_TIMEOUT: "-10s": must not be negative`}},
		{map[string]string{"SESH_REMEMBER_TTL": "30d"}, []string{`sesh: SESH_REMEMBER_TTL: "30d": time: unknown unit "d"`}},
		{map[string]string{"SESH_REMEMBER_TTL": "-720h"}, []string{`sesh: SESH_REMEMBER_TTL: "-720h": must not be negative`}},
		{map[string]string{"SESH_REMEMBER_GRACE": "x"}, []string{`sesh: SESH_REMEMBER_GRACE: "x": time: invalid duration`}},
		{map[string]string{"SESH_REMEMBER_GRACE": "-30s"}, []string{`sesh: SESH_REMEMBER_GRACE: "-30s": must not be negative`}},
		// Sizes.
		{map[string]string{"SESH_MAX_SIZE": "64k"}, []string{`sesh: SESH_MAX_SIZE: "64k": not a whole number of bytes`}},
		{map[string]string{"SESH_MAX_SIZE": "1.5"}, []string{`sesh: SESH_MAX_SIZE: "1.5": not a whole number of bytes`}},
		{map[string]string{"SESH_MAX_SIZE": "-1"}, []string{`sesh: SESH_MAX_SIZE: "-1": must not be negative`}},
		{map[string]string{"SESH_MAX_SIZE": "0"}, []string{`sesh: SESH_MAX_SIZE: "0": must be positive`}},
		{map[string]string{"SESH_MAX_SIZE": "16777217"}, []string{`sesh: SESH_MAX_SIZE: "16777217": must be at most 16777216`}},
		{map[string]string{"SESH_MAX_SIZE": "99999999999999999999"}, []string{`sesh: SESH_MAX_SIZE: "99999999999999999999": not a whole number`}},
		// Cookie.
		{map[string]string{"SESH_COOKIE_NAME": "my session"}, []string{`sesh: SESH_COOKIE_NAME: "my session": not a valid cookie name`}},
		{map[string]string{"SESH_COOKIE_NAME": "a;b=c"}, []string{`sesh: SESH_COOKIE_NAME: "a;b=c": not a valid cookie name`}},
		{map[string]string{"SESH_COOKIE_NAME": "sesh\x00"}, []string{`sesh: SESH_COOKIE_NAME: "sesh\x00": not a valid cookie name`}},
		{map[string]string{"SESH_COOKIE_NAME": "app", "SESH_COOKIE_DOMAIN": "exa mple.com"}, []string{`sesh: SESH_COOKIE_DOMAIN: "exa mple.com": not a valid domain name`}},
		{map[string]string{"SESH_COOKIE_NAME": "app", "SESH_COOKIE_DOMAIN": "-x.example.com"}, []string{`sesh: SESH_COOKIE_DOMAIN: "-x.example.com": not a valid domain name`}},
		{map[string]string{"SESH_COOKIE_NAME": "app", "SESH_COOKIE_DOMAIN": "a..b"}, []string{`sesh: SESH_COOKIE_DOMAIN: "a..b": not a valid domain name`}},
		{map[string]string{"SESH_COOKIE_NAME": "app", "SESH_COOKIE_DOMAIN": "example.com;secure"}, []string{`sesh: SESH_COOKIE_DOMAIN: "example.com;secure": not a valid domain name`}},
		{map[string]string{"SESH_COOKIE_NAME": "app", "SESH_COOKIE_DOMAIN": "."}, []string{`sesh: SESH_COOKIE_DOMAIN: ".": not a valid domain name`}},
		{map[string]string{"SESH_COOKIE_SAMESITE": "sometimes"}, []string{`sesh: SESH_COOKIE_SAMESITE: "sometimes": want lax, strict or none`}},
		{map[string]string{"SESH_COOKIE_SAMESITE": "default"}, []string{`sesh: SESH_COOKIE_SAMESITE: "default": want lax, strict or none`}},
		{map[string]string{"SESH_COOKIE_PERSISTENT": "yes"}, []string{`sesh: SESH_COOKIE_PERSISTENT: "yes": not a boolean`}},
		{map[string]string{"SESH_COOKIE_INSECURE": "on"}, []string{`sesh: SESH_COOKIE_INSECURE: "on": not a boolean`}},
		// Binding.
		{map[string]string{"SESH_BIND_DATA_TO_ID": "enabled"}, []string{`sesh: SESH_BIND_DATA_TO_ID: "enabled": not a boolean`}},
		{map[string]string{"SESH_BIND_USER_AGENT": "on"}, []string{`sesh: SESH_BIND_USER_AGENT: "on": want off, log or enforce`}},
		{map[string]string{"SESH_BIND_IP": "strict"}, []string{`sesh: SESH_BIND_IP: "strict": want off, log or enforce`}},
		{map[string]string{"SESH_BIND_IP": "2"}, []string{`sesh: SESH_BIND_IP: "2": want off, log or enforce`}},
		// Proxies.
		{map[string]string{"SESH_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}, []string{`sesh: SESH_TRUSTED_PROXIES: "proxy.internal": ParseAddr("proxy.internal")`}},
		{map[string]string{"SESH_TRUSTED_PROXIES": "10.0.0.300/8"}, []string{`sesh: SESH_TRUSTED_PROXIES: "10.0.0.300/8": netip.ParsePrefix`}},
		{map[string]string{"SESH_TRUSTED_PROXIES": "10.0.0.0/33"}, []string{`sesh: SESH_TRUSTED_PROXIES: "10.0.0.0/33": netip.ParsePrefix`}},
		{map[string]string{"SESH_TRUSTED_PROXIES": "10.0.0.1/8"}, []string{`sesh: SESH_TRUSTED_PROXIES: "10.0.0.1/8": host bits are set: write 10.0.0.0/8 for the network, or 10.0.0.1/32 for one address`}},
		{map[string]string{"SESH_TRUSTED_PROXIES": "fe80::1%eth0"}, []string{`sesh: SESH_TRUSTED_PROXIES: "fe80::1%eth0": an address with a zone`}},
		{map[string]string{"SESH_TRUSTED_PROXIES": "::ffff:0:0/80"}, []string{`sesh: SESH_TRUSTED_PROXIES: "::ffff:0:0/80": host bits are set`}},
		{map[string]string{"SESH_TRUSTED_PROXIES": "1.2.3.4/x, 5.6.7.8/99"}, []string{`SESH_TRUSTED_PROXIES: "1.2.3.4/x"`, `SESH_TRUSTED_PROXIES: "5.6.7.8/99"`}},
		// Combinations.
		{map[string]string{"SESH_TOUCH_INTERVAL": "30m"}, []string{`sesh: SESH_TOUCH_INTERVAL (30m0s) must be below SESH_IDLE_TIMEOUT (30m0s, the default)`}},
		{map[string]string{"SESH_TOUCH_INTERVAL": "10m", "SESH_IDLE_TIMEOUT": "5m"}, []string{`sesh: SESH_TOUCH_INTERVAL (10m0s) must be below SESH_IDLE_TIMEOUT (5m0s)`}},
		{map[string]string{"SESH_COOKIE_DOMAIN": "example.com"}, []string{`sesh: SESH_COOKIE_DOMAIN "example.com" needs SESH_COOKIE_NAME`, `__Host-`}},
		{map[string]string{"SESH_COOKIE_DOMAIN": "example.com", "SESH_COOKIE_NAME": "__Host-app"}, []string{`sesh: SESH_COOKIE_DOMAIN "example.com" cannot be combined with SESH_COOKIE_NAME "__Host-app"`}},
		{map[string]string{"SESH_COOKIE_INSECURE": "true", "SESH_COOKIE_NAME": "__Host-app"}, []string{`sesh: SESH_COOKIE_NAME "__Host-app" needs a Secure cookie: it cannot be combined with SESH_COOKIE_INSECURE=true`}},
		{map[string]string{"SESH_COOKIE_INSECURE": "true", "SESH_COOKIE_NAME": "__Secure-app"}, []string{`sesh: SESH_COOKIE_NAME "__Secure-app" needs a Secure cookie`}},
		{map[string]string{"SESH_COOKIE_INSECURE": "true", "SESH_COOKIE_SAMESITE": "none"}, []string{`sesh: SESH_COOKIE_SAMESITE=none needs a Secure cookie: it cannot be combined with SESH_COOKIE_INSECURE=true`}},
		// Several at once.
		{map[string]string{"SESH_IDLE_TIMEOUT": "forever", "SESH_MAX_SIZE": "big", "SESH_BIND_IP": "maybe"}, []string{`SESH_IDLE_TIMEOUT: "forever"`, `SESH_MAX_SIZE: "big"`, `SESH_BIND_IP: "maybe"`}},
		// Keys.
		{map[string]string{"SESH_KEYS": ""}, []string{`sesh: SESH_KEYS is not set`}},
		{map[string]string{"SESH_KEYS": " \t"}, []string{`sesh: SESH_KEYS is not set`}},
		{map[string]string{"SESH_KEYS": "", "SESH_LOCK_TIMEOUT": "later"}, []string{`sesh: SESH_KEYS is not set`, `sesh: SESH_LOCK_TIMEOUT: "later"`}},
	}
	for _, tt := range tests {
		var name string
		for k, v := range tt.env {
			name += k + "=" + v + " "
		}
		t.Run(name, func(t *testing.T) {
			env := map[string]string{"SESH_KEYS": key}
			for k, v := range tt.env {
				env[k] = v
			}
			c, err := sesh.ConfigFromEnv(envOf(env))
			if err == nil {
				t.Fatalf("no error; got %+v", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n\t%v\ndoes not contain\n\t%s", err, w)
				}
			}
			if !reflect.DeepEqual(c, sesh.Config{}) {
				t.Errorf("a zero Config must come with an error, got %+v", c)
			}
		})
	}
}

// TestConfigFromEnvKeysNeverEchoed checks that SESH_KEYS errors say what
// is wrong with which key but never contain key material.
func TestConfigFromEnvKeysNeverEchoed(t *testing.T) {
	b64 := base64.RawURLEncoding.EncodeToString
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	good := envKey(t, 1)
	goodSecret := strings.SplitN(good, ":", 2)[1]
	short := b64(random(16))
	long := b64(random(48))
	dup := b64(random(32))
	zeros := b64(make([]byte, 32))
	tests := []struct {
		keys    string
		secrets []string // must not appear in the error
		want    string
	}{
		{"1:" + short, []string{short}, "sesh: SESH_KEYS: seal: key 1: secret is 16 bytes, want 32"},
		{good + ",2:" + short, []string{goodSecret, short}, "key 2: secret is 16 bytes, want 32"},
		{"7:" + long, []string{long}, "key 7: secret is 48 bytes, want 32"},
		{seal.ExampleKey, []string{strings.SplitN(seal.ExampleKey, ":", 2)[1]}, "published example key"},
		{"1:" + zeros, []string{zeros}, "single repeated byte"},
		{"1:" + dup + ",2:" + dup, []string{dup}, "same secret as key 1"},
		{good + ",1:" + dup, []string{goodSecret, dup}, "duplicate key ID"},
		{"1:" + goodSecret + "!*", []string{goodSecret}, "not valid base64url"},
		{goodSecret, []string{goodSecret}, `missing ":"`},
		{"x" + goodSecret + ":" + goodSecret, []string{goodSecret}, "key ID is not a decimal number"},
		{"0:" + goodSecret, []string{goodSecret}, "key ID must be nonzero"},
		{good + ",,", []string{goodSecret}, "empty item"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			env := map[string]string{"SESH_KEYS": tt.keys, "SESH_IDLE_TIMEOUT": "bad"}
			_, err := sesh.ConfigFromEnv(envOf(env))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, "SESH_KEYS") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not name SESH_KEYS with %q", msg, tt.want)
			}
			if !strings.Contains(msg, `SESH_IDLE_TIMEOUT: "bad"`) {
				t.Errorf("error %q does not report the other bad variable", msg)
			}
			for _, s := range tt.secrets {
				// Neither the secret nor any 8-character piece of it.
				for i := 0; i+8 <= len(s); i++ {
					if strings.Contains(msg, s[i:i+8]) {
						t.Fatalf("error %q contains key material %q", msg, s[i:i+8])
					}
				}
			}
		})
	}
}

// TestConfigFromEnvOSGetenv checks that a nil getenv reads the process
// environment.
func TestConfigFromEnvOSGetenv(t *testing.T) {
	t.Setenv("SESH_KEYS", envKey(t, 3))
	t.Setenv("SESH_IDLE_TIMEOUT", "7m")
	c, err := sesh.ConfigFromEnv(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Keys.Current() != 3 || c.IdleTimeout != 7*time.Minute {
		t.Errorf("got key %d, IdleTimeout %v", c.Keys.Current(), c.IdleTimeout)
	}
}

// TestConfigFromEnvMatchesNew checks that what ConfigFromEnv accepts, New
// accepts, and what it refuses for a combination, New refuses too.
func TestConfigFromEnvMatchesNew(t *testing.T) {
	keys, err := seal.ParseRing(envKey(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	refused := []sesh.Config{
		{Keys: keys, TouchInterval: 30 * time.Minute},
		{Keys: keys, Cookie: sesh.CookieConfig{Domain: "example.com"}},
		{Keys: keys, Cookie: sesh.CookieConfig{Name: "__Secure-x", InsecureHTTP: true}},
		{Keys: keys, Cookie: sesh.CookieConfig{SameSite: http.SameSiteNoneMode, InsecureHTTP: true}},
		{Keys: keys, MaxSize: 16<<20 + 1},
	}
	for _, c := range refused {
		if _, err := sesh.New(memstore.New(), c); err == nil {
			t.Errorf("New accepts %+v, which ConfigFromEnv refuses", c)
		}
	}
}
