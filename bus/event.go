package bus

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

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
	want := reflect.TypeFor[E]()
	h := func(ctx context.Context, msg *message.Message, v any) error {
		e, ok := v.(E)
		if !ok {
			return &decodeError{fmt.Errorf("%q decodes to %T, not %v", msg.Metadata.Get(MetadataType), v, want)}
		}
		return fn(ctx, e)
	}
	return b.register(func() error {
		if b.groups[group][name] != nil {
			return fmt.Errorf("%w: event %q already has a handler in group %q", ErrDuplicateHandler, name, group)
		}
		if b.groups[group] == nil {
			b.groups[group] = make(map[string]eventHandler)
			b.groupSeq = append(b.groupSeq, group)
		}
		b.groups[group][name] = h
		return nil
	})
}

// eventHandler calls a typed event handler with v, the event msg carries,
// decoded.
type eventHandler func(ctx context.Context, msg *message.Message, v any) error

// groupHandler returns the router's handler of an event handler group:
// it decodes each event whose type (after upcasting) has a handler in the
// group, and acknowledges the others.
func (b *Bus) groupHandler(handlers map[string]eventHandler) message.NoPublishHandlerFunc {
	m := marshaler{types: b.events, upcast: true}
	return func(msg *message.Message) error {
		h := handlers[m.NameFromMessage(msg)]
		if h == nil {
			return nil
		}
		v, err := b.events.Decode(m.record(msg))
		if err != nil {
			return &decodeError{err}
		}
		e := &handledEvent{f: eventFields(msg)}
		cause := es.RecordedEvent{Metadata: []byte(e.f.metadata)}
		cause.ID, _ = uuid.Parse(e.f.id)
		ctx := cqrs.CtxWithOriginalMessage(msg.Context(), msg)
		msg.SetContext(ctx)
		return h(context.WithValue(es.CausedBy(ctx, cause), eventKey{}, e), msg, v)
	}
}

type eventKey struct{}

// handledEvent is the event an event handler's context carries: its
// fields as the message has them, parsed when [EventFromContext] asks.
type handledEvent struct {
	f    fields
	once sync.Once
	rec  es.RecordedEvent
}

// EventFromContext returns the stored event that an event handler's
// context was made for.
func EventFromContext(ctx context.Context) (es.RecordedEvent, bool) {
	e, ok := ctx.Value(eventKey{}).(*handledEvent)
	if !ok {
		return es.RecordedEvent{}, false
	}
	e.once.Do(func() { e.rec = e.f.record() })
	return e.rec, true
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
