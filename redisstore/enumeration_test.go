package redisstore_test

import (
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/redisstore"
	"github.com/seshgo/sesh/storetest"
)

// commandLog records every command name sent, pipelined or not.
type commandLog struct {
	mu    sync.Mutex
	names []string
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.add(cmd)
		return next(ctx, cmd)
	}
}

func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			l.add(c)
		}
		return next(ctx, cmds)
	}
}

func (l *commandLog) add(c redis.Cmder) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.names = append(l.names, strings.ToLower(c.Name()))
}

// TestNoBlockingEnumeration (A29): listing and the user index never use
// KEYS or FLUSH-style whole-keyspace commands, and a user's listing costs
// the same number of round trips whatever the store holds.
func TestNoBlockingEnumeration(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		log := &commandLog{}
		c.AddHook(log)
		clock := storetest.NewClock()
		s := redisstore.New(c, redisstore.WithPrefix(testPrefix(t, c)), redisstore.WithClock(clock.Now))
		for i := range 300 {
			var k sesh.Key
			rand.Read(k[:])
			user := []string{"alice", "bob", "carol"}[i%3]
			rec := sesh.Record{Data: []byte("d"), Version: 1, Expires: clock.Now().Add(time.Hour), User: user}
			if err := s.Save(ctx, k, rec, 0); err != nil {
				t.Fatal(err)
			}
		}
		cursor, seen := "", 0
		for {
			es, next, err := s.List(ctx, cursor, 50)
			if err != nil {
				t.Fatal(err)
			}
			seen += len(es)
			if next == "" {
				break
			}
			cursor = next
		}
		if seen < 300 {
			t.Fatalf("List saw %d records, want at least 300", seen)
		}
		es, err := s.UserRecords(ctx, "alice")
		if err != nil || len(es) != 100 {
			t.Fatalf("UserRecords: %d entries, %v; want 100", len(es), err)
		}
		log.mu.Lock()
		defer log.mu.Unlock()
		for _, bad := range []string{"keys", "flushdb", "flushall"} {
			if slices.Contains(log.names, bad) {
				t.Fatalf("store issued %s", strings.ToUpper(bad))
			}
		}
	})
}
