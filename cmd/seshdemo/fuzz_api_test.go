package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/csrf"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/seal"
)

// Fuzz targets for what the demo parses from requests: kv keys and JSON
// bodies, session handles in URLs, the Content-Type of API requests and
// the target of /session-ended. Each runs the demo's real handlers in
// process, on a memory store.

// fzDemo is the demo's handler on a fresh memory store.
type fzDemo struct {
	store *memstore.Store
	h     http.Handler
}

var fzUsers *userDB // built once: hashing the demo passwords is slow

func newFzDemo(t testing.TB) *fzDemo {
	t.Helper()
	if fzUsers == nil {
		u, err := newUserDB(demoUsers)
		if err != nil {
			t.Fatal(err)
		}
		fzUsers = u
	}
	k, err := seal.GenerateKey(1)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := seal.NewRing(k)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	d := &fzDemo{store: memstore.New()}
	m, err := sesh.New(d.store, sesh.Config{Keys: ring, Logger: logger, Cookie: sesh.CookieConfig{InsecureHTTP: true}, ErrorHandler: errorHandler})
	if err != nil {
		t.Fatal(err)
	}
	p, err := csrf.New(csrf.Config{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	d.h = m.Handler(newApp(m, p, fzUsers, logger, "memory"))
	return d
}

// fzResponse is a finished response.
type fzResponse struct {
	code   int
	header http.Header
	body   []byte
}

// do serves one request to target, a path with an optional query;
// cookies is the Cookie header.
func (d *fzDemo) do(method, target, contentType string, body []byte, cookies string) fzResponse {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if cookies != "" {
		req.Header.Set("Cookie", cookies)
	}
	rec := httptest.NewRecorder()
	d.h.ServeHTTP(rec, req)
	return fzResponse{rec.Code, rec.Header(), rec.Body.Bytes()}
}

// login signs user in through the API and returns the session cookie.
func (d *fzDemo) login(t testing.TB, user, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"user": user, "password": password})
	r := d.do("POST", "/api/login", "application/json", body, "")
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == sessionCookie && c.MaxAge >= 0 {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("login %s: got %d %s", user, r.code, r.body)
	return ""
}

// checkAPIResponse checks what every API response must be: never a
// server error, and JSON unless it is empty or a redirect of ServeMux.
func checkAPIResponse(t *testing.T, what string, r fzResponse) {
	t.Helper()
	switch {
	case r.code >= 500:
		t.Fatalf("%s: status %d: %s", what, r.code, r.body)
	case r.code >= 300 && r.code < 400, r.code == http.StatusNoContent:
	case r.header.Get("Content-Type") != "application/json" || !json.Valid(r.body):
		t.Fatalf("%s: status %d, %q body %q", what, r.code, r.header.Get("Content-Type"), r.body)
	}
}

var kvKeyRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// FuzzKV stores arbitrary bodies under arbitrary keys with PUT
// /api/kv/{key} and reads them back. A value is stored exactly when the
// key is 1 to 64 characters of [A-Za-z0-9_.-], the content type is JSON
// (or absent) and the body is one JSON object whose "value" is not null;
// it then reads back as the same JSON value. Anything else is a 4xx (or
// a redirect of ServeMux for an unclean path, such as a key "..") that
// creates no session.
func FuzzKV(f *testing.F) {
	for _, in := range []struct {
		key, ct, body string
	}{
		{"k", "application/json", `{"value": 1}`},
		{"a.b-c_D9", "", `{"value": {"x": [1, "two", null, 3.5e10, true]}}`},
		{strings.Repeat("k", 64), "application/json; charset=utf-8", `{"value":"<é>\u2028"}`},
		{strings.Repeat("k", 65), "application/json", `{"value": 1}`},
		{"", "application/json", `{"value": 1}`},
		{"a/b", "application/json", `{"value": 1}`},
		{"..", "application/json", `{"value": 1}`},
		{"%", "application/json", `{"value": 1}`},
		{"k é", "application/json", `{"value": 1}`},
		{"k\x00", "application/json", `{"value": 1}`},
		{"k", "text/plain", `{"value": 1}`},
		{"k", "application/json", `{"value": null}`},
		{"k", "application/json", `{"value": 1} {}`},
		{"k", "application/json", `{"value": 1}x`},
		{"k", "application/json", `{"value": 12345678901234567890123}`},
		{"k", "application/json", `{"Value": 1, "value": 2}`},
		{"k", "application/json", `[{"value": 1}]`},
		{"k", "application/json", `{"value": "\xff"}`},
		{"k", "application/json", ``},
	} {
		f.Add(in.key, in.ct, []byte(in.body))
	}
	f.Fuzz(func(t *testing.T, key, contentType string, body []byte) {
		if got, want := validKVKey(key), kvKeyRE.MatchString(key); got != want {
			t.Fatalf("validKVKey(%q) = %v, want %v", key, got, want)
		}
		d := newFzDemo(t)
		target := "/api/kv/" + url.PathEscape(key)
		r := d.do("PUT", target, contentType, body, "")
		checkAPIResponse(t, "PUT "+target, r)

		var parsed struct {
			Value json.RawMessage `json:"value"`
		}
		mt, _, err := mime.ParseMediaType(contentType)
		// "." and ".." are valid keys that no clean URL path can name:
		// ServeMux redirects them.
		stored := kvKeyRE.MatchString(key) && key != "." && key != ".." && (contentType == "" || err == nil && mt == "application/json") &&
			json.Unmarshal(body, &parsed) == nil && parsed.Value != nil
		if !stored {
			if r.code < 300 || d.store.Len() != 0 || r.header.Get("Set-Cookie") != "" {
				t.Fatalf("PUT %s %q %q: got %d, %d records, Set-Cookie %q; want it refused", target, contentType, body, r.code, d.store.Len(), r.header.Values("Set-Cookie"))
			}
			return
		}
		if r.code != http.StatusNoContent {
			t.Fatalf("PUT %s %q %q: got %d %s, want 204", target, contentType, body, r.code, r.body)
		}
		cookie := ""
		for _, c := range (&http.Response{Header: r.header}).Cookies() {
			cookie = c.Name + "=" + c.Value
		}
		g := d.do("GET", target, "", nil, cookie)
		checkAPIResponse(t, "GET "+target, g)
		var got struct {
			Value json.RawMessage `json:"value"`
		}
		if g.code != http.StatusOK || json.Unmarshal(g.body, &got) != nil || !sameJSON(got.Value, parsed.Value) {
			t.Fatalf("GET %s: got %d %s, want the value %s", target, g.code, g.body, parsed.Value)
		}
	})
}

// sameJSON reports whether a and b are the same JSON value, numbers
// compared as written.
func sameJSON(a, b []byte) bool {
	decode := func(b []byte) (any, bool) {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		return v, d.Decode(&v) == nil
	}
	va, ok1 := decode(a)
	vb, ok2 := decode(b)
	return ok1 && ok2 && reflect.DeepEqual(va, vb)
}

// FuzzRevokeHandle sends DELETE /api/sessions/{handle} as alice, who is
// signed in on two devices, with bob signed in on a third: {a1}, {a2} and
// {b} in the input stand for their handles. It ends a session only when
// the handle is exactly one of alice's, and then only that one.
func FuzzRevokeHandle(f *testing.F) {
	for _, s := range []string{"{a1}", "{a2}", "{b}", "{a1}/", "{a1}%00", "revoke-others", "..", "", "{a1}{a2}", strings.Repeat("0", 24), "%7Ba1%7D"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, handle string) {
		d := newFzDemo(t)
		a1 := d.login(t, "alice", "wonderland")
		a2 := d.login(t, "alice", "wonderland")
		b := d.login(t, "bob", "builder")
		handles := func(cookie string) []string {
			r := d.do("GET", "/api/sessions", "", nil, cookie)
			var list struct {
				Sessions []deviceJSON `json:"sessions"`
			}
			if r.code != 200 || json.Unmarshal(r.body, &list) != nil {
				t.Fatalf("GET /api/sessions: %d %s", r.code, r.body)
			}
			var hs []string
			for _, s := range list.Sessions {
				if !s.Current {
					hs = append(hs, s.Handle)
				}
			}
			for _, s := range list.Sessions {
				if s.Current {
					hs = append(hs, s.Handle) // the current session last
				}
			}
			return hs
		}
		alice, bob := handles(a1), handles(b)
		if len(alice) != 2 || len(bob) != 1 {
			t.Fatalf("setup: %d sessions of alice, %d of bob", len(alice), len(bob))
		}
		// alice[0] is her other device, alice[1] the one sending requests.
		handle = strings.NewReplacer("{a1}", alice[1], "{a2}", alice[0], "{b}", bob[0]).Replace(handle)
		target := "/api/sessions/" + url.PathEscape(handle)
		r := d.do("DELETE", target, "", nil, a1)
		checkAPIResponse(t, "DELETE "+target, r)
		revoked := ""
		if handle == alice[0] || handle == alice[1] {
			revoked = handle
		}
		if (r.code == http.StatusNoContent) != (revoked != "") {
			t.Fatalf("DELETE %s: got %d %s", target, r.code, r.body)
		}
		viewer := a1
		if revoked == alice[1] {
			viewer = a2 // alice ended the session she sent the request from
		}
		after := append(handles(viewer), handles(b)...)
		for _, h := range append(alice, bob...) {
			if slices.Contains(after, h) == (h == revoked) {
				t.Fatalf("DELETE %s: session %s survived=%v", target, h, h != revoked)
			}
		}
	})
}

