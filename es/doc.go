// Package es is eventfold's event-store contract: the [Store] interface that
// every event store implements, the values it reads and writes, and the
// codec that turns domain events into stored ones and back.
//
// The contract follows EventStoreDB's semantics, so code tested against the
// in-memory store means the same against EventStoreDB:
//
//	res, err := store.Append(ctx, "order-42", es.NoStream, data)
//	for ev, err := range store.ReadStream(ctx, "order-42", es.ReadStreamOptions{}) {
//		if err != nil {
//			return err // an error mid-stream is never the end of the stream
//		}
//		fmt.Println(ev.Revision, ev.Type)
//	}
//
// # Streams, revisions and positions
//
// Events live in streams. Each stream numbers its events with revisions 0, 1,
// 2, … without gaps. Every event also has a [Position] in the global log,
// `$all`, which orders all events of all streams in commit order.
//
// # Appending
//
// [Store.Append] takes an [ExpectedRevision]: [Any], [NoStream],
// [StreamExists] or [Exact]. A mismatch is a [*WrongExpectedVersionError]
// that matches [ErrWrongExpectedVersion]. Appending the same event IDs again
// is idempotent: the store reports the original result without writing.
//
// # Reading and subscribing
//
// Reads are iterators ([iter.Seq2]) that yield an error instead of ending
// early, so a failure mid-stream is never mistaken for its end. Subscriptions
// deliver history, then a [KindCaughtUp] message, then live events; filtered
// `$all` subscriptions also deliver [KindCheckpoint] messages so that consumers
// make progress when nothing matches.
//
// # Event types
//
// A [Registry] maps explicit, stable type names ("OrderPlaced") to Go types
// and encodes payloads with a [Codec] (JSON by default). Upcasters keep old
// events loading after the domain changes. Names are never derived from Go
// type names: renaming a Go type must not orphan stored data.
//
// # Metadata
//
// Correlation and causation IDs travel in a [context.Context]
// ([WithCorrelationID], [WithCausationID]) from a command to the events it
// causes, and are stored as `$correlationId` and `$causationId`.
//
// # Errors and outages
//
// Errors are matched with [errors.Is]: [ErrWrongExpectedVersion],
// [ErrStreamNotFound], [ErrStreamDeleted], [ErrInvalidArgument] and
// [ErrMaxAppendSizeExceeded] are answers about the request. A store whose
// server could not be reached, or did not answer within the store's call
// timeout, returns an error wrapping [ErrUnavailable], so that one check
// works for every store: retrying may succeed, and a service can answer 503.
// A write that fails with it may still have been written (the answer to
// its commit was lost); retrying it with the same event IDs is safe. When
// the caller's context ends first, the error is the context's.
//
// # Implementing a Store
//
// Implementations must be safe for concurrent use and pass the conformance
// suite in package es/estest. Package es/memstore is the reference
// implementation. Every call into a server has a deadline (the caller's, or
// the store's own call timeout when the caller's context has none sooner),
// and failures to reach the server wrap [ErrUnavailable].
package es
