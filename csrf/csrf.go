// Package csrf protects the state-changing requests of a sesh application
// against cross-site request forgery, with two lines of defence.
//
// The first line is [http.CrossOriginProtection]: it rejects unsafe
// requests that the browser marks as cross-origin with [Sec-Fetch-Site],
// or, for browsers that do not send it, whose [Origin] header does not
// match the Host. It is used as is, with two tightenings described below.
//
// The second line is a synchronizer token bound to the session. It is
// derived from the session's secret ([sesh.Session.Secret] named "csrf"),
// and masked with a fresh random pad in every response, so that no two
// responses carry the same bytes (BREACH): a token is
// "v1." + base64url(pad ‖ pad⊕secret). The verifier unmasks it and
// compares it with the secret in constant time. Empty, malformed,
// wrong-length and wrong-alphabet tokens are rejected before any
// comparison, and a session without a secret has no valid token. Because
// sesh drops a session's secrets when it logs in, renews or is destroyed,
// a token minted before login is rejected after it.
//
// # Policy
//
// GET, HEAD and OPTIONS requests pass both checks: they must not change
// state (SameSite=Lax cookies are sent on cross-site GET navigations).
// Every other method must pass the origin check and carry a valid token,
// in the X-CSRF-Token header or the csrf_token form field of an
// application/x-www-form-urlencoded or multipart/form-data body. The token
// is required even when the browser says the request is same-origin:
// defence in depth, and no downgrade for a client that omits the proof.
// [Config.TokenOptionalForSameOrigin] relaxes that for JSON APIs that
// rely on Fetch Metadata. A page can also give the token to fetch() in
// the header, from a <meta> element, which works whatever the setting.
//
// Tokens are never read from the URL query, and must never be put in a
// URL: URLs end up in logs, in Referer headers and in browser history.
//
// # Tightenings over net/http
//
// Before the token check, Protection rejects two kinds of Origin header
// that [http.CrossOriginProtection] lets through (when Sec-Fetch-Site is
// absent, or claims same-origin):
//
//   - an Origin that is not "null" and not exactly scheme://host[:port]
//     (with userinfo, a path, a query or an upper-case scheme), since
//     net/http compares only the host of "https://evil@host";
//   - on a TLS request, an Origin naming the request's host with a scheme
//     other than https: a page on http://host is not the site. Behind a
//     TLS-terminating proxy the request is not TLS and this is not
//     checked; use HSTS.
//
// # Setup
//
// The middleware needs the session, so it goes inside the manager's:
//
//	p, err := csrf.New(csrf.Config{})
//	...
//	http.ListenAndServeTLS(addr, cert, key, m.Handler(p.Handler(mux)))
//
// Forms include the token with [Protection.TemplateField] or [Token];
// calling them creates the session if needed, which is how a login form
// is protected before anyone has logged in. Call them before the response
// starts, so that the session cookie can still be set.
//
// Routes wrapped by [sesh.Manager.Exclusive] must run Exclusive before
// anything reads the session, and the token check reads it: wrap such
// routes as m.Exclusive(p.Handler(h)) inside the mux rather than the whole
// mux with p.Handler.
//
// [Sec-Fetch-Site]: https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Sec-Fetch-Site
// [Origin]: https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Origin
package csrf

import (
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/seshgo/sesh"
)

// Defaults of [Config].
const (
	DefaultFieldName  = "csrf_token"
	DefaultHeaderName = "X-CSRF-Token"
)

// Errors returned by [Protection.Check], wrapped with detail. The detail
// never includes a token.
var (
	// ErrCrossOrigin means the origin check rejected the request.
	ErrCrossOrigin = errors.New("csrf: cross-origin request")
	// ErrTokenMissing means an unsafe request carried no token.
	ErrTokenMissing = errors.New("csrf: token missing")
	// ErrTokenInvalid means the token was malformed, or not a token of the
	// request's session (including a request without a session, or whose
	// session could not be loaded).
	ErrTokenInvalid = errors.New("csrf: token invalid")
)

