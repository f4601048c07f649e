package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
)

// Group commit.
//
// Every write of a Store (appends, deletes, tombstones) goes to one writer
// goroutine. The writer takes a request as soon as one comes, so an idle
// store adds no latency; while it commits, new requests wait in line, and
// the next transaction takes all of them that are ready (up to
// maxGroupWrites writes and maxGroupBytes bytes of events). One
// transaction, one lock and one flush to disk then serve many writers.
//
// Each write in a group keeps its own checks, result and error: it runs,
// in the group's transaction, exactly the statements it would run alone,
// after the writes before it in the group, whose effects it sees. A write
// whose check fails (a wrong expected revision, a deleted stream) writes
// nothing and leaves the others be. An error of the database aborts the
// transaction: the writes of that group are then run again one by one, each
// in a transaction of its own, so that one failing write never fails the
// others. Positions stay in commit order: a group is one transaction that
// takes its positions under the store's write lock.

const (
	// maxGroupWrites bounds the writes of one group transaction.
	maxGroupWrites = 256
	// maxGroupBytes bounds the bytes of event data and metadata of one
	// group transaction; a single larger write has a group of its own.
	maxGroupBytes = 4 << 20
)

// request is a write waiting for its group.
type request struct {
	// ctx is the caller's: a write whose caller left before the group
	// reached it is skipped.
	ctx context.Context
	// size is the bytes of event data and metadata the write adds.
	size int
	// stream and id are what the write reads first: the state of the
	// stream, and the revision at which it holds the event id.
	stream string
	id     uuid.UUID
	// run does the write in tx: it reads, decides, and queues its
	// statements with tx.execAll. It returns the position of the last event
	// it wrote, 0 if none. It may run more than once (a group that failed
	// is run again one write at a time), so it sets its results anew each
	// time.
	run func(ctx context.Context, g *groupTx) (uint64, error)
	// idempotent says that running the write again after it was committed
	// reports its first result and writes nothing (an append: its event
	// IDs are checked), so that it may be run again after a COMMIT whose
	// outcome is unknown.
	idempotent bool
	// done receives the write's error (nil on success) once its group has
	// committed or failed. It has room for one value.
	done chan error
	err  error
}

// submit hands a write to the writer and waits for its result, for at
// most the call timeout (waiting in line included). If ctx or the timeout
// ends before the writer takes the write, nothing is written; if it ends
// later, submit returns at once, and the write may still be committed.
func (s *Store) submit(ctx context.Context, r *request) error {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	r.ctx, r.done = bctx, make(chan error, 1)
	s.queued.Add(1)
	select {
	case s.writes <- r:
	case <-bctx.Done():
		s.queued.Add(-1)
		if err := ctxErr(ctx); err != nil {
			return err
		}
		return fmt.Errorf("%w: the writes before it took longer than %v; nothing was written", es.ErrUnavailable, s.cfg.callTimeout)
	case <-s.done:
		s.queued.Add(-1)
		return ErrClosed
	}
	select {
	case err := <-r.done:
		// If the call timeout ended the write's group, the writer's error
		// says whether it may have been committed.
		return s.timedOut(ctx, bctx, err)
	case <-bctx.Done():
		if err := ctxErr(ctx); err != nil {
			return err
		}
		return &unknownOutcomeError{Err: s.noAnswer(bctx.Err())}
	}
}

// writer runs groups of writes until ctx is done (Close); the writes
// still waiting in line then fail with ErrClosed in submit.
func (s *Store) writer(ctx context.Context) {
	group := make([]*request, 0, maxGroupWrites)
	var next *request // taken, but over the size of the last group
	for {
		group = group[:0]
		if next == nil {
			select {
			case next = <-s.writes:
				s.queued.Add(-1)
			case <-ctx.Done():
				return
			}
		}
		group, next = append(group, next), nil
		size := group[0].size
	gather:
		for len(group) < maxGroupWrites {
			select {
			case r := <-s.writes:
				s.queued.Add(-1)
				if size+r.size > maxGroupBytes {
					next = r
					break gather
				}
				group, size = append(group, r), size+r.size
			default:
				break gather
			}
		}
		if s.groupHook != nil {
			s.groupHook(len(group))
		}
		s.commitGroup(ctx, group)
	}
}

// commitGroup runs a group of writes in one transaction and hands each
// its result. If the transaction fails because the connection was lost, it
// runs the group once more (on PostgreSQL, on a new connection): all of it
// if the COMMIT was not sent, its appends only if the outcome of the COMMIT
// is unknown (they are idempotent; the other writes fail with that error).
// If the database is unavailable, every write of the group fails with the
// error; if the transaction failed otherwise and the group has several
// writes, it runs them again one by one.
func (s *Store) commitGroup(ctx context.Context, group []*request) {
	gctx, cancel := groupContext(ctx, group)
	defer cancel()
	head, err := s.runGroup(gctx, group)
	if err != nil && gctx.Err() == nil && s.isUnavailable(err) {
		unknown := unknownOutcome(err)
		if unknown {
			again := make([]*request, 0, len(group))
			for _, r := range group {
				if r.idempotent {
					again = append(again, r)
				} else {
					r.done <- err
				}
			}
			if group = again; len(group) == 0 {
				return
			}
		}
		s.cfg.logger.DebugContext(ctx, "sqlstore: a group of writes lost its connection; running it again",
			"writes", len(group), "error", err)
		head, err = s.runGroup(gctx, group)
		if err != nil && unknown && !unknownOutcome(err) {
			err = &unknownOutcomeError{Err: err} // the first attempt may have committed
		}
	}
	switch {
	case err != nil && s.isUnavailable(err):
		for _, r := range group {
			r.err = err
		}
	case err != nil && len(group) > 1:
		for _, r := range group {
			s.commitGroup(ctx, []*request{r})
		}
		return
	case err != nil:
		group[0].err = err
	default:
		s.advance(head)
	}
	for _, r := range group {
		r.done <- r.err
	}
}

