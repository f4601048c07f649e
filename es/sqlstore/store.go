package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore/internal/backend"
)

// batchSize is the number of rows a read or subscription fetches per query.
const batchSize = 512

// Store is an [es.Store] on SQLite or PostgreSQL. Open one with a backend
// package, sqlstore/sqlite or sqlstore/postgres, and Close it when done.
// A Store is safe for concurrent use by multiple goroutines, and several
// Stores (in several processes) may share one database.
type Store struct {
	cfg config
	db  backend.DB
	q   queries

	head atomic.Uint64 // the newest position known to be committed
	sig  signal        // fired when head moves

	writes chan *request // to the writer goroutine (see group.go)
	queued atomic.Int64  // writes waiting for the writer
	// groupHook, set by tests before the first write, is called with the
	// size of every group before it runs.
	groupHook func(n int)

	cancel    context.CancelFunc // stops the background goroutine
	wg        sync.WaitGroup
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error
}

var _ es.Store = (*Store)(nil)

// open finishes a Store whose config and backend are set: it checks or
// creates the schema and starts the background goroutine. On error it
// closes the backend.
func (s *Store) open(ctx context.Context) error {
	s.done = make(chan struct{})
	s.sig.ch = make(chan struct{})
	s.writes = make(chan *request)
	if err := s.migrate(ctx); err != nil {
		return errors.Join(err, s.db.Close())
	}
	h, err := s.queryHead(ctx)
	if err != nil {
		return errors.Join(s.opError(ctx, "read the head of the log", err), s.db.Close())
	}
	s.head.Store(h)
	// The background goroutine lives as long as the Store, not as long as
	// the ctx of the call that opened it: Close cancels it.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Go(func() { s.db.Watch(bg, head{s}) })
	s.wg.Go(func() { s.writer(bg) })
	return nil
}

// Close stops the store's background work, ends its subscriptions with
// [ErrClosed] and closes the connections it opened (not a pool passed to
// sqlstore/postgres.New). Operations after Close fail with ErrClosed. Close
// is safe to call more than once. It waits at most a second for the pool
// that sqlstore/postgres.Open made: after an outage, pgx closes the
// connections whose calls timed out in the background (it sends the server
// a cancel request, and waits up to 15 s for a server that does not
// answer), and those finish closing by themselves.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.sig.fire() // wakes the subscriptions, whose next read fails
		s.cancel()
		s.wg.Wait()
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

func (s *Store) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// advance records that the log's head is at least h, and wakes the
// subscriptions if it moved.
func (s *Store) advance(h uint64) {
	for {
		old := s.head.Load()
		if h <= old {
			return
		}
		if s.head.CompareAndSwap(old, h) {
			s.sig.fire()
			return
		}
	}
}

// poll reads the head of the log and advances to it; the watchers call it.
func (s *Store) poll(ctx context.Context) {
	h, err := s.queryHead(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.logger.WarnContext(ctx, "sqlstore: poll for new events", "error", err)
		}
		return
	}
	s.advance(h)
}

// sleep waits for d or until ctx is done, and reports whether ctx is still
// live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// signal wakes every goroutine waiting for a change, like a condition
// variable that works with select.
type signal struct {
	mu sync.Mutex
	ch chan struct{} // closed and replaced on every change
}

// wait returns a channel that is closed at the next change.
func (g *signal) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ch
}

func (g *signal) fire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.ch)
	g.ch = make(chan struct{})
}

// opError wraps err, an error of the database during op, unless it is one
// of package es's errors, which reach the caller as they are. A failure
// caused by ctx or by Close reports that instead; a failure to reach the
// database wraps es.ErrUnavailable.
func (s *Store) opError(ctx context.Context, op string, err error) error {
	switch {
	case isDecision(err), errors.Is(err, es.ErrMaxAppendSizeExceeded), errors.Is(err, ErrClosed):
		return err
	case ctxErr(ctx) != nil:
		return fmt.Errorf("sqlstore: %s: %w", op, ctxErr(ctx))
	case s.closed():
		return fmt.Errorf("%w: %s: %v", ErrClosed, op, err)
	}
	return fmt.Errorf("sqlstore: %s: %w", op, s.unavailable(err))
}

// i64 converts a position or revision to a database integer; values beyond
// the largest one stand for "the end".
func i64(u uint64) int64 {
	if u > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(u)
}

// queryRow runs a query that returns at most one row and scans it into
// dest. It reports whether there was a row.
func queryRow(ctx context.Context, q queryer, sql string, args []any, dest ...any) (bool, error) {
	r, err := q.Query(ctx, sql, args...)
	if err != nil {
		return false, err
	}
	defer r.Close()
	if !r.Next() {
		return false, r.Err()
	}
	if err := r.Scan(dest...); err != nil {
		return false, err
	}
	return true, r.Err()
}

// queryHead returns the position of the newest event, or 0.
func (s *Store) queryHead(ctx context.Context) (uint64, error) {
	return s.headIn(ctx, s.reader())
}

func (s *Store) headIn(ctx context.Context, q queryer) (uint64, error) {
	var h int64
	if _, err := queryRow(ctx, q, s.q.head, nil, &h); err != nil {
		return 0, err
	}
	return uint64(h), nil
}
