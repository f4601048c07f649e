package eventstoredb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/eventfold/eventfold/es"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventfold/eventfold/internal/backoff"
)

// ErrUnavailable means EventStoreDB could not be reached, or did not answer
// within the call timeout: the connection is down, the node is restarting
// or a leader election is under way. Errors that wrap it are transient: the
// same call may succeed later. See [IsTransient].
//
// It is [es.ErrUnavailable], the error every store returns when its server
// is away: errors.Is(err, es.ErrUnavailable) works for every store.
var ErrUnavailable = es.ErrUnavailable

// ErrClosed means the Store was closed.
var ErrClosed = errors.New("eventstoredb: store is closed")

// IsTransient reports whether err is a failure to reach EventStoreDB (it
// wraps [ErrUnavailable]) after which retrying the call may succeed.
func IsTransient(err error) bool { return errors.Is(err, ErrUnavailable) }

// DefaultCallTimeout bounds each call into the client when the caller's
// context has no earlier deadline.
const DefaultCallTimeout = 5 * time.Second

// WithCallTimeout bounds each call into the client (an append, a delete,
// opening a read or a subscription) by d when the caller's context has no
// earlier deadline; DefaultCallTimeout by default. A call that times out
// returns an error wrapping [ErrUnavailable]. Reading a stream that is
// open and the life of a subscription are not bounded by it.
func WithCallTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: call timeout %v", ErrInvalidOption, d)
		}
		c.callTimeout = d
		return nil
	}
}

// conn is one client and the calls running on it.
type conn struct {
	client   *esdb.Client
	owned    bool // the Store closes it
	inflight int  // calls and open streams using it
	retired  bool // no new calls: closed once inflight drops to 0
}

// probe backoff bounds: after a failed connection attempt, calls fail fast
// with the last error for this long before the next attempt.
const (
	minProbeBackoff = 50 * time.Millisecond
	maxProbeBackoff = 2 * time.Second
)

// acquire returns the client to run a call on, connecting a new one if the
// last one was retired. It fails fast, with the last connection error, while
// EventStoreDB was found unreachable less than a backoff ago, and while a
// connection attempt runs after one that failed: it waits for an attempt
// only at the first connection and after a connection loss, when the node
// may well answer at once. (An attempt against a node that accepts
// connections and does not answer lasts the client's gossip timeout, 5s by
// default, which callers that knew the node unreachable would otherwise
// wait for, each time.)
func (s *Store) acquire(ctx context.Context) (*conn, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
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

// probe connects a new client and asks for the server's version, which
// makes the client discover the node. Only the probe uses that client until
// it succeeds, so a client whose discovery failed (and whose connection
// goroutine has then ended for good) has no call blocked in it and can be
// closed.
func (s *Store) probe(done chan struct{}) {
	defer s.probes.Done()
	var err error
	client, nerr := esdb.NewClient(s.cfg)
	if nerr != nil {
		err = fmt.Errorf("%w: connect: %w", ErrUnavailable, nerr)
	} else if _, verr := client.GetServerVersion(); verr != nil {
		_ = client.Close()
		client = nil
		err = fmt.Errorf("%w: connect: %w", ErrUnavailable, verr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer close(done)
	s.probing = nil
	if s.closed {
		// Close returned without waiting for this attempt.
		if client != nil {
			_ = client.Close()
		}
		return
	}
	if err != nil {
		s.lastErr = err
		s.probeFailures++
		s.retryAt = time.Now().Add(backoff.Policy{First: minProbeBackoff, Max: maxProbeBackoff}.Wait(s.probeFailures))
		s.logger.Warn("eventstoredb: cannot connect", "attempt", s.probeFailures, "error", err)
		return
	}
	if s.probeFailures > 0 {
		s.logger.Info("eventstoredb: connected again", "after", s.probeFailures)
	}
	s.lastErr, s.probeFailures = nil, 0
	s.cur = &conn{client: client, owned: true}
}

// release ends a call or stream on c, which ended with err. A connection
// failure retires c (when the Store can connect a new client): the next
// call connects anew.
func (s *Store) release(c *conn, err error) {
	s.mu.Lock()
	c.inflight--
	if err != nil && connectionLost(err) {
		s.retireLocked(c, err)
	}
	closeIt := c.retired && c.inflight == 0 && c.owned
	s.mu.Unlock()
	if closeIt {
		// Nothing of ours runs in the client any more: closing cannot make
		// a blocked send of the client panic.
		_ = c.client.Close()
	}
}

// retire stops new calls on c, as release does on a connection failure.
func (s *Store) retire(c *conn, err error) {
	s.mu.Lock()
	s.retireLocked(c, err)
	s.mu.Unlock()
}

func (s *Store) retireLocked(c *conn, err error) {
	if !c.owned || c.retired || s.cur != c {
		return
	}
	c.retired = true
	s.cur = nil
	s.lastErr = fmt.Errorf("%w: %w", ErrUnavailable, err)
	s.retryAt = time.Time{} // connect again at the next call
	s.logger.Warn("eventstoredb: connection lost", "error", err)
}

// connectionLost reports whether a client error means its connection is
// gone (or its connection handling gave up): the client must be replaced.
func connectionLost(err error) bool {
	var e *esdb.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case esdb.ErrorUnavailable, esdb.ErrorCodeConnectionClosed:
			return true
		case esdb.ErrorCodeUnknown:
			// An append whose request stream broke: the client reports
			// Send's io.EOF, not the stream's status.
			if errors.Is(e.Err(), io.EOF) {
				return true
			}
		}
	}
	if status.Code(err) == codes.Unavailable {
		return true
	}
	return strings.Contains(err.Error(), "maximum discovery attempt count reached")
}

// bound applies the call timeout to ctx unless ctx ends earlier.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= s.callTimeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.callTimeout)
}

// call runs f on a client in a goroutine of the Store's and waits for it
// until wait ends. run is the context f's call runs with. If wait ends
// first, call returns (with ctx's error, or ErrUnavailable when the call
// timeout passed) and abandons f: the goroutine finishes when the client
// returns, then runs the cleanup f returned (closing a stream nobody will
// read) and releases the client. With hold, a successful f keeps the client
// in use until the caller's release; otherwise call releases it.
func (s *Store) call(caller, wait, run context.Context, name string, hold bool,
	f func(ctx context.Context, cl *esdb.Client) (cleanup func(), err error)) (release func(error), err error) {
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
		s.retire(c, fmt.Errorf("no answer within %v", s.callTimeout))
	}
	return nil, s.waitError(caller, name, wait.Err())
}

func (s *Store) releaser(c *conn, hold bool, err error) func(error) {
	if !hold || err != nil {
		return func(error) {}
	}
	var once sync.Once
	return func(err error) { once.Do(func() { s.release(c, err) }) }
}

// waitError is the error of a call that ended without the client's answer.
func (s *Store) waitError(caller context.Context, name string, err error) error {
	if cerr := caller.Err(); cerr != nil {
		return fmt.Errorf("eventstoredb: stream %q: %w", name, cerr)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: stream %q: no answer within %v", ErrUnavailable, name, s.callTimeout)
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w (stream %q)", err, name)
	}
	return fmt.Errorf("eventstoredb: stream %q: %w", name, err)
}

// unary runs a call that returns once: bounded by the call timeout.
func (s *Store) unary(ctx context.Context, name string, f func(ctx context.Context, cl *esdb.Client) error) error {
	callCtx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.call(ctx, callCtx, callCtx, name, false, func(ctx context.Context, cl *esdb.Client) (func(), error) {
		return nil, f(ctx, cl)
	})
	return err
}
