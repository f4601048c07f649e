package esdbcore

import (
	"context"
	"errors"
	"io"
	"iter"
	"math"

	"github.com/eventfold/eventfold/es"
)

// Reader is a client's read, as a Driver's package adapts it.
type Reader interface {
	// Recv returns the next event, nil for one to skip (a link to a
	// deleted event), or io.EOF at the end.
	Recv() (*es.RecordedEvent, error)
	Close()
}

// Count converts a read limit: 0 means no limit.
func Count(limit uint64) uint64 {
	if limit == 0 {
		return math.MaxInt64
	}
	return limit
}

// Read yields the events of a client read until its end. Opening the read
// is bounded by the call timeout; the read then runs with ctx.
func (s *Core[C]) Read(ctx context.Context, stream string, open func(context.Context, C) (Reader, error)) iter.Seq2[es.RecordedEvent, error] {
	return func(yield func(es.RecordedEvent, error) bool) {
		readCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		waitCtx, cancelWait := s.Bound(readCtx)
		var rs Reader
		release, err := s.Call(ctx, waitCtx, readCtx, stream, true, func(ctx context.Context, cl C) (func(), error) {
			r, err := open(ctx, cl)
			if err != nil {
				return nil, err
			}
			rs = r
			return r.Close, nil
		})
		cancelWait()
		if err != nil {
			yield(es.RecordedEvent{}, s.MapError(ctx, stream, es.Any, err))
			return
		}
		var recvErr error
		defer func() { release(recvErr) }()
		defer rs.Close()
		for {
			ev, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				recvErr = err
				yield(es.RecordedEvent{}, s.MapError(ctx, stream, es.Any, err))
				return
			}
			if ev == nil {
				continue
			}
			if !yield(*ev, nil) {
				return
			}
		}
	}
}

// CurrentState reports a stream's last revision and position, for an
// empty append, whose result the clients cannot tell from revision 1.
func (s *Core[C]) CurrentState(ctx context.Context, store es.Store, stream string) (es.AppendResult, error) {
	ev, ok, err := es.LastEvent(ctx, store, stream)
	if err != nil {
		return es.AppendResult{}, err
	}
	if ok {
		return es.AppendResult{Revision: ev.Revision, Position: ev.Position}, nil
	}
	last, ok := s.LastRevision(ctx, stream)
	if !ok {
		return es.AppendResult{NoStream: true}, nil
	}
	return es.AppendResult{Revision: last}, nil
}
