// Package faultproxy is a TCP proxy for tests that puts network faults
// between a client and a server: it listens on a loopback port, forwards
// every connection to a target address, and can be switched at any time to
// delay, drop, reset, black-hole or half-open its connections, or to lose
// the server's replies.
//
//	p, err := faultproxy.New("127.0.0.1:6379")
//	client := redis.NewClient(&redis.Options{Addr: p.Addr()})
//	p.SetMode(faultproxy.BlackHole) // the server stops answering
//	p.SetMode(faultproxy.Pass)      // and is back
//
// A mode applies at once to the connections already open and to those
// accepted later, as described for each [Mode]. A connection whose stream
// lost bytes (black-holed, half-open, or whose replies were lost) can never
// be in step with its server again, so it stays silent, discarding what
// its client sends, until the client closes it; connections that lost
// nothing resume when the proxy passes again.
//
// A Proxy is safe for concurrent use. Its goroutines (one accepting, one
// or two per connection) all end in [Proxy.Close].
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what the proxy does with the traffic.
type Mode int32

const (
	// Pass forwards everything both ways.
	Pass Mode = iota
	// Delay forwards everything, holding each chunk read from either side
	// for the delay set with [Proxy.SetDelay] before writing it on. Held
	// chunks go out at once when the mode changes.
	Delay
	// Drop closes every connection, and closes new ones as soon as they are
	// accepted: the server went away. (A refused connection would need the
	// port released, which another process could take meanwhile.)
	Drop
	// Reset resets every connection (RST: SO_LINGER 0, then close), and
	// resets new ones as soon as they are accepted.
	Reset
	// BlackHole keeps every connection open and forwards nothing: what
	// either side sends is read and discarded, and neither hears from the
	// other again, not even a close. New connections are accepted and never
	// reach the server.
	BlackHole
	// HalfOpen closes the server's side of every open connection and keeps
	// the client's open and silent, discarding what it sends: the server
	// restarted, or a firewall forgot the flows, and the client was never
	// told. New connections reach the server.
	HalfOpen
	// LoseReplies forwards what clients send but discards what the server
	// answers: requests take effect, and their clients never learn it. New
	// connections reach the server.
	LoseReplies
)

var modeNames = [...]string{"Pass", "Delay", "Drop", "Reset", "BlackHole", "HalfOpen", "LoseReplies"}

// String returns the mode's name.
func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int32(m))
}

// DialTimeout bounds the proxy's connection to the target.
const DialTimeout = 5 * time.Second

// Proxy is a TCP proxy with switchable faults. Make one with [New].
type Proxy struct {
	target string
	ln     net.Listener
	ctx    context.Context // done when the proxy closes
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	mode    Mode
	delay   time.Duration
	changed chan struct{} // closed and replaced whenever mode or delay change
	conns   map[*conn]struct{}
	closed  bool

	accepted   atomic.Int64
	discarded  atomic.Int64
	held       atomic.Int64
	goroutines atomic.Int64
}

// New returns a proxy listening on an ephemeral port of 127.0.0.1 and
// forwarding to target (host:port), in mode Pass.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target:  target,
		ln:      ln,
		ctx:     ctx,
		cancel:  cancel,
		changed: make(chan struct{}),
		conns:   make(map[*conn]struct{}),
	}
	p.start(p.serve)
	return p, nil
}

// Addr returns the address clients connect to, as host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// SetMode switches the proxy to m. Drop, Reset and HalfOpen act on the
// open connections before SetMode returns; the other modes apply to each
// chunk of traffic from then on.
func (p *Proxy) SetMode(m Mode) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.mode = m
	p.signalLocked()
	conns := p.snapshotLocked()
	p.mu.Unlock()
	for _, c := range conns {
		switch m {
		case Drop:
			c.close(false)
		case Reset:
			c.close(true)
		case HalfOpen:
			c.silence(true)
		}
	}
}

// SetDelay sets the latency that mode Delay adds to each chunk in each
// direction.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
	p.signalLocked()
}

