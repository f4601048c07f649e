package sqlstore

import (
	"context"
	"fmt"
	"iter"
	"math"

	"github.com/eventfold/eventfold/es"
)

// waitChange waits until changed is closed, and returns the error that
// ends the subscription if ctx is done or the store closed first.
func (s *Store) waitChange(ctx context.Context, changed <-chan struct{}) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrClosed
	case <-changed:
		return nil
	}
}

// SubscribeAll implements [es.Store]. It reads `$all` in batches after
// opts.From, then waits for new events: those appended through this Store
// wake it at once, others when the database notifies or the poll finds them
// (see [WithPollInterval]). A filter is applied in this process. No
// connection is held while the loop body runs or while the subscription
// waits. After [Store.Close], the subscription ends with [ErrClosed].
func (s *Store) SubscribeAll(ctx context.Context, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		match, err := opts.Filter.Matcher()
		if err != nil {
			yield(es.Message{}, err)
			return
		}
		if err := s.usable(ctx); err != nil {
			yield(es.Message{}, err)
			return
		}
		const op = "subscribe to $all"
		var interval uint64
		if opts.Filter != nil {
			interval = uint64(opts.Filter.Interval())
		}
		after, checkpoint := opts.From.Commit, opts.From
		if opts.From == es.End {
			h, err := s.queryHead(ctx)
			if err != nil {
				yield(es.Message{}, s.opError(ctx, op, err))
				return
			}
			after, checkpoint = h, es.Position{Commit: h, Prepare: h}
		}

		var scanned uint64
		caughtUp := false
		for {
			if err := s.usable(ctx); err != nil {
				yield(es.Message{}, err)
				return
			}
			changed := s.sig.wait()
			batch, err := s.fetch(ctx, s.q.allAfter, i64(after), int64(batchSize))
			if err != nil {
				yield(es.Message{}, s.opError(ctx, op, err))
				return
			}
			for _, ev := range batch {
				after = ev.Position.Commit
				scanned++
				checkpoint = ev.Position
				if match(ev) && !yield(es.Message{Kind: es.KindEvent, Event: ev, Position: ev.Position}, nil) {
					return
				}
				if interval > 0 && scanned%interval == 0 && !yield(es.Message{Kind: es.KindCheckpoint, Position: ev.Position}, nil) {
					return
				}
			}
			if len(batch) == batchSize && after < math.MaxInt64 {
				continue // there may be more
			}
			if !caughtUp {
				caughtUp = true
				if interval > 0 && !yield(es.Message{Kind: es.KindCheckpoint, Position: checkpoint}, nil) {
					return
				}
				if !yield(es.Message{Kind: es.KindCaughtUp}, nil) {
					return
				}
			}
			if err := s.waitChange(ctx, changed); err != nil {
				yield(es.Message{}, err)
				return
			}
		}
	}
}

// SubscribeStream implements [es.Store], in the way of [Store.SubscribeAll].
// The stream's metadata is enforced on the events delivered.
func (s *Store) SubscribeStream(ctx context.Context, name string, opts es.SubscribeStreamOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		if err := es.ValidateStreamName(name); err != nil {
			yield(es.Message{}, err)
			return
		}
		if err := s.usable(ctx); err != nil {
			yield(es.Message{}, err)
			return
		}
		op := func() string { return fmt.Sprintf("subscribe to stream %q", name) }
		st, err := s.loadStream(ctx, s.reader(), name)
		if err != nil {
			yield(es.Message{}, s.opError(ctx, op(), err))
			return
		}
		if st.tombstoned {
			yield(es.Message{}, es.StreamDeleted(name))
			return
		}
		next := uint64(0)
		if rev, ok := opts.From.Revision(); ok {
			next = rev + 1
		} else if opts.From.IsEnd() {
			next = uint64(st.last + 1)
		}

		caughtUp := false
		for {
			if err := s.usable(ctx); err != nil {
				yield(es.Message{}, err)
				return
			}
			changed := s.sig.wait()
			// The stream's state first, then its events up to the last
			// revision it reports, so that the metadata applied is at least
			// as new as the events.
			st, err := s.loadStream(ctx, s.reader(), name)
			var batch []es.RecordedEvent
			if err == nil && (st.tombstoned || (st.last >= 0 && next <= uint64(st.last))) {
				upTo := st.last
				if st.tombstoned {
					upTo = math.MaxInt64 // the tombstone record too
				}
				batch, err = s.fetch(ctx, s.q.streamForwards, name, i64(next), upTo, int64(batchSize))
			}
			if err != nil {
				yield(es.Message{}, s.opError(ctx, op(), err))
				return
			}
			now := s.cfg.now()
			more := len(batch) == batchSize
			for _, ev := range batch {
				if ev.Revision == es.TombstoneRevision {
					if next > uint64(st.last+1) {
						// Like es/memstore: a subscription that starts
						// after the end never reaches the tombstone.
						// (One that is behind reaches it: the events it
						// has not seen may have been scavenged.)
						more = false
						break
					}
					if yield(es.Message{Kind: es.KindEvent, Event: ev, Position: ev.Position}, nil) {
						yield(es.Message{}, es.StreamDeleted(name))
					}
					return
				}
				next = ev.Revision + 1
				if st.meta.Retains(ev.Revision, uint64(st.last), ev.Created, now) &&
					!yield(es.Message{Kind: es.KindEvent, Event: ev, Position: ev.Position}, nil) {
					return
				}
			}
			if more {
				continue
			}
			if !caughtUp {
				caughtUp = true
				if !yield(es.Message{Kind: es.KindCaughtUp}, nil) {
					return
				}
			}
			if err := s.waitChange(ctx, changed); err != nil {
				yield(es.Message{}, err)
				return
			}
		}
	}
}
