package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/components/requestreply"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/internal/backoff"
)

// Errors of this package, matched with [errors.Is].
var (
	// ErrInvalidOption means New or a registration was given an invalid
	// argument or option.
	ErrInvalidOption = errors.New("bus: invalid option")
	// ErrNoHandler means a command was sent whose type has no handler:
	// none registered on this bus, and none declared with
	// [WithRemoteCommands].
	ErrNoHandler = errors.New("bus: no handler")
	// ErrDuplicateHandler means a second handler was registered for a
	// command type, or for an event type within one event handler group.
	ErrDuplicateHandler = errors.New("bus: duplicate handler")
	// ErrRunning means a handler was registered after Run started, or Run
	// was called twice.
	ErrRunning = errors.New("bus: already running")
	// ErrHandlerFailed means a request got no answer from its handler:
	// the handler panicked on every retry, or the command did not decode.
	// The caller gets an error that matches it instead of a timeout.
	ErrHandlerFailed = errors.New("bus: handler failed")
	// ErrNestedSend means a command handler sent a command to its own
	// topic (a command of its own type, or any command with
	// [WithSharedCommandTopic]) over the default in-process transport,
	// which delivers a topic's next message only once the previous one is
	// handled: the send could wait for itself (on any of the command type's
	// topics, [WithCommandConcurrency]).
	ErrNestedSend = errors.New("bus: a command handler cannot send to its own topic over the in-process transport")
	// ErrStopped means the bus is stopping or has stopped: Send, Request
	// and [Bus.Publish] fail with it instead of waiting for handlers that
	// take no more messages.
	ErrStopped = errors.New("bus: stopped")
)

// Bus carries commands to their handlers and events to theirs, over a
// Watermill Pub/Sub. Create it with [New], register handlers with
// [HandleCommand], [HandleRequest] and [HandleEvent], then [Bus.Run] it.
// A Bus is safe for concurrent use.
type Bus struct {
	commands *es.Registry
	events   *es.Registry
	cfg      config
	tel      *telemetry
	wlog     watermill.LoggerAdapter
	instance string

	router   *message.Router
	cmdBus   *cqrs.CommandBus
	cmdProc  *cqrs.CommandProcessor
	parts    int // topics per command type (WithCommandConcurrency)
	inbox    *inbox
	inboxSub message.Subscriber
	backends sync.Map      // reflect.Type of results → *requestreply.PubSubBackend
	running  chan struct{} // closed when the router runs
	topics   struct {
		shared, events, replies string
		mu                      sync.RWMutex
		byName                  map[string]string // command name → topic
	}
	dropped    atomic.Uint64
	ownedClose func() error // closes the default GoChannel, if any
	stop       *stopper

	subsMu sync.Mutex
	subs   []message.Subscriber // for Close before Run

	mu       sync.Mutex
	started  bool
	local    map[string]bool                    // command names with a handler here
	remote   map[string]bool                    // command names handled elsewhere
	groups   map[string]map[string]eventHandler // group → event name → handler
	consumer map[string]string                  // command consumer → command name
	groupSeq []string                           // groups in registration order
}

