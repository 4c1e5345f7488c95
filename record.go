package sesh

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"time"
)

// The sealed plaintext of a session record, format 1:
//
//	byte     format (1)
//	uvarint  created, last seen, auth time (Unix ms; 0 = never)
//	uvarint  idle, absolute timeout overrides (ms; 0 = manager default)
//	uvarint  flags
//	string   user, IP, user agent, device  (uvarint length + bytes)
//	uvarint  number of values
//	         key string, value bytes       (keys strictly ascending)
//
// Every length is checked against the bytes that remain before anything
// is allocated, so a record can never ask for more memory than its own
// size; trailing bytes, duplicate or unordered keys are refused.

const recordFormat = 1

const (
	flagRemembered = 1 << iota
	flagBound      // values are sealed under a key bound to the session ID
)

// errCorrupt is returned by decodeRecord for any malformed input.
var errCorrupt = errors.New("sesh: corrupt session record")

// record is the decoded content of a session.
type record struct {
	created  time.Time
	lastSeen time.Time
	authTime time.Time // zero when not authenticated
	idle     time.Duration
	absolute time.Duration
	flags    uint64
	user     string
	ip       string
	ua       string
	device   string // random ID of the browser, kept across renewals
	values   map[string][]byte

	// boundValues holds the sealed values of a bound-mode record until
	// they are opened with the session ID.
	boundValues []byte
}

func unixMilli(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	ms := t.UnixMilli()
	if ms <= 0 {
		return 0
	}
	return uint64(ms)
}

func fromUnixMilli(v uint64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(v))
}

// encodedSize returns an upper bound of the encoding's length.
func (r *record) encodedSize() int {
	n := 1 + 6*binary.MaxVarintLen64 + 5*binary.MaxVarintLen64 + len(r.user) + len(r.ip) + len(r.ua) + len(r.device) + len(r.boundValues)
	for k, v := range r.values {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	return n
}

// appendEncode appends the encoding of r to dst.
func (r *record) appendEncode(dst []byte) []byte {
	dst = append(dst, recordFormat)
	dst = binary.AppendUvarint(dst, unixMilli(r.created))
	dst = binary.AppendUvarint(dst, unixMilli(r.lastSeen))
	dst = binary.AppendUvarint(dst, unixMilli(r.authTime))
	dst = binary.AppendUvarint(dst, uint64(max(r.idle, 0)/time.Millisecond))
	dst = binary.AppendUvarint(dst, uint64(max(r.absolute, 0)/time.Millisecond))
	dst = binary.AppendUvarint(dst, r.flags)
	dst = appendString(dst, r.user)
	dst = appendString(dst, r.ip)
	dst = appendString(dst, r.ua)
	dst = appendString(dst, r.device)
	if r.flags&flagBound != 0 {
		dst = binary.AppendUvarint(dst, uint64(len(r.boundValues)))
		return append(dst, r.boundValues...)
	}
	return appendValues(dst, r.values)
}

// appendValues appends the encoding of a value map: a count, then each
// key and value, keys strictly ascending.
func appendValues(dst []byte, values map[string][]byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(values)))
	var small [16]string
	keys := small[:0]
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dst = appendString(dst, k)
		v := values[k]
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decoder reads a record encoding; the first error sticks.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) uvarint() uint64 {
	if d.err {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		d.err = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) millis() time.Duration {
	v := d.uvarint()
	if v > uint64(1<<62)/uint64(time.Millisecond) {
		d.err = true
		return 0
	}
	return time.Duration(v) * time.Millisecond
}

func (d *decoder) instant() time.Time {
	v := d.uvarint()
	if v > 1<<53 { // far beyond any real date; keeps time arithmetic safe
		d.err = true
		return time.Time{}
	}
	return fromUnixMilli(v)
}

// decodeRecord parses b. The values of the result alias b, which the
// caller must not modify afterwards.
func decodeRecord(b []byte) (*record, error) {
	if len(b) == 0 || b[0] != recordFormat {
		return nil, errCorrupt
	}
	d := decoder{b: b[1:]}
	r := &record{}
	r.created = d.instant()
	r.lastSeen = d.instant()
	r.authTime = d.instant()
	r.idle = d.millis()
	r.absolute = d.millis()
	r.flags = d.uvarint()
	r.user = string(d.bytes())
	r.ip = string(d.bytes())
	r.ua = string(d.bytes())
	r.device = string(d.bytes())
	if r.flags&flagBound != 0 {
		r.boundValues = d.bytes()
	} else {
		r.values = d.values()
	}
	if d.err || len(d.b) != 0 || r.created.IsZero() {
		return nil, errCorrupt
	}
	return r, nil
}

// values reads a value map.
func (d *decoder) values() map[string][]byte {
	n := d.uvarint()
	// Each value takes at least two bytes, so n is bounded by what is left.
	if d.err || n > uint64(len(d.b))/2 {
		d.err = true
		return nil
	}
	values := make(map[string][]byte, n)
	prev := ""
	for i := uint64(0); i < n; i++ {
		k := string(d.bytes())
		v := d.bytes()
		if d.err || (i > 0 && strings.Compare(k, prev) <= 0) {
			d.err = true
			return nil
		}
		values[k] = v
		prev = k
	}
	return values
}

// decodeValues parses the sealed values of a bound-mode record.
func decodeValues(b []byte) (map[string][]byte, error) {
	d := decoder{b: b}
	v := d.values()
	if d.err || len(d.b) != 0 {
		return nil, errCorrupt
	}
	return v, nil
}
