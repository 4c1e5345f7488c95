package sesh

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// Fuzz targets for the parsers of request bytes that live inside the
// package: the session cookie scan and client IP extraction. Their seed
// corpora are under testdata/fuzz.

// expandIDs replaces $A and $B in s with two fixed well-formed session
// IDs, so that the fuzzer mutates around valid values.
func expandIDs(s string) (string, sessionID, sessionID) {
	var a, b sessionID
	for i := range a {
		a[i], b[i] = byte(i), byte(0xff-i)
	}
	return strings.NewReplacer("$A", a.encode(), "$B", b.encode()).Replace(s), a, b
}

// FuzzCandidates checks the session cookie scan of a Cookie header
// against net/http's cookie parser: it finds, in order, the distinct
// unquoted cookies of the session cookie's name whose value is a
// canonical ID, at most maxCandidates of them, and nothing else.
func FuzzCandidates(f *testing.F) {
	f.Add("__Host-sesh=$A")
	f.Add("a=1; __Host-sesh=$A; __Host-sesh=$B; __Host-sesh=$A")
	f.Add("__Host-sesh=\"$A\"; __Host-sesh= $B\t")
	f.Add("__Host-sesh=$A=; __host-sesh=$B; __Host-sesh2=$A")
	f.Add(";;__Host-sesh=;__Host-sesh;=$A")
	f.Fuzz(func(t *testing.T, header string) {
		header, _, _ = expandIDs(header)
		m := &Manager{cfg: Config{Cookie: CookieConfig{Name: DefaultCookieName}}}
		r := &http.Request{Header: http.Header{"Cookie": {header}}}
		got := m.candidates(r, nil)
		if len(got) > maxCandidates {
			t.Fatalf("%d candidates, more than %d", len(got), maxCandidates)
		}
		for i, id := range got {
			if !strings.Contains(header, DefaultCookieName+"="+id.encode()) {
				t.Fatalf("candidate %d does not appear in the header as a session cookie", i)
			}
			if slices.Contains(got[:i], id) {
				t.Fatalf("candidate %d is repeated", i)
			}
		}
		// net/http trims CR and LF around cookies, which no valid header
		// value holds, and white space before the "=", which no browser
		// sends (the middleware compares names exactly); it also gives up
		// on a header of more than 3000 cookies. Compare on the rest.
		if strings.ContainsAny(header, "\r\n") || strings.Contains(header, " =") || strings.Contains(header, "\t=") || strings.Count(header, ";") >= 3000 {
			return
		}
		var want []sessionID
		for _, c := range r.Cookies() {
			if c.Name != DefaultCookieName || c.Quoted {
				continue
			}
			if id, ok := parseSessionID(c.Value); ok && !slices.Contains(want, id) && len(want) < maxCandidates {
				want = append(want, id)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("header %q: got %d candidates, net/http finds %d", header, len(got), len(want))
		}
	})
}

// Trusted proxies of FuzzClientIP; the fuzzer picks a subset by bits.
var fuzzProxies = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("127.0.0.1/32"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("::1/128"),
}

// FuzzClientIP checks client IP extraction from RemoteAddr and
// X-Forwarded-For:
//
//   - a peer that is not a trusted proxy is the client, whatever the
//     header says;
//   - the result is the peer or an address written in the header;
//   - a client cannot change the result by prepending hops of its own
//     once a trusted proxy has named an untrusted client;
//   - an address taken from the header has no IPv6 zone: a zone is
//     free text (fe80::1%<anything but a comma>), and the client IP is
//     recorded in sessions, device lists and events.
func FuzzClientIP(f *testing.F) {
	f.Add("192.0.2.7:443", "203.0.113.9", "", "6.6.6.6", uint8(0b11111))
	f.Add("10.1.2.3:5000", "203.0.113.9, 10.0.0.1", "192.0.2.1", "1.1.1.1,", uint8(0b00011))
	f.Add("[::1]:80", "2001:db8::1, ::ffff:198.51.100.4", "", "x", uint8(0b11000))
	f.Add("127.0.0.1:1", "not-an-ip, 10.0.0.2", "", "", uint8(0b00101))
	f.Add("[::ffff:10.0.0.1]:9", " 198.51.100.1 ,,10.9.9.9", "", "junk", uint8(1))
	f.Add("[fe80::1%eth0]:80", "203.0.113.9", "", "", uint8(0))
	f.Add("@", "", "", "", uint8(0))
	f.Fuzz(func(t *testing.T, remote, xff1, xff2, prepend string, trust uint8) {
		cfg := Config{IPv4Prefix: 24, IPv6Prefix: 48}
		for i, p := range fuzzProxies {
			if trust&(1<<i) != 0 {
				cfg.TrustedProxies = append(cfg.TrustedProxies, p)
			}
		}
		m := &Manager{cfg: cfg}
		request := func(values ...string) *http.Request {
			r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
			for _, v := range values {
				r.Header.Add("X-Forwarded-For", v)
			}
			return r
		}
		values := []string{xff1, xff2}
		if xff2 == "" {
			values = values[:1]
			if xff1 == "" {
				values = nil
			}
		}
		got := m.clientIP(request(values...))
		peer := m.clientIP(request())
		if s := m.clientIPString(request(values...)); s != got.String() {
			t.Fatalf("clientIPString = %q, clientIP = %q", s, got.String())
		}
		if !m.trusted(peer) && got != peer {
			t.Fatalf("untrusted peer %v: header made the client %v", peer, got)
		}
		if got.IsValid() != peer.IsValid() {
			t.Fatalf("peer %v valid=%v but client %v valid=%v", peer, peer.IsValid(), got, got.IsValid())
		}
		if got != peer && !inHeader(got, values) {
			t.Fatalf("client %v is neither the peer %v nor a hop of %q", got, peer, values)
		}
		if got != peer && (got.Zone() != "" || got.Is4In6()) {
			t.Fatalf("client %q from X-Forwarded-For is not a plain address", got.String())
		}
		if got.IsValid() && !m.trusted(got) && len(values) > 0 {
			spoofed := slices.Clone(values)
			spoofed[0] = prepend + "," + spoofed[0]
			if again := m.clientIP(request(spoofed...)); again != got {
				t.Fatalf("prepending %q to X-Forwarded-For changed the client from %v to %v", prepend, got, again)
			}
		}
		if got.IsValid() && !m.network(got).IsValid() {
			t.Fatalf("no network for client %v", got)
		}
	})
}

// TestClientIPStringAllocs: the client IP that every new session records
// is the peer's IPv4 address as RemoteAddr writes it, without a copy.
func TestClientIPStringAllocs(t *testing.T) {
	m := &Manager{cfg: Config{TrustedProxies: fuzzProxies[:1]}}
	r := &http.Request{RemoteAddr: "203.0.113.7:5555", Header: http.Header{}}
	if got := m.clientIPString(r); got != "203.0.113.7" {
		t.Fatalf("clientIPString = %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { m.clientIPString(r) }); n != 0 {
		t.Fatalf("clientIPString of a peer's IPv4 address: %v allocations, want 0", n)
	}
}

// inHeader reports whether a is written as one of the hops of values
// (maybe IPv4-mapped, maybe with a zone).
func inHeader(a netip.Addr, values []string) bool {
	for _, v := range values {
		for _, hop := range strings.Split(v, ",") {
			if h, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil && h.Unmap().WithZone("") == a {
				return true
			}
		}
	}
	return false
}

// TestClientIPZoneFromForwardedFor: behind a trusted proxy, a hop such as
// "fe80::1%<text>" parses as an address with a zone, and the zone, up to
// the next comma, is free text that ends up in the session's IP, the
// device list and events. A zone in a forwarded address means nothing to
// this server; the client IP must come out without it.
func TestClientIPZoneFromForwardedFor(t *testing.T) {
	m := &Manager{cfg: Config{TrustedProxies: fuzzProxies[:1]}}
	r := &http.Request{RemoteAddr: "10.0.0.1:4000", Header: http.Header{}}
	r.Header.Set("X-Forwarded-For", "fe80::1%<img src=x onerror=alert(1)>")
	if got := m.clientIP(r); got.Zone() != "" {
		t.Fatalf("client IP from X-Forwarded-For: got %q, want no zone", got.String())
	}
}
