// Package aggregate keeps aggregates as a fold over their event stream: load
// by replaying the stream, decide a command against the state, append the
// new events with the expected revision, and retry on conflict.
//
//	orders, err := aggregate.New(store, types, aggregate.Definition[Order, Event]{
//		Category: "order",
//		Evolve:   Order.Evolve,
//	})
//	res, err := orders.Update(ctx, "42", func(o Order) ([]Event, error) {
//		return o.Confirm()
//	})
//
// # The fold
//
// A [Definition] names the stream category (events of aggregate "42" live in
// stream "order-42") and gives the pure function that evolves the state by
// one event. Deciders are plain functions from the state to new events or a
// domain error; they run again on a fresh state after a conflict, so they
// must be pure too: time and IDs come from the command.
//
// # Loading
//
// [Repository.Load] replays the stream through an iterator: memory does not
// grow with the stream's length. [ErrNotFound] tells a missing aggregate from
// a new one.
//
// # Conflicts
//
// [Repository.Update] appends with the revision it loaded. When another
// writer got there first, it reloads and decides again, up to a bounded
// number of attempts with exponential backoff and jitter ([WithRetry]).
// Errors a decider returns reach the caller unwrapped.
//
// # Snapshots
//
// [WithSnapshots] saves the state every N events to a [SnapshotStore]
// ([MemorySnapshots], or [StreamSnapshots] in the event store itself), so
// that a long stream loads from its snapshot and the few events after it.
//
// # Telemetry
//
// A repository records OpenTelemetry spans, through the API only (an
// application without an SDK pays a few function calls, about 1.5% of the
// rehydration benchmark, and links no SDK): "create {category}" and
// "update {category}" for each command, with the attempts and a "conflict"
// event for each retry, and within them "load {category}" (the version and
// the snapshot it started from) and "decide {category}" (the events
// decided) per attempt; wrap the store with es/esotel for the append's span
// and for the trace context in the events. The counter
// eventfold.aggregate.retries counts the retries of Update, by category.
// [WithTracerProvider] and [WithMeterProvider] choose the providers (the
// global ones by default). See docs/observability.md.
package aggregate
