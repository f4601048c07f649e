package kurrentdb

import (
	"errors"

	"github.com/eventfold/eventfold/es"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

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
