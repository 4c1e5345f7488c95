package faultproxy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seshgo/sesh/internal/faultproxy"
)

// echoServer echoes what each connection sends and records it.
type echoServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	received bytes.Buffer
	accepted int
	ended    int
	conns    []net.Conn
}

func newEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.accepted++
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						e.mu.Lock()
						e.received.Write(buf[:n])
						e.mu.Unlock()
						c.Write(buf[:n])
					}
					if err != nil {
						c.Close()
						e.mu.Lock()
						e.ended++
						e.mu.Unlock()
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		e.mu.Lock()
		for _, c := range e.conns {
			c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func (e *echoServer) stats() (received string, accepted, ended int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.received.String(), e.accepted, e.ended
}

func newProxy(t *testing.T, e *echoServer) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *faultproxy.Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends msg and reads the echo, failing after 5 seconds.
func roundTrip(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return errors.New("echo: got " + string(got) + ", want " + msg)
	}
	return nil
}

func mustRoundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if err := roundTrip(c, msg); err != nil {
		t.Fatalf("round trip %q: %v", msg, err)
	}
}

// readErr returns the error of a read from c, which must fail within 5 s.
func readErr(t *testing.T, c net.Conn) error {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	n, err := c.Read(b[:])
	if n > 0 {
		t.Fatalf("read %q, want an error", b[:n])
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("read still blocked after 5 s")
	}
	return err
}

// silent checks that nothing arrives on c for a moment, and that it is
// not closed.
func silent(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	n, err := c.Read(b[:])
	if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: got %d bytes, %v; want silence", n, err)
	}
}

// eventually polls cond for up to 5 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestPass(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e)
	c := dial(t, p)
	mustRoundTrip(t, c, "hello")
	mustRoundTrip(t, c, "again")
	if got := p.Accepted(); got != 1 {
		t.Errorf("accepted %d, want 1", got)
	}
	eventually(t, "one open connection", func() bool { return p.Open() == 1 && p.Silent() == 0 })
	if got := p.Goroutines(); got != 3 {
		t.Errorf("%d goroutines, want 3 (accepting, and one per direction)", got)
	}
	c.Close()
	eventually(t, "the server side to end", func() bool { _, _, ended := e.stats(); return ended == 1 })
	eventually(t, "no open connection", func() bool { return p.Open() == 0 })
	if p.Mode() != faultproxy.Pass || p.Target() != e.ln.Addr().String() {
		t.Errorf("mode %v, target %s", p.Mode(), p.Target())
	}
}

func TestDelay(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e)
	c := dial(t, p)
	mustRoundTrip(t, c, "warm")
	const d = 50 * time.Millisecond
	p.SetDelay(d)
	p.SetMode(faultproxy.Delay)
	start := time.Now()
	mustRoundTrip(t, c, "slow")
	if got := time.Since(start); got < 2*d {
		t.Errorf("round trip took %v, want at least %v (the delay each way)", got, 2*d)
	}

	// Held chunks go out as soon as the mode changes.
	p.SetDelay(time.Hour)
	if _, err := io.WriteString(c, "held"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the chunk to be held", func() bool { return p.Held() == 1 })
	p.SetMode(faultproxy.Pass)
	got := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
		t.Fatalf("after Pass: got %q, %v; want the held chunk", got, err)
	}
}

func TestDrop(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e)
	c := dial(t, p)
	mustRoundTrip(t, c, "before")
	p.SetMode(faultproxy.Drop)
	if err := readErr(t, c); err != io.EOF {
		t.Errorf("open connection: got %v, want EOF", err)
	}
	eventually(t, "the server side to close", func() bool { _, _, ended := e.stats(); return ended == 1 })
	fresh := dial(t, p) // accepted, then closed
	if err := readErr(t, fresh); err != io.EOF {
		t.Errorf("new connection: got %v, want EOF", err)
	}
	if _, accepted, _ := e.stats(); accepted != 1 {
		t.Errorf("server accepted %d connections, want 1", accepted)
	}
	p.SetMode(faultproxy.Pass)
	mustRoundTrip(t, dial(t, p), "back")
}

