package csrf_test

import (
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/seshgo/sesh/csrf"
)

// checkInput is one request of FuzzCheck. In every string, {tok} stands
// for a valid token of the request's session.
type checkInput struct {
	method, host, path, query string
	origin, secFetchSite      string
	contentType, body         string
	headerToken               string
	tls, tokenOptional        bool
}

// FuzzCheck sends arbitrary requests (method, Host, path, query, Origin,
// Sec-Fetch-Site, content type, body, token header) through
// Protection.Check inside the sesh middleware, on a session that has a
// CSRF secret, with a trusted origin and an exemption configured. It
// checks the verdict against what the package documents:
//
//   - safe methods and exempt requests always pass;
//   - every rejection wraps exactly one of ErrCrossOrigin,
//     ErrTokenMissing and ErrTokenInvalid;
//   - an unsafe request passes only with the session's token in the
//     header, or, without a header, in the form field of a form body
//     (never the query), or with no token at all under
//     TokenOptionalForSameOrigin and Sec-Fetch-Site: same-origin;
//   - a cross-site or same-site request passes only from a trusted origin;
//   - an Origin with userinfo, a path, a query, a fragment or an
//     upper-case scheme never passes, nor, on a TLS request, one naming
//     the request's host over another scheme;
//   - a same-origin request with the token is never refused for its
//     origin.
func FuzzCheck(f *testing.F) {
	m := newManager(f, nil, nil)
	strict, err := csrf.New(csrf.Config{TrustedOrigins: []string{"https://trusted.example"}, Exempt: []string{"POST /hook/{id}"}})
	if err != nil {
		f.Fatal(err)
	}
	optional, err := csrf.New(csrf.Config{TrustedOrigins: []string{"https://trusted.example"}, Exempt: []string{"POST /hook/{id}"}, TokenOptionalForSameOrigin: true})
	if err != nil {
		f.Fatal(err)
	}
	// A session with a CSRF secret, and one of its tokens.
	rec := httptest.NewRecorder()
	var tok string
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err = csrf.Token(r)
	})).ServeHTTP(rec, httptest.NewRequest("GET", "https://example.com/", nil))
	cookies := rec.Result().Cookies()
	if err != nil || len(cookies) != 1 {
		f.Fatalf("minting a token: %v, cookies %q", err, rec.Header().Values("Set-Cookie"))
	}
	session := cookies[0]

	const form = "application/x-www-form-urlencoded"
	for _, in := range []checkInput{
		{method: "POST", host: "example.com", path: "/transfer", headerToken: "{tok}", tls: true},
		{method: "POST", host: "example.com", path: "/transfer", secFetchSite: "same-origin", origin: "https://example.com", headerToken: "{tok}", tls: true},
		{method: "POST", host: "example.com", path: "/transfer", contentType: form, body: "amount=1&csrf_token={tok}", tls: true},
		{method: "POST", host: "example.com", path: "/transfer", contentType: form + "; charset=utf-8", body: "csrf_token=v1%2E{tok}"},
		{method: "POST", host: "example.com", path: "/transfer", query: "csrf_token={tok}", tls: true},
		{method: "POST", host: "example.com", path: "/transfer", contentType: "multipart/form-data; boundary=b", body: "--b\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{tok}\r\n--b--\r\n"},
		{method: "POST", host: "example.com", path: "/transfer", contentType: "application/json", body: `{"csrf_token":"{tok}"}`},
		{method: "POST", host: "example.com", path: "/transfer", headerToken: "{tok}x", contentType: form, body: "csrf_token={tok}"},
		{method: "PUT", host: "example.com", path: "/x", secFetchSite: "cross-site", origin: "https://evil.example", headerToken: "{tok}"},
		{method: "DELETE", host: "example.com", path: "/x", secFetchSite: "same-site", origin: "https://trusted.example", headerToken: "{tok}"},
		{method: "POST", host: "example.com", path: "/x", origin: "https://evil@example.com", headerToken: "{tok}", tls: true},
		{method: "POST", host: "example.com", path: "/x", origin: "http://example.com", headerToken: "{tok}", tls: true},
		{method: "POST", host: "example.com", path: "/x", origin: "HTTPS://example.com", headerToken: "{tok}"},
		{method: "POST", host: "example.com", path: "/x", origin: "null", secFetchSite: "same-origin", headerToken: "{tok}"},
		{method: "POST", host: "", path: "/x", origin: "null", headerToken: "{tok}"},
		{method: "POST", host: "example.com", path: "/hook/42", secFetchSite: "cross-site", origin: "https://evil.example"},
		{method: "POST", host: "example.com", path: "/hook/42/", secFetchSite: "cross-site"},
		{method: "POST", host: "example.com", path: "/hook/..", secFetchSite: "cross-site"},
		{method: "PUT", host: "example.com", path: "/hook/42", secFetchSite: "cross-site"},
		{method: "POST", host: "example.com", path: "/api", secFetchSite: "same-origin", tokenOptional: true},
		{method: "POST", host: "example.com", path: "/api", secFetchSite: "same-origin", headerToken: "v1.AAAA", tokenOptional: true},
		{method: "get", host: "example.com", path: "/", secFetchSite: "cross-site"},
		{method: "GET", host: "example.com", path: "/", secFetchSite: "cross-site", origin: "%%%"},
		{method: "OPTIONS", host: "example.com", path: "/"},
		{method: "\x00", host: "\xff", path: "", origin: "\x00", headerToken: "\x00"},
	} {
		f.Add(in.method, in.host, in.path, in.query, in.origin, in.secFetchSite, in.contentType, in.body, in.headerToken, in.tls, in.tokenOptional)
	}
	f.Fuzz(func(t *testing.T, method, host, path, query, origin, secFetchSite, contentType, body, headerToken string, isTLS, tokenOptional bool) {
		in := checkInput{method, host, path, query, origin, secFetchSite, contentType, body, headerToken, isTLS, tokenOptional}
		expand := strings.NewReplacer("{tok}", tok).Replace
		newRequest := func() *http.Request {
			r := &http.Request{
				Method:     in.method,
				URL:        &url.URL{Path: in.path, RawQuery: expand(in.query)},
				Proto:      "HTTP/1.1",
				ProtoMajor: 1, ProtoMinor: 1,
				Host:          in.host,
				Header:        http.Header{},
				Body:          io.NopCloser(strings.NewReader(expand(in.body))),
				ContentLength: int64(len(expand(in.body))),
			}
			if in.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for name, v := range map[string]string{"Origin": in.origin, "Sec-Fetch-Site": in.secFetchSite,
				"Content-Type": in.contentType, "X-Csrf-Token": expand(in.headerToken)} {
				if v != "" {
					r.Header[name] = []string{v}
				}
			}
			r.AddCookie(session)
			return r
		}
		p := strict
		if in.tokenOptional {
			p = optional
		}
		var checkErr error
		m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			checkErr = p.Check(r)
			if r.MultipartForm != nil {
				r.MultipartForm.RemoveAll()
			}
		})).ServeHTTP(httptest.NewRecorder(), newRequest())

		// What the request carries as a token, read as the documentation
		// says: the header, else the form field of a form body.
		read := expand(in.headerToken)
		if read == "" {
			if mt, _, err := mime.ParseMediaType(in.contentType); err == nil && (mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data") {
				r := newRequest()
				read = r.PostFormValue(csrf.DefaultFieldName)
				if r.MultipartForm != nil {
					r.MultipartForm.RemoveAll()
				}
			}
		}
		verdict(t, in, tok, read, checkErr)
	})
}

