package sesh

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/seshgo/sesh/seal"
)

// Defaults of [Config]. They follow OWASP ASVS level 2.
const (
	DefaultCookieName      = "__Host-sesh"
	DefaultInsecureName    = "sesh"
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultAbsoluteTimeout = 12 * time.Hour
	DefaultTouchInterval   = time.Minute
	DefaultTombstoneTTL    = 5 * time.Minute
	DefaultMaxSize         = 64 << 10
	DefaultStoreTimeout    = 2 * time.Second
	DefaultLockTimeout     = 10 * time.Second
	DefaultLockTTL         = 60 * time.Second
)

// Config configures a [Manager]. The zero value of every field but Keys
// selects the documented secure default.
type Config struct {
	// Keys seals every record. It is required: New fails without it. Build
	// it with [seal.ParseRing] from the SESH_KEYS environment variable, or
	// [seal.NewRing].
	Keys *seal.Ring

	// Cookie sets the session cookie's attributes.
	Cookie CookieConfig

	// IdleTimeout ends a session this long after its last request
	// (default 30 minutes). AbsoluteTimeout ends it this long after it was
	// created, however active (default 12 hours). Both are checked by the
	// manager on every load, whatever the store does, and both can be
	// shortened per session with [Session.SetTimeouts]. Records keep
	// times to the millisecond, and so do the deadlines: a fraction of a
	// millisecond in a timeout is dropped.
	IdleTimeout     time.Duration
	AbsoluteTimeout time.Duration

	// TouchInterval is how old the last recorded activity must be before
	// a request that changes nothing writes to move the idle deadline
	// (default 1 minute; must be below IdleTimeout).
	TouchInterval time.Duration

	// TombstoneTTL is how long a destroyed or renewed ID stays known as
	// dead, so that requests still in flight with it can neither write it
	// back nor replace the browser's new cookie (default 5 minutes).
	TombstoneTTL time.Duration

	// MaxSize caps the encoded size of a session's data (default 64 KiB).
	// A change that would exceed it fails with ErrTooLarge before anything
	// is written; a stored record over it is never decoded.
	MaxSize int

	// StoreTimeout bounds every store operation (default 2 seconds). A
	// store that does not answer in time is a store failure (503).
	StoreTimeout time.Duration

	// LockTimeout bounds how long an exclusive request waits for another
	// one on the same session (default 10 seconds). LockTTL is how long a
	// lock held by a crashed process blocks the session (default 60 s).
	LockTimeout time.Duration
	LockTTL     time.Duration

	// BindDataToID seals each session's values under a key derived from
	// the key ring and the session ID, so a copy of the store, even with
	// the keys, reveals no values without the cookies. Metadata (user,
	// times, IP, user agent) stays sealed under the ring alone, so device
	// listings still work. It costs a few microseconds per load and save.
	// Records written in either mode are read in both.
	BindDataToID bool

	// Codec encodes values (default [JSONCodec]).
	Codec Codec

	// ErrorHandler writes the response when a session cannot be loaded or
	// committed (default [DefaultErrorHandler]).
	ErrorHandler ErrorHandler

	// Logger receives warnings and security events (default: discard).
	// Session IDs and tokens are never logged.
	Logger *slog.Logger

	// BindUserAgent compares each request's User-Agent with the one the
	// session was created with; BindIP compares the client's network
	// (IPv4Prefix and IPv6Prefix bits, default /24 and /48). Both are off
	// by default: user agents change with browser updates, and mobile
	// clients change networks. With PolicyLog a network change is
	// reported once per change.
	BindUserAgent Policy
	BindIP        Policy
	IPv4Prefix    int
	IPv6Prefix    int

	// TrustedProxies are the reverse proxies whose X-Forwarded-For header
	// names the client. Forwarded headers from any other peer are ignored.
	TrustedProxies []netip.Prefix

	// RememberTTL is the hard lifetime of a remember-me token (default 30
	// days); RememberGrace is how long a rotated validator is still
	// accepted from requests racing the rotation (default 30 seconds).
	// RememberCookie names its cookie (default: the session cookie's name
	// with "-remember" appended).
	RememberTTL    time.Duration
	RememberGrace  time.Duration
	RememberCookie string

	// ClearSiteData is the Clear-Site-Data header value sent when a
	// session is destroyed by Logout (default `"cookies"`); "-" sends
	// none.
	ClearSiteData string

	// Observer receives lifecycle and security events (default: a
	// [NewSlogObserver] on Logger).
	Observer Observer

	// Now is the clock (default time.Now). Tests inject their own.
	Now func() time.Time

	// SaveOnServerError makes the middleware commit changes made by a
	// request whose response status is 500 or above. By default they are
	// dropped, since a failed request should leave no half-done state.
	SaveOnServerError bool
}