// New returns a bus for the command types registered in commands and the
// event types registered in events (the registry the aggregates use). Type
// names on the wire are the registries' names. Problems with the options
// are reported together, wrapping [ErrInvalidOption].
func New(commands, events *es.Registry, opts ...Option) (*Bus, error) {
	cfg := config{prefix: "eventfold-", attempts: 4, retryBackoff: 200 * time.Millisecond, retryMax: 2 * time.Second,
		handlerTimeout: 30 * time.Second, requestTimeout: 10 * time.Second, stopTimeout: DefaultStopTimeout,
		errs: []error{ErrHandlerFailed, es.ErrWrongExpectedVersion, es.ErrStreamNotFound, es.ErrStreamDeleted, es.ErrInvalidArgument}}
	var errs []error
	if commands == nil || events == nil {
		errs = append(errs, fmt.Errorf("%w: nil registry", ErrInvalidOption))
	}
	for _, opt := range opts {
		errs = append(errs, opt(&cfg))
	}
	seen := make(map[string]bool, len(cfg.errs))
	for _, e := range cfg.errs {
		if seen[e.Error()] {
			errs = append(errs, fmt.Errorf("%w: two registered errors read %q", ErrInvalidOption, e.Error()))
		}
		seen[e.Error()] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	tel, err := newTelemetry(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.namespace != "" {
		cfg.prefix += cfg.namespace + "-"
		if cfg.poisonTopic != "" {
			cfg.poisonTopic = cfg.prefix + cfg.poisonTopic
		}
	}
	b := &Bus{commands: commands, events: events, cfg: cfg, tel: tel, wlog: slogAdapter{watermill.NewSlogLogger(cfg.logger), cfg.logger},
		instance: watermill.NewShortUUID(), running: make(chan struct{}), stop: newStopper(),
		local: make(map[string]bool), remote: make(map[string]bool), groups: make(map[string]map[string]eventHandler),
		consumer: make(map[string]string)}
	if tel != nil {
		tel.errKind = b.errorKind
	}
	b.topics.shared, b.topics.events, b.topics.replies = cfg.prefix+"commands", cfg.prefix+"events", cfg.prefix+"replies-"+b.instance
	b.topics.byName = make(map[string]string)
	for _, n := range cfg.remote {
		b.remote[n] = true
	}
	if b.cfg.publisher == nil {
		gc := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, b.wlog)
		b.cfg.publisher, b.cfg.subscriber, b.ownedClose = stoppablePublisher{gc, b.stop}, Shared(gc), gc.Close
		if b.cfg.replyPub == nil {
			// Replies bypass the router and flow until Run returns.
			b.cfg.replyPub, b.cfg.replySub = gc, Shared(gc)
		}
		if b.cfg.concurrency == 0 {
			b.cfg.concurrency = DefaultCommandConcurrency
		}
	}
	b.parts = max(b.cfg.concurrency, 1)
	if b.cfg.replyPub == nil {
		b.cfg.replyPub, b.cfg.replySub = b.cfg.publisher, b.cfg.subscriber
	}
	if err := b.setup(); err != nil {
		return nil, err
	}
	return b, nil
}

// commandTopic returns the topic of the commands named name: with several
// partitions ([WithCommandConcurrency]), the name their topics share.
func (b *Bus) commandTopic(name string) string {
	if b.cfg.sharedCommands {
		return b.topics.shared
	}
	b.topics.mu.RLock()
	t, ok := b.topics.byName[name]
	b.topics.mu.RUnlock()
	if ok {
		return t
	}
	t = consumerName(b.cfg.prefix+"command-", name)
	b.topics.mu.Lock()
	b.topics.byName[name] = t
	b.topics.mu.Unlock()
	return t
}
func (b *Bus) eventTopic() string { return b.topics.events }

// TopicPrefix returns the prefix of every topic of the bus:
// [WithTopicPrefix]'s, followed by the namespace and '-' with
// [WithNamespace]. Tools that list or delete what a deployment left on a
// broker select its topics (and the streams named after them) with it.
func (b *Bus) TopicPrefix() string { return b.cfg.prefix }
func (b *Bus) replyTopic() string  { return b.topics.replies }

// setup builds the router, its middleware, and Watermill's cqrs components.
func (b *Bus) setup() error {
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: b.cfg.stopTimeout}, b.wlog)
	if err != nil {
		return fmt.Errorf("bus: %w", err)
	}
	if b.cfg.poisonTopic != "" {
		poison, err := middleware.PoisonQueueWithFilter(b.cfg.publisher, b.cfg.poisonTopic,
			func(err error) bool { return !leftToTransport(err) })
		if err != nil {
			return fmt.Errorf("bus: %w", err)
		}
		r.AddMiddleware(poison)
	}
	retry := retry{attempts: b.cfg.attempts, policy: backoff.Policy{First: b.cfg.retryBackoff, Max: b.cfg.retryMax, Spread: 0.2},
		permanent: b.permanent, logger: b.wlog, stopping: b.stop.stopping}
	r.AddMiddleware(b.settle, retry.middleware, middleware.Timeout(b.cfg.handlerTimeout), middleware.Recoverer)
	b.router = r

	cmds := marshaler{types: b.commands}
	cmdPub := b.cfg.publisher
	if b.parts > 1 {
		cmdPub = &spreader{Publisher: cmdPub, n: b.parts, waits: b.ownedClose != nil}
	}
	b.cmdBus, err = cqrs.NewCommandBusWithConfig(cmdPub, cqrs.CommandBusConfig{
		GeneratePublishTopic: func(p cqrs.CommandBusGeneratePublishTopicParams) (string, error) {
			return b.commandTopic(p.CommandName), nil
		},
		Marshaler: cmds,
		Logger:    b.wlog,
	})
	if err != nil {
		return fmt.Errorf("bus: %w", err)
	}
	b.cmdProc, err = cqrs.NewCommandProcessorWithConfig(r, cqrs.CommandProcessorConfig{
		GenerateSubscribeTopic: func(p cqrs.CommandProcessorGenerateSubscribeTopicParams) (string, error) {
			return p.CommandHandler.(partition).topic, nil
		},
		SubscriberConstructor: func(p cqrs.CommandProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return b.subscriber(p.Handler.(partition).consumer)
		},
		Marshaler: cmds,
		Logger:    b.wlog,
	})
	if err != nil {
		return fmt.Errorf("bus: %w", err)
	}
	b.inbox = &inbox{pending: make(map[string]*call)}
	b.inboxSub, err = b.keep(b.cfg.replySub("replies-" + b.instance))
	if err != nil {
		return fmt.Errorf("bus: replies subscriber: %w", err)
	}
	return nil
}

