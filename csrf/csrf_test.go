package csrf_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/csrf"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/seal"
)

// checkVerdict fails t unless the response has status want and, for a
// rejection, the recorded error wraps wantErr.
func checkVerdict(t *testing.T, a *app, got result, want int, wantErr error) {
	t.Helper()
	err := a.lastReject()
	if got.code != want {
		t.Fatalf("status: got %d (%v), want %d", got.code, err, want)
	}
	if want == http.StatusForbidden && !errors.Is(err, wantErr) {
		t.Errorf("rejection: got %v, want %v", err, wantErr)
	}
	if want != http.StatusForbidden && err != nil {
		t.Errorf("rejection: got %v, want none", err)
	}
}

// TestCrossOrigin is the method × Sec-Fetch-Site × Origin table, in the
// style of net/http's TestCrossOriginProtection. Every request carries a
// valid token, so that only the origin check decides (A31, A32, A34,
// CHECKLIST 30–32).
func TestCrossOrigin(t *testing.T) {
	a := newApp(t, csrf.Config{TrustedOrigins: []string{"https://trusted.example"}})
	b := a.browser()
	tok := b.token()

	tests := []struct {
		name         string
		method       string
		target       string // default https://example.com/transfer
		secFetchSite string
		origin       string
		want         int
	}{
		{"GET cross-site", "GET", "", "cross-site", "https://evil.example", 200},
		{"HEAD cross-site", "HEAD", "", "cross-site", "https://evil.example", 200},
		{"OPTIONS cross-site", "OPTIONS", "", "cross-site", "https://evil.example", 200},
		{"POST without Fetch Metadata or Origin", "POST", "", "", "", 200},
		{"POST same-origin", "POST", "", "same-origin", "", 200},
		{"POST same-origin with Origin", "POST", "", "same-origin", origin, 200},
		{"POST none", "POST", "", "none", "", 200},
		{"POST same-site", "POST", "", "same-site", "https://sub.example.com", 403},
		{"POST cross-site", "POST", "", "cross-site", "https://evil.example", 403},
		{"POST cross-site with same Origin", "POST", "", "cross-site", origin, 403},
		{"PUT cross-site", "PUT", "", "cross-site", "https://evil.example", 403},
		{"PATCH cross-site", "PATCH", "", "cross-site", "https://evil.example", 403},
		{"DELETE cross-site", "DELETE", "", "cross-site", "https://evil.example", 403},
		{"PUT same-origin", "PUT", "", "same-origin", "", 200},
		{"DELETE without headers", "DELETE", "", "", "", 200},
		{"POST same Origin", "POST", "", "", origin, 200},
		{"POST foreign Origin", "POST", "", "", "https://evil.example", 403},
		{"POST Origin null", "POST", "", "", "null", 403},
		{"POST cross-site Origin null", "POST", "", "cross-site", "null", 403},
		// Same-origin form under Referrer-Policy: no-referrer.
		{"POST same-origin Origin null", "POST", "", "same-origin", "null", 200},
		{"POST Origin http same host on TLS", "POST", "", "", "http://example.com", 403},
		{"POST same-origin Origin http same host on TLS", "POST", "", "same-origin", "http://example.com", 403},
		{"POST cross-site Origin http same host", "POST", "", "cross-site", "http://example.com", 403},
		{"POST Origin with userinfo", "POST", "", "", "https://evil@example.com", 403},
		{"POST same-origin Origin with userinfo", "POST", "", "same-origin", "https://evil@example.com", 403},
		{"POST Origin with user and password", "POST", "", "", "https://a:b@example.com", 403},
		{"POST Origin suffix of host", "POST", "", "", "https://example.com.evil.example", 403},
		{"POST Origin with path", "POST", "", "", "https://example.com/", 403},
		{"POST Origin with query", "POST", "", "", "https://example.com?", 403},
		{"POST Origin upper-case scheme", "POST", "", "", "HTTPS://example.com", 403},
		{"POST Origin other port", "POST", "", "", "https://example.com:8443", 403},
		{"POST Origin garbage", "POST", "", "", "%%%", 403},
		{"POST trusted cross-site", "POST", "", "cross-site", "https://trusted.example", 200},
		{"POST trusted same-site", "POST", "", "same-site", "https://trusted.example", 200},
		{"POST trusted without Fetch Metadata", "POST", "", "", "https://trusted.example", 200},
		{"POST trusted host over http", "POST", "", "cross-site", "http://trusted.example", 403},
		{"POST trusted host other port", "POST", "", "cross-site", "https://trusted.example:8443", 403},
		{"POST plain-HTTP request with its own Origin", "POST", "http://example.com/transfer", "", "http://example.com", 200},
		// Behind a TLS-terminating proxy: the request is not TLS, so the
		// scheme is unknown and the host decides, as in net/http.
		{"POST plain-HTTP request, https Origin", "POST", "http://example.com/transfer", "", origin, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.target
			if target == "" {
				target = "/transfer"
			}
			r := req(tt.method, target, "X-CSRF-Token", tok)
			if tt.secFetchSite != "" {
				r.Header.Set("Sec-Fetch-Site", tt.secFetchSite)
			}
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			checkVerdict(t, a, b.do(r), tt.want, csrf.ErrCrossOrigin)
		})
	}
}

