// Package esdbbus is a Watermill transport on EventStoreDB, so that event
// handlers and process managers run on several replicas with EventStoreDB
// as the only broker: a [Publisher] appends messages to streams, and a
// [Subscriber] consumes them through persistent subscription groups, the
// server's consumer groups.
//
//	store, err := eventstoredb.Open("esdb://localhost:2113?tls=false")
//	t, err := esdbbus.New(store,
//		esdbbus.WithSource(prefix+"events", esdbbus.StreamPrefixes("order-")), // domain events, no relay
//		esdbbus.WithGroupSettings(eventstoredb.GroupSettings{Strategy: eventstoredb.Pinned}))
//	defer t.Close() // after the bus stops
//	b, err := bus.New(commands, events, t.Options()...)
//
// # Topics, streams and groups
//
// A topic is a stream of the same name: publishing to topic "orders"
// appends to stream "orders", and a subscriber of topic "orders" reads it.
// [WithSource] maps a topic to another source instead: any stream (a
// category stream such as `$ce-order`), or `$all` with a filter. The
// domain's events are best consumed from `$all` with a stream-prefix
// filter ([StreamPrefixes]): the event handlers of a bus then read the
// store directly, without a relay, each event handler group with its own
// group and position on the server.
//
// A consumer (an event handler group, a command type's handler, as
// [bus.SubscriberFactory] names them) is a persistent subscription group
// of that name on the topic's source, created when missing with the
// settings of [WithGroupSettings] (an existing group keeps its settings).
// All the replicas of a service that subscribe with one consumer name
// share the group's messages, as its [eventstoredb.Strategy] says.
//
// # Messages
//
// A Watermill message is one event: its UUID is the event ID (a message
// whose UUID is not a UUID gets a name-based one, and the original in the
// metadata key "watermill_uuid"), its payload the event data, its metadata
// the event metadata as a JSON object of strings. The metadata type key of
// the bus ("name") is the event type ("message" without it). The bus's
// correlation and causation IDs are also written as `$correlationId` and
// `$causationId`, EventStoreDB's own keys, and read back from them, so
// events appended by an aggregate carry their chain to the handlers; the
// W3C trace context ("traceparent", "tracestate") keeps its keys. A
// received message also carries the event's stream, revision, position
// and created time under the bus's keys, the event's metadata as JSON
// ([bus.MetadataEvent]) and its retry count ([MetadataRetryCount]).
//
// # Acknowledgements
//
// A Watermill ack acknowledges the event on the server; a nack rejects it
// with retry: the server delivers it again until the group's
// MaxRetryCount, then parks it (see [eventstoredb.Store.ReplayParked]).
// A message neither acked nor nacked (its subscriber closed, its process
// killed) is delivered again when its consumer leaves or after the
// group's message timeout. Delivery is therefore at least once: make the
// handlers idempotent ([bus.WithIdempotency]).
//
// Each subscription hands over one message at a time and waits for its
// ack, so one consumer handles its messages in the order it receives
// them; run more replicas (or more subscribers of one consumer name) for
// more throughput.
//
// # Outages
//
// Every call has a deadline (the Store's call timeout). A subscription
// that drops resubscribes with backoff (the Store's [eventstoredb.WithResubscribe]),
// and when the Store gives up, the subscriber logs the error and starts
// over after [WithRetryWait]; it recreates a group that was deleted. It
// never closes its channel before Close or the end of its context.
//
// # Lifetime
//
// [Transport.Close] ends every subscription and waits for its
// goroutines; messages in flight stay unacknowledged, for the server to
// deliver again. The Store is the caller's to close, after the transport.
package esdbbus
