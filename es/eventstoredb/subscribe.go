package eventstoredb

import (
	"errors"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/eventfold/eventfold/es"
)

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
