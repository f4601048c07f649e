package memstore_test

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/estest"
	"github.com/eventfold/eventfold/es/memstore"
)

func TestConformance(t *testing.T) {
	estest.Run(t, func(*testing.T) es.Store { return memstore.MustNew() })
}

// TestConformanceShared runs the suite on one store shared by every subtest,
// which never sees a fresh store.
func TestConformanceShared(t *testing.T) {
	store := memstore.MustNew()
	estest.Run(t, func(*testing.T) es.Store { return store })
}

// TestConformanceBusy runs the suite on one shared store that looks like a
// busy server: every append is preceded by another program's event (a user
// or a system event), and positions have gaps, with commit ≠ prepare. It
// checks that the suite assumes nothing that only a quiet, fresh memstore
// guarantees.
func TestConformanceBusy(t *testing.T) {
	store := &busyStore{Store: memstore.MustNew()}
	estest.Run(t, func(*testing.T) es.Store { return store })
}

// busyStore wraps a Store: it writes an unrelated event before every append,
// and maps positions C to (10C+7, 10C+3).
type busyStore struct {
	es.Store
	n atomic.Uint64
}

func skew(p es.Position) es.Position {
	if p == es.Start || p == es.End {
		return p
	}
	return es.Position{Commit: 10*p.Commit + 7, Prepare: 10*p.Prepare + 3}
}

func unskew(p es.Position) es.Position {
	if p == es.Start || p == es.End {
		return p
	}
	return es.Position{Commit: p.Commit / 10, Prepare: p.Prepare / 10}
}

func skewEvent(ev es.RecordedEvent) es.RecordedEvent {
	ev.Position = skew(ev.Position)
	return ev
}

func (s *busyStore) Append(ctx context.Context, stream string, expected es.ExpectedRevision, events ...es.EventData) (es.AppendResult, error) {
	n := s.n.Add(1)
	typ := "Noise"
	if n%2 == 0 {
		typ = "$noise"
	}
	if _, err := s.Store.Append(ctx, fmt.Sprintf("noise-%d", n%7), es.Any, es.EventData{ID: uuid.New(), Type: typ}); err != nil {
		return es.AppendResult{}, err
	}
	res, err := s.Store.Append(ctx, stream, expected, events...)
	res.Position = skew(res.Position)
	return res, err
}

func (s *busyStore) DeleteStream(ctx context.Context, stream string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	res, err := s.Store.DeleteStream(ctx, stream, expected)
	res.Position = skew(res.Position)
	return res, err
}

func (s *busyStore) TombstoneStream(ctx context.Context, stream string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	res, err := s.Store.TombstoneStream(ctx, stream, expected)
	res.Position = skew(res.Position)
	return res, err
}

func (s *busyStore) ReadStream(ctx context.Context, stream string, opts es.ReadStreamOptions) iter.Seq2[es.RecordedEvent, error] {
	return skewEvents(s.Store.ReadStream(ctx, stream, opts))
}

func (s *busyStore) ReadAll(ctx context.Context, opts es.ReadAllOptions) iter.Seq2[es.RecordedEvent, error] {
	opts.From = unskew(opts.From)
	return skewEvents(s.Store.ReadAll(ctx, opts))
}

func (s *busyStore) SubscribeStream(ctx context.Context, stream string, opts es.SubscribeStreamOptions) iter.Seq2[es.Message, error] {
	return skewMessages(s.Store.SubscribeStream(ctx, stream, opts))
}

func (s *busyStore) SubscribeAll(ctx context.Context, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	opts.From = unskew(opts.From)
	return skewMessages(s.Store.SubscribeAll(ctx, opts))
}

func skewEvents(seq iter.Seq2[es.RecordedEvent, error]) iter.Seq2[es.RecordedEvent, error] {
	return func(yield func(es.RecordedEvent, error) bool) {
		for ev, err := range seq {
			if !yield(skewEvent(ev), err) {
				return
			}
		}
	}
}

func skewMessages(seq iter.Seq2[es.Message, error]) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		for msg, err := range seq {
			msg.Event, msg.Position = skewEvent(msg.Event), skew(msg.Position)
			if !yield(msg, err) {
				return
			}
		}
	}
}