// nonCanonical changes the unused low bits of a token's last character.
func nonCanonical(tok string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[i|1])
}

// flip changes one character of the masked half of a token.
func flip(tok string) string {
	i := len(tok) - 10
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

func multipartPost(target, field, value string) *http.Request {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("amount", "100")
	mw.WriteField(field, value)
	fw, _ := mw.CreateFormFile("receipt", "receipt.txt")
	io.WriteString(fw, "a file")
	mw.Close()
	r := req("POST", target)
	r.Body = io.NopCloser(&body)
	r.ContentLength = int64(body.Len())
	r.Header.Set("Content-Type", mw.FormDataContentType())
	return r
}

// TestToken covers where the token is read from and what is rejected
// before any comparison (A12, A35, CHECKLIST 33).
func TestToken(t *testing.T) {
	a := newApp(t, csrf.Config{})
	b := a.browser()
	tok := b.token()
	other := a.browser()
	otherTok := other.token()
	std := strings.NewReplacer("-", "+", "_", "/").Replace(tok)
	if std == tok {
		std = tok[:20] + "+" + tok[21:]
	}

	tests := []struct {
		name    string
		who     *browser
		r       *http.Request
		want    int
		wantErr error
	}{
		{"header", b, req("POST", "/transfer", "X-CSRF-Token", tok), 200, nil},
		{"form field", b, form("/transfer", "amount=1&csrf_token="+tok), 200, nil},
		{"multipart field", b, multipartPost("/transfer", "csrf_token", tok), 200, nil},
		{"header wins over a bad field", b, form("/transfer", "csrf_token=bad", "X-CSRF-Token", tok), 200, nil},
		{"empty header falls back to field", b, form("/transfer", "csrf_token="+tok, "X-CSRF-Token", ""), 200, nil},

		{"no token", b, req("POST", "/transfer"), 403, csrf.ErrTokenMissing},
		{"empty header", b, req("POST", "/transfer", "X-CSRF-Token", ""), 403, csrf.ErrTokenMissing},
		{"empty field", b, form("/transfer", "csrf_token="), 403, csrf.ErrTokenMissing},
		{"token in the URL query", b, form("/transfer?csrf_token="+tok, "amount=1"), 403, csrf.ErrTokenMissing},
		{"token in the URL of a bodiless POST", b, req("POST", "/transfer?csrf_token="+tok), 403, csrf.ErrTokenMissing},
		{"text/plain body", b, func() *http.Request {
			r := form("/transfer", "csrf_token="+tok)
			r.Header.Set("Content-Type", "text/plain")
			return r
		}(), 403, csrf.ErrTokenMissing},
		{"token in a cookie", b, func() *http.Request {
			r := req("POST", "/transfer")
			r.AddCookie(&http.Cookie{Name: "csrf_token", Value: tok})
			return r
		}(), 403, csrf.ErrTokenMissing},

		{"prefix only", b, req("POST", "/transfer", "X-CSRF-Token", "v1."), 403, csrf.ErrTokenInvalid},
		{"other version", b, req("POST", "/transfer", "X-CSRF-Token", "v2."+tok[3:]), 403, csrf.ErrTokenInvalid},
		{"no prefix", b, req("POST", "/transfer", "X-CSRF-Token", tok[3:]), 403, csrf.ErrTokenInvalid},
		{"truncated", b, req("POST", "/transfer", "X-CSRF-Token", tok[:len(tok)-1]), 403, csrf.ErrTokenInvalid},
		{"extended", b, req("POST", "/transfer", "X-CSRF-Token", tok+"A"), 403, csrf.ErrTokenInvalid},
		{"padded", b, req("POST", "/transfer", "X-CSRF-Token", tok[:len(tok)-2]+"=="), 403, csrf.ErrTokenInvalid},
		{"standard alphabet", b, req("POST", "/transfer", "X-CSRF-Token", std), 403, csrf.ErrTokenInvalid},
		{"non-canonical encoding", b, req("POST", "/transfer", "X-CSRF-Token", nonCanonical(tok)), 403, csrf.ErrTokenInvalid},
		{"one character changed", b, req("POST", "/transfer", "X-CSRF-Token", flip(tok)), 403, csrf.ErrTokenInvalid},
		{"raw secret length", b, req("POST", "/transfer", "X-CSRF-Token", strings.Repeat("A", 43)), 403, csrf.ErrTokenInvalid},
		{"another session's token", b, req("POST", "/transfer", "X-CSRF-Token", otherTok), 403, csrf.ErrTokenInvalid},
		{"no cookie", a.browser(), req("POST", "/transfer", "X-CSRF-Token", tok), 403, csrf.ErrTokenInvalid},
		{"empty session cookie", a.browser(), req("POST", "/transfer", "X-CSRF-Token", tok, "Cookie", sesh.DefaultCookieName+"="), 403, csrf.ErrTokenInvalid},
		{"forged session cookie", a.browser(), req("POST", "/transfer", "X-CSRF-Token", tok, "Cookie", sesh.DefaultCookieName+"=AAAA"), 403, csrf.ErrTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkVerdict(t, a, tt.who.do(tt.r), tt.want, tt.wantErr)
		})
	}
}