func TestReset(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e)
	c := dial(t, p)
	mustRoundTrip(t, c, "before")
	p.SetMode(faultproxy.Reset)
	if err := readErr(t, c); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("open connection: got %v, want a reset", err)
	}
	eventually(t, "the server side to close", func() bool { _, _, ended := e.stats(); return ended == 1 })
	// A new connection is reset as soon as it is accepted, which the dial
	// itself may already report.
	if fresh, err := net.Dial("tcp", p.Addr()); err == nil {
		defer fresh.Close()
		err = readErr(t, fresh)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("new connection: got %v, want a reset", err)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("new connection: dial got %v, want a reset", err)
	}
	p.SetMode(faultproxy.Pass)
	mustRoundTrip(t, dial(t, p), "back")
}

func TestBlackHole(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e)
	used := dial(t, p)
	mustRoundTrip(t, used, "a")
	idle := dial(t, p)
	mustRoundTrip(t, idle, "b")

	p.SetMode(faultproxy.BlackHole)
	if _, err := io.WriteString(used, "lost"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bytes to be discarded", func() bool { return p.Discarded() == 4 })
	fresh := dial(t, p)
	if _, err := io.WriteString(fresh, "gone"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new connection's bytes to be discarded", func() bool { return p.Discarded() == 8 })
	silent(t, used)
	silent(t, fresh)
	if got, accepted, ended := e.stats(); got != "ab" || accepted != 2 || ended != 0 {
		t.Fatalf("server: received %q, %d accepted, %d ended; want \"ab\", 2, 0", got, accepted, ended)
	}

	// Back: a connection that lost nothing resumes, one that lost bytes
	// stays silent, and new ones pass.
	p.SetMode(faultproxy.Pass)
	mustRoundTrip(t, idle, "c")
	if _, err := io.WriteString(used, "more"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the out-of-step connection to discard", func() bool { return p.Discarded() == 12 })
	silent(t, used)
	mustRoundTrip(t, dial(t, p), "d")
	if got := p.Silent(); got != 2 {
		t.Errorf("%d silent connections, want 2", got)
	}
	if got, _, _ := e.stats(); got != "abcd" {
		t.Errorf("server received %q, want \"abcd\"", got)
	}
}

func TestHalfOpen(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e)
	c := dial(t, p)
	mustRoundTrip(t, c, "a")
	p.SetMode(faultproxy.HalfOpen)
	eventually(t, "the server side to close", func() bool { _, _, ended := e.stats(); return ended == 1 })
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatalf("write to the half-open connection: %v", err)
	}
	eventually(t, "the bytes to be discarded", func() bool { return p.Discarded() == 4 })
	silent(t, c)
	// New connections reach the server.
	mustRoundTrip(t, dial(t, p), "new")
	// Passing again does not revive the dead connection.
	p.SetMode(faultproxy.Pass)
	if _, err := io.WriteString(c, "y"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the dead connection to discard", func() bool { return p.Discarded() == 5 })
	silent(t, c)
	mustRoundTrip(t, dial(t, p), "back")
	if got := p.Open(); got != 3 {
		t.Errorf("%d open connections, want 3 (half-open ones stay until their client closes)", got)
	}
	if got := p.Silent(); got != 1 {
		t.Errorf("%d silent connections, want 1", got)
	}
	c.Close()
	eventually(t, "the closed connection to go", func() bool { return p.Silent() == 0 && p.Open() == 2 })
	if got, _, _ := e.stats(); got != "anewback" {
		t.Errorf("server received %q, want \"anewback\"", got)
	}
}

func TestLoseReplies(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e)
	c := dial(t, p)
	mustRoundTrip(t, c, "a")
	p.SetMode(faultproxy.LoseReplies)
	if _, err := io.WriteString(c, "req"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the request to arrive and its reply to be discarded", func() bool {
		got, _, _ := e.stats()
		return got == "areq" && p.Discarded() == 3
	})
	silent(t, c)
	// A new connection reaches the server, and hears nothing back.
	fresh := dial(t, p)
	if _, err := io.WriteString(fresh, "new"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new request to arrive", func() bool { got, _, _ := e.stats(); return got == "areqnew" })
	p.SetMode(faultproxy.Pass)
	mustRoundTrip(t, dial(t, p), "back")
	if _, err := io.WriteString(c, "late"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the out-of-step connection to discard", func() bool { return p.Discarded() >= 10 })
	silent(t, c)
}

// TestClose checks that Close ends every goroutine, including those of
// connections held in each fault.
func TestClose(t *testing.T) {
	e := newEcho(t)
	base := runtime.NumGoroutine()
	p, err := faultproxy.New(e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	held := dial(t, p)
	mustRoundTrip(t, held, "a")
	p.SetDelay(time.Hour)
	p.SetMode(faultproxy.Delay)
	io.WriteString(held, "held") // waits in the proxy for an hour
	eventually(t, "the chunk to be held", func() bool { return p.Held() == 1 })
	p.SetMode(faultproxy.BlackHole)
	hole := dial(t, p)
	io.WriteString(hole, "x")
	eventually(t, "the held chunk and the new bytes to be discarded", func() bool { return p.Discarded() == 5 })
	p.SetMode(faultproxy.HalfOpen)
	half := dial(t, p)
	mustRoundTrip(t, half, "b")
	eventually(t, "three open connections", func() bool { return p.Open() == 3 })

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, c := range []net.Conn{held, hole, half} {
		if err := readErr(t, c); err != io.EOF {
			t.Errorf("after Close: got %v, want EOF", err)
		}
	}
	if _, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Error("the proxy still accepts connections after Close")
	}
	if n := p.Goroutines(); n != 0 {
		t.Errorf("%d proxy goroutines after Close, want 0", n)
	}
	eventually(t, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
	p.SetMode(faultproxy.Pass) // no effect, no panic
}

// TestConcurrentModes flips modes while clients talk through the proxy,
// for the race detector.
func TestConcurrentModes(t *testing.T) {
	e := newEcho(t)
	base := runtime.NumGoroutine()
	p, err := faultproxy.New(e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p.SetDelay(time.Millisecond)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.Dial("tcp", p.Addr())
				if err != nil {
					continue
				}
				c.SetDeadline(time.Now().Add(20 * time.Millisecond))
				io.WriteString(c, "x")
				c.Read(make([]byte, 1))
				c.Close()
			}
		}()
	}
	modes := []faultproxy.Mode{faultproxy.Delay, faultproxy.Drop, faultproxy.Reset, faultproxy.BlackHole,
		faultproxy.HalfOpen, faultproxy.LoseReplies, faultproxy.Pass}
	// A new mode for every new connection, 200 times.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 200 && time.Now().Before(deadline); i++ {
		n := p.Accepted()
		p.SetMode(modes[i%len(modes)])
		if i%10 == 0 {
			p.SetDelay(time.Duration(i%3) * time.Millisecond)
		}
		for p.Accepted() == n && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
	}
	if n := p.Accepted(); n < 200 {
		t.Fatalf("only %d connections in 10 s", n)
	}
	close(stop)
	wg.Wait()
	p.SetMode(faultproxy.Pass)
	mustRoundTrip(t, dial(t, p), "still works")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
}

func TestModeString(t *testing.T) {
	for m, want := range map[faultproxy.Mode]string{
		faultproxy.Pass: "Pass", faultproxy.LoseReplies: "LoseReplies", faultproxy.Mode(42): "Mode(42)",
	} {
		if got := m.String(); got != want {
			t.Errorf("%d: got %q, want %q", int32(m), got, want)
		}
	}
}
