package redisstore

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"math/rand/v2"
	"time"

	"github.com/seshgo/sesh"
)

// Lock takes the lock on key: SET NX with a random token and a TTL of ttl
// (at least a millisecond), retried with a backoff from 2 ms doubling up
// to 100 ms, with jitter, until it succeeds or ctx is done, in which case
// it returns ctx's error. The lease runs on the Redis server's clock, not
// the store's. The returned unlock deletes the lock key only if it still
// holds this caller's token (a compare-and-delete script), and returns
// [ErrLockLost] if it did not.
func (s *Store) Lock(ctx context.Context, key sesh.Key, ttl time.Duration) (func(context.Context) error, error) {
	ttl = max(ttl.Round(time.Millisecond), time.Millisecond)
	var raw [16]byte
	if _, err := crand.Read(raw[:]); err != nil {
		return nil, err
	}
	token := hex.EncodeToString(raw[:])
	name := s.lockKey(key)
	delay := 2 * time.Millisecond
	var timer *time.Timer
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ok, err := s.client.SetNX(ctx, name, token, ttl).Result()
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		if ok {
			return func(ctx context.Context) error {
				n, err := unlockScript.Run(ctx, s.client, []string{name}, token).Int()
				if err != nil {
					return s.fail(ctx, err)
				}
				if n != 1 {
					return ErrLockLost
				}
				return nil
			}, nil
		}
		wait := delay/2 + rand.N(delay/2+1)
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}
