package bus

import (
	"context"
	"errors"
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
// named after the group: keep the name stable); events of types it has no
// handler for are acknowledged and skipped. Within a group, an event type
// has one handler ([ErrDuplicateHandler]); different groups receive every
// event each.
//
// fn's context is [es.CausedBy] the event, so that the commands fn sends
// carry the chain's correlation ID and the event's ID as causation;
// [EventFromContext] returns the event as stored and [GroupFromContext]
// the group. Delivery is at-least-once: make fn idempotent, for example
// with [WithIdempotency]. A failing fn is retried, then its event goes to
// the poison queue or is dropped. Problems with the options are reported
// together, wrapping [ErrInvalidOption].
func HandleEvent[E any](b *Bus, group string, fn func(ctx context.Context, e E) error, opts ...EventOption) error {
	var errs []error
	if fn == nil {
		errs = append(errs, fmt.Errorf("%w: nil handler", ErrInvalidOption))
	}
	if !validName(group) {
		errs = append(errs, fmt.Errorf("%w: event handler group %q: want letters, digits, '-' and '_'", ErrInvalidOption, group))
	}
	var cfg eventConfig
	for _, opt := range opts {
		if opt == nil {
			errs = append(errs, fmt.Errorf("%w: nil event option", ErrInvalidOption))
			continue
		}
		errs = append(errs, opt(&cfg))
	}
	if err := errors.Join(errs...); err != nil {
		return err
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
	if cfg.processed != nil {
		h = idempotent(cfg.processed, group, h)
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

// EventOption configures the registration of an event handler
// ([HandleEvent]).
type EventOption func(*eventConfig) error

type eventConfig struct {
	processed ProcessedStore
}

// WithIdempotency makes the handler skip the events its group has
// processed before, in this process or an earlier one: an event found in
// store under the group's name is acknowledged without calling the
// handler, and an event the handler handled (returned nil for) is marked
// there. The group's name is the key, so keep it stable (it is the
// consumer's name too).
//
// A crash between the handler's return and the mark calls the handler
// again on redelivery. Where the handler writes to SQL, mark the event in
// the handler's own transaction instead (sqlbus.Processed.MarkProcessedTx,
// which learns the group and the event from the handler's context), for an
// effect exactly once; WithIdempotency then still spares the handler the
// events marked before.
func WithIdempotency(store ProcessedStore) EventOption {
	return func(c *eventConfig) error {
		if store == nil {
			return fmt.Errorf("%w: nil processed store", ErrInvalidOption)
		}
		c.processed = store
		return nil
	}
}

// eventHandler calls a typed event handler with v, the event msg carries,
// decoded.
type eventHandler func(ctx context.Context, msg *message.Message, v any) error

// groupHandler returns the router's handler of an event handler group:
// it decodes each event whose type (after upcasting) has a handler in the
// group, and acknowledges the others.
func (b *Bus) groupHandler(group string, handlers map[string]eventHandler) message.NoPublishHandlerFunc {
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
		e := &handledEvent{f: eventFields(msg), group: group}
		cause := es.RecordedEvent{Metadata: []byte(e.f.metadata)}
		cause.ID, _ = uuid.Parse(e.f.id)
		ctx := cqrs.CtxWithOriginalMessage(msg.Context(), msg)
		msg.SetContext(ctx)
		ctx, span := b.tel.startHandle(ctx, "event", msg.Metadata.Get(MetadataType), group, msg)
		err = h(context.WithValue(es.CausedBy(ctx, cause), eventKey{}, e), msg, v)
		span.end(ctx, err)
		return err
	}
}

type eventKey struct{}

// handledEvent is the event an event handler's context carries: its
// fields as the message has them, parsed when [EventFromContext] asks.
type handledEvent struct {
	f     fields
	group string
	once  sync.Once
	rec   es.RecordedEvent
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

// GroupFromContext returns the name of the event handler group that an
// event handler's context was made for ([HandleEvent]): the key under
// which [WithIdempotency] and the stores of processed events record the
// events the handler processed.
func GroupFromContext(ctx context.Context) (string, bool) {
	e, ok := ctx.Value(eventKey{}).(*handledEvent)
	if !ok {
		return "", false
	}
	return e.group, true
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