// TestTokensMasked checks that every response carries different bytes and
// that all of them stay valid (A36, BREACH).
func TestTokensMasked(t *testing.T) {
	a := newApp(t, csrf.Config{})
	b := a.browser()
	seen := map[string]bool{}
	var toks []string
	for range 20 {
		tok := b.token()
		if seen[tok] {
			t.Fatalf("token repeated: got %d distinct tokens of %d, want all distinct", len(seen), len(toks)+1)
		}
		seen[tok] = true
		toks = append(toks, tok)
	}
	for i, tok := range toks {
		if got := b.do(req("POST", "/transfer", "X-CSRF-Token", tok)); got.code != 200 {
			t.Errorf("token %d: got %d, want 200", i, got.code)
		}
	}
	// Another session's tokens are never valid, however many there are.
	c := a.browser()
	if got := c.do(req("POST", "/transfer", "X-CSRF-Token", c.token())); got.code != 200 {
		t.Fatalf("own token: got %d, want 200", got.code)
	}
	for _, tok := range toks[:5] {
		checkVerdict(t, a, c.do(req("POST", "/transfer", "X-CSRF-Token", tok)), 403, csrf.ErrTokenInvalid)
	}
}

// TestSessionBinding: a token minted for the attacker's session is
// rejected in the victim's, even with an attacker-planted cookie (A35).
func TestSessionBinding(t *testing.T) {
	s := newServer(t, csrf.Config{})
	attacker, victim := s.client(), s.client()
	tA := s.token(attacker)
	tV := s.token(victim)

	if got := s.send(victim, "POST", "/transfer", "", "X-CSRF-Token", tV); got.code != 200 {
		t.Fatalf("victim's own token: got %d, want 200", got.code)
	}
	s.lastReject()
	if got := s.send(victim, "POST", "/transfer", "", "X-CSRF-Token", tA); got.code != 403 {
		t.Errorf("attacker's token in victim's session: got %d, want 403", got.code)
	}
	if err := s.lastReject(); !errors.Is(err, csrf.ErrTokenInvalid) {
		t.Errorf("rejection: got %v, want %v", err, csrf.ErrTokenInvalid)
	}
	if got := s.send(victim, "POST", "/transfer", "amount=1&csrf_token="+tA, "Origin", s.srv.URL); got.code != 403 {
		t.Errorf("attacker's token in the victim's form: got %d, want 403", got.code)
	}

	// Naive double submit: the attacker plants a cookie holding its token.
	u, _ := url.Parse(s.srv.URL)
	for _, name := range []string{"csrf_token", "X-CSRF-Token", "_csrf"} {
		victim.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: tA, Path: "/"}})
	}
	if got := s.send(victim, "POST", "/transfer", "csrf_token="+tA, "X-CSRF-Token", tA); got.code != 403 {
		t.Errorf("attacker's token with planted cookies: got %d, want 403", got.code)
	}

	// The attacker's session cookie planted beside the victim's: sesh
	// trusts neither session, so neither token is valid.
	attackerCookie := attacker.Jar.Cookies(u)
	victimCookie := victim.Jar.Cookies(u)
	var sidA, sidV string
	for _, c := range attackerCookie {
		if c.Name == sesh.DefaultCookieName {
			sidA = c.Value
		}
	}
	for _, c := range victimCookie {
		if c.Name == sesh.DefaultCookieName {
			sidV = c.Value
		}
	}
	if sidA == "" || sidV == "" {
		t.Fatalf("session cookies: got %q and %q, want both", sidA, sidV)
	}
	both := sesh.DefaultCookieName + "=" + sidV + "; " + sesh.DefaultCookieName + "=" + sidA
	for name, tok := range map[string]string{"attacker's": tA, "victim's": tV} {
		if got := s.send(s.rawClient(), "POST", "/transfer", "", "Cookie", both, "X-CSRF-Token", tok); got.code != 403 {
			t.Errorf("%s token with both session cookies: got %d, want 403", name, got.code)
		}
	}
	// Alone, the attacker's cookie is the attacker's session: only what
	// the attacker could do anyway.
	if got := s.send(s.rawClient(), "POST", "/transfer", "", "Cookie", sesh.DefaultCookieName+"="+sidA, "X-CSRF-Token", tV); got.code != 403 {
		t.Errorf("victim's token in the attacker's session: got %d, want 403", got.code)
	}
}

