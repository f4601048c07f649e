package projection

import (
	"context"
	"fmt"
	"reflect"

	"github.com/eventfold/eventfold/es"
)

// Typed is an event handed to a typed handler ([On]): the stored event,
// the version of the read model being built, and the payload as its Go
// type.
type Typed[E any] struct {
	es.RecordedEvent
	// Version is the version of the read model being built (see
	// [Batch.Table]).
	Version int
	// Payload is the decoded event.
	Payload E
}

// TypedHandler applies the events of one Go type; [On] makes one and
// [Dispatch] routes events to it.
type TypedHandler[Tx any] struct {
	typ reflect.Type
	fn  func(ctx context.Context, tx Tx, version int, ev Event) error
}

// On returns the handler of the events whose payload is an E, for
// [Dispatch]: fn gets the event with its payload as an E, no type
// assertion needed.
func On[E, Tx any](fn func(ctx context.Context, tx Tx, ev Typed[E]) error) TypedHandler[Tx] {
	return TypedHandler[Tx]{
		typ: reflect.TypeFor[E](),
		fn: func(ctx context.Context, tx Tx, version int, ev Event) error {
			return fn(ctx, tx, Typed[E]{RecordedEvent: ev.RecordedEvent, Version: version, Payload: ev.Payload.(E)})
		},
	}
}

// Dispatch returns a [HandleFunc] that applies the events of a batch one
// by one, in log order, each to the handler of its payload's Go type.
// Events of a type without a handler are left alone: a projection reads
// the types it cares about (select them with EventTypes, so that the
// runner does not decode the others). The runner needs a registry (its
// payloads are nil without one, which Dispatch reports as an error).
// Two handlers of one type are a programming error: Dispatch panics, as
// http.ServeMux does for two patterns alike.
func Dispatch[Tx any](handlers ...TypedHandler[Tx]) HandleFunc[Tx] {
	byType := make(map[reflect.Type]func(context.Context, Tx, int, Event) error, len(handlers))
	for _, h := range handlers {
		if h.fn == nil {
			panic("projection: Dispatch: a handler not made by On")
		}
		if _, dup := byType[h.typ]; dup {
			panic(fmt.Sprintf("projection: Dispatch: two handlers of %v", h.typ))
		}
		byType[h.typ] = h.fn
	}
	return func(ctx context.Context, tx Tx, b Batch) error {
		for _, ev := range b.Events {
			if ev.Payload == nil {
				return fmt.Errorf("%w: %s: event %d of %q has no payload: Dispatch needs the runner's registry",
					ErrInvalidProjection, b.Projection, ev.Revision, ev.Stream)
			}
			fn, ok := byType[reflect.TypeOf(ev.Payload)]
			if !ok {
				continue
			}
			if err := fn(ctx, tx, b.Version, ev); err != nil {
				return err
			}
		}
		return nil
	}
}
