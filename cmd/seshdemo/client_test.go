package main

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// client is an HTTP client for black-box tests of the demo, with cookies
// kept by hand so that tests can drop, copy and replay them.
type client struct {
	t       *testing.T
	base    string // with the trailing slash
	hc      *http.Client
	ua      string
	header  http.Header // sent with every request
	mu      sync.Mutex
	cookies map[string]string
}

// newTransport returns a transport for a test's clients.
func newTransport(t *testing.T) *http.Transport {
	tr := &http.Transport{
		MaxIdleConnsPerHost:   32,
		ExpectContinueTimeout: time.Minute, // see putWaiting
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func newClient(t *testing.T, base string, tr *http.Transport) *client {
	return &client{
		t:    t,
		base: base,
		hc: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Timeout:       time.Minute,
		},
		ua:      "seshdemo-test",
		header:  http.Header{},
		cookies: map[string]string{},
	}
}

// response is a response read whole.
type response struct {
	method, path string
	status       int
	header       http.Header
	body         []byte
}

func (r *response) String() string {
	return r.method + " " + r.path + ": " + http.StatusText(r.status) + " " + strings.TrimSpace(string(r.body))
}

// want fails the test unless the status is code.
func (r *response) want(t *testing.T, code int) *response {
	t.Helper()
	if r.status != code {
		t.Fatalf("%s: got %d, want %d", r, r.status, code)
	}
	return r
}

// decode decodes the JSON body into v.
func (r *response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%s: decoding the body: %v", r, err)
	}
}

// object returns the JSON body as an object.
func (r *response) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	r.decode(t, &m)
	return m
}

// setCookies returns the cookies the response sets, by name.
func (r *response) setCookies() map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		out[c.Name] = c
	}
	return out
}

// noCookies fails the test if the response sets a cookie.
func (r *response) noCookies(t *testing.T) {
	t.Helper()
	if v := r.header.Values("Set-Cookie"); len(v) > 0 {
		t.Fatalf("%s: sets cookies %q", r, v)
	}
}

// errorBody checks an error response: {"error": "..."}.
func (r *response) errorBody(t *testing.T) {
	t.Helper()
	var e struct {
		Error *string `json:"error"`
	}
	r.decode(t, &e)
	if e.Error == nil || *e.Error == "" {
		t.Fatalf("%s: no error message", r)
	}
}

// request builds a request for path (relative to the base URL).
func (c *client) request(method, path string, body io.Reader) *http.Request {
	req, err := http.NewRequest(method, c.base+strings.TrimPrefix(path, "/"), body)
	if err != nil {
		c.t.Fatal(err)
	}
	return req
}

// do sends req with the client's cookies and keeps the cookies of the
// response. It may be called from any goroutine: a transport error is
// reported with Errorf and gives status 0.
func (c *client) do(req *http.Request) *response {
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", c.ua)
	}
	for k, v := range c.header {
		if _, ok := req.Header[k]; !ok {
			req.Header[k] = v
		}
	}
	if h := c.cookieHeader(); h != "" && req.Header.Get("Cookie") == "" {
		req.Header.Set("Cookie", h)
	}
	r := &response{method: req.Method, path: req.URL.RequestURI()}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Errorf("%s %s: %v", req.Method, req.URL, err)
		return r
	}
	defer res.Body.Close()
	r.status, r.header = res.StatusCode, res.Header
	r.body, err = io.ReadAll(res.Body)
	if err != nil {
		c.t.Errorf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	c.keep(res.Cookies())
	if strings.HasPrefix(req.URL.Path, "/api/") {
		c.checkAPIHeaders(r)
	}
	return r
}

// checkAPIHeaders checks what every API response must carry.
func (c *client) checkAPIHeaders(r *response) {
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		c.t.Errorf("%s: Cache-Control %q, want no-store", r, cc)
	}
	if r.status == http.StatusNoContent || r.method == http.MethodHead {
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		c.t.Errorf("%s: Content-Type %q, want application/json", r, ct)
	}
	if !json.Valid(r.body) {
		c.t.Errorf("%s: the body is not JSON", r)
	}
}