// TestRotationAtLogin: a token minted before login is rejected after it,
// and after logout (A37, CHECKLIST 13).
func TestRotationAtLogin(t *testing.T) {
	s := newServer(t, csrf.Config{})
	c := s.client()
	before := s.token(c) // the login form, before any login
	if got := s.send(c, "POST", "/login", "u=alice&csrf_token="+before); got.code != 200 || got.body != "welcome" {
		t.Fatalf("login with the pre-session token: got %d %q, want 200 welcome", got.code, got.body)
	}
	if got := s.send(c, "GET", "/whoami", ""); got.body != "alice" {
		t.Fatalf("whoami: got %q, want alice", got.body)
	}
	s.lastReject()
	if got := s.send(c, "POST", "/transfer", "", "X-CSRF-Token", before); got.code != 403 {
		t.Errorf("pre-login token after login: got %d, want 403", got.code)
	}
	if err := s.lastReject(); !errors.Is(err, csrf.ErrTokenInvalid) {
		t.Errorf("rejection: got %v, want %v", err, csrf.ErrTokenInvalid)
	}
	after := s.token(c)
	if got := s.send(c, "POST", "/transfer", "", "X-CSRF-Token", after); got.code != 200 {
		t.Errorf("post-login token: got %d, want 200", got.code)
	}
	if got := s.send(c, "POST", "/logout", "", "X-CSRF-Token", after); got.code != 200 {
		t.Fatalf("logout: got %d, want 200", got.code)
	}
	if got := s.send(c, "POST", "/transfer", "", "X-CSRF-Token", after); got.code != 403 {
		t.Errorf("token after logout: got %d, want 403", got.code)
	}
}

// TestLoginCSRF: a forged login (the victim logged into the attacker's
// account) is rejected (A37, CHECKLIST 36).
func TestLoginCSRF(t *testing.T) {
	s := newServer(t, csrf.Config{})
	attacker, victim := s.client(), s.client()
	tA := s.token(attacker)
	tests := []struct {
		name    string
		hdr     []string
		wantErr error
	}{
		{"cross-site form", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, csrf.ErrCrossOrigin},
		{"cross-site without Origin", []string{"Sec-Fetch-Site", "cross-site"}, csrf.ErrCrossOrigin},
		{"old browser, foreign Origin", []string{"Origin", "https://evil.example"}, csrf.ErrCrossOrigin},
		{"old browser, Origin null", []string{"Origin", "null"}, csrf.ErrCrossOrigin},
		{"no Origin, attacker's token", nil, csrf.ErrTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.send(victim, "POST", "/login", "u=mallory&csrf_token="+tA, tt.hdr...)
			if got.code != 403 {
				t.Errorf("status: got %d, want 403", got.code)
			}
			if err := s.lastReject(); !errors.Is(err, tt.wantErr) {
				t.Errorf("rejection: got %v, want %v", err, tt.wantErr)
			}
			if _, ok := sessionCookie(got); ok {
				t.Errorf("a rejected login set a session cookie")
			}
			if got := s.send(victim, "GET", "/whoami", ""); got.body != "anon" {
				t.Errorf("victim: got %q, want anon", got.body)
			}
		})
	}
}

// TestExempt: exemptions skip both checks and are exact (A33, after
// golang/go's TestCrossOriginProtectionPatternBypass, CVE-2025-47910).
func TestExempt(t *testing.T) {
	a := newApp(t, csrf.Config{Exempt: []string{"/hook/", "POST /only/{id}", "/exact"}})
	b := a.browser()
	tests := []struct {
		method string
		path   string
		want   int
	}{
		{"POST", "/hook/", 200},
		{"POST", "/hook/?event=push", 200},
		{"PUT", "/hook/", 200},
		{"POST", "/hook", 403},
		{"POST", "/x/../hook/", 403},
		{"POST", "/hook/../transfer", 403},
		{"POST", "/hook/./", 403},
		{"POST", "/HOOK/", 403},
		{"POST", "/hook/sub", 403},
		{"POST", "//hook/", 403},
		{"POST", "/hook//", 403},
		{"POST", "/hook/%2e%2e/transfer", 403},
		{"POST", "/only/7", 200},
		{"PUT", "/only/7", 403},
		{"POST", "/only/7/", 403},
		{"POST", "/only/7/x", 403},
		{"POST", "/exact", 200},
		{"POST", "/exact/", 403},
		{"POST", "/exact/x", 403},
		{"POST", "/transfer", 403},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			// Cross-site, no token, no session: only an exemption lets it in.
			r := req(tt.method, origin+tt.path, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
			if got, want := r.URL.EscapedPath(), strings.SplitN(tt.path, "?", 2)[0]; got != want {
				t.Fatalf("request path: got %q, want %q", got, want)
			}
			checkVerdict(t, a, b.do(r), tt.want, csrf.ErrCrossOrigin)
		})
	}
}

