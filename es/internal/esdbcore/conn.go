package esdbcore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/internal/backoff"
)

// Driver is what a Core needs of a client package.
type Driver[C any] struct {
	// Name prefixes messages and log entries: "eventstoredb", "kurrentdb".
	Name string
	// Connect makes a new client and asks for the server's version, which
	// makes the client discover the node; nil for a Core on a client the
	// caller owns.
	Connect func() (C, error)
	// Close closes a client.
	Close func(C) error
	// Classify tells what a client error means.
	Classify func(error) Class
	// Ops are the client's calls.
	Ops Ops[C]
}

// ErrClosed is returned by the calls of a closed Store; each package
// wraps it with its name.
var ErrClosed = errors.New("store is closed")

// conn is one client and the calls running on it.
type conn[C any] struct {
	client   C
	owned    bool // the Core closes it
	inflight int  // calls and open streams using it
	retired  bool // no new calls: closed once inflight drops to 0
}

// probe backoff bounds: after a failed connection attempt, calls fail fast
// with the last error for this long before the next attempt.
const (
	minProbeBackoff = 50 * time.Millisecond
	maxProbeBackoff = 2 * time.Second
)

// Core runs calls on a client, connecting and replacing it as needed.
type Core[C any] struct {
	Config
	d      Driver[C]
	closed error // ErrClosed as the package names it

	probes sync.WaitGroup // connection attempts (tests wait for them)

	mu            sync.Mutex // guards the fields below
	cur           *conn[C]   // nil: connect at the next call
	probing       chan struct{}
	lastErr       error // of the last connection attempt or loss
	retryAt       time.Time
	probeFailures int
	isClosed      bool
}

// New returns a Core. With client set (a client the caller owns), the Core
// never connects another; otherwise d.Connect makes them. closedErr is the
// package's ErrClosed.
func New[C any](d Driver[C], cfg Config, closedErr error) *Core[C] {
	return &Core[C]{Config: cfg, d: d, closed: closedErr}
}

// Use makes c the client of a Core, owned by the caller.
func (s *Core[C]) Use(c C) { s.cur = &conn[C]{client: c} }

// WaitConnecting waits until no connection attempt is under way: Close
// does not wait for them, goroutine-leak checks do.
func (s *Core[C]) WaitConnecting() { s.probes.Wait() }

// acquire returns the client to run a call on, connecting a new one if the
// last one was retired. It fails fast, with the last connection error, while
// the server was found unreachable less than a backoff ago, and while a
// connection attempt runs after one that failed: it waits for an attempt
// only at the first connection and after a connection loss, when the node
// may well answer at once. (An attempt against a node that accepts
// connections and does not answer lasts the client's gossip timeout, 5s by
// default, which callers that knew the node unreachable would otherwise
// wait for, each time.)
func (s *Core[C]) acquire(ctx context.Context) (*conn[C], error) {
	for {
		s.mu.Lock()
		if s.isClosed {
			s.mu.Unlock()
			return nil, s.closed
		}
		if c := s.cur; c != nil {
			c.inflight++
			s.mu.Unlock()
			return c, nil
		}
		if s.probing == nil {
			if s.lastErr != nil && time.Now().Before(s.retryAt) {
				err := s.lastErr
				s.mu.Unlock()
				return nil, err
			}
			s.probing = make(chan struct{})
			s.probes.Add(1)
			go s.probe(s.probing)
		}
		if s.probeFailures > 0 {
			err := s.lastErr
			s.mu.Unlock()
			return nil, err
		}
		wait := s.probing
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// probe connects a new client. Only the probe uses that client until it
// succeeds, so a client whose discovery failed (and whose connection
// goroutine has then ended for good) has no call blocked in it and can be
// closed by Connect.
func (s *Core[C]) probe(done chan struct{}) {
	defer s.probes.Done()
	client, err := s.d.Connect()
	if err != nil {
		err = fmt.Errorf("%w: connect: %w", es.ErrUnavailable, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer close(done)
	s.probing = nil
	if s.isClosed {
		// Close returned without waiting for this attempt.
		if err == nil {
			_ = s.d.Close(client)
		}
		return
	}
	if err != nil {
		s.lastErr = err
		s.probeFailures++
		s.retryAt = time.Now().Add(backoff.Policy{First: minProbeBackoff, Max: maxProbeBackoff}.Wait(s.probeFailures))
		s.Logger.Warn(s.d.Name+": cannot connect", "attempt", s.probeFailures, "error", err)
		return
	}
	if s.probeFailures > 0 {
		s.Logger.Info(s.d.Name+": connected again", "after", s.probeFailures)
	}
	s.lastErr, s.probeFailures = nil, 0
	s.cur = &conn[C]{client: client, owned: true}
}

// release ends a call or stream on c, which ended with err. A connection
// failure retires c (when the Core can connect a new client): the next
// call connects anew.
func (s *Core[C]) release(c *conn[C], err error) {
	s.mu.Lock()
	c.inflight--
	if err != nil && s.connectionLost(err) {
		s.retireLocked(c, err)
	}
	closeIt := c.retired && c.inflight == 0 && c.owned
	s.mu.Unlock()
	if closeIt {
		// Nothing of ours runs in the client any more: closing cannot make
		// a blocked send of the client panic.
		_ = s.d.Close(c.client)
	}
}

// retire stops new calls on c, as release does on a connection failure.
func (s *Core[C]) retire(c *conn[C], err error) {
	s.mu.Lock()
	s.retireLocked(c, err)
	s.mu.Unlock()
}

func (s *Core[C]) retireLocked(c *conn[C], err error) {
	if !c.owned || c.retired || s.cur != c {
		return
	}
	c.retired = true
	s.cur = nil
	s.lastErr = fmt.Errorf("%w: %w", es.ErrUnavailable, err)
	s.retryAt = time.Time{} // connect again at the next call
	s.Logger.Warn(s.d.Name+": connection lost", "error", err)
}

// Client returns the client in use now, connecting one if needed within
// the call timeout; false if the server cannot be reached or the Core is
// closed.
func (s *Core[C]) Client() (C, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), s.CallTimeout)
	defer cancel()
	c, err := s.acquire(ctx)
	if err != nil {
		var zero C
		return zero, false
	}
	s.release(c, nil)
	return c.client, true
}

// Close closes the client if the Core connected it. Calls still running in
// the client (abandoned after their context ended) keep it until they
// return; it is closed then. Close does not wait for a connection attempt
// under way.
func (s *Core[C]) Close() error {
	s.mu.Lock()
	if s.isClosed {
		s.mu.Unlock()
		return nil
	}
	s.isClosed = true
	c := s.cur
	s.cur = nil
	closeIt := false
	if c != nil && c.owned {
		c.retired = true
		closeIt = c.inflight == 0
	}
	s.mu.Unlock()
	if closeIt {
		return s.d.Close(c.client)
	}
	return nil
}

// Bound applies the call timeout to ctx unless ctx ends earlier.
func (s *Core[C]) Bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= s.CallTimeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.CallTimeout)
}

