// Package bus carries commands to their handlers and stored events to the
// handlers that react to them, on Watermill: its router, its cqrs
// component, requestreply, middleware and any of its Pub/Subs. What bus
// adds is typed handlers, one handler per command type, request/reply that
// returns the handler's result or error, metadata that follows a chain of
// commands and events, and the relay that publishes events from the store.
//
//	b, err := bus.New(commands, events) // in-process GoChannel by default
//	err = bus.HandleRequest(b, func(ctx context.Context, cmd Deposit) (Balance, error) {
//		res, err := accounts.Update(ctx, cmd.Account, deposit(cmd.Amount))
//		return Balance{res.State.Balance}, err
//	})
//	go b.Run(ctx)
//	balance, err := bus.Request[Balance](ctx, b, Deposit{Account: "7", Amount: 100})
//
// # Commands
//
// Command types live in an [es.Registry] of their own, under explicit,
// stable names ("Deposit"), never derived from Go type names. Each command
// type has exactly one handler ([HandleCommand], [HandleRequest]); a second
// registration fails with [ErrDuplicateHandler]. [Bus.Send] sends and
// forgets; a command type that no handler handles is [ErrNoHandler] at once
// ([WithRemoteCommands] declares those handled by other processes).
// Each command type has a topic, "<prefix>command-<name>", consumed by its
// handler; with [WithSharedCommandTopic] all commands share one,
// "<prefix>commands", and each handler acknowledges the types it does not
// handle. Either way a message of an unknown type is acknowledged, never
// redelivered for ever.
//
// # Request/reply
//
// [Request] sends a command and waits for its handler's result or error,
// on Watermill's requestreply component, until the context's deadline or
// the bus's request timeout ([WithRequestTimeout]). The handler's context
// gets the same deadline. The replies to a bus's requests come back on a
// topic of its own, "<prefix>replies-<instance>", consumed once per bus.
// A domain error reaches the caller unchanged when the handler runs on the
// same bus; from another process it arrives as a [*HandlerError] with the
// same message that matches, with [errors.Is], the errors registered with
// [WithErrors]. A request is not retried: its caller gets whatever error
// its handler returns. A handler that panics on every retry, or a command
// that does not decode, answers with an error matching [ErrHandlerFailed],
// so that the caller does not wait for its timeout.
//
// # Events
//
// [HandleEvent] registers a typed handler of stored events in a named
// group. Each group consumes the events topic, "<prefix>events", once, in
// the order the relay published (on a transport that keeps order, such as
// the default one), and acknowledges the event types it has no handler
// for. [EventFromContext] returns the event as stored, [GroupFromContext]
// the group. Delivery is at-least-once: [WithIdempotency] makes a handler
// skip the events its group processed before, across restarts, with a
// [ProcessedStore] ([MemoryProcessed], or a SQL table of package
// bus/sqlbus), under the group's name:
//
//	err = bus.HandleEvent(b, "totals", addDeposit, bus.WithIdempotency(processed))
//
// # The relay
//
// Events reach the bus only from the store. The relay is [Bus.Publish],
// run by a checkpointed projection (projection.Relay) that hands it each
// batch of stored events; its runner commits its checkpoint after the
// batch is published, so a crash between an append and its publication
// loses nothing. Each message carries the event's ID as its UUID. The
// relay's runner needs no registry: events are decoded once, by the bus,
// for the handlers that receive them. The two packages meet through the
// method value b.Publish: neither imports the other.
//
//	relay, err := projection.NewRunner(store, checkpoints, nil, projection.Relay(b.Publish, "account"))
//
// [Bus.Publish] fails only for want of a transport (or with
// [ErrStopped]); projection.Relay wraps its errors with
// projection.ErrUnavailable, so the runner retries and restarts, and
// blames no event.
//
// # Stopping
//
// A bus stops ([Bus.Run]'s context, [Bus.Close]) without losing work: it
// takes no new message, lets the handlers under way finish with their
// contexts intact for at most [WithStopTimeout], and leaves the message of
// a handler that fails meanwhile to the transport, to be delivered again,
// instead of dropping it.
//
// # Namespaces
//
// [WithNamespace] puts every topic of the bus, and so the streams, queues
// and consumers a broker makes for them, in a namespace of its own, so
// that deployments that share a broker never consume each other's
// messages. [Bus.TopicPrefix] selects them.
//
// # Metadata
//
// A command's correlation ID comes from its caller's context
// ([es.WithCorrelationID]) or is the command's own ID. Its handler's
// context carries the correlation ID and, as causation ID, the command's
// ID, so the events an aggregate appends record both. The relay publishes
// them with each event's metadata, and an event handler's context is
// [es.CausedBy] its event: the commands it sends carry the chain's
// correlation ID and the event's ID as causation. The keys on the wire are
// the Metadata… constants.
//
// # Transports
//
// By default the bus runs on an in-process GoChannel that keeps order: a
// publish returns once the message is handled, so [Bus.Send] returns after
// its handler, and a command handler cannot send a command to its own
// topic ([ErrNestedSend]; react to its events instead). Each command type
// has [DefaultCommandConcurrency] topics there, handled at once, and each
// command goes to an idle one ([WithCommandConcurrency]): requests from
// many callers do not queue behind one handler. [WithTransport] runs the
// bus on any Watermill Pub/Sub: NATS JetStream, PostgreSQL, RabbitMQ,
// Kafka… given a subscriber per consumer name (its own consumer group,
// durable or queue). Replies may travel on a Pub/Sub of their own
// ([WithReplyTransport]): each bus instance has its own replies topic,
// which suits core NATS better than a JetStream stream or a PostgreSQL
// table per process. On watermill-sql's default PostgreSQL schema,
// payloads must be JSON. Package bus/bustest is the suite that every
// transport here passes, exported so that a transport of one's own proves
// itself: bustest.Run(t, newTransport, features).
//
// # Middleware
//
// Every handler runs inside Watermill's middleware: Recoverer turns a
// panic into an error, a retry that behaves as Watermill's Retry (without
// its cost on a message handled at the first try) retries failures with
// exponential backoff ([WithRetry]; not domain errors registered with
// [WithErrors], nor messages that do not decode), and Timeout bounds each attempt
// ([WithHandlerTimeout]). A message that still fails goes to the poison
// queue when one is configured ([WithPoisonQueue]); otherwise it is
// dropped, logged and counted ([Bus.Dropped]), never redelivered for ever.
//
// # Telemetry
//
// A bus records OpenTelemetry spans through the API only: "send
// {Command}" around [Bus.Send] and [Request], "process {Command}" and
// "process {Event} {group}" around handlers, each the child of the trace
// its message carries in its metadata ([MetadataTraceParent],
// [MetadataTraceState]), on every transport. The histogram
// eventfold.bus.handler.duration counts the messages handled by outcome
// ([AttrOutcome]), and eventfold.bus.request.timeouts the requests that got
// no reply in time. [WithTracerProvider] and [WithMeterProvider] choose the
// providers (the global ones by default); without an SDK installed no span
// is started. See docs/observability.md.
package bus