// TestNew checks the configuration errors surface at construction (A32).
func TestNew(t *testing.T) {
	good := []csrf.Config{
		{},
		{TrustedOrigins: []string{"https://a.example", "http://localhost:8080", "https://[::1]:8443", "https://xn--bcher-kva.example"}},
		{Exempt: []string{"/hook/", "POST /hooks/{id}", "api.example.com/hook", "/"}},
		{FieldName: "token", HeaderName: "X-XSRF-Token"},
	}
	for _, cfg := range good {
		if _, err := csrf.New(cfg); err != nil {
			t.Errorf("New(%+v): got %v, want nil", cfg, err)
		}
	}
	bad := []struct {
		name string
		cfg  csrf.Config
	}{
		{"host only", csrf.Config{TrustedOrigins: []string{"a.example"}}},
		{"host and port", csrf.Config{TrustedOrigins: []string{"a.example:443"}}},
		{"empty", csrf.Config{TrustedOrigins: []string{""}}},
		{"null", csrf.Config{TrustedOrigins: []string{"null"}}},
		{"wildcard", csrf.Config{TrustedOrigins: []string{"*"}}},
		{"wildcard host", csrf.Config{TrustedOrigins: []string{"https://*.a.example"}}},
		{"no host", csrf.Config{TrustedOrigins: []string{"https://"}}},
		{"trailing slash", csrf.Config{TrustedOrigins: []string{"https://a.example/"}}},
		{"path", csrf.Config{TrustedOrigins: []string{"https://a.example/app"}}},
		{"query", csrf.Config{TrustedOrigins: []string{"https://a.example?x=1"}}},
		{"fragment", csrf.Config{TrustedOrigins: []string{"https://a.example#x"}}},
		{"userinfo", csrf.Config{TrustedOrigins: []string{"https://user@a.example"}}},
		{"upper case", csrf.Config{TrustedOrigins: []string{"https://A.example"}}},
		{"default https port", csrf.Config{TrustedOrigins: []string{"https://a.example:443"}}},
		{"default http port", csrf.Config{TrustedOrigins: []string{"http://a.example:80"}}},
		{"unicode host", csrf.Config{TrustedOrigins: []string{"https://bücher.example"}}},
		{"subtree wildcard", csrf.Config{Exempt: []string{"/hook/{rest...}"}}},
		{"malformed pattern", csrf.Config{Exempt: []string{"/hook/{id"}}},
		{"duplicate pattern", csrf.Config{Exempt: []string{"/hook/", "/hook/"}}},
		{"bad header name", csrf.Config{HeaderName: "X CSRF"}},
		{"header name with colon", csrf.Config{HeaderName: "X-CSRF-Token:"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			p, err := csrf.New(tt.cfg)
			if err == nil || p != nil {
				t.Errorf("New: got (%v, %v), want (nil, error)", p, err)
			}
		})
	}
}

// TestReportOnly lets rejected requests through and reports them.
func TestReportOnly(t *testing.T) {
	a := newApp(t, csrf.Config{ReportOnly: true})
	b := a.browser()
	tok := b.token()
	tests := []struct {
		name    string
		r       *http.Request
		wantErr error
	}{
		{"cross-site", req("POST", "/transfer", "Sec-Fetch-Site", "cross-site", "X-CSRF-Token", tok), csrf.ErrCrossOrigin},
		{"no token", req("POST", "/transfer"), csrf.ErrTokenMissing},
		{"bad token", req("POST", "/transfer", "X-CSRF-Token", flip(tok)), csrf.ErrTokenInvalid},
		{"valid", req("POST", "/transfer", "X-CSRF-Token", tok), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := b.do(tt.r)
			if got.code != 200 || got.body != "ok" {
				t.Errorf("response: got %d %q, want 200 ok", got.code, got.body)
			}
			err := a.lastReject()
			if tt.wantErr == nil && err != nil || !errors.Is(err, tt.wantErr) {
				t.Errorf("reported: got %v, want %v", err, tt.wantErr)
			}
		})
	}
	if logs := a.logs.String(); !strings.Contains(logs, "report_only=true") {
		t.Errorf("logs: got %q, want report_only=true", logs)
	}
}

// TestMethodOverride: only the request's method counts (A34).
func TestMethodOverride(t *testing.T) {
	a := newApp(t, csrf.Config{})
	b := a.browser()
	b.token()
	for _, h := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"} {
		t.Run(h, func(t *testing.T) {
			got := b.do(req("POST", "/transfer", h, "GET", "Sec-Fetch-Site", "cross-site"))
			checkVerdict(t, a, got, 403, csrf.ErrCrossOrigin)
			got = b.do(req("POST", "/transfer", h, "GET"))
			checkVerdict(t, a, got, 403, csrf.ErrTokenMissing)
			// A GET stays a GET: the application must not honour overrides.
			got = b.do(req("GET", "/transfer", h, "POST", "Sec-Fetch-Site", "cross-site"))
			checkVerdict(t, a, got, 200, nil)
		})
	}
	t.Run("_method field", func(t *testing.T) {
		checkVerdict(t, a, b.do(form("/transfer", "_method=GET")), 403, csrf.ErrTokenMissing)
	})
}

