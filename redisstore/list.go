package redisstore

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
	"github.com/seshgo/sesh"
)

// UserRecords returns the live records whose User is user. It reads the
// user's index set in each of the 256 buckets (one pipeline, split per
// master in a cluster), keeping only entries whose score (the record's
// expiry) is after now, then GETs those records in a second pipeline and
// keeps the live ones that still carry user.
func (s *Store) UserRecords(ctx context.Context, user string) ([]sesh.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	digest := userDigest(user)
	lo := "(" + strconv.FormatInt(s.now().UnixMilli(), 10)
	pipe := s.client.Pipeline()
	var cmds [256]*redis.StringSliceCmd
	for b := range cmds {
		cmds[b] = pipe.ZRangeByScore(ctx, s.bucketIndexPrefix(byte(b))+digest, &redis.ZRangeBy{Min: lo, Max: "+inf"})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, s.fail(ctx, err)
	}
	var keys []sesh.Key
	for _, c := range cmds {
		for _, m := range c.Val() {
			if len(m) == len(sesh.Key{}) {
				keys = append(keys, sesh.Key([]byte(m)))
			}
		}
	}
	entries, err := s.fetch(ctx, keys)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(entries, func(e sesh.Entry) bool { return e.Record.User != user }), nil
}

// fetch GETs the records under keys in one pipeline and returns the live
// ones, in the order of keys.
func (s *Store) fetch(ctx context.Context, keys []sesh.Key) ([]sesh.Entry, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, s.recordKey(k))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.fail(ctx, err)
	}
	entries := make([]sesh.Entry, 0, len(keys))
	for i, c := range cmds {
		v, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		rec, err := s.live(keys[i], v)
		if errors.Is(err, sesh.ErrNotFound) || errors.Is(err, sesh.ErrGone) {
			continue
		}
		if err != nil {
			return nil, err
		}
		entries = append(entries, sesh.Entry{Key: keys[i], Record: rec})
	}
	return entries, nil
}

// node is one server to SCAN: the only one for a standalone or failover
// client, each master of a cluster, each shard of a ring.
type node struct {
	addr string
	c    redis.Cmdable
}

func (s *Store) nodes(ctx context.Context) ([]node, error) {
	var (
		mu    sync.Mutex
		nodes []node
	)
	add := func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		nodes = append(nodes, node{addr: c.Options().Addr, c: c})
		return nil
	}
	var err error
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, add)
	case *redis.Ring:
		err = c.ForEachShard(ctx, add)
	default:
		return []node{{addr: "", c: s.client}}, nil
	}
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	slices.SortFunc(nodes, func(a, b node) int { return strings.Compare(a.addr, b.addr) })
	return nodes, nil
}

// listCursor is where a listing resumes: first the pending keys (live
// records of a SCAN batch that did not fit in the previous page), then
// SCAN cursor scan on the node with address addr, unless done. Encoded as
// "scan.pendinghex.addr", with scan "end" when done.
type listCursor struct {
	scan    uint64
	done    bool
	pending []sesh.Key
	addr    string
}

func (c listCursor) String() string {
	var b strings.Builder
	if c.done {
		b.WriteString("end")
	} else {
		b.WriteString(strconv.FormatUint(c.scan, 10))
	}
	b.WriteByte('.')
	for _, k := range c.pending {
		b.WriteString(k.String())
	}
	b.WriteByte('.')
	b.WriteString(c.addr)
	return b.String()
}

func parseCursor(s string) (listCursor, error) {
	var c listCursor
	bad := fmt.Errorf("redisstore: malformed list cursor %q", s)
	parts := strings.SplitN(s, ".", 3)
	if len(parts) != 3 {
		return c, bad
	}
	if parts[0] == "end" {
		c.done = true
	} else {
		var err error
		if c.scan, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
			return c, bad
		}
	}
	raw, err := hex.DecodeString(parts[1])
	if err != nil || len(raw)%len(sesh.Key{}) != 0 {
		return c, bad
	}
	for ; len(raw) > 0; raw = raw[len(sesh.Key{}):] {
		c.pending = append(c.pending, sesh.Key(raw))
	}
	c.addr = parts[2]
	return c, nil
}

// scansPerList bounds the SCAN calls of one List call.
const scansPerList = 32

// List returns up to limit live records after cursor. It SCANs this
// store's record keys (MATCH prefix{*, COUNT the room left in the page, at
// least 10) on each master in turn, GETs each batch in a pipeline and
// skips dead records and tombstones. Live records of a batch that do not
// fit in the page are carried in the cursor, as keys, and fetched again by
// the next call, so the cursor stays short (SCAN returns about COUNT
// keys). Each call makes at most 32 SCAN calls, so a page may be empty
// before the listing is complete.
func (s *Store) List(ctx context.Context, cursor string, limit int) ([]sesh.Entry, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if limit < 1 {
		return nil, cursor, nil
	}
	nodes, err := s.nodes(ctx)
	if err != nil {
		return nil, "", err
	}
	cur := listCursor{addr: nodes[0].addr}
	if cursor != "" {
		if cur, err = parseCursor(cursor); err != nil {
			return nil, "", err
		}
	}
	var out []sesh.Entry
	for len(cur.pending) > 0 && len(out) < limit {
		n := min(limit-len(out), len(cur.pending))
		entries, err := s.fetch(ctx, cur.pending[:n])
		if err != nil {
			return nil, "", err
		}
		out = append(out, entries...)
		cur.pending = cur.pending[n:]
	}
	// The node to scan: the cursor's, or the first after it if it is gone.
	ni, found := slices.BinarySearchFunc(nodes, cur.addr, func(n node, addr string) int { return strings.Compare(n.addr, addr) })
	if !found {
		cur.scan = 0
	}
	if ni >= len(nodes) {
		cur.done = true
	}
	pattern := globEscape(s.prefix) + "{*"
	for scans := 0; len(out) < limit && !cur.done && scans < scansPerList; scans++ {
		room := limit - len(out)
		cur.addr = nodes[ni].addr
		names, next, err := nodes[ni].c.Scan(ctx, cur.scan, pattern, int64(max(room, 10))).Result()
		if err != nil {
			return nil, "", s.fail(ctx, err)
		}
		var keys []sesh.Key
		for _, name := range names {
			if k, ok := s.parseRecordKey(name); ok {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(a, b sesh.Key) int { return bytes.Compare(a[:], b[:]) })
		entries, err := s.fetch(ctx, slices.Compact(keys))
		if err != nil {
			return nil, "", err
		}
		if len(entries) > room {
			for _, e := range entries[room:] {
				cur.pending = append(cur.pending, e.Key)
			}
			entries = entries[:room]
		}
		out = append(out, entries...)
		cur.scan = next
		if next == 0 {
			if ni++; ni < len(nodes) {
				cur.addr = nodes[ni].addr
			} else {
				cur.done, cur.addr = true, ""
			}
		}
	}
	if cur.done && len(cur.pending) == 0 {
		return out, "", nil
	}
	return out, cur.String(), nil
}

// globEscape escapes the characters that are special in a SCAN MATCH
// pattern.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