// FuzzSimpleContentType: every Content-Type that a cross-site page can
// send without a CORS preflight is refused by the API guard. Browsers
// judge by the essence of the type: the part before ';', without HTTP
// white space, in lower case.
func FuzzSimpleContentType(f *testing.F) {
	for _, ct := range []string{"text/plain", "TEXT/PLAIN; charset=utf-8", " application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
		"text/plain;", "text/plain\t", "text/plain,application/json", "application/json", "application/json; x=text/plain", "", ";", "text", "\x00"} {
		f.Add(ct)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		essence, _, _ := strings.Cut(ct, ";")
		essence = strings.ToLower(strings.Trim(essence, " \t\r\n"))
		simple := essence == "application/x-www-form-urlencoded" || essence == "multipart/form-data" || essence == "text/plain"
		if simple && !simpleContentType(ct) {
			t.Fatalf("simpleContentType(%q) = false, but a browser sends it without preflight", ct)
		}
		if ct == "" && simpleContentType(ct) {
			t.Fatal(`simpleContentType("") = true`)
		}
		if !simple {
			return
		}
		d := newFzDemo(t)
		req := httptest.NewRequest("POST", "http://example.com/api/counter", strings.NewReader("{}"))
		req.Header["Content-Type"] = []string{ct}
		rec := httptest.NewRecorder()
		d.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || d.store.Len() != 0 {
			t.Fatalf("POST /api/counter with Content-Type %q: got %d, %d records; want 403 and none", ct, rec.Code, d.store.Len())
		}
	})
}

