package esdbcore

import (
	"context"
	"iter"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
)

// Ops are a client's calls, converted to and from es's types by the
// client's package. The Core runs them on its client, with its timeouts,
// error mapping and resubscription.
type Ops[C any] struct {
	// Append appends events (none for a probe of the stream's revision)
	// and converts the client's result.
	Append func(ctx context.Context, c C, stream string, expected es.ExpectedRevision, events []es.EventData) (es.AppendResult, error)
	// Delete soft-deletes a stream, or tombstones it.
	Delete func(ctx context.Context, c C, stream string, expected es.ExpectedRevision, tombstone bool) (es.Position, error)
	// ReadStream and ReadAll open reads; limit 0 is Count's "no limit".
	ReadStream func(ctx context.Context, c C, stream string, opts es.ReadStreamOptions) (Reader, error)
	ReadAll    func(ctx context.Context, c C, opts es.ReadAllOptions) (Reader, error)
	// SubscribeAll subscribes to `$all` after a position (es.Start: from
	// the beginning), with a server-side filter checkpointing every
	// checkpointInterval events scanned.
	SubscribeAll func(ctx context.Context, c C, after es.Position, filter *es.Filter, checkpointInterval uint32) (Subscription, error)
	// SubscribeStream subscribes to a stream after a revision, or from its
	// start when after is nil.
	SubscribeStream func(ctx context.Context, c C, stream string, after *uint64) (Subscription, error)
}

var _ es.Store = (*Core[any])(nil)

// Append implements [es.Store].
func (s *Core[C]) Append(ctx context.Context, stream string, expected es.ExpectedRevision, events ...es.EventData) (es.AppendResult, error) {
	evs, err := esdriver.PrepareAppend(stream, events, es.MaxAppendSize)
	if err != nil {
		return es.AppendResult{}, err
	}
	var res es.AppendResult
	err = s.Unary(ctx, stream, func(ctx context.Context, cl C) (err error) {
		res, err = s.d.Ops.Append(ctx, cl, stream, expected, evs)
		return err
	})
	if err != nil {
		return es.AppendResult{}, s.MapError(ctx, stream, expected, err)
	}
	if len(evs) == 0 {
		// The clients cannot tell "no stream" from revision 1 in an empty
		// append's result: ask the stream itself.
		return s.CurrentState(ctx, s, stream)
	}
	return res, nil
}

// DeleteStream implements [es.Store].
func (s *Core[C]) DeleteStream(ctx context.Context, stream string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	return s.delete(ctx, stream, expected, false)
}

// TombstoneStream implements [es.Store].
func (s *Core[C]) TombstoneStream(ctx context.Context, stream string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	return s.delete(ctx, stream, expected, true)
}

func (s *Core[C]) delete(ctx context.Context, stream string, expected es.ExpectedRevision, tombstone bool) (es.DeleteResult, error) {
	if err := es.ValidateStreamName(stream); err != nil {
		return es.DeleteResult{}, err
	}
	var pos es.Position
	err := s.Unary(ctx, stream, func(ctx context.Context, cl C) (err error) {
		pos, err = s.d.Ops.Delete(ctx, cl, stream, expected, tombstone)
		return err
	})
	if err != nil {
		return es.DeleteResult{}, s.MapError(ctx, stream, expected, err)
	}
	return es.DeleteResult{Position: pos}, nil
}

// ReadStream implements [es.Store].
func (s *Core[C]) ReadStream(ctx context.Context, stream string, opts es.ReadStreamOptions) iter.Seq2[es.RecordedEvent, error] {
	if err := es.ValidateStreamName(stream); err != nil {
		return func(yield func(es.RecordedEvent, error) bool) { yield(es.RecordedEvent{}, err) }
	}
	return s.Read(ctx, stream, func(ctx context.Context, cl C) (Reader, error) {
		return s.d.Ops.ReadStream(ctx, cl, stream, opts)
	})
}

// ReadAll implements [es.Store].
func (s *Core[C]) ReadAll(ctx context.Context, opts es.ReadAllOptions) iter.Seq2[es.RecordedEvent, error] {
	return s.Read(ctx, "$all", func(ctx context.Context, cl C) (Reader, error) {
		return s.d.Ops.ReadAll(ctx, cl, opts)
	})
}

// SubscribeAll implements [es.Store]. Filters run on the server, which
// also sends the checkpoints. A resubscription resumes after the last
// event, checkpoint or caught-up position delivered.
func (s *Core[C]) SubscribeAll(ctx context.Context, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		if _, err := esdriver.Matcher(opts.Filter); err != nil {
			yield(es.Message{}, err)
			return
		}
		var interval uint32
		if opts.Filter != nil {
			// A checkpoint every window × multiplier events scanned.
			interval = esdriver.CheckpointInterval(opts.Filter)
		}
		after := opts.From
		if after == es.End {
			// Resolve "the end" now: a resubscription must start where this
			// subscription started, not at a later end.
			ev, ok, err := es.Head(ctx, s)
			if err != nil {
				yield(es.Message{}, err)
				return
			}
			after = es.Start
			if ok {
				after = ev.Position
			}
		}
		s.Subscribe(ctx, "$all", yield, func(ctx context.Context, cl C) (Subscription, error) {
			return s.d.Ops.SubscribeAll(ctx, cl, after, opts.Filter, interval)
		}, func(m es.Message) {
			if m.Kind == es.KindEvent || m.Position.Compare(after) > 0 {
				after = m.Position
			}
		})
	}
}

// SubscribeStream implements [es.Store].
func (s *Core[C]) SubscribeStream(ctx context.Context, stream string, opts es.SubscribeStreamOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		if err := es.ValidateStreamName(stream); err != nil {
			yield(es.Message{}, err)
			return
		}
		var after *uint64
		if rev, ok := opts.From.Revision(); ok {
			after = &rev
		} else if opts.From.IsEnd() {
			if last, ok := s.LastRevision(ctx, stream); ok {
				after = &last
			}
		}
		s.Subscribe(ctx, stream, yield, func(ctx context.Context, cl C) (Subscription, error) {
			return s.d.Ops.SubscribeStream(ctx, cl, stream, after)
		}, func(m es.Message) {
			if m.Kind == es.KindEvent {
				rev := m.Event.Revision
				after = &rev
			}
		})
	}
}
