package sesh

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Policy says what to do when a request does not match what its session
// was bound to.
type Policy uint8

const (
	// PolicyOff ignores the attribute.
	PolicyOff Policy = iota
	// PolicyLog reports a mismatch as an event and carries on.
	PolicyLog
	// PolicyEnforce reports a mismatch and treats the request as having no
	// session. The session itself is left alone: its owner, on the
	// original device, keeps it.
	PolicyEnforce
)

// clientIP returns the client's address: the peer's, or, when the peer is
// a trusted proxy, the right-most address in X-Forwarded-For that is not
// a trusted proxy. Forwarded headers from anyone else are ignored.
func (m *Manager) clientIP(r *http.Request) netip.Addr {
	addr, _ := m.client(r)
	return addr
}

// clientIPString is clientIP(r).String(), without its allocation when the
// client is the peer and RemoteAddr holds its IPv4 address: every new
// session records it.
func (m *Manager) clientIPString(r *http.Request) string {
	addr, text := m.client(r)
	if text != "" {
		return text
	}
	return addr.String()
}

// client is clientIP, and also the address as RemoteAddr writes it when
// that is how String would: for a peer's IPv4 address (not mapped into
// IPv6, so without a zone), since ParseAddr accepts only the one dotted
// form that String prints. Otherwise the text is "".
func (m *Manager) client(r *http.Request) (netip.Addr, string) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, ""
	}
	text := ""
	if addr.Is4() {
		text = host
	}
	// A zone is the peer's own business, and in X-Forwarded-For it is
	// free text an attacker writes: never keep one.
	addr = addr.Unmap().WithZone("")
	if !m.trusted(addr) {
		return addr, text
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return addr, "" // a malformed hop: stop at the last proxy we trust
			}
			a = a.Unmap().WithZone("")
			if !m.trusted(a) {
				return a, ""
			}
			addr = a
		}
	}
	return addr, ""
}

func (m *Manager) trusted(a netip.Addr) bool {
	for _, p := range m.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// network returns the prefix that binding compares: /24 for IPv4 and /48
// for IPv6 by default.
func (m *Manager) network(a netip.Addr) netip.Prefix {
	bits := m.cfg.IPv4Prefix
	if a.Is6() {
		bits = m.cfg.IPv6Prefix
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// checkBinding compares the request with rec. It reports events and
// returns false when a policy says to ignore the session. It also returns
// the request's IP when the session's network should be updated.
func (s *Session) checkBinding(rec *record) (keep bool, newIP string) {
	m := s.m
	keep = true
	if m.cfg.BindUserAgent != PolicyOff && rec.ua != userAgent(s.req) {
		s.report(EventBindingMismatch, rec.user, "user agent changed")
		if m.cfg.BindUserAgent == PolicyEnforce {
			keep = false
		}
	}
	if m.cfg.BindIP != PolicyOff {
		ip := m.clientIP(s.req)
		old, err := netip.ParseAddr(rec.ip)
		if err != nil || m.network(old) != m.network(ip) {
			s.report(EventNetworkChanged, rec.user, "network changed from "+rec.ip+" to "+ip.String())
			if m.cfg.BindIP == PolicyEnforce {
				keep = false
			} else {
				newIP = ip.String()
			}
		}
	}
	return keep, newIP
}
