package bus

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/components/cqrs"

	"github.com/eventfold/eventfold/es"
)

// HandleEvent registers fn as a handler of the events of type E, a type of
// the bus's event registry, in the handler group named group. A group
// receives the events in the order the relay published them (on a
// transport that keeps order), each once (one consumer on the events topic,
// named after the group: keep the name stable); events of types it has no handler for are acknowledged and
// skipped. Within a group, an event type has one handler
// ([ErrDuplicateHandler]); different groups receive every event each.
//
// fn's context is [es.CausedBy] the event, so that the commands fn sends
// carry the chain's correlation ID and the event's ID as causation, and
// [EventFromContext] returns the event as stored. Delivery is
// at-least-once: make fn idempotent, for example with [Idempotent].
// A failing fn is retried, then its event goes to the poison queue or is
// dropped.
func HandleEvent[E any](b *Bus, group string, fn func(ctx context.Context, e E) error) error {
	if fn == nil {
		return fmt.Errorf("%w: nil handler", ErrInvalidOption)
	}
	if !validName(group) {
		return fmt.Errorf("%w: event handler group %q: want letters, digits, '-' and '_'", ErrInvalidOption, group)
	}
	name, err := typeName[E](b.events, "event")
	if err != nil {
		return err
	}
	h := cqrs.NewGroupEventHandler(func(ctx context.Context, e *E) error { return fn(ctx, *e) })
	return b.register(func() error {
		if b.grouped[group][name] {
			return fmt.Errorf("%w: event %q already has a handler in group %q", ErrDuplicateHandler, name, group)
		}
		if b.grouped[group] == nil {
			b.grouped[group] = make(map[string]bool)
			b.groupSeq = append(b.groupSeq, group)
		}
		b.grouped[group][name] = true
		b.groups[group] = append(b.groups[group], h)
		return nil
	})
}

type eventKey struct{}

// EventFromContext returns the stored event that an event handler's
// context was made for.
func EventFromContext(ctx context.Context) (es.RecordedEvent, bool) {
	e, ok := ctx.Value(eventKey{}).(es.RecordedEvent)
	return e, ok
}

// onEvent gives an event handler its context: caused by the event.
func (b *Bus) onEvent(p cqrs.EventGroupProcessorOnHandleParams) error {
	rec := recordFromMessage(p.Message)
	ctx := context.WithValue(es.CausedBy(p.Message.Context(), rec), eventKey{}, rec)
	return p.Handler.Handle(ctx, p.Event)
}

// validName reports whether s is a non-empty name of letters, digits, '-'
// and '_', safe in the topic, queue and consumer names of every transport.
func validName(s string) bool {
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return s != ""
}

// consumerName returns prefix+name with the characters of name that are
// not letters, digits, '-' or '_' replaced by '_': consumer names become
// queue, durable and consumer-group names on brokers.
func consumerName(prefix, name string) string {
	out := []byte(prefix)
	for _, r := range name {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			out = append(out, byte(r))
		} else {
			out = append(out, '_')
		}
	}
	return string(out)
}