// TestDenyResponse: the deny response carries no token and no detail.
func TestDenyResponse(t *testing.T) {
	a := newApp(t, csrf.Config{})
	victim, attacker := a.browser(), a.browser()
	victim.token()
	tA := attacker.token()
	for _, r := range []*http.Request{
		req("POST", "/transfer", "X-CSRF-Token", tA),
		req("POST", "/transfer", "X-CSRF-Token", tA, "Sec-Fetch-Site", "cross-site"),
		form("/transfer", "csrf_token="+tA),
		req("POST", "/transfer"),
	} {
		got := victim.do(r)
		if got.code != 403 {
			t.Errorf("status: got %d, want 403", got.code)
		}
		if got.body != "Forbidden\n" {
			t.Errorf("body: got %q, want %q", got.body, "Forbidden\n")
		}
		if got.header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control: got %q, want no-store", got.header.Get("Cache-Control"))
		}
		if _, ok := sessionCookie(got); ok {
			t.Errorf("a rejected request set a session cookie")
		}
		for k, vs := range got.header {
			for _, v := range vs {
				if strings.Contains(v, tA[3:20]) || strings.Contains(strings.ToLower(v), "csrf") {
					t.Errorf("header %s: got %q, want no token or detail", k, v)
				}
			}
		}
	}

	t.Run("custom", func(t *testing.T) {
		a := newApp(t, csrf.Config{DenyHandler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Please reload the page and try again.", http.StatusForbidden)
		})})
		got := a.browser().do(req("POST", "/transfer"))
		if got.code != 403 || got.body != "Please reload the page and try again.\n" {
			t.Errorf("got %d %q, want the custom deny response", got.code, got.body)
		}
	})
}

// TestNoTokenInLogs: rejections are logged and reported as events, never
// with a token (CHECKLIST 46).
func TestNoTokenInLogs(t *testing.T) {
	for _, reportOnly := range []bool{false, true} {
		t.Run(fmt.Sprint("ReportOnly=", reportOnly), func(t *testing.T) {
			a := newApp(t, csrf.Config{ReportOnly: reportOnly})
			victim, attacker := a.browser(), a.browser()
			tV := victim.token()
			tA := attacker.token()
			marker := "v1.SECRETMARKER" + strings.Repeat("x", csrf.TokenLen-15)
			toks := []string{tV, tA, marker, flip(tV), nonCanonical(tV), tV[:40]}
			for _, tok := range toks {
				victim.do(req("POST", "/transfer", "X-CSRF-Token", tok))
				victim.do(req("POST", "/transfer", "X-CSRF-Token", tok, "Sec-Fetch-Site", "cross-site"))
				victim.do(form("/transfer", "csrf_token="+url.QueryEscape(tok)))
				a.browser().do(req("POST", "/login", "X-CSRF-Token", tok))
			}
			logs := a.logs.String()
			if n := strings.Count(logs, "csrf: request rejected"); n < 3*len(toks) {
				t.Errorf("logged rejections: got %d, want at least %d", n, 3*len(toks))
			}
			a.mu.Lock()
			events := a.events
			a.mu.Unlock()
			var rejected int
			for _, e := range events {
				if e.Kind == sesh.EventCSRFRejected {
					rejected++
				}
				logs += "\n" + fmt.Sprintf("%+v", e)
			}
			if rejected < 3*len(toks) {
				t.Errorf("csrf_rejected events: got %d, want at least %d", rejected, 3*len(toks))
			}
			parts := []string{"SECRETMARKER"}
			for _, tok := range toks {
				parts = append(parts, tok, tok[3:], tok[len(tok)-16:])
			}
			for _, part := range parts {
				if strings.Contains(logs, part) {
					t.Fatalf("logs or events contain token material %q:\n%s", part, logs)
				}
			}
		})
	}
}