func (c *client) keep(cookies []*http.Cookie) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range cookies {
		if k.Value == "" || k.MaxAge < 0 || (!k.Expires.IsZero() && k.Expires.Before(time.Now())) {
			delete(c.cookies, k.Name)
		} else {
			c.cookies[k.Name] = k.Value
		}
	}
}

func (c *client) cookieHeader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(c.cookies)) {
		parts = append(parts, name+"="+c.cookies[name])
	}
	return strings.Join(parts, "; ")
}

// jar returns a copy of the client's cookies.
func (c *client) jar() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.cookies)
}

// setJar replaces the client's cookies.
func (c *client) setJar(j map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cookies = maps.Clone(j)
}

// clone returns a client with the same cookies.
func (c *client) clone() *client {
	d := newClient(c.t, c.base, c.hc.Transport.(*http.Transport))
	d.ua = c.ua
	d.setJar(c.jar())
	return d
}

// send sends a request with a raw body of the given content type ("" for
// none), and headers as name, value pairs.
func (c *client) send(method, path, contentType, body string, header ...string) *response {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := c.request(method, path, rd)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return c.do(req)
}

// call sends v as JSON (no body when v is nil).
func (c *client) call(method, path string, v any) *response {
	if v == nil {
		return c.send(method, path, "", "")
	}
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.send(method, path, "application/json", string(b))
}

func (c *client) get(path string) *response         { return c.call(http.MethodGet, path, nil) }
func (c *client) post(path string, v any) *response { return c.call(http.MethodPost, path, v) }
func (c *client) put(path string, v any) *response  { return c.call(http.MethodPut, path, v) }
func (c *client) delete(path string) *response      { return c.call(http.MethodDelete, path, nil) }

// login signs in through the API, and fails the test if it cannot.
func (c *client) login(user, password string, remember bool) *response {
	c.t.Helper()
	r := c.post("/api/login", map[string]any{"user": user, "password": password, "remember": remember})
	r.want(c.t, http.StatusOK)
	var body struct{ User string }
	r.decode(c.t, &body)
	if body.User != user {
		c.t.Fatalf("%s: user %q, want %q", r, body.User, user)
	}
	return r
}

// me is the body of GET /api/me.
type me struct {
	User       *string `json:"user"`
	Remembered bool    `json:"remembered"`
}

func (m me) String() string {
	if m.User == nil {
		return "anonymous"
	}
	s := *m.User
	if m.Remembered {
		s += " (remembered)"
	}
	return s
}

// me returns who the server thinks the client is, checking the shape of
// the answer.
func (c *client) me() me {
	c.t.Helper()
	r := c.get("/api/me").want(c.t, http.StatusOK)
	obj := r.object(c.t)
	if len(obj) != 2 {
		c.t.Fatalf("%s: want exactly the fields user and remembered", r)
	}
	if _, ok := obj["remembered"].(bool); !ok {
		c.t.Fatalf("%s: remembered is not a boolean", r)
	}
	var m me
	r.decode(c.t, &m)
	if m.User == nil && m.Remembered {
		c.t.Fatalf("%s: remembered without a user", r)
	}
	return m
}

// wantUser fails the test unless the client is signed in as user ("" for
// nobody).
func (c *client) wantUser(user string) me {
	c.t.Helper()
	m := c.me()
	if got := m.String(); (user == "" && m.User != nil) || (user != "" && (m.User == nil || *m.User != user)) {
		c.t.Fatalf("GET /api/me: %s, want %q", got, user)
	}
	return m
}

// putWaiting starts a PUT whose handler waits (a delay_ms path), with
// Expect: 100-continue: the server asks for the body only once the
// handler reads it, after it has loaded the session, so started is closed
// when the handler has the session and is about to wait. The response
// arrives on result.
func (c *client) putWaiting(path, body string) (started <-chan time.Time, result <-chan *response) {
	got := make(chan time.Time, 1)
	res := make(chan *response, 1)
	req := c.request(http.MethodPut, path, bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Expect", "100-continue")
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		Got100Continue: func() { got <- time.Now() },
	}))
	go func() { res <- c.do(req) }()
	return got, res
}
