package storetest

import (
	"sync"
	"time"
)

// Clock is a controllable clock to hand to the store under test. It starts
// at the real time at which it was made, truncated to the millisecond, and
// moves only when [Clock.Advance] is called. It is safe for concurrent use.
// The zero value is not usable; call [NewClock].
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock reading the current real time, truncated to the
// millisecond and without a monotonic reading.
func NewClock() *Clock {
	return &Clock{now: time.Now().Truncate(time.Millisecond)}
}

// Now returns the clock's current time. Its method value c.Now is what
// [Run] passes to the store under test.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (backward if d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
