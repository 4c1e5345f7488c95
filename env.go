package sesh

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/seshgo/sesh/seal"
)

// ConfigFromEnv builds a Config from environment variables read through
// getenv: os.Getenv in production (a nil getenv means os.Getenv), a map
// lookup in tests. Surrounding spaces are ignored, and an empty or unset
// variable leaves its field zero, which selects the documented default.
// Only SESH_KEYS is required.
//
//	Variable                Config field           Value (default)
//	SESH_KEYS               Keys                   ID:base64url[,ID:base64url...], current key first;
//	                                               see seal.ParseRing (required)
//	SESH_IDLE_TIMEOUT       IdleTimeout            duration (30m)
//	SESH_ABSOLUTE_TIMEOUT   AbsoluteTimeout        duration (12h)
//	SESH_TOUCH_INTERVAL     TouchInterval          duration below SESH_IDLE_TIMEOUT (1m, or a
//	                                               quarter of a shorter idle timeout)
//	SESH_TOMBSTONE_TTL      TombstoneTTL           duration (5m)
//	SESH_STORE_TIMEOUT      StoreTimeout           duration (2s)
//	SESH_LOCK_TIMEOUT       LockTimeout            duration (10s)
//	SESH_MAX_SIZE           MaxSize                bytes, a whole number up to 16777216 (65536)
//	SESH_COOKIE_NAME        Cookie.Name            cookie name (__Host-sesh; sesh when insecure)
//	SESH_COOKIE_DOMAIN      Cookie.Domain          domain name; needs a SESH_COOKIE_NAME without
//	                                               the __Host- prefix (none)
//	SESH_COOKIE_SAMESITE    Cookie.SameSite        lax, strict or none (lax)
//	SESH_COOKIE_PERSISTENT  Cookie.Persistent      boolean (false)
//	SESH_COOKIE_INSECURE    Cookie.InsecureHTTP    boolean; development over plain HTTP only (false)
//	SESH_BIND_DATA_TO_ID    BindDataToID           boolean (false)
//	SESH_BIND_USER_AGENT    BindUserAgent          off, log or enforce (off)
//	SESH_BIND_IP            BindIP                 off, log or enforce (off)
//	SESH_TRUSTED_PROXIES    TrustedProxies         comma-separated CIDR prefixes (10.0.0.0/8) or
//	                                               addresses (10.1.2.3, ::1) (none)
//	SESH_REMEMBER_TTL       RememberTTL            duration (720h, 30 days)
//	SESH_REMEMBER_GRACE     RememberGrace          duration (30s)
//
// Durations are in [time.ParseDuration] form ("90s", "1h30m") and must be
// positive: zero would silently mean the default, so it is refused too.
// Booleans are in [strconv.ParseBool] form (true, false, 1, 0, ...). The
// keywords of SESH_COOKIE_SAMESITE and the SESH_BIND_* policies are
// case-insensitive. A trusted-proxy prefix must have no host bits set
// ("10.0.0.1/8" is refused as ambiguous); IPv4-mapped IPv6 forms are
// stored as IPv4, since client addresses are compared unmapped.
//
// ConfigFromEnv reports every bad variable, joined with [errors.Join].
// Each error names the variable and quotes its value, for example
//
//	sesh: SESH_IDLE_TIMEOUT: "30x": time: unknown unit "x" in duration "30x"
//
// except for SESH_KEYS, whose errors say what is wrong with which key but
// never quote key material. It also checks the variables together as
// [New] would (SESH_TOUCH_INTERVAL below SESH_IDLE_TIMEOUT; no
// SESH_COOKIE_DOMAIN with a __Host- cookie; no SameSite=None,
// __Host- or __Secure- name with SESH_COOKIE_INSECURE), so that a bad
// environment fails here, naming the variables, rather than in New.
//
// The Config returned is not normalised: fields whose variables are unset
// stay zero, so the caller may still set others (Logger, Observer, Codec,
// IPv4Prefix, ...) before passing it to New, which fills in the defaults.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var (
		cfg    Config
		errs   []error
		set    = map[string]bool{} // variables given that parsed
		failed = map[string]bool{} // variables given that did not
	)
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	bad := func(name, val, format string, args ...any) {
		failed[name] = true
		errs = append(errs, fmt.Errorf("sesh: %s: %q: "+format, append([]any{name, val}, args...)...))
	}
	// each calls parse with the value of name when it is set, and records
	// whether it parsed.
	each := func(name string, parse func(v string) bool) {
		if v := get(name); v != "" && parse(v) {
			set[name] = true
		}
	}
	duration := func(name string, dst *time.Duration) {
		each(name, func(v string) bool {
			d, err := time.ParseDuration(v)
			switch {
			case err != nil:
				bad(name, v, "%w", err)
			case d < 0:
				bad(name, v, "must not be negative")
			case d == 0:
				bad(name, v, "must be positive (leave it unset for the default)")
			default:
				*dst = d
				return true
			}
			return false
		})
	}
	boolean := func(name string, dst *bool) {
		each(name, func(v string) bool {
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(name, v, "not a boolean (want true or false)")
				return false
			}
			*dst = b
			return true
		})
	}
	policy := func(name string, dst *Policy) {
		each(name, func(v string) bool {
			switch strings.ToLower(v) {
			case "off":
				*dst = PolicyOff
			case "log":
				*dst = PolicyLog
			case "enforce":
				*dst = PolicyEnforce
			default:
				bad(name, v, "want off, log or enforce")
				return false
			}
			return true
		})
	}

	// SESH_KEYS: its value is never quoted. seal.ParseRing's errors name
	// the item or key ID and never contain a secret.
	if v := getenv("SESH_KEYS"); strings.TrimSpace(v) == "" {
		errs = append(errs, errors.New("sesh: SESH_KEYS is not set: it must hold the key ring, comma-separated ID:base64url items of 32-byte secrets, current key first (generate one with seal.GenerateKey)"))
	} else if ring, err := seal.ParseRing(v); err != nil {
		errs = append(errs, fmt.Errorf("sesh: SESH_KEYS: %w", err))
	} else {
		cfg.Keys = ring
	}

	duration("SESH_IDLE_TIMEOUT", &cfg.IdleTimeout)
	duration("SESH_ABSOLUTE_TIMEOUT", &cfg.AbsoluteTimeout)
	duration("SESH_TOUCH_INTERVAL", &cfg.TouchInterval)
	duration("SESH_TOMBSTONE_TTL", &cfg.TombstoneTTL)
	duration("SESH_STORE_TIMEOUT", &cfg.StoreTimeout)
	duration("SESH_LOCK_TIMEOUT", &cfg.LockTimeout)
	duration("SESH_REMEMBER_TTL", &cfg.RememberTTL)
	duration("SESH_REMEMBER_GRACE", &cfg.RememberGrace)

	each("SESH_MAX_SIZE", func(v string) bool {
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case err != nil:
			bad("SESH_MAX_SIZE", v, "not a whole number of bytes")
		case n < 0:
			bad("SESH_MAX_SIZE", v, "must not be negative")
		case n == 0:
			bad("SESH_MAX_SIZE", v, "must be positive (leave it unset for the default)")
		case n > maxMaxSize:
			bad("SESH_MAX_SIZE", v, "must be at most %d (16 MiB)", maxMaxSize)
		default:
			cfg.MaxSize = int(n)
			return true
		}
		return false
	})

	each("SESH_COOKIE_NAME", func(v string) bool {
		if !validCookieName(v) {
			bad("SESH_COOKIE_NAME", v, "not a valid cookie name")
			return false
		}
		cfg.Cookie.Name = v
		return true
	})
	each("SESH_COOKIE_DOMAIN", func(v string) bool {
		if !validDomain(v) {
			bad("SESH_COOKIE_DOMAIN", v, "not a valid domain name")
			return false
		}
		cfg.Cookie.Domain = v
		return true
	})
	each("SESH_COOKIE_SAMESITE", func(v string) bool {
		switch strings.ToLower(v) {
		case "lax":
			cfg.Cookie.SameSite = http.SameSiteLaxMode
		case "strict":
			cfg.Cookie.SameSite = http.SameSiteStrictMode
		case "none":
			cfg.Cookie.SameSite = http.SameSiteNoneMode
		default:
			bad("SESH_COOKIE_SAMESITE", v, "want lax, strict or none")
			return false
		}
		return true
	})
	boolean("SESH_COOKIE_PERSISTENT", &cfg.Cookie.Persistent)
	boolean("SESH_COOKIE_INSECURE", &cfg.Cookie.InsecureHTTP)
	boolean("SESH_BIND_DATA_TO_ID", &cfg.BindDataToID)
	policy("SESH_BIND_USER_AGENT", &cfg.BindUserAgent)
	policy("SESH_BIND_IP", &cfg.BindIP)

	each("SESH_TRUSTED_PROXIES", func(v string) bool {
		ok := true
		for item := range strings.SplitSeq(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			p, err := parseProxy(item)
			if err != nil {
				bad("SESH_TRUSTED_PROXIES", item, "%w", err)
				ok = false
				continue
			}
			cfg.TrustedProxies = append(cfg.TrustedProxies, p)
		}
		return ok
	})

	// Combinations, each checked only when the variables involved parsed.
	// The rules are those of Config.normalize; the backstop below catches
	// any that are not spelt out here.
	errs = append(errs, envCombinations(&cfg, set, failed)...)
	if len(errs) == 0 {
		c := cfg
		if err := c.normalize(); err != nil {
			errs = append(errs, fmt.Errorf("%w (in the configuration read from SESH_* variables)", err))
		}
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return cfg, nil
}

