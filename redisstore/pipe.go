package redisstore

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// A pipe lets concurrent store calls share round trips. Up to lanes calls
// go to Redis on their own, as they would without it. A call that finds
// every lane busy joins a queue instead, and when a lane's round trip
// returns, the whole queue (up to maxBatch calls) goes out as one
// pipeline, run by the first queued caller on that lane. Under light load
// nothing ever queues; under heavy load each round trip and each pair of
// socket reads and writes, on both sides, serves many requests.
//
// It starts no goroutines: every pipeline runs on the goroutine of a
// caller whose own command is in it.
type pipe struct {
	client redis.UniversalClient
	lanes  int // 0: every call its own round trip

	mu    sync.Mutex
	busy  int     // lanes in use
	queue []*call // waiting for a lane
}

// maxBatch bounds the commands of one pipeline.
const maxBatch = 128

// call is one command through a pipe: a GET (script nil; keys[0] is its
// key) or a script call.
type call struct {
	ctx    context.Context
	script *redis.Script
	keys   []string
	args   []any

	cmd   redis.Cmder  // set by the pipeline's runner: *redis.StringCmd for a GET, else *redis.Cmd
	lead  chan []*call // a queued call receives the batch it must run, or nil once cmd is set
	leads bool         // handed a batch to run (under pipe.mu)
}

// get runs GET key.
func (p *pipe) get(ctx context.Context, key string) *redis.StringCmd {
	return p.do(&call{ctx: ctx, keys: []string{key}}).(*redis.StringCmd)
}

// eval runs script with keys and args (EVALSHA, and EVAL if the server
// does not have the script).
func (p *pipe) eval(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	return p.do(&call{ctx: ctx, script: script, keys: keys, args: args}).(*redis.Cmd)
}

func (p *pipe) do(c *call) redis.Cmder {
	if p.lanes > 0 {
		p.mu.Lock()
		if p.busy >= p.lanes {
			c.lead = make(chan []*call, 1)
			p.queue = append(p.queue, c)
			p.mu.Unlock()
			return p.wait(c)
		}
		p.busy++
		p.mu.Unlock()
		defer p.handOff()
	}
	if c.script == nil {
		return p.client.Get(c.ctx, c.keys[0])
	}
	return c.script.Run(c.ctx, p.client, c.keys, c.args...)
}

// wait returns a queued call's result, running the batch it is handed if
// it is handed one. A call whose context ends first returns the context's
// error at once, whether it still waits in the queue (it leaves it) or
// was sent in another caller's pipeline (whose result it then drops);
// only a call handed a batch stays to run it, for the others in it.
func (p *pipe) wait(c *call) redis.Cmder {
	var batch []*call
	select {
	case batch = <-c.lead:
	case <-c.ctx.Done():
		p.mu.Lock()
		leads := c.leads
		if i := slices.Index(p.queue, c); i >= 0 {
			p.queue = slices.Delete(p.queue, i, i+1)
		}
		p.mu.Unlock()
		if !leads {
			return failed(c, c.ctx.Err())
		}
		batch = <-c.lead
	}
	if batch != nil {
		p.run(batch)
		p.handOff()
	}
	if c.script != nil && isNoScript(c.cmd.Err()) {
		// The server lost its script cache (a restart, a failover,
		// SCRIPT FLUSH): send the script itself.
		return c.script.Eval(c.ctx, p.client, c.keys, c.args...)
	}
	return c.cmd
}

// failed is a result that was never received.
func failed(c *call, err error) redis.Cmder {
	if c.script == nil {
		cmd := redis.NewStringCmd(c.ctx)
		cmd.SetErr(err)
		return cmd
	}
	cmd := redis.NewCmd(c.ctx)
	cmd.SetErr(err)
	return cmd
}

// handOff passes a finished lane to the queue, or frees it.
func (p *pipe) handOff() {
	p.mu.Lock()
	n := min(len(p.queue), maxBatch)
	if n == 0 {
		p.busy--
		p.mu.Unlock()
		return
	}
	batch := make([]*call, n)
	copy(batch, p.queue)
	rest := copy(p.queue, p.queue[n:])
	clear(p.queue[rest:])
	p.queue = p.queue[:rest]
	batch[0].leads = true
	p.mu.Unlock()
	batch[0].lead <- batch
}

// run sends batch as one pipeline and hands each other caller its result.
// Calls whose context is already done are not sent. The pipeline runs
// under a context with the values of the first call, the earliest
// deadline of the calls it sends, and no cancellation: one caller giving
// up must not fail the others' commands, and none waits past its own
// deadline.
func (p *pipe) run(batch []*call) {
	ctx, cancel := batchContext(batch)
	defer cancel()
	p.client.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for _, c := range batch {
			switch err := c.ctx.Err(); {
			case err != nil:
				c.cmd = failed(c, err)
			case c.script == nil:
				c.cmd = pl.Get(ctx, c.keys[0])
			default:
				c.cmd = pl.EvalSha(ctx, c.script.Hash(), c.keys, c.args...)
			}
		}
		return nil
	}) // each command holds its own error
	for _, c := range batch[1:] {
		c.lead <- nil
	}
}

func batchContext(batch []*call) (context.Context, context.CancelFunc) {
	var earliest time.Time
	for _, c := range batch {
		if d, ok := c.ctx.Deadline(); ok && c.ctx.Err() == nil && (earliest.IsZero() || d.Before(earliest)) {
			earliest = d
		}
	}
	ctx := context.WithoutCancel(batch[0].ctx)
	if earliest.IsZero() {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, earliest)
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
