package storeurl

import (
	"errors"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// netURL is a parsed URL of a networked store: scheme://[userinfo@]host[,host...][/path][?query].
type netURL struct {
	scheme   string
	user     *url.Userinfo // nil without userinfo
	rawAuth  string        // userinfo@hosts as written
	hosts    []string      // the comma-separated hosts as written
	path     string        // decoded
	rawPath  string        // as written
	query    url.Values
	rawQuery string // as written
}

// parseNet parses rest, the part of a URL after "scheme:". net/url cannot
// parse a list of hosts, so the authority is split here and the rest left
// to net/url with a placeholder host.
func parseNet(r *redactor, scheme, rest string) (*netURL, error) {
	after, ok := strings.CutPrefix(rest, "//")
	if !ok {
		return nil, r.errorf("%s: want %s://HOST... (got %s)", scheme, scheme, r.url())
	}
	end := strings.IndexAny(after, "/?#")
	if end < 0 {
		end = len(after)
	}
	auth, tail := after[:end], after[end:]
	n := &netURL{scheme: scheme, rawAuth: auth}
	hostlist, probe := auth, "x://h"+tail
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		hostlist, probe = auth[at+1:], "x://"+auth[:at]+"@h"+tail
	} else if strings.Contains(tail, "@") {
		// Most likely a userinfo with an unescaped '/', '?' or '#': quote
		// nothing of it.
		return nil, r.errorf("%s: malformed URL: an '@' after the host; in a user name or password write '/', '?', '#' and '@' as %%2F, %%3F, %%23 and %%40", scheme)
	}
	if strings.Contains(tail, "#") {
		return nil, r.errorf("%s: malformed URL %s: a '#' must be written %%23", scheme, r.url())
	}
	u, err := url.Parse(probe)
	if err != nil {
		return nil, r.errorf("%s: malformed URL %s: %s", scheme, r.url(), urlErrText(err))
	}
	n.user = u.User
	n.path = u.Path
	n.rawPath, n.rawQuery, _ = strings.Cut(tail, "?")
	if n.query, err = url.ParseQuery(n.rawQuery); err != nil {
		return nil, r.errorf("%s: malformed query in %s: %s", scheme, r.url(), urlErrText(err))
	}
	if hostlist != "" {
		n.hosts = strings.Split(hostlist, ",")
	}
	return n, nil
}

// urlErrText describes an error of net/url without quoting the URL or an
// escape sequence (which could be part of a password).
func urlErrText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ee url.EscapeError
	if errors.As(err, &ee) {
		return "invalid %-escape"
	}
	return err.Error()
}

// addrs returns the hosts as host:port, with defPort where none is given.
func (n *netURL) addrs(r *redactor, defPort string) ([]string, error) {
	if len(n.hosts) == 0 {
		return nil, r.errorf("%s: missing host in %s", n.scheme, r.url())
	}
	out := make([]string, 0, len(n.hosts))
	for _, h := range n.hosts {
		if h == "" {
			return nil, r.errorf("%s: empty host in the list %q", n.scheme, strings.Join(n.hosts, ","))
		}
		u, err := url.Parse("//" + h)
		if err != nil || u.Host != h || u.Hostname() == "" {
			return nil, r.errorf("%s: invalid host %q", n.scheme, h)
		}
		port := u.Port()
		if port == "" {
			port = defPort
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return nil, r.errorf("%s: invalid port in host %q", n.scheme, h)
		}
		out = append(out, net.JoinHostPort(u.Hostname(), port))
	}
	return out, nil
}

// one returns the single host of a URL that takes one.
func (n *netURL) one(r *redactor, defPort, hint string) (string, error) {
	addrs, err := n.addrs(r, defPort)
	if err != nil {
		return "", err
	}
	if len(addrs) > 1 {
		return "", r.errorf("%s: takes one host, not %d%s", n.scheme, len(addrs), hint)
	}
	return addrs[0], nil
}

// credentials returns the user name and password of the userinfo.
func (n *netURL) credentials() (user, pass string) {
	if n.user == nil {
		return "", ""
	}
	pass, _ = n.user.Password()
	return n.user.Username(), pass
}

// options returns the query, for the package's own options.
func (n *netURL) options(r *redactor) *options {
	q := make(url.Values, len(n.query))
	for k, v := range n.query {
		q[k] = append([]string(nil), v...)
	}
	return &options{r: r, scheme: n.scheme, q: q}
}

// parsePath parses rest, the part of a file: or sqlite: URL after the
// scheme: a relative or absolute path, or //[localhost]/absolute/path,
// %-decoded, and an optional query.
func parsePath(r *redactor, scheme, rest string) (string, *options, error) {
	p, rawQuery, _ := strings.Cut(rest, "?")
	if strings.Contains(rest, "#") {
		return "", nil, r.errorf("%s: a '#' in a path must be written %%23", scheme)
	}
	if after, ok := strings.CutPrefix(p, "//"); ok {
		host, abs, _ := strings.Cut(after, "/")
		if host != "" && !strings.EqualFold(host, "localhost") {
			return "", nil, r.errorf("%s: host %q: only local paths can be opened (write %s:///absolute/path or %s:relative/path)", scheme, host, scheme, scheme)
		}
		if abs == "" {
			p = ""
		} else {
			p = "/" + abs
		}
	}
	path, err := url.PathUnescape(p)
	if err != nil {
		return "", nil, r.errorf("%s: invalid %%-escape in the path (write a '%%' as %%25)", scheme)
	}
	if path == "" {
		return "", nil, r.errorf("%s: missing path (as in %s:sessions or %s:/var/lib/myapp/sessions)", scheme, scheme, scheme)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", nil, r.errorf("%s: malformed query: %s", scheme, urlErrText(err))
	}
	return filepath.FromSlash(path), &options{r: r, scheme: scheme, q: q}, nil
}
