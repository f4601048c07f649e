package eventstoredb

import (
	"context"
	"errors"
	"iter"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
	"github.com/eventfold/eventfold/es/internal/esdbcore"
)

// SubscribeAll implements [es.Store]. Filters run on the server, which also
// sends the checkpoints.
func (s *Store) SubscribeAll(ctx context.Context, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		if _, err := esdriver.Matcher(opts.Filter); err != nil {
			yield(es.Message{}, err)
			return
		}
		o := esdb.SubscribeToAllOptions{}
		if f := opts.Filter; f != nil {
			o.Filter = &esdb.SubscriptionFilter{Type: esdb.EventFilterType, Prefixes: f.Prefixes, Regex: f.Regex}
			if f.On == es.FilterStreamName {
				o.Filter.Type = esdb.StreamFilterType
			}
			// A checkpoint every window × multiplier events scanned.
			o.MaxSearchWindow, o.CheckpointInterval = int(esdriver.CheckpointInterval(f)), 1
		}
		after := opts.From
		if after == es.End {
			// Resolve "the end" now: a resubscription must start where this
			// subscription started, not at a later end.
			head, err := s.head(ctx)
			if err != nil {
				yield(es.Message{}, err)
				return
			}
			after = head
		}
		s.core.Subscribe(ctx, "$all", yield, func(ctx context.Context, cl *esdb.Client) (esdbcore.Subscription, error) {
			o.From = toAllPosition(after)
			sub, err := cl.SubscribeToAll(ctx, o)
			return subscription{sub}, err
		}, func(m es.Message) {
			if m.Kind == es.KindEvent || (m.Kind == es.KindCheckpoint && m.Position.Compare(after) > 0) {
				after = m.Position
			}
		})
	}
}

// head returns the position of the last event of `$all`, or es.Start.
func (s *Store) head(ctx context.Context) (es.Position, error) {
	ev, ok, err := es.Head(ctx, s)
	if err != nil || !ok {
		return es.Start, err
	}
	return ev.Position, nil
}

// SubscribeStream implements [es.Store].
func (s *Store) SubscribeStream(ctx context.Context, stream string, opts es.SubscribeStreamOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		if err := es.ValidateStreamName(stream); err != nil {
			yield(es.Message{}, err)
			return
		}
		var from esdb.StreamPosition = esdb.Start{}
		if rev, ok := opts.From.Revision(); ok {
			from = esdb.Revision(rev)
		} else if opts.From.IsEnd() {
			if last, ok := s.core.LastRevision(ctx, stream); ok {
				from = esdb.Revision(last)
			}
		}
		s.core.Subscribe(ctx, stream, yield, func(ctx context.Context, cl *esdb.Client) (esdbcore.Subscription, error) {
			sub, err := cl.SubscribeToStream(ctx, stream, esdb.SubscribeToStreamOptions{From: from})
			return subscription{sub}, err
		}, func(m es.Message) {
			if m.Kind == es.KindEvent {
				from = esdb.Revision(m.Event.Revision)
			}
		})
	}
}

// subscription adapts a client subscription.
type subscription struct{ sub *esdb.Subscription }

func (x subscription) Recv() (es.Message, bool, error) {
	ev := x.sub.Recv()
	switch {
	case ev.EventAppeared != nil:
		if ev.EventAppeared.Event == nil {
			return es.Message{}, false, nil // a link to a deleted event
		}
		m := es.Message{Kind: es.KindEvent, Event: fromRecorded(ev.EventAppeared.Event)}
		m.Position = m.Event.Position
		return m, true, nil
	case ev.CheckPointReached != nil:
		return es.Message{Kind: es.KindCheckpoint, Position: fromPosition(*ev.CheckPointReached)}, true, nil
	case ev.CaughtUp != nil:
		return es.Message{Kind: es.KindCaughtUp}, true, nil
	case ev.SubscriptionDropped != nil:
		if err := ev.SubscriptionDropped.Error; err != nil {
			return es.Message{}, false, err
		}
		return es.Message{}, false, errors.New("subscription dropped")
	}
	return es.Message{}, false, nil // fell behind: nothing for the consumer
}

func (x subscription) Close() { _ = x.sub.Close() }
