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
	created  msTime
	lastSeen msTime
	authTime msTime // zero when not authenticated
	idle     time.Duration
	absolute time.Duration
	flags    uint64
	user     string
	ip       string
	ua       string
	device   string // random ID of the browser, kept across renewals
	values   values

	// inline holds the values of small sessions, so that decoding or
	// changing one allocates no separate slice. values may point into it.
	inline [inlineValues]value

	// boundValues holds the sealed values of a bound-mode record until
	// they are opened with the session ID.
	boundValues []byte
}

// inlineValues is how many values a record holds without a separate
// allocation.
const inlineValues = 4

// value is one session value: its full key and its encoding.
type value struct {
	key string
	val []byte
}

// values is a record's values sorted by key, each key once.
type values []value

// index returns where k is or would be in vs. Most sessions hold a few
// values, which a linear scan finds faster than a binary search.
func (vs values) index(k string) (int, bool) {
	if len(vs) <= 8 {
		for i := range vs {
			if c := strings.Compare(vs[i].key, k); c >= 0 {
				return i, c == 0
			}
		}
		return len(vs), false
	}
	return slices.BinarySearchFunc(vs, k, func(v value, k string) int { return strings.Compare(v.key, k) })
}

// get returns the value of k.
func (vs values) get(k string) ([]byte, bool) {
	if i, ok := vs.index(k); ok {
		return vs[i].val, true
	}
	return nil, false
}

// msTime is an instant of a record: Unix milliseconds, the precision
// records are stored with, or 0 for the zero time. It takes a third of
// the room of a time.Time.
type msTime uint64

func toMS(t time.Time) msTime { return msTime(unixMilli(t)) }

// Time returns t as a time.Time, zero for 0.
func (t msTime) Time() time.Time { return fromUnixMilli(uint64(t)) }

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
	for _, v := range r.values {
		n += 2*binary.MaxVarintLen64 + len(v.key) + len(v.val)
	}
	return n
}

// appendEncode appends the encoding of r to dst.
func (r *record) appendEncode(dst []byte) []byte {
	dst = append(dst, recordFormat)
	dst = binary.AppendUvarint(dst, uint64(r.created))
	dst = binary.AppendUvarint(dst, uint64(r.lastSeen))
	dst = binary.AppendUvarint(dst, uint64(r.authTime))
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

// appendValues appends the encoding of vs: a count, then each key and
// value, keys strictly ascending (as vs keeps them).
func appendValues(dst []byte, vs values) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(vs)))
	for _, v := range vs {
		dst = appendString(dst, v.key)
		dst = binary.AppendUvarint(dst, uint64(len(v.val)))
		dst = append(dst, v.val...)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decoder reads a record encoding; the first error sticks. The record's
// strings are cut from s, one string copy of all of b, so that decoding
// allocates once for all of them.
type decoder struct {
	b   []byte
	s   string // the same bytes as b
	off int
	err bool
}

func newDecoder(b []byte) decoder { return decoder{b: b, s: string(b)} }

func (d *decoder) rest() int { return len(d.b) - d.off }

// uvarint reads one uvarint, as binary.Uvarint does (at most ten bytes,
// no overflow), without slicing the rest of the input for it. Most are
// one byte (lengths, counts, flags, unset times), read first.
func (d *decoder) uvarint() uint64 {
	i := d.off
	if d.err || i >= len(d.b) {
		d.err = true
		return 0
	}
	if c := d.b[i]; c < 0x80 {
		d.off = i + 1
		return uint64(c)
	}
	var v uint64
	for s := uint(0); i < len(d.b) && i-d.off < binary.MaxVarintLen64; i, s = i+1, s+7 {
		c := d.b[i]
		if c < 0x80 {
			if i-d.off == binary.MaxVarintLen64-1 && c > 1 {
				break // overflow
			}
			d.off = i + 1
			return v | uint64(c)<<s
		}
		v |= uint64(c&0x7f) << s
	}
	d.err = true
	return 0
}

// span reads a length and returns the bounds of the bytes that follow.
func (d *decoder) span() (int, int) {
	n := d.uvarint()
	if d.err || n > uint64(d.rest()) {
		d.err = true
		return 0, 0
	}
	i := d.off
	d.off += int(n)
	return i, d.off
}

func (d *decoder) bytes() []byte {
	i, j := d.span()
	return d.b[i:j:j]
}

func (d *decoder) string() string {
	i, j := d.span()
	return d.s[i:j]
}

func (d *decoder) millis() time.Duration {
	v := d.uvarint()
	if v > uint64(1<<62)/uint64(time.Millisecond) {
		d.err = true
		return 0
	}
	return time.Duration(v) * time.Millisecond
}

func (d *decoder) instant() time.Time { return d.ms().Time() }

func (d *decoder) ms() msTime {
	v := d.uvarint()
	if v > 1<<53 { // far beyond any real date; keeps time arithmetic safe
		d.err = true
		return 0
	}
	return msTime(v)
}

// decodeRecord parses b. The values of the result alias b, which the
// caller must not modify afterwards.
func decodeRecord(b []byte) (*record, error) {
	if len(b) == 0 || b[0] != recordFormat {
		return nil, errCorrupt
	}
	d := newDecoder(b)
	d.off = 1
	r := &record{}
	r.created = d.ms()
	r.lastSeen = d.ms()
	r.authTime = d.ms()
	r.idle = d.millis()
	r.absolute = d.millis()
	r.flags = d.uvarint()
	r.user = d.string()
	r.ip = d.string()
	r.ua = d.string()
	r.device = d.string()
	if r.flags&flagBound != 0 {
		r.boundValues = d.bytes()
	} else {
		r.values = d.values(r.inline[:0])
	}
	if d.err || d.rest() != 0 || r.created == 0 {
		return nil, errCorrupt
	}
	return r, nil
}

// values reads a value list into buf, or a new slice if buf is too small.
func (d *decoder) values(buf values) values {
	n := d.uvarint()
	// Each value takes at least two bytes, so n is bounded by what is left.
	if d.err || n > uint64(d.rest())/2 {
		d.err = true
		return nil
	}
	vs := buf[:0]
	if n > uint64(cap(buf)) {
		vs = make(values, 0, n)
	}
	for i := uint64(0); i < n; i++ {
		k := d.string()
		v := d.bytes()
		if d.err || (i > 0 && k <= vs[i-1].key) {
			d.err = true
			return nil
		}
		vs = append(vs, value{k, v})
	}
	return vs
}

// decodeValues parses the sealed values of a bound-mode record into buf
// (or a new slice if buf is too small).
func decodeValues(b []byte, buf values) (values, error) {
	d := newDecoder(b)
	v := d.values(buf)
	if d.err || d.rest() != 0 {
		return nil, errCorrupt
	}
	return v, nil
}