// Config configures a [Protection]. The zero value selects the defaults.
type Config struct {
	// TrustedOrigins are origins allowed to send cross-origin unsafe
	// requests, each exactly as a browser sends it in the Origin header:
	// "scheme://host[:port]", lower case, without a default port, path or
	// userinfo. They are passed to
	// [http.CrossOriginProtection.AddTrustedOrigin]; [New] rejects any
	// other form. Requests from a trusted origin still need a token.
	TrustedOrigins []string

	// Exempt lists [http.ServeMux] patterns ("/hook/", "POST /hook/{id}")
	// of requests that skip both checks, such as webhooks authenticated by
	// a signature. Matching is exact: a pattern ending in a slash matches
	// only that path, not the subtree below it; multi-segment wildcards
	// ({name...}) are refused; and a request that ServeMux would redirect
	// to a pattern (after cleaning its path or adding a trailing slash) is
	// not exempt. Keep the list as short as possible.
	Exempt []string

	// FieldName is the form field carrying the token (default
	// DefaultFieldName), HeaderName the header (default DefaultHeaderName).
	// A non-empty header takes precedence over the form field.
	FieldName  string
	HeaderName string

	// TokenOptionalForSameOrigin lets an unsafe request without a token
	// through when it carries Sec-Fetch-Site: same-origin, which browsers
	// set and pages cannot forge. It is meant for JSON APIs called with
	// fetch() that rely on Fetch Metadata. Requests without the header
	// (older browsers, non-browser clients) still need a token. Off by
	// default: the token is required for every unsafe request. A token
	// that is sent is always checked, whatever this setting.
	TokenOptionalForSameOrigin bool

	// ReportOnly lets rejected requests through after reporting them, for
	// rolling the protection out on an existing application. Never leave
	// it on.
	ReportOnly bool

	// Every rejection is reported to the sesh manager's observer as
	// [sesh.EventCSRFRejected], with the session's handle, user, IP and
	// user agent. OnReject, if set, is called as well, with the request and
	// the error of [Protection.Check], before the deny handler runs (or, in
	// report-only mode, before the request goes on). It is called on the
	// request path, possibly concurrently.
	OnReject func(r *http.Request, err error)

	// DenyHandler writes the response to a rejected request (default: 403
	// Forbidden with a short body and no detail). It must not reveal the
	// reason to the client.
	DenyHandler http.Handler

	// Logger receives a warning for every rejection (default: discard).
	// Token values are never logged.
	Logger *slog.Logger
}

// Protection checks requests against CSRF. Create it with [New]; the zero
// value is also valid, with the defaults of a zero [Config]. It is
// immutable and safe for concurrent use.
type Protection struct {
	cop        *http.CrossOriginProtection
	exempt     *http.ServeMux
	trusted    map[string]bool
	field      string
	header     string
	sameOrigin bool
	reportOnly bool
	onReject   func(*http.Request, error)
	deny       http.Handler
	logger     *slog.Logger
}

// New returns a Protection configured by cfg. It fails when a trusted
// origin, an exemption pattern or a name is invalid.
func New(cfg Config) (*Protection, error) {
	p := &Protection{
		cop:        http.NewCrossOriginProtection(),
		field:      cfg.FieldName,
		header:     cfg.HeaderName,
		sameOrigin: cfg.TokenOptionalForSameOrigin,
		reportOnly: cfg.ReportOnly,
		onReject:   cfg.OnReject,
		deny:       cfg.DenyHandler,
		logger:     cfg.Logger,
	}
	for _, o := range cfg.TrustedOrigins {
		if err := validTrustedOrigin(o); err != nil {
			return nil, err
		}
		if err := p.cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("csrf: trusted origin: %w", err)
		}
		if p.trusted == nil {
			p.trusted = make(map[string]bool)
		}
		p.trusted[o] = true
	}
	for _, pat := range cfg.Exempt {
		if p.exempt == nil {
			p.exempt = http.NewServeMux()
		}
		if err := addExempt(p.exempt, pat); err != nil {
			return nil, err
		}
	}
	if p.field == "" {
		p.field = DefaultFieldName
	}
	if p.header == "" {
		p.header = DefaultHeaderName
	}
	if !validHeaderName(p.header) {
		return nil, fmt.Errorf("csrf: invalid header name %q", p.header)
	}
	return p, nil
}

// validTrustedOrigin accepts only origins a browser could send.
func validTrustedOrigin(o string) error {
	u, err := url.Parse(o)
	switch {
	case err != nil || u.Scheme == "" || u.Host == "":
		return fmt.Errorf("csrf: trusted origin %q: want scheme://host[:port]", o)
	case u.User != nil:
		return fmt.Errorf("csrf: trusted origin %q: userinfo is not allowed", o)
	case o != u.Scheme+"://"+u.Host:
		return fmt.Errorf("csrf: trusted origin %q: want scheme://host[:port], without path, query or fragment", o)
	case o != strings.ToLower(o):
		return fmt.Errorf("csrf: trusted origin %q: browsers send origins in lower case", o)
	case !isASCII(o):
		return fmt.Errorf("csrf: trusted origin %q: use the ASCII (xn--) form of the host", o)
	case !validHost(u.Host):
		return fmt.Errorf("csrf: trusted origin %q: invalid host; wildcards are not supported", o)
	case u.Scheme == "https" && u.Port() == "443", u.Scheme == "http" && u.Port() == "80":
		return fmt.Errorf("csrf: trusted origin %q: browsers omit the default port", o)
	}
	return nil
}

// validHost accepts the characters of a host name, an IP literal and a
// port, as a browser serializes them.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte(".-_:[]", c) >= 0) {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// exemptHandler marks a match in the exemption mux.
type exemptHandler struct{}

func (exemptHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

var exemptMark http.Handler = exemptHandler{}

// addExempt registers pat in mux so that it matches exactly.
func addExempt(mux *http.ServeMux, pat string) (err error) {
	if strings.Contains(pat, "...}") {
		return fmt.Errorf("csrf: exemption %q: multi-segment wildcards are not allowed; exemptions are exact", pat)
	}
	if strings.HasSuffix(pat, "/") {
		pat += "{$}" // "/hook/" is that path only, not the subtree
	}
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("csrf: exemption %q: %v", pat, v)
		}
	}()
	mux.Handle(pat, exemptMark)
	return nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