// Open returns the number of client connections open through the proxy.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Silent returns the number of open client connections that are silent
// for good: out of step with their server, or never forwarded. Each waits
// for its client to give up on it and close it.
func (p *Proxy) Silent() int {
	p.mu.Lock()
	conns := p.snapshotLocked()
	p.mu.Unlock()
	n := 0
	for _, c := range conns {
		c.mu.Lock()
		if c.silent && !c.closed {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// Goroutines returns the number of goroutines the proxy is running, so
// that tests counting their own can leave these out.
func (p *Proxy) Goroutines() int { return int(p.goroutines.Load()) }

// Accepted returns the number of connections accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Discarded returns the number of bytes discarded so far, from either side.
func (p *Proxy) Discarded() int64 { return p.discarded.Load() }

// Held returns the number of chunks that mode Delay is holding now.
func (p *Proxy) Held() int { return int(p.held.Load()) }

// Close stops listening, closes every connection and waits for the
// proxy's goroutines to end. Closing a closed proxy does nothing.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	conns := p.snapshotLocked()
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	for _, c := range conns {
		c.close(false)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) signalLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) snapshotLocked() []*conn {
	conns := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	return conns
}

// state returns the mode, the delay and the channel that is closed when
// either changes.
func (p *Proxy) state() (Mode, time.Duration, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay, p.changed
}

// start runs f in a goroutine that Close waits for.
func (p *Proxy) start(f func()) {
	p.wg.Add(1)
	p.goroutines.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.goroutines.Add(-1)
		f()
	}()
}

func (p *Proxy) serve() {
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient failure, such as too many open files.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		p.accepted.Add(1)
		c := &conn{p: p, client: nc}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			nc.Close()
			return
		}
		mode := p.mode
		p.conns[c] = struct{}{}
		p.start(func() { c.run(mode) })
		p.mu.Unlock()
	}
}

// conn is one proxied connection.
type conn struct {
	p      *Proxy
	client net.Conn

	mu         sync.Mutex
	server     net.Conn // nil until dialled, and for connections never forwarded
	silent     bool     // out of step: discard everything from now on
	serverGone bool     // the server's side is closed for good
	closed     bool
}

type direction int

const (
	toServer direction = iota
	toClient
)

// run serves a connection accepted in mode.
func (c *conn) run(mode Mode) {
	defer c.forget()
	switch mode {
	case Drop:
		c.close(false)
		return
	case Reset:
		c.close(true)
		return
	case BlackHole:
		c.silence(false)
	default:
		d := net.Dialer{Timeout: DialTimeout}
		server, err := d.DialContext(c.p.ctx, "tcp", c.p.target)
		if err != nil {
			c.close(true)
			return
		}
		c.mu.Lock()
		switch {
		case c.closed, c.serverGone:
			server.Close()
		default:
			c.server = server
			c.p.start(func() { c.pump(toClient, server) })
		}
		c.mu.Unlock()
	}
	c.pump(toServer, c.client)
}

func (c *conn) forget() {
	c.close(false)
	c.p.mu.Lock()
	delete(c.p.conns, c)
	c.p.mu.Unlock()
}

// close closes both sides, resetting them if rst is set.
func (c *conn) close(rst bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	shut(c.client, rst)
	if c.server != nil {
		shut(c.server, rst)
	}
}

func shut(nc net.Conn, rst bool) {
	if tc, ok := nc.(*net.TCPConn); ok && rst {
		tc.SetLinger(0)
	}
	nc.Close()
}

// silence makes the connection discard everything from now on, and closes
// the server's side too if dropServer is set.
func (c *conn) silence(dropServer bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.silent = true
	if dropServer && !c.serverGone {
		c.serverGone = true
		if c.server != nil {
			c.server.Close()
		}
	}
}

// pump copies from src in direction dir until src fails or the
// connection closes.
func (c *conn) pump(dir direction, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !c.forward(dir, buf[:n]) {
			c.close(false)
			return
		}
		if err != nil {
			if dir == toClient {
				mode, _, _ := c.p.state()
				c.mu.Lock()
				quiet := c.silent || mode == BlackHole
				c.mu.Unlock()
				if quiet {
					// The server's side ended while the client is kept in
					// the dark: it must not hear of it.
					c.silence(true)
					return
				}
			}
			c.close(false)
			return
		}
	}
}

// forward writes b on in direction dir, as the mode says. It reports false
// when the connection must close.
func (c *conn) forward(dir direction, b []byte) bool {
	arrived := time.Now()
	for {
		mode, delay, changed := c.p.state()
		c.mu.Lock()
		silent, closed := c.silent, c.closed
		c.mu.Unlock()
		switch {
		case closed:
			return false
		case mode == Drop:
			return false
		case mode == Reset:
			c.close(true)
			return false
		case silent:
			c.p.discarded.Add(int64(len(b)))
			return true
		case mode == BlackHole, mode == LoseReplies && dir == toClient:
			c.silence(false)
			c.p.discarded.Add(int64(len(b)))
			return true
		case mode == Delay:
			if wait := time.Until(arrived.Add(delay)); wait > 0 {
				t := time.NewTimer(wait)
				c.p.held.Add(1)
				select {
				case <-t.C:
				case <-changed:
				case <-c.p.ctx.Done():
				}
				c.p.held.Add(-1)
				t.Stop()
				if c.p.ctx.Err() != nil {
					return false
				}
				continue
			}
		}
		dst := c.client
		if dir == toServer {
			c.mu.Lock()
			dst = c.server
			c.mu.Unlock()
		}
		if dst == nil {
			return false
		}
		_, err := dst.Write(b)
		return err == nil
	}
}