// TestTokenOptionalForSameOrigin: the JSON-API mode trusts Sec-Fetch-Site:
// same-origin and nothing else.
func TestTokenOptionalForSameOrigin(t *testing.T) {
	json := func(hdr ...string) *http.Request {
		r := req("POST", "/api/items", hdr...)
		r.Body = io.NopCloser(strings.NewReader(`{"Name":"widget"}`))
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	t.Run("off", func(t *testing.T) {
		a := newApp(t, csrf.Config{})
		b := a.browser()
		tok := b.token()
		checkVerdict(t, a, b.do(json("Sec-Fetch-Site", "same-origin")), 403, csrf.ErrTokenMissing)
		got := b.do(json("Sec-Fetch-Site", "same-origin", "Origin", origin, "X-CSRF-Token", tok))
		checkVerdict(t, a, got, 200, nil)
		if got.body != "created widget" {
			t.Errorf("body: got %q, want the JSON body read by the handler", got.body)
		}
		checkVerdict(t, a, b.do(json("Sec-Fetch-Site", "cross-site", "X-CSRF-Token", tok)), 403, csrf.ErrCrossOrigin)
		r := json("Origin", "https://evil.example")
		r.Header.Set("Content-Type", "text/plain")
		checkVerdict(t, a, b.do(r), 403, csrf.ErrCrossOrigin)
	})
	t.Run("on", func(t *testing.T) {
		a := newApp(t, csrf.Config{TokenOptionalForSameOrigin: true})
		b := a.browser()
		tok := b.token()
		tests := []struct {
			name    string
			r       *http.Request
			want    int
			wantErr error
		}{
			{"same-origin, no token", json("Sec-Fetch-Site", "same-origin", "Origin", origin), 200, nil},
			{"same-origin, no token, no session", json("Sec-Fetch-Site", "same-origin"), 200, nil},
			{"same-origin, valid token", json("Sec-Fetch-Site", "same-origin", "X-CSRF-Token", tok), 200, nil},
			{"same-origin, bad token", json("Sec-Fetch-Site", "same-origin", "X-CSRF-Token", flip(tok)), 403, csrf.ErrTokenInvalid},
			{"same-origin, userinfo Origin", json("Sec-Fetch-Site", "same-origin", "Origin", "https://evil@example.com"), 403, csrf.ErrCrossOrigin},
			{"none, no token", json("Sec-Fetch-Site", "none"), 403, csrf.ErrTokenMissing},
			{"same-site, no token", json("Sec-Fetch-Site", "same-site", "Origin", "https://sub.example.com"), 403, csrf.ErrCrossOrigin},
			{"no Fetch Metadata, same Origin, no token", json("Origin", origin), 403, csrf.ErrTokenMissing},
			{"no headers, no token", json(), 403, csrf.ErrTokenMissing},
			{"no headers, valid token", json("X-CSRF-Token", tok), 200, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				checkVerdict(t, a, b.do(tt.r), tt.want, tt.wantErr)
			})
		}
	})
}

var fieldRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]+)">`)

// TestTemplateField renders the hidden field, and honours the names.
func TestTemplateField(t *testing.T) {
	a := newApp(t, csrf.Config{})
	b := a.browser()
	page := b.do(req("GET", "/page"))
	m := fieldRE.FindStringSubmatch(page.body)
	if m == nil || m[1] != "csrf_token" {
		t.Fatalf("page: got %q, want a hidden csrf_token field", page.body)
	}
	if _, ok := sessionCookie(page); !ok {
		t.Errorf("the form page set no session cookie; the token has no session")
	}
	checkVerdict(t, a, b.do(form("/transfer", "csrf_token="+m[2])), 200, nil)

	t.Run("custom names", func(t *testing.T) {
		a := newApp(t, csrf.Config{FieldName: "tok", HeaderName: "X-XSRF-Token"})
		b := a.browser()
		m := fieldRE.FindStringSubmatch(b.do(req("GET", "/page")).body)
		if m == nil || m[1] != "tok" {
			t.Fatalf("page: got %q, want a hidden tok field", m)
		}
		checkVerdict(t, a, b.do(form("/transfer", "tok="+m[2])), 200, nil)
		checkVerdict(t, a, b.do(req("POST", "/transfer", "X-XSRF-Token", m[2])), 200, nil)
		checkVerdict(t, a, b.do(form("/transfer", "csrf_token="+m[2])), 403, csrf.ErrTokenMissing)
		checkVerdict(t, a, b.do(req("POST", "/transfer", "X-CSRF-Token", m[2])), 403, csrf.ErrTokenMissing)
	})
}

// TestNoMiddleware: outside the manager's middleware, unsafe requests are
// rejected and no token can be made.
func TestNoMiddleware(t *testing.T) {
	var got error
	p, err := csrf.New(csrf.Config{OnReject: func(_ *http.Request, err error) { got = err }})
	if err != nil {
		t.Fatal(err)
	}
	var tokErr error
	h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, tokErr = csrf.Token(r)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req("GET", "/form"))
	if rec.Code != 200 || !errors.Is(tokErr, sesh.ErrNoMiddleware) {
		t.Errorf("GET: got %d and Token error %v, want 200 and %v", rec.Code, tokErr, sesh.ErrNoMiddleware)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req("POST", "/transfer", "X-CSRF-Token", "v1."+strings.Repeat("A", csrf.TokenLen-3)))
	if rec.Code != 403 || !errors.Is(got, csrf.ErrTokenInvalid) || !errors.Is(got, sesh.ErrNoMiddleware) {
		t.Errorf("POST: got %d and %v, want 403 and %v wrapping %v", rec.Code, got, csrf.ErrTokenInvalid, sesh.ErrNoMiddleware)
	}
}