// subscriber returns the transport's subscriber for consumer, held open
// while the bus stops (see holdSubscriber).
func (b *Bus) subscriber(consumer string) (message.Subscriber, error) {
	sub, err := b.keep(b.cfg.subscriber(consumer))
	if err != nil {
		return nil, err
	}
	return holdSubscriber{Subscriber: sub, s: b.stop}, nil
}

// keep keeps a new subscriber so that Close can close it if the router
// never runs.
func (b *Bus) keep(s message.Subscriber, err error) (message.Subscriber, error) {
	if err != nil {
		return nil, err
	}
	b.subsMu.Lock()
	defer b.subsMu.Unlock()
	b.subs = append(b.subs, s)
	return s, nil
}

// permanent reports whether err is not worth retrying: a message that does
// not decode, or a registered domain error.
func (b *Bus) permanent(err error) bool {
	var d *decodeError
	return errors.As(err, &d) || len(b.codes(err)) > 0
}

// codes returns the messages of the registered errors that err matches.
func (b *Bus) codes(err error) []string {
	var codes []string
	for _, e := range b.cfg.errs {
		if errors.Is(err, e) {
			codes = append(codes, e.Error())
		}
	}
	return codes
}

// settle is the outermost middleware (inside the poison queue, if any): a
// message that still fails after the retries is answered with an error if
// it was a request, then goes to the poison queue or is dropped. A message
// whose handler failed while the bus was stopping is left to the
// transport instead (nacked), to be delivered again: the failure may be
// the stop's (a cancelled context, a command that could not be sent); so
// is a message that arrives once the bus is stopping, without starting
// its handler.
func (b *Bus) settle(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		if b.stop.isStopping() {
			// A message that arrives once the bus stops (one delivered
			// again, nacked by a handler that failed with the stop) does
			// not start a handler: it is left to the transport.
			return nil, errLeft
		}
		out, err := h(msg)
		if err == nil {
			return out, nil
		}
		if b.stop.isStopping() {
			b.cfg.logger.Warn("bus: a handler failed while the bus was stopping; the message is left to the transport",
				"handler", message.HandlerNameFromCtx(ctx), "message_uuid", msg.UUID,
				"type", msg.Metadata.Get(MetadataType), "error", shortError(err))
			return nil, fmt.Errorf("%w: %w", errLeft, err)
		}
		// The last attempt's context is cancelled (middleware.Timeout): the
		// poison queue publishes with the message's own.
		msg.SetContext(ctx)
		b.replyFailure(msg, err)
		if b.cfg.poisonTopic != "" {
			return nil, err
		}
		b.dropped.Add(1)
		b.cfg.logger.Error("bus: dropped a message that failed",
			"handler", message.HandlerNameFromCtx(msg.Context()), "message_uuid", msg.UUID,
			"type", msg.Metadata.Get(MetadataType), "error", shortError(err))
		return nil, nil
	}
}

