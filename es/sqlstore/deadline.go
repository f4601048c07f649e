package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore/internal/backend"
)

// Deadlines and unavailability.
//
// Every call into the database has a deadline: the caller's, or the call
// timeout ([WithCallTimeout]) when the caller's context has none sooner.
// The timeout bounds each query (a page of a read, a poll of a
// subscription), each write as its caller sees it (from submit to the
// answer, waiting for the writer included), each scavenging transaction,
// and the open. A call that the timeout ends, and a failure to reach the
// database (a connection refused, reset or lost), is reported wrapping
// es.ErrUnavailable; a call that the caller's context ends reports the
// context's error.

// bound returns ctx bounded by the call timeout, unless ctx ends sooner.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= s.cfg.callTimeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.cfg.callTimeout)
}

// call runs f with ctx bounded by the call timeout.
func (s *Store) call(ctx context.Context, f func(ctx context.Context) error) error {
	cctx, cancel := s.bound(ctx)
	defer cancel()
	return s.timedOut(ctx, cctx, f(cctx))
}

// timedOut returns err, or, if the call timeout (cctx) ended the call while
// the caller's ctx is live, the error that says so.
func (s *Store) timedOut(ctx, cctx context.Context, err error) error {
	if err != nil && ctxErr(ctx) == nil && cctx.Err() != nil {
		return s.noAnswer(err)
	}
	return err
}

// ctxErr returns ctx's error, or context.DeadlineExceeded once ctx's
// deadline has passed, even if ctx has not noticed yet: a call bounded by
// the same deadline through another context (a group of writes) may fail
// an instant before ctx ends, and its failure is then the caller's
// deadline, not the database's.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// noAnswer is the error of a call that the call timeout ended, which
// failed with err. It does not wrap err: the call's context ended, not the
// caller's.
func (s *Store) noAnswer(err error) error {
	return fmt.Errorf("%w: no answer within %v (%v)", es.ErrUnavailable, s.cfg.callTimeout, err)
}

// reader returns the queryer of reads: each query, rows included, is
// bounded by the call timeout.
func (s *Store) reader() queryer { return boundedReader{s: s, q: s.db.Reader()} }

type boundedReader struct {
	s *Store
	q queryer
}

func (b boundedReader) Query(ctx context.Context, sql string, args ...any) (rows, error) {
	cctx, cancel := b.s.bound(ctx)
	r, err := b.q.Query(cctx, sql, args...)
	if err != nil {
		err = b.s.timedOut(ctx, cctx, err)
		cancel()
		return nil, err
	}
	return &boundedRows{rows: r, s: b.s, ctx: ctx, cctx: cctx, cancel: cancel}, nil
}

// boundedRows are the rows of a bounded query: Close ends the bound.
type boundedRows struct {
	rows
	s         *Store
	ctx, cctx context.Context
	cancel    context.CancelFunc
}

func (r *boundedRows) Scan(dest ...any) error {
	return r.s.timedOut(r.ctx, r.cctx, r.rows.Scan(dest...))
}
func (r *boundedRows) Err() error { return r.s.timedOut(r.ctx, r.cctx, r.rows.Err()) }

func (r *boundedRows) Close() {
	r.rows.Close()
	r.cancel()
}

// unavailable returns err wrapping es.ErrUnavailable if it is a failure to
// reach the database, and err otherwise.
func (s *Store) unavailable(err error) error {
	return backend.Unavailable(err, s.db.Unavailable)
}

// isUnavailable reports whether err is a failure to reach the database, or
// one that a working connection to it would not have had, after which
// retrying may succeed: a connection refused, reset, lost or timed out, a
// server shutting down or starting up, too many connections (see the
// backends' Unavailable). Errors of SQL (a constraint, a syntax error), a
// failed authentication, SQLite's SQLITE_BUSY (another process holds the
// database's write lock past the busy timeout: a database that answers) and
// a full disk are not.
func (s *Store) isUnavailable(err error) bool {
	return backend.IsUnavailable(err) || err != nil && s.db.Unavailable(err)
}

// unknownOutcome reports whether err leaves the outcome of a write's
// commit unknown.
func unknownOutcome(err error) bool {
	var u *unknownOutcomeError
	return errors.As(err, &u)
}