// CookieConfig sets the session cookie's attributes. The defaults are the
// strictest that work for a same-site application: the cookie is named
// __Host-sesh, and is Secure, HttpOnly, SameSite=Lax, Path=/, with no
// Domain and no expiry (it ends with the browser session).
type CookieConfig struct {
	// Name defaults to DefaultCookieName, or DefaultInsecureName with
	// InsecureHTTP. A name starting with __Host- forbids Domain and a Path
	// other than /.
	Name string
	// Domain and Path widen the cookie's scope. Leave them empty unless
	// you must: a Domain cookie is exposed to every sibling subdomain.
	Domain string
	Path   string
	// SameSite defaults to Lax. None requires a Secure cookie.
	SameSite http.SameSite
	// Persistent gives the cookie a Max-Age reaching the session's
	// absolute deadline, so it survives a browser restart. Off by default.
	Persistent bool
	// Partitioned adds the Partitioned attribute (CHIPS).
	Partitioned bool
	// InsecureHTTP drops the Secure attribute for development over plain
	// HTTP. It also drops the __Host- prefix, which requires Secure, and
	// New logs a warning. Never enable it in production.
	InsecureHTTP bool
}

func (c *Config) normalize() error {
	if c.Keys == nil {
		return errors.New("sesh: Config.Keys is required: set it from seal.ParseRing(os.Getenv(\"SESH_KEYS\")) or seal.NewRing")
	}
	ck := &c.Cookie
	if ck.Name == "" {
		ck.Name = DefaultCookieName
		if ck.InsecureHTTP {
			ck.Name = DefaultInsecureName
		}
	}
	if !validCookieName(ck.Name) {
		return fmt.Errorf("sesh: Config.Cookie.Name %q is not a valid cookie name", ck.Name)
	}
	if ck.Path == "" {
		ck.Path = "/"
	}
	if strings.HasPrefix(ck.Name, "__Host-") {
		if ck.InsecureHTTP {
			return fmt.Errorf("sesh: cookie %q needs Secure; it cannot be used with InsecureHTTP", ck.Name)
		}
		if ck.Domain != "" || ck.Path != "/" {
			return fmt.Errorf("sesh: cookie %q must have Path=/ and no Domain", ck.Name)
		}
	}
	if strings.HasPrefix(ck.Name, "__Secure-") && ck.InsecureHTTP {
		return fmt.Errorf("sesh: cookie %q needs Secure; it cannot be used with InsecureHTTP", ck.Name)
	}
	if ck.SameSite == 0 || ck.SameSite == http.SameSiteDefaultMode {
		ck.SameSite = http.SameSiteLaxMode
	}
	if ck.SameSite == http.SameSiteNoneMode && ck.InsecureHTTP {
		return errors.New("sesh: SameSite=None requires a Secure cookie")
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.AbsoluteTimeout == 0 {
		c.AbsoluteTimeout = DefaultAbsoluteTimeout
	}
	if c.TouchInterval == 0 {
		c.TouchInterval = min(DefaultTouchInterval, c.IdleTimeout/4)
	}
	if c.TombstoneTTL == 0 {
		c.TombstoneTTL = DefaultTombstoneTTL
	}
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = DefaultLockTimeout
	}
	if c.LockTTL == 0 {
		c.LockTTL = DefaultLockTTL
	}
	switch {
	case c.IdleTimeout < 0, c.AbsoluteTimeout < 0, c.TouchInterval < 0, c.TombstoneTTL < 0,
		c.StoreTimeout < 0, c.LockTimeout < 0, c.LockTTL < 0, c.MaxSize < 0:
		return errors.New("sesh: Config durations and sizes must not be negative")
	case c.TouchInterval >= c.IdleTimeout:
		return fmt.Errorf("sesh: Config.TouchInterval (%v) must be below IdleTimeout (%v)", c.TouchInterval, c.IdleTimeout)
	case c.MaxSize > 16<<20:
		return fmt.Errorf("sesh: Config.MaxSize %d is over the 16 MiB limit", c.MaxSize)
	}
	if c.Codec == nil {
		c.Codec = JSONCodec{}
	}
	if c.ErrorHandler == nil {
		c.ErrorHandler = DefaultErrorHandler
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.IPv4Prefix == 0 {
		c.IPv4Prefix = 24
	}
	if c.IPv6Prefix == 0 {
		c.IPv6Prefix = 48
	}
	if c.IPv4Prefix < 0 || c.IPv4Prefix > 32 || c.IPv6Prefix < 0 || c.IPv6Prefix > 128 {
		return errors.New("sesh: Config.IPv4Prefix must be 0..32 and IPv6Prefix 0..128")
	}
	if c.BindUserAgent > PolicyEnforce || c.BindIP > PolicyEnforce {
		return errors.New("sesh: unknown binding Policy")
	}
	if c.RememberTTL == 0 {
		c.RememberTTL = 30 * 24 * time.Hour
	}
	if c.RememberGrace == 0 {
		c.RememberGrace = 30 * time.Second
	}
	if c.RememberCookie == "" {
		c.RememberCookie = ck.Name + "-remember"
	}
	if c.RememberTTL < 0 || c.RememberGrace < 0 || !validCookieName(c.RememberCookie) || c.RememberCookie == ck.Name {
		return errors.New("sesh: Config.RememberTTL, RememberGrace or RememberCookie is invalid")
	}
	if c.ClearSiteData == "" {
		c.ClearSiteData = `"cookies"`
	}
	if c.Observer == nil {
		c.Observer = NewSlogObserver(c.Logger)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}