// FuzzSessionEnded sends /session-ended?next=... with arbitrary targets
// and resolves the Location it answers with as a browser does (white
// space and control characters around it removed, tabs and newlines
// anywhere removed, backslashes read as slashes): the browser must stay
// on the site.
func FuzzSessionEnded(f *testing.F) {
	for _, next := range []string{"/cart", "/devices?x=1#y", "//evil.example", "/\\evil.example", "\\/evil.example", "/\t/evil.example",
		"/%2F/evil.example", "https://evil.example", "/a/../..//evil.example", "/.//evil.example", "/\x00/evil.example", " //evil.example", "/ /evil.example", "javascript:alert(1)", ""} {
		f.Add(next)
	}
	f.Fuzz(func(t *testing.T, next string) {
		d := newFzDemo(t)
		target := "/session-ended?next=" + url.QueryEscape(next)
		r := d.do("GET", target, "", nil, "")
		if r.code != http.StatusSeeOther {
			t.Fatalf("GET %s: got %d", target, r.code)
		}
		loc := r.header.Get("Location")
		u, ok := browserResolve("http://example.com/session-ended", loc)
		if !ok || u.Host != "example.com" || u.Scheme != "http" {
			t.Fatalf("next=%q: Location %q takes the browser to %v", next, loc, u)
		}
	})
}

// browserResolve resolves ref against base the way a browser's URL parser
// treats an http URL: it strips leading and trailing C0 controls and
// spaces, removes tabs and newlines, and reads backslashes as slashes.
func browserResolve(base, ref string) (*url.URL, bool) {
	ref = strings.TrimFunc(ref, func(r rune) bool { return r <= ' ' })
	ref = strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(ref)
	b, err := url.Parse(base)
	if err != nil {
		return nil, false
	}
	// Go's parser refuses what browsers escape; escape it first.
	ref = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, ref)
	u, err := b.Parse(escapeLoose(ref))
	return u, err == nil
}

// escapeLoose percent-encodes the bytes browsers escape in a URL and Go's
// parser refuses: spaces, quotes, angle brackets, stray '%' and non-ASCII.
func escapeLoose(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		isHex := func(j int) bool {
			return j < len(s) && strings.IndexByte("0123456789abcdefABCDEF", s[j]) >= 0
		}
		switch {
		case c == '%' && isHex(i+1) && isHex(i+2):
			sb.WriteByte(c)
		case c <= ' ' || c >= 0x7f || strings.IndexByte("\"<>`{}|^%", c) >= 0:
			fmt.Fprintf(&sb, "%%%02X", c)
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}