// verdict checks the result of Check on in, whose token as read is read.
func verdict(t *testing.T, in checkInput, tok, read string, err error) {
	t.Helper()
	kinds := 0
	for _, e := range []error{csrf.ErrCrossOrigin, csrf.ErrTokenMissing, csrf.ErrTokenInvalid} {
		if errors.Is(err, e) {
			kinds++
		}
	}
	if err != nil && kinds != 1 {
		t.Fatalf("%+v: error %v wraps %d of the sentinels, want 1", in, err, kinds)
	}
	if err != nil && strings.Contains(err.Error(), tok) {
		t.Fatalf("%+v: the error reveals the token", in)
	}
	switch in.method {
	case "GET", "HEAD", "OPTIONS":
		if err != nil {
			t.Fatalf("%+v: safe method rejected: %v", in, err)
		}
		return
	}
	seg, hook := strings.CutPrefix(in.path, "/hook/")
	if in.method == "POST" && hook && seg != "" && seg != "." && seg != ".." && !strings.Contains(seg, "/") {
		if err != nil {
			t.Fatalf("%+v: exempt request rejected: %v", in, err)
		}
		return
	}
	trusted := in.origin == "https://trusted.example"
	switch {
	case err == nil && read != tok && (read != "" || !in.tokenOptional || in.secFetchSite != "same-origin"):
		t.Fatalf("%+v: passed with token %q", in, read)
	case errors.Is(err, csrf.ErrTokenMissing) && read != "":
		t.Fatalf("%+v: token missing, but the request carries %q", in, read)
	case errors.Is(err, csrf.ErrTokenInvalid) && read == tok:
		t.Fatalf("%+v: the session's token was refused: %v", in, err)
	case err == nil && in.secFetchSite != "" && in.secFetchSite != "same-origin" && in.secFetchSite != "none" && !trusted:
		t.Fatalf("%+v: a %q request from an untrusted origin passed", in, in.secFetchSite)
	case err == nil && !trusted && in.origin != "" && in.origin != "null" && !plainOrigin(in.origin):
		t.Fatalf("%+v: passed with a malformed Origin", in)
	case err == nil && !trusted && in.tls && in.host != "" && strings.EqualFold(originHost(in.origin), in.host) && !strings.HasPrefix(in.origin, "https://"):
		t.Fatalf("%+v: a TLS request passed with a non-https Origin of its own host", in)
	case errors.Is(err, csrf.ErrCrossOrigin) && (in.secFetchSite == "same-origin" || in.secFetchSite == "none") &&
		(in.origin == "" || trusted || in.origin == "https://"+in.host && simpleHost(in.host)):
		t.Fatalf("%+v: a same-origin request was refused for its origin: %v", in, err)
	case errors.Is(err, csrf.ErrCrossOrigin) && in.secFetchSite == "" && in.origin == "":
		t.Fatalf("%+v: a request without Sec-Fetch-Site or Origin was refused for its origin: %v", in, err)
	}
}

// plainOrigin reports whether o is a lower-case scheme, "://" and a host
// without userinfo, path, query or fragment: the only form a browser
// sends.
func plainOrigin(o string) bool {
	scheme, host, ok := strings.Cut(o, "://")
	if !ok || scheme == "" || host == "" || strings.ContainsAny(host, "/?#@\\") {
		return false
	}
	for i := 0; i < len(scheme); i++ {
		c := scheme[i]
		if !('a' <= c && c <= 'z' || i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

func originHost(o string) string {
	_, host, _ := strings.Cut(o, "://")
	return host
}

// simpleHost reports whether h is a plain lower-case host name.
func simpleHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