// runGroup runs a group of writes in one transaction. It returns the
// position of the last event written, and the transaction's error; each
// write's own answer is in its err.
func (s *Store) runGroup(gctx context.Context, group []*request) (uint64, error) {
	var head uint64
	err := s.db.Write(gctx, func(tx querier) error {
		head = 0
		g := &groupTx{querier: tx}
		if len(group) > 1 {
			if err := s.prefetch(gctx, g, group); err != nil {
				return err
			}
		}
		for _, r := range group {
			if err := r.ctx.Err(); err != nil {
				r.err = err
				continue
			}
			h, err := r.run(gctx, g)
			if err != nil && !isDecision(err) {
				return err
			}
			r.err = err
			head = max(head, h)
		}
		if head == 0 {
			return nil
		}
		return tx.ExecAll(gctx, s.db.Notify(head))
	})
	return head, err
}

// groupContext returns the context of a group's transaction: it ends when
// the store closes, when every caller in the group has left, or at the
// latest deadline of the callers if they all have one.
func groupContext(ctx context.Context, group []*request) (context.Context, context.CancelFunc) {
	var (
		deadline time.Time
		bounded  = true
	)
	for _, r := range group {
		d, ok := r.ctx.Deadline()
		bounded = bounded && ok
		if d.After(deadline) {
			deadline = d
		}
	}
	gctx, cancel := context.WithCancel(ctx)
	end := func() {}
	if bounded {
		gctx, end = context.WithDeadline(gctx, deadline)
	}
	var left atomic.Int32
	stops := make([]func() bool, len(group))
	for i, r := range group {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if int(left.Add(1)) == len(group) {
				cancel()
			}
		})
	}
	return gctx, func() {
		for _, stop := range stops {
			stop()
		}
		end()
		cancel()
	}
}

// isDecision reports whether err is a write's own answer (its checks
// failed), which leaves the group's transaction usable, rather than an
// error of the database.
func isDecision(err error) bool {
	return errors.Is(err, es.ErrWrongExpectedVersion) || errors.Is(err, es.ErrStreamDeleted) ||
		errors.Is(err, es.ErrStreamNotFound) || errors.Is(err, es.ErrInvalidArgument)
}

// groupTx is the transaction of a group of writes, with what the group
// knows of the log: each write reads the state it decides on through it.
type groupTx struct {
	querier
	// next is the position of the next event written; 0 until known.
	next uint64
	// known holds the states of streams read up front for the group's
	// writes, by stream; a write's stream state is taken from it (once)
	// unless an earlier write of the group changed the stream.
	known map[string]knownStream
}

// knownStream is a stream's state, as loadForWrite reads it, for a write
// that holds id.
type knownStream struct {
	id         uuid.UUID
	idRev      sql.NullInt64
	last       sql.NullInt64
	tombstoned sql.NullBool
	meta       sql.NullString
}

// wrote records a write's effects: the next position, and the streams
// whose state it changed, which later writes must read again.
func (g *groupTx) wrote(w *write) {
	g.next = w.next
	for _, name := range w.touched {
		delete(g.known, name)
	}
}

// prefetch reads, in one query, the head of the log and the states of the
// streams that the group's writes read first, where the database can
// (PostgreSQL: it saves a round trip per write; SQLite reads in process).
func (s *Store) prefetch(ctx context.Context, g *groupTx, group []*request) error {
	names, ids := make([]string, 0, len(group)), make([]uuid.UUID, 0, len(group))
	for _, r := range group {
		names, ids = append(names, r.stream), append(ids, r.id)
	}
	return s.prefetchStreams(ctx, g, names, ids)
}

// prefetchStreams reads, in one query where the database can, the head of
// the log and the states of the streams names, each with the revision at
// which it holds the ID of the same index, into what g knows. A stream
// that g knows already keeps what g knows of it.
func (s *Store) prefetchStreams(ctx context.Context, g *groupTx, names []string, ids []uuid.UUID) error {
	query := s.db.Prefetch()
	if query == "" {
		return nil
	}
	idStrings := make([]string, len(ids))
	for i, id := range ids {
		idStrings[i] = id.String()
	}
	rs, err := g.Query(ctx, query, names, idStrings)
	if err != nil {
		return err
	}
	defer rs.Close()
	if g.known == nil {
		g.known = make(map[string]knownStream, len(names))
	}
	var head int64
	for rs.Next() {
		var (
			name string
			k    knownStream
		)
		if err := rs.Scan(&head, &name, &k.id, &k.idRev, &k.last, &k.tombstoned, &k.meta); err != nil {
			return err
		}
		if _, ok := g.known[name]; !ok { // the first write of a stream reads it first
			g.known[name] = k
		}
	}
	if err := rs.Err(); err != nil {
		return err
	}
	g.next = uint64(head) + 1
	return nil
}
