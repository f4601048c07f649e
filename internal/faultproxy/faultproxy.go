// Package faultproxy is the project's fault-injection kit for tests: a TCP
// proxy inside the test process, placed between the code under test and a
// server (es/esdbtest, PostgreSQL, NATS), that can cut, stall, delay and
// restore the connections through it.
//
//	p := faultproxy.Start(t, "127.0.0.1:5432")
//	db := open("postgres://postgres@" + p.Addr() + "/test")
//	p.Cut()     // every connection closes now; new ones are refused
//	p.Restore() // new connections get through again
//
// A cut is what a crashed server or a restarted router looks like: the
// client sees its connections reset and its dials refused. A stall
// ([Proxy.Stall]) is the nastier network partition: connections stay open
// and bytes vanish, so that only deadlines end the calls in flight.
package faultproxy

import (
	"net"
	"sync"
	"testing"
	"time"
)

// mode is what the proxy does with traffic.
type mode uint8

const (
	pass  mode = iota // forward
	cut               // close connections, refuse new ones
	stall             // keep connections open, drop their bytes
)

// Proxy forwards TCP connections from its own address to a target. Its
// methods are safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener

	mu     sync.Mutex
	mode   mode
	delay  time.Duration
	conns  map[*link]struct{}
	closed bool
	wake   chan struct{} // closed and replaced when the mode changes
	dialed int

	wg sync.WaitGroup
}

// link is one connection through the proxy: the client's and, once dialed,
// the target's.
type link struct {
	client, server net.Conn
}

// Start starts a proxy to target on a free port of 127.0.0.1, and closes
// it when the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatalf("faultproxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// New starts a proxy to target on a free port of 127.0.0.1. Close stops it.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, conns: make(map[*link]struct{}), wake: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address, host:port, to dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection through the proxy, with a reset, and
// refuses new ones (accepted and closed at once) until [Proxy.Restore].
func (p *Proxy) Cut() { p.set(cut, true) }

// Stall keeps the connections through the proxy open but forwards nothing
// more, either way, until [Proxy.Restore]; new connections are accepted and
// get no answer either. Only the client's deadlines end what it waits for.
func (p *Proxy) Stall() { p.set(stall, false) }

// Reset closes every connection through the proxy, with a reset, as a
// server that terminates its sessions does; new connections get through.
func (p *Proxy) Reset() {
	p.set(pass, true)
}

// Restore forwards traffic again. Connections that a stall held are
// closed (their bytes are lost, so the client must not go on with them);
// new ones get through.
func (p *Proxy) Restore() {
	p.mu.Lock()
	stalled := p.mode == stall
	p.mu.Unlock()
	p.set(pass, stalled)
}

// Delay holds each chunk of bytes for d before forwarding it, both ways;
// zero forwards at once.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// Dialed counts the connections the proxy made to its target.
func (p *Proxy) Dialed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialed
}

// Open counts the connections through the proxy now.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops the proxy: it closes its listener and every connection, and
// returns once its goroutines have ended.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return
	}
	p.closed = true
	p.closeAll()
	close(p.wake) // frees the connections a stall holds
	p.wake = make(chan struct{})
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

func (p *Proxy) set(m mode, closeConns bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	if closeConns {
		p.closeAll()
	}
	close(p.wake)
	p.wake = make(chan struct{})
}

// closeAll resets every connection; p.mu is held.
func (p *Proxy) closeAll() {
	for l := range p.conns {
		l.close()
		delete(p.conns, l)
	}
}

func (l *link) close() {
	reset(l.client)
	if l.server != nil {
		reset(l.server)
	}
}

// reset closes c with a TCP reset rather than an orderly FIN, as a
// crashed peer or a dropped route does.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		l := &link{client: c}
		p.mu.Lock()
		if p.closed || p.mode == cut {
			p.mu.Unlock()
			reset(c)
			continue
		}
		p.conns[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l)
	}
}

// dialTimeout bounds the proxy's own dial of the target.
const dialTimeout = 5 * time.Second

func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	defer p.drop(l)
	// A stalled proxy holds new connections without dialing, until the
	// mode changes.
	for {
		p.mu.Lock()
		m, wake := p.mode, p.wake
		_, open := p.conns[l]
		p.mu.Unlock()
		if !open {
			return
		}
		if m == pass {
			break
		}
		<-wake
	}
	s, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		return
	}
	p.mu.Lock()
	if _, open := p.conns[l]; !open {
		p.mu.Unlock()
		reset(s)
		return
	}
	l.server = s
	p.dialed++
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.pipe(s, l.client); done <- struct{}{} }()
	go func() { p.pipe(l.client, s); done <- struct{}{} }()
	<-done // one side ended: end the other
	p.mu.Lock()
	l.close()
	p.mu.Unlock()
	<-done
}

// drop forgets l and closes it.
func (p *Proxy) drop(l *link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, l)
	l.close()
}

// pipe copies from src to dst until either fails, dropping what arrives
// while the proxy stalls and holding each chunk for the delay.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			m, delay, wake := p.mode, p.delay, p.wake
			p.mu.Unlock()
			if delay > 0 {
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-wake: // a mode change ends the delay early
					t.Stop()
				}
				p.mu.Lock()
				m = p.mode
				p.mu.Unlock()
			}
			if m == pass {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return // the link closes both ways: the protocols here do not half-close
		}
	}
}