// TestZeroProtection: the zero value applies the defaults.
func TestZeroProtection(t *testing.T) {
	m := newManager(t, nil, nil)
	var p csrf.Protection
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, string(p.TemplateField(r)))
	})
	mux.HandleFunc("POST /transfer", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	a := &app{t: t, h: m.Handler(p.Handler(mux))}
	b := a.browser()
	f := fieldRE.FindStringSubmatch(b.do(req("GET", "/form")).body)
	if f == nil {
		t.Fatal("no field")
	}
	for _, tt := range []struct {
		r    *http.Request
		want int
	}{
		{form("/transfer", "csrf_token="+f[2]), 200},
		{req("POST", "/transfer", "X-CSRF-Token", f[2]), 200},
		{req("POST", "/transfer"), 403},
		{req("POST", "/transfer", "X-CSRF-Token", f[2], "Sec-Fetch-Site", "cross-site"), 403},
	} {
		if got := b.do(tt.r); got.code != tt.want {
			t.Errorf("got %d, want %d", got.code, tt.want)
		}
	}
}

// TestExclusive: routes serialised by Manager.Exclusive get the check
// inside Exclusive.
func TestExclusive(t *testing.T) {
	a := newApp(t, csrf.Config{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		tok, _ := csrf.Token(r)
		io.WriteString(w, tok)
	})
	mux.Handle("POST /incr", a.m.Exclusive(a.p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := sesh.FromContext(r.Context())
		n, _ := sesh.Get[int](s, "n")
		s.Set("n", n+1)
		fmt.Fprint(w, n+1)
	}))))
	a.h = a.m.Handler(mux)
	b := a.browser()
	tok := b.token()
	for i := 1; i <= 3; i++ {
		got := b.do(req("POST", "/incr", "X-CSRF-Token", tok))
		if got.code != 200 || got.body != fmt.Sprint(i) {
			t.Fatalf("incr %d: got %d %q, want 200 %d", i, got.code, got.body, i)
		}
	}
	checkVerdict(t, a, b.do(req("POST", "/incr")), 403, csrf.ErrTokenMissing)
}

// TestConcurrent runs many sessions at once through one Protection.
func TestConcurrent(t *testing.T) {
	a := newApp(t, csrf.Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 8 {
		wg.Go(func() {
			b := a.browser()
			for range 5 {
				r := b.do(req("GET", "/form"))
				if got := b.do(req("POST", "/transfer", "X-CSRF-Token", r.body)); got.code != 200 {
					errs <- fmt.Errorf("own token: got %d, want 200", got.code)
				}
				foreign := csrf.Mask(randomSecret(), randomSecret())
				if got := b.do(req("POST", "/transfer", "X-CSRF-Token", foreign)); got.code != 403 {
					errs <- fmt.Errorf("foreign token: got %d, want 403", got.code)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func randomSecret() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// flakyStore fails Load on demand.
type flakyStore struct {
	sesh.Store
	down atomic.Bool
}

func (s *flakyStore) Load(ctx context.Context, k sesh.Key) (sesh.Record, error) {
	if s.down.Load() {
		return sesh.Record{}, errors.New("dial tcp 10.0.0.1:6379: connection refused")
	}
	return s.Store.Load(ctx, k)
}

// TestStoreOutage: when the session cannot be loaded, the token check
// fails closed, and sesh answers 503 rather than 403, so a store outage
// is not reported to the user as a forgery.
func TestStoreOutage(t *testing.T) {
	k, _ := seal.GenerateKey(1)
	ring, _ := seal.NewRing(k)
	store := &flakyStore{Store: memstore.New()}
	m, err := sesh.New(store, sesh.Config{Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	a := &app{t: t, m: m}
	p, err := csrf.New(csrf.Config{OnReject: func(_ *http.Request, err error) {
		a.mu.Lock()
		a.rejects = append(a.rejects, err)
		a.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	a.p = p
	a.h = m.Handler(p.Handler(a.routes()))
	b := a.browser()
	tok := b.token()
	store.down.Store(true)
	got := b.do(req("POST", "/transfer", "X-CSRF-Token", tok))
	if got.code != http.StatusServiceUnavailable {
		t.Errorf("status: got %d, want 503", got.code)
	}
	if err := a.lastReject(); !errors.Is(err, csrf.ErrTokenInvalid) || !errors.Is(err, sesh.ErrStoreUnavailable) {
		t.Errorf("rejection: got %v, want %v wrapping %v", err, csrf.ErrTokenInvalid, sesh.ErrStoreUnavailable)
	}
	store.down.Store(false)
	checkVerdict(t, a, b.do(req("POST", "/transfer", "X-CSRF-Token", tok)), 200, nil)
}
