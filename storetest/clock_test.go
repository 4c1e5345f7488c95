package storetest

import (
	"sync"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	before := time.Now()
	c := NewClock()
	now := c.Now()
	if now.Truncate(time.Millisecond) != now {
		t.Errorf("NewClock().Now() = %v, want a whole millisecond", now)
	}
	if now.Before(before.Add(-time.Millisecond)) || now.After(time.Now()) {
		t.Errorf("NewClock().Now() = %v, want about the real time %v", now, before)
	}
	if got := c.Now(); !got.Equal(now) {
		t.Errorf("Now without Advance: got %v, want %v", got, now)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Millisecond)
				c.Now()
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), now.Add(800*time.Millisecond); !got.Equal(want) {
		t.Errorf("after 800 concurrent Advance(1ms): got %v, want %v", got, want)
	}
	c.Advance(-time.Second)
	if got, want := c.Now(), now.Add(-200*time.Millisecond); !got.Equal(want) {
		t.Errorf("after Advance(-1s): got %v, want %v", got, want)
	}
}