// maxMaxSize is the largest Config.MaxSize that New accepts.
const maxMaxSize = 16 << 20

// envCombinations reports the combinations of variables that New would
// refuse, naming the variables. set holds the variables that were given
// and parsed, failed those that were given and did not: a check that
// involves a failed variable is skipped, as its field holds no value.
func envCombinations(cfg *Config, set, failed map[string]bool) []error {
	var errs []error
	ck := &cfg.Cookie
	name := ck.Name
	if name == "" {
		name = DefaultCookieName
		if ck.InsecureHTTP {
			name = DefaultInsecureName
		}
	}
	switch {
	case ck.InsecureHTTP && (strings.HasPrefix(name, "__Host-") || strings.HasPrefix(name, "__Secure-")):
		errs = append(errs, fmt.Errorf("sesh: SESH_COOKIE_NAME %q needs a Secure cookie: it cannot be combined with SESH_COOKIE_INSECURE=true", name))
	case ck.Domain != "" && strings.HasPrefix(name, "__Host-") && !failed["SESH_COOKIE_NAME"] && !failed["SESH_COOKIE_INSECURE"]:
		if set["SESH_COOKIE_NAME"] {
			errs = append(errs, fmt.Errorf("sesh: SESH_COOKIE_DOMAIN %q cannot be combined with SESH_COOKIE_NAME %q: a __Host- cookie has no Domain", ck.Domain, name))
		} else {
			errs = append(errs, fmt.Errorf("sesh: SESH_COOKIE_DOMAIN %q needs SESH_COOKIE_NAME set to a name without the __Host- prefix (the default %s has no Domain), such as __Secure-sesh", ck.Domain, DefaultCookieName))
		}
	}
	if ck.SameSite == http.SameSiteNoneMode && ck.InsecureHTTP {
		errs = append(errs, errors.New("sesh: SESH_COOKIE_SAMESITE=none needs a Secure cookie: it cannot be combined with SESH_COOKIE_INSECURE=true"))
	}
	if set["SESH_TOUCH_INTERVAL"] && !failed["SESH_IDLE_TIMEOUT"] {
		idle, note := cfg.IdleTimeout, ""
		if idle == 0 {
			idle, note = DefaultIdleTimeout, ", the default"
		}
		if cfg.TouchInterval >= idle {
			errs = append(errs, fmt.Errorf("sesh: SESH_TOUCH_INTERVAL (%v) must be below SESH_IDLE_TIMEOUT (%v%s)", cfg.TouchInterval, idle, note))
		}
	}
	return errs
}

// parseProxy parses one item of SESH_TRUSTED_PROXIES: a prefix without
// host bits, or an address, which becomes a single-address prefix.
// IPv4-mapped IPv6 forms become IPv4, as client addresses are unmapped
// before they are compared.
func parseProxy(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if a.Zone() != "" {
			return netip.Prefix{}, errors.New("an address with a zone cannot be matched; leave the zone out")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if m := p.Masked(); m != p {
		single := netip.PrefixFrom(p.Addr(), p.Addr().BitLen())
		return netip.Prefix{}, fmt.Errorf("host bits are set: write %v for the network, or %v for one address", m, single)
	}
	if a := p.Addr(); a.Is4In6() {
		// Without host bits, a mapped address keeps its ::ffff: part, so
		// the prefix is at least /96.
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, nil
}

// validDomain reports whether s is a plausible cookie Domain: a host name
// or IPv4 address in ASCII (punycode for IDNs), with an optional leading
// dot.
func validDomain(s string) bool {
	s = strings.TrimPrefix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