// shortError drops the stack trace of a recovered panic from err.
func shortError(err error) error {
	var p middleware.RecoveredPanicError
	if errors.As(err, &p) {
		return fmt.Errorf("panic: %v", p.V)
	}
	return err
}

// Run runs the bus's handlers until ctx is done or [Bus.Close] is called,
// then stops: the bus takes no new message, waits for the handlers under
// way with their contexts intact, for at most the stop timeout
// ([WithStopTimeout]), then cancels the contexts of those still running
// and returns. A message whose handler failed meanwhile is left to the
// transport (nacked, or not acknowledged), to be delivered again. It
// returns nil after a clean stop. Register every handler before Run; Run
// may be called once.
func (b *Bus) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.started {
		b.mu.Unlock()
		return ErrRunning
	}
	b.started = true
	for _, g := range b.groupSeq {
		sub, err := b.subscriber("events-" + g)
		if err != nil {
			b.mu.Unlock()
			return fmt.Errorf("bus: event handlers %q: %w", g, err)
		}
		b.router.AddConsumerHandler(g, b.eventTopic(), sub, b.groupHandler(g, b.groups[g]))
	}
	b.mu.Unlock()

	// The replies bypass the router: they need no retries, poison queue or
	// timeout, and the request waiting for each is gone after its timeout.
	// They go on arriving while the handlers under way finish.
	inboxCtx, stopInbox := context.WithCancel(context.WithoutCancel(ctx))
	replies, err := b.inboxSub.Subscribe(inboxCtx, b.replyTopic())
	if err != nil {
		stopInbox()
		return fmt.Errorf("bus: subscribe to replies: %w", err)
	}
	inboxDone := make(chan struct{})
	go func() {
		defer close(inboxDone)
		for msg := range replies {
			b.inbox.deliver(msg)
			msg.Ack()
		}
	}()
	defer func() {
		stopInbox()
		_ = b.inboxSub.Close()
		<-inboxDone
	}()
	if err := b.pingInbox(ctx); err != nil {
		b.stop.begin()
		return err
	}

	// The router runs on a context that ctx's end does not cancel: the bus
	// stops it with Close, which waits for the handlers under way.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-b.router.Running():
			close(b.running)
		case <-done:
			return
		}
		select {
		case <-ctx.Done():
			b.stop.begin()
			_ = b.router.Close()
		case <-b.stop.stopping: // Close
		case <-done:
		}
	}()
	err = b.router.Run(context.WithoutCancel(ctx))
	b.stop.begin()
	if rerr := b.stop.release(); rerr != nil {
		b.cfg.logger.Warn("bus: closing the subscribers", "error", rerr)
	}
	if err != nil {
		return fmt.Errorf("bus: %w", err)
	}
	return nil
}

// pingInbox publishes to the bus's replies topic until a message comes
// back, so that a reply published once the bus runs is not lost because a
// broker had not set up the subscription yet (core NATS subscribes
// asynchronously). It returns nil if ctx is done first.
func (b *Bus) pingInbox(ctx context.Context) error {
	op := "ping-" + b.instance
	c := &call{ch: make(chan *message.Message, 1)}
	b.inbox.mu.Lock()
	b.inbox.pending[op] = c
	b.inbox.mu.Unlock()
	defer func() {
		b.inbox.mu.Lock()
		delete(b.inbox.pending, op)
		b.inbox.mu.Unlock()
	}()
	wait := 20 * time.Millisecond
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		ping := message.NewMessage(watermill.NewUUID(), []byte("null"))
		ping.Metadata.Set(requestreply.OperationIDMetadataKey, op)
		if err := b.cfg.replyPub.Publish(b.replyTopic(), ping); err != nil {
			return fmt.Errorf("bus: publish to the replies topic: %w", err)
		}
		select {
		case <-c.ch:
			return nil
		case <-timer.C:
			wait = min(2*wait, time.Second)
			timer.Reset(wait)
		case <-ctx.Done():
			return nil
		}
	}
}