var zeroCOP http.CrossOriginProtection

func (p *Protection) crossOrigin() *http.CrossOriginProtection {
	if p.cop != nil {
		return p.cop
	}
	return &zeroCOP
}

func (p *Protection) fieldName() string {
	if p.field == "" {
		return DefaultFieldName
	}
	return p.field
}

func (p *Protection) headerName() string {
	if p.header == "" {
		return DefaultHeaderName
	}
	return p.header
}

func (p *Protection) logf() *slog.Logger {
	if p.logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.logger
}

// isSafe reports whether method is one of the safe methods that pass
// every check, as in [http.CrossOriginProtection]. The method is the
// request's: X-HTTP-Method-Override and similar headers are ignored.
func isSafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// Check returns nil if r may proceed, or an error wrapping
// [ErrCrossOrigin], [ErrTokenMissing] or [ErrTokenInvalid]. It does not
// report the rejection or write a response; [Protection.Handler] does.
//
// Check reads the token from the request body of a form, and so parses
// the form (see [http.Request.ParseMultipartForm]). It must run inside
// the sesh manager's middleware: without a session, every unsafe request
// is rejected.
func (p *Protection) Check(r *http.Request) error {
	if isSafe(r.Method) || p.isExempt(r) {
		return nil
	}
	if err := p.crossOrigin().Check(r); err != nil {
		return fmt.Errorf("%w: %w", ErrCrossOrigin, err)
	}
	if err := p.checkOrigin(r); err != nil {
		return err
	}
	return p.checkToken(r)
}

func (p *Protection) isExempt(r *http.Request) bool {
	if p.exempt == nil {
		return false
	}
	h, _ := p.exempt.Handler(r)
	return h == exemptMark
}

// checkOrigin applies the tightenings over http.CrossOriginProtection.
func (p *Protection) checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" || p.trusted[origin] {
		// "null" is left to CrossOriginProtection: with Sec-Fetch-Site:
		// same-origin it is a same-origin form under Referrer-Policy:
		// no-referrer; without, it was rejected.
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Host == "" || origin != u.Scheme+"://"+u.Host {
		return fmt.Errorf("%w: malformed Origin header", ErrCrossOrigin)
	}
	if r.TLS != nil && u.Scheme != "https" && strings.EqualFold(u.Host, r.Host) {
		return fmt.Errorf("%w: Origin is not https on a TLS request", ErrCrossOrigin)
	}
	return nil
}

func (p *Protection) checkToken(r *http.Request) error {
	tok := p.tokenOf(r)
	if tok == "" {
		if p.sameOrigin && r.Header.Get("Sec-Fetch-Site") == "same-origin" {
			return nil
		}
		return fmt.Errorf("%w: no %s header or %s form field", ErrTokenMissing, p.headerName(), p.fieldName())
	}
	if _, ok := decode(tok); !ok {
		return fmt.Errorf("%w: malformed", ErrTokenInvalid)
	}
	secret, err := sesh.FromContext(r.Context()).Secret(secretName, false)
	if err != nil {
		return fmt.Errorf("%w: session: %w", ErrTokenInvalid, err)
	}
	if secret == nil {
		return fmt.Errorf("%w: the session has no CSRF secret", ErrTokenInvalid)
	}
	if !verify(secret, tok) {
		return fmt.Errorf("%w: not a token of this session", ErrTokenInvalid)
	}
	return nil
}

// tokenOf returns the token the request carries in the header or in the
// body of a form; never the URL query.
func (p *Protection) tokenOf(r *http.Request) string {
	if v := r.Header.Get(p.headerName()); v != "" {
		return v
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-www-form-urlencoded", "multipart/form-data":
		return r.PostFormValue(p.fieldName())
	}
	return ""
}

// Handler returns middleware that checks every request with
// [Protection.Check]. A rejected request is logged, passed to
// [Config.OnReject] and answered by the deny handler; in report-only mode
// it goes on to next. Handler must be inside the sesh manager's
// [sesh.Manager.Handler].
func (p *Protection) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.MultipartForm == nil {
			// A multipart form parsed here or below is on this request, not
			// on the server's copy, so the server would not remove its files.
			defer func() {
				if r.MultipartForm != nil {
					_ = r.MultipartForm.RemoveAll()
				}
			}()
		}
		if err := p.Check(r); err != nil {
			p.report(r, err)
			if !p.reportOnly {
				p.denyHandler().ServeHTTP(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (p *Protection) report(r *http.Request, err error) {
	p.logf().LogAttrs(r.Context(), slog.LevelWarn, "csrf: request rejected",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("reason", err.Error()),
		slog.Bool("report_only", p.reportOnly))
	sesh.FromContext(r.Context()).Report(sesh.EventCSRFRejected, err.Error())
	if p.onReject != nil {
		p.onReject(r, err)
	}
}

func (p *Protection) denyHandler() http.Handler {
	if p.deny != nil {
		return p.deny
	}
	return http.HandlerFunc(deny)
}

// deny is the default deny handler: 403 with no detail.
func deny(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
}
