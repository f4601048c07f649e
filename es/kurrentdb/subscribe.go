package kurrentdb

import (
	"context"
	"errors"
	"iter"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
	"github.com/eventfold/eventfold/es/internal/esdbcore"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

// SubscribeAll implements [es.Store]. Filters run on the server, which also
// sends the checkpoints.
func (s *Store) SubscribeAll(ctx context.Context, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		if _, err := esdriver.Matcher(opts.Filter); err != nil {
			yield(es.Message{}, err)
			return
		}
		o := kurrentdb.SubscribeToAllOptions{}
		if f := opts.Filter; f != nil {
			o.Filter = &kurrentdb.SubscriptionFilter{Type: kurrentdb.EventFilterType, Prefixes: f.Prefixes, Regex: f.Regex}
			if f.On == es.FilterStreamName {
				o.Filter.Type = kurrentdb.StreamFilterType
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
		s.core.Subscribe(ctx, "$all", yield, func(ctx context.Context, cl *kurrentdb.Client) (esdbcore.Subscription, error) {
			o.From = toAllPosition(after)
			sub, err := cl.SubscribeToAll(ctx, o)
			return &subscription{sub: sub}, err
		}, func(m es.Message) {
			if m.Kind == es.KindEvent || (m.Kind != es.KindEvent && m.Position.Compare(after) > 0) {
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
		var from kurrentdb.StreamPosition = kurrentdb.Start{}
		if rev, ok := opts.From.Revision(); ok {
			from = kurrentdb.Revision(rev)
		} else if opts.From.IsEnd() {
			if last, ok := s.core.LastRevision(ctx, stream); ok {
				from = kurrentdb.Revision(last)
			}
		}
		s.core.Subscribe(ctx, stream, yield, func(ctx context.Context, cl *kurrentdb.Client) (esdbcore.Subscription, error) {
			sub, err := cl.SubscribeToStream(ctx, stream, kurrentdb.SubscribeToStreamOptions{From: from})
			return &subscription{sub: sub}, err
		}, func(m es.Message) {
			if m.Kind == es.KindEvent {
				from = kurrentdb.Revision(m.Event.Revision)
			}
		})
	}
}

// subscription adapts a client subscription.
//
// The client reports the server's caught-up and fell-behind messages with
// their details only when the server sends a timestamp (KurrentDB 25.0 and
// later); from older servers both come as an empty event. The server sends
// them in turn, caught-up first, so an empty event is taken as caught-up
// when the subscription is catching up, and as fell-behind when it is live.
type subscription struct {
	sub  *kurrentdb.Subscription
	live bool
}

func (x *subscription) Recv() (es.Message, bool, error) {
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
		x.live = true
		m := es.Message{Kind: es.KindCaughtUp}
		if p := ev.CaughtUp.Position; p != nil {
			m.Position = fromPosition(*p)
		}
		return m, true, nil
	case ev.FellBehind != nil:
		x.live = false
	case ev.SubscriptionDropped != nil:
		if err := ev.SubscriptionDropped.Error; err != nil {
			return es.Message{}, false, err
		}
		return es.Message{}, false, errors.New("subscription dropped")
	case ev.EventAppeared == nil && !x.live:
		x.live = true
		return es.Message{Kind: es.KindCaughtUp}, true, nil
	default:
		x.live = false
	}
	return es.Message{}, false, nil // fell behind: nothing for the consumer
}

func (x *subscription) Close() { _ = x.sub.Close() }