// Running returns a channel that is closed once the bus runs: its handlers
// are subscribed, and a message published to its replies topic has come
// back.
func (b *Bus) Running() <-chan struct{} { return b.running }

// Close stops a running bus as the end of Run's context does, and waits
// for the handlers under way (for at most the stop timeout,
// [WithStopTimeout]); a bus that never ran closes its subscribers. Then it
// closes the default in-process transport if the bus made it. Once Close
// is called, Send, Request and [Bus.Publish] fail with [ErrStopped]. A
// closed bus does not run again.
func (b *Bus) Close() error {
	b.mu.Lock()
	started := b.started
	b.started = true // Run after Close fails
	b.mu.Unlock()
	b.stop.begin()
	var err error
	if started {
		err = b.router.Close()
		err = errors.Join(err, b.stop.release())
	} else {
		b.subsMu.Lock()
		for _, s := range b.subs {
			err = errors.Join(err, s.Close())
		}
		b.subsMu.Unlock()
	}
	if b.ownedClose != nil {
		err = errors.Join(err, b.ownedClose())
	}
	if err != nil {
		return fmt.Errorf("bus: close: %w", err)
	}
	return nil
}

// Dropped returns how many messages the bus dropped since it was created:
// messages that failed every retry or could not be decoded, when no poison
// queue is configured. Each was logged at level Error.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// slogAdapter is Watermill's slog adapter, checking the level before it
// builds the fields: Watermill logs every message at trace level.
type slogAdapter struct {
	watermill.LoggerAdapter
	l *slog.Logger
}

func (a slogAdapter) enabled(level slog.Level) bool {
	return a.l.Enabled(context.Background(), level) // as slog.Logger.Info does
}

func (a slogAdapter) Info(msg string, fields watermill.LogFields) {
	if a.enabled(slog.LevelInfo) {
		a.LoggerAdapter.Info(msg, fields)
	}
}

func (a slogAdapter) Debug(msg string, fields watermill.LogFields) {
	if a.enabled(slog.LevelDebug) {
		a.LoggerAdapter.Debug(msg, fields)
	}
}

func (a slogAdapter) Trace(msg string, fields watermill.LogFields) {
	if a.enabled(watermill.LevelTrace) {
		a.LoggerAdapter.Trace(msg, fields)
	}
}

func (a slogAdapter) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return slogAdapter{a.LoggerAdapter.With(fields), a.l}
}

// waitRunning waits until the bus runs: on the in-process transport, a
// message published before its subscribers exist is lost. It fails with
// [ErrStopped] once the bus is stopping.
func (b *Bus) waitRunning(ctx context.Context) error {
	if b.stop.isStopping() {
		return ErrStopped
	}
	select {
	case <-b.running:
		return nil
	default:
	}
	select {
	case <-b.running:
		if b.stop.isStopping() {
			return ErrStopped
		}
		return nil
	case <-b.stop.stopping:
		return ErrStopped
	case <-ctx.Done():
		return fmt.Errorf("bus: waiting for the bus to run: %w", ctx.Err())
	}
}

// register records a handler registration, failing after Run.
func (b *Bus) register(fn func() error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return ErrRunning
	}
	return fn()
}

// typeName returns the registered name of T in types.
func typeName[T any](types *es.Registry, kind string) (string, error) {
	t := reflect.TypeFor[T]()
	if t.Kind() == reflect.Pointer {
		return "", fmt.Errorf("%w: %s type %v: register handlers for the value type", ErrInvalidOption, kind, t)
	}
	var zero T
	name, err := types.Name(zero)
	if err != nil {
		return "", fmt.Errorf("%w: %s type %v is not in the %s registry", ErrInvalidOption, kind, t, kind)
	}
	return name, nil
}
