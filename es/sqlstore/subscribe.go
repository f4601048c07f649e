package sqlstore

import (
	"context"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
)

// SubscribeAll implements [es.Store]. It reads `$all` in batches after
// opts.From, then waits for new events: those appended through this Store
// wake it at once, others when the database notifies or the poll finds them
// (see [WithPollInterval]). A filter is applied in this process. No
// connection is held while the loop body runs or while the subscription
// waits. After [Store.Close], the subscription ends with [ErrClosed].
func (s *Store) SubscribeAll(ctx context.Context, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	return esdriver.SubscribeAll(ctx, feed{s}, opts)
}

// SubscribeStream implements [es.Store], in the way of [Store.SubscribeAll].
// The stream's metadata is enforced on the events delivered.
func (s *Store) SubscribeStream(ctx context.Context, name string, opts es.SubscribeStreamOptions) iter.Seq2[es.Message, error] {
	return esdriver.SubscribeStream(ctx, feed{s}, name, opts)
}

// feed is the store's log as the subscription loops of esdriver read it.
// Close fires the signal, and the next read fails with ErrClosed.
type feed struct{ s *Store }

var _ esdriver.Log = feed{}

func (f feed) Changed() <-chan struct{} { return f.s.sig.wait() }

func (f feed) Now() time.Time { return f.s.cfg.now() }

func (f feed) Head(ctx context.Context) (es.Position, error) {
	if err := f.s.usable(ctx); err != nil {
		return es.Position{}, err
	}
	h, err := f.s.queryHead(ctx)
	if err != nil {
		return es.Position{}, f.s.opError(ctx, "subscribe to $all", err)
	}
	return es.Position{Commit: h, Prepare: h}, nil
}

func (f feed) ReadAllAfter(ctx context.Context, after es.Position) ([]es.RecordedEvent, bool, error) {
	if err := f.s.usable(ctx); err != nil {
		return nil, false, err
	}
	batch, err := f.s.fetch(ctx, f.s.q.allAfter, i64(after.Commit), int64(batchSize))
	if err != nil {
		return nil, false, f.s.opError(ctx, "subscribe to $all", err)
	}
	return batch, len(batch) == batchSize, nil
}

// ReadStreamFrom reads the stream's state first, then its events up to the
// last revision the state reports, so that the metadata applied is at
// least as new as the events.
func (f feed) ReadStreamFrom(ctx context.Context, name string, from uint64) (esdriver.StreamPage, bool, error) {
	s := f.s
	if err := s.usable(ctx); err != nil {
		return esdriver.StreamPage{}, false, err
	}
	st, err := s.loadStream(ctx, s.reader(), name)
	p := esdriver.StreamPage{Stream: st.driver()}
	if err != nil || !(st.tombstoned || (st.last >= 0 && from <= uint64(st.last))) {
		return p, false, f.streamError(ctx, name, err)
	}
	upTo := st.last
	if st.tombstoned {
		upTo = math.MaxInt64 // the tombstone record too
	}
	batch, err := s.fetch(ctx, s.q.streamForwards, name, i64(from), upTo, int64(batchSize))
	if err != nil {
		return p, false, f.streamError(ctx, name, err)
	}
	more := len(batch) == batchSize
	if n := len(batch); n > 0 && batch[n-1].Revision == esdriver.TombstoneRevision {
		p.Tombstone, batch, more = &batch[n-1], batch[:n-1], false
	}
	p.Events = batch
	return p, more, nil
}

func (f feed) streamError(ctx context.Context, name string, err error) error {
	if err == nil {
		return nil
	}
	return f.s.opError(ctx, fmt.Sprintf("subscribe to stream %q", name), err)
}
