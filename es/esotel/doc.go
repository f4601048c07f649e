// Package esotel instruments any [es.Store] with OpenTelemetry: [New]
// wraps a store (EventStoreDB, SQLite, PostgreSQL, memory alike) in one
// that records a span for each append, delete and read, and the metrics an
// operator alerts on (append duration, events appended, wrong-expected-
// version conflicts), so that package es and the stores themselves stay
// free of OpenTelemetry.
//
// It uses the OpenTelemetry API only. Without an SDK installed (the global
// providers are no-ops by default), the wrapper costs a few function calls
// per operation and pulls in no SDK; give it providers with
// [WithTracerProvider] and [WithMeterProvider], or install global ones.
//
// # Trace context in events
//
// An append made inside a recording span writes the W3C trace context of
// its span into each event's metadata, next to `$correlationId` and
// `$causationId`, under the keys [MetadataTraceParent] ("traceparent") and
// [MetadataTraceState] ("tracestate"), replacing those that metadata
// carried over from a cause (es.CausedBy) may hold. Whoever handles the event later, in another process, finds the
// trace of the command that caused it with [SpanContext], and links to it
// ([Link]) or continues it ([Extract]). Metadata that is not a JSON object
// is left as it is.
//
// # Spans and metrics
//
// Span names follow the database conventions of OpenTelemetry, "{operation}
// {category}": "append order" for an append to "order-42". Attributes:
// db.system.name ([WithSystem]), db.operation.name, db.operation.batch.size
// (events of an append, when more than one), eventfold.stream,
// eventfold.expected_revision, eventfold.revision and eventfold.position
// (of the result), db.response.returned_rows (of a read), error.type on
// failure ("wrong_expected_version", "stream_deleted", "stream_not_found",
// "unavailable", "invalid_argument", or the Go type of the error); a
// conflict also adds a span event "wrong_expected_version" with the
// expected and actual revisions.
//
// A multi-stream append ([Store.AppendStreams], through
// [es.AppendStreams]) is one span "append_streams {category}"
// ("append_streams" when its streams are of several categories), with
// eventfold.streams, eventfold.parts and db.operation.batch.size (the
// events of all parts); the metrics count it as one append. Over a store
// without multi-stream appends, it fails with an error matching
// errors.ErrUnsupported.
//
// Metrics (meter "github.com/eventfold/eventfold/es/esotel"):
//   - eventfold.store.append.duration (s, histogram), by db.system.name and
//     eventfold.outcome ("ok", "conflict", "error");
//   - eventfold.store.append.events ({event}, counter): events written;
//   - eventfold.store.append.conflicts ({conflict}, counter): appends that
//     failed with [es.ErrWrongExpectedVersion].
//
// Subscriptions are passed through without spans: a span over a
// subscription's lifetime tells nothing; the projection runner and the bus
// record the spans of what they do with the events.
package esotel