// Call runs f on a client in a goroutine of the Core's and waits for it
// until wait ends. run is the context f's call runs with. If wait ends
// first, Call returns (with ctx's error, or ErrUnavailable when the call
// timeout passed) and abandons f: the goroutine finishes when the client
// returns, then runs the cleanup f returned (closing a stream nobody will
// read) and releases the client. With hold, a successful f keeps the client
// in use until the caller's release; otherwise Call releases it.
func (s *Core[C]) Call(caller, wait, run context.Context, name string, hold bool,
	f func(ctx context.Context, cl C) (cleanup func(), err error)) (release func(error), err error) {
	c, err := s.acquire(wait)
	if err != nil {
		return nil, s.waitError(caller, name, err)
	}
	type result struct {
		cleanup func()
		err     error
	}
	done := make(chan result, 1)
	var mu sync.Mutex
	abandoned := false
	go func() {
		cleanup, err := f(run, c.client)
		mu.Lock()
		gone := abandoned
		if !gone {
			done <- result{cleanup, err} // buffered: never blocks
		}
		mu.Unlock()
		if gone && cleanup != nil {
			cleanup()
		}
		if gone || err != nil || !hold {
			s.release(c, err)
		}
	}()
	select {
	case r := <-done:
		return s.releaser(c, hold, r.err), r.err
	case <-wait.Done():
	}
	mu.Lock()
	select {
	case r := <-done: // it returned meanwhile
		mu.Unlock()
		return s.releaser(c, hold, r.err), r.err
	default:
		abandoned = true
	}
	mu.Unlock()
	if caller.Err() == nil {
		// The client did not answer in time: it may be blocked for good.
		s.retire(c, fmt.Errorf("no answer within %v", s.CallTimeout))
	}
	return nil, s.waitError(caller, name, wait.Err())
}

func (s *Core[C]) releaser(c *conn[C], hold bool, err error) func(error) {
	if !hold || err != nil {
		return func(error) {}
	}
	var once sync.Once
	return func(err error) { once.Do(func() { s.release(c, err) }) }
}

// waitError is the error of a call that ended without the client's answer.
func (s *Core[C]) waitError(caller context.Context, name string, err error) error {
	if cerr := caller.Err(); cerr != nil {
		return fmt.Errorf("%s: stream %q: %w", s.d.Name, name, cerr)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: stream %q: no answer within %v", es.ErrUnavailable, name, s.CallTimeout)
	}
	if errors.Is(err, es.ErrUnavailable) || errors.Is(err, s.closed) {
		return fmt.Errorf("%w (stream %q)", err, name)
	}
	return fmt.Errorf("%s: stream %q: %w", s.d.Name, name, err)
}

// Unary runs a call that returns once: bounded by the call timeout.
func (s *Core[C]) Unary(ctx context.Context, name string, f func(ctx context.Context, cl C) error) error {
	callCtx, cancel := s.Bound(ctx)
	defer cancel()
	_, err := s.Call(ctx, callCtx, callCtx, name, false, func(ctx context.Context, cl C) (func(), error) {
		return nil, f(ctx, cl)
	})
	return err
}
