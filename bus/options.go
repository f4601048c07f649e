package bus

import (
	"fmt"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

type config struct {
	publisher      message.Publisher
	subscriber     SubscriberFactory
	replyPub       message.Publisher
	replySub       SubscriberFactory
	prefix         string
	namespace      string
	logger         *slog.Logger
	attempts       int
	retryBackoff   time.Duration
	retryMax       time.Duration
	handlerTimeout time.Duration
	requestTimeout time.Duration
	stopTimeout    time.Duration
	poisonTopic    string
	sharedCommands bool
	concurrency    int // 0: DefaultCommandConcurrency on the default transport, else 1
	errs           []error
	remote         []string
	tracers        trace.TracerProvider
	meters         metric.MeterProvider
	noTelemetry    bool // for the benchmarks of what telemetry costs
}

// Option configures a Bus.
type Option func(*config) error

// SubscriberFactory returns the subscriber of one consumer of a bus: the
// handler of a command type ("command-<name>"), a group of event handlers
// ("events-<group>"), the replies of a bus ("replies-<instance>"). On a
// broker, each consumer name needs a consumer group, durable consumer or
// queue of its own, so that each consumer receives every message of its
// topic.
type SubscriberFactory func(consumer string) (message.Subscriber, error)

// WithTransport makes the bus run on a Watermill Pub/Sub: pub publishes
// every message; subscriber returns the subscriber of one consumer: the
// handler of a command type ("command-<name>"), a group of event handlers
// ("events-<group>"), the replies of this bus ("replies-<instance>").
// Consumer names hold only letters, digits, '-' and '_'. Each consumer
// must receive every message of its topic, so on a broker each consumer
// name needs its own consumer group, durable consumer or queue (see the
// package's tests for NATS JetStream, PostgreSQL and RabbitMQ; package
// bus/bustest checks a transport of one's own). The
// router closes the subscribers when it stops; the publisher is the
// caller's to close. The default is an in-process GoChannel that keeps
// order (each publish waits until the message is handled), on which each
// command type has [DefaultCommandConcurrency] topics handled at once (see
// [WithCommandConcurrency]); on a transport given here, each command type
// has one topic unless [WithCommandConcurrency] says otherwise.
func WithTransport(pub message.Publisher, subscriber SubscriberFactory) Option {
	return func(c *config) error {
		if pub == nil || subscriber == nil {
			return fmt.Errorf("%w: nil publisher or subscriber", ErrInvalidOption)
		}
		c.publisher, c.subscriber = pub, subscriber
		return nil
	}
}

// WithReplyTransport carries the replies to requests on a Pub/Sub of
// their own, instead of the bus's transport. Replies are short-lived and
// each bus instance has its own replies topic: a broker without
// persistence (core NATS, or RabbitMQ with non-durable queues) suits them
// better than one that keeps every topic (JetStream streams, PostgreSQL
// tables). The subscriber function is as for [WithTransport].
func WithReplyTransport(pub message.Publisher, subscriber SubscriberFactory) Option {
	return func(c *config) error {
		if pub == nil || subscriber == nil {
			return fmt.Errorf("%w: nil reply publisher or subscriber", ErrInvalidOption)
		}
		c.replyPub, c.replySub = pub, subscriber
		return nil
	}
}

// Shared returns a subscriber function for [WithTransport] that gives every
// consumer the same subscriber, for Pub/Subs that deliver every message to
// every subscription (GoChannel, core NATS). Closing the returned
// subscribers does nothing: sub is the caller's to close.
func Shared(sub message.Subscriber) SubscriberFactory {
	return func(string) (message.Subscriber, error) { return nopClose{sub}, nil }
}

type nopClose struct{ message.Subscriber }

func (nopClose) Close() error { return nil }

// DefaultCommandConcurrency is how many commands of one type the bus
// handles at once on its default in-process transport, unless
// [WithCommandConcurrency] says otherwise. Command handlers mostly wait on
// a database, so the figure follows what a database serves well at once,
// not the number of CPUs.
const DefaultCommandConcurrency = 16

// WithCommandConcurrency sets how many commands of one type the bus
// handles at once: n ≥ 1, [DefaultCommandConcurrency] on the default
// in-process transport, 1 on a transport of [WithTransport].
//
// With n > 1 the commands of each type are spread over n topics,
// "<command topic>-0" to "<command topic>-<n-1>", each with its own
// subscription and handler (Watermill's competing consumers, on a
// transport where each subscription sees every message of its topic). On
// the default transport a command goes to the first idle topic, else to
// the least busy; on others, to each topic in turn. Each topic still
// carries one command at a time, with the same middleware, request/reply
// and error handling. On the default transport [Bus.Send] and [Request]
// return once the command is handled, so the commands of one goroutine
// keep their order; those of several goroutines at once are handled
// concurrently, in any order, and handlers that meet on one aggregate are
// sorted out by its expected revision (aggregate.Repository retries).
// Event handlers are not affected: each group handles its events one at a
// time, in order.
//
// On a transport of [WithTransport] the option applies only when given,
// and every process that sends or handles commands on that transport must
// use the same n: the topics differ. Brokers can also scale a single
// topic with their own settings, such as SubscribersCount of watermill-nats
// (with a queue group, for the command consumers only). It brings nothing
// on watermill-sql's default PostgreSQL schema, which shows no new message
// while a subscriber's transaction is open (see docs/bus.md).
func WithCommandConcurrency(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: command concurrency %d: want at least 1", ErrInvalidOption, n)
		}
		c.concurrency = n
		return nil
	}
}

// WithTopicPrefix sets the prefix of the bus's topics: the commands of
// type name go to "<prefix>command-<name>" (characters other than letters,
// digits, '-' and '_' replaced by '_'), events to "<prefix>events", and
// the replies to this bus's requests to "<prefix>replies-<instance>". The
// default is "eventfold-". The prefix may hold letters, digits, '-' and
// '_'.
func WithTopicPrefix(prefix string) Option {
	return func(c *config) error {
		if prefix != "" && !validName(prefix) {
			return fmt.Errorf("%w: topic prefix %q: want letters, digits, '-' and '_'", ErrInvalidOption, prefix)
		}
		c.prefix = prefix
		return nil
	}
}

// MaxNamespaceLength is the longest namespace [WithNamespace] accepts.
const MaxNamespaceLength = 64

// WithNamespace puts the bus's topics in the namespace ns, so that several
// deployments (each with its own event store) share a broker without
// consuming each other's messages: every topic the bus uses (commands,
// events, replies, and the poison queue's) starts with "<prefix><ns>-",
// and so do the names that transports derive from topics (JetStream
// streams and durable consumers, queues, tables). ns holds 1 to
// [MaxNamespaceLength] letters, digits, '-' and '_': NATS subjects and
// stream names allow no '.', '*', '>', spaces or path separators. By
// default the bus has no namespace.
func WithNamespace(ns string) Option {
	return func(c *config) error {
		if !validName(ns) || len(ns) > MaxNamespaceLength {
			return fmt.Errorf("%w: namespace %q: want 1 to %d letters, digits, '-' and '_' (NATS subjects and stream names allow no '.', '*', '>', spaces or path separators)",
				ErrInvalidOption, ns, MaxNamespaceLength)
		}
		c.namespace = ns
		return nil
	}
}

// WithSharedCommandTopic sends all commands to one topic,
// "<prefix>commands", instead of one topic per command type. Every command
// handler then receives every command and acknowledges the types it does
// not handle: fewer topics (streams, tables, exchanges) on a broker, for
// more deliveries.
func WithSharedCommandTopic() Option {
	return func(c *config) error {
		c.sharedCommands = true
		return nil
	}
}

// WithLogger sets the logger; slog.Default() by default.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithRetry sets how many times a failing handler is tried in all (4 by
// default: 3 retries; 1 means no retry) and its backoff: the wait before
// the first retry is first (200ms by default), doubled before each next
// one up to max (2s by default), ±20%. By default the retries wait about
// 200ms, 400ms and 800ms. Errors registered with [WithErrors] and messages
// that cannot be decoded are not retried.
func WithRetry(attempts int, first, max time.Duration) Option {
	return func(c *config) error {
		if attempts < 1 || first < 0 || max < first {
			return fmt.Errorf("%w: retry %d attempts from %v to %v", ErrInvalidOption, attempts, first, max)
		}
		c.attempts, c.retryBackoff, c.retryMax = attempts, first, max
		return nil
	}
}

// WithHandlerTimeout bounds each attempt of a handler (30s by default): its
// context is cancelled after d.
func WithHandlerTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: handler timeout %v", ErrInvalidOption, d)
		}
		c.handlerTimeout = d
		return nil
	}
}

// DefaultStopTimeout is how long a stopping bus waits for the handlers
// under way unless [WithStopTimeout] says otherwise.
const DefaultStopTimeout = 10 * time.Second

// WithStopTimeout sets how long a stopping bus ([Bus.Run]'s context done,
// or [Bus.Close]) waits for the handlers under way, whose contexts stay
// intact meanwhile; then it cancels their contexts and stops without
// them ([DefaultStopTimeout] by default). Their messages are left to the
// transport, to be delivered again.
func WithStopTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: stop timeout %v", ErrInvalidOption, d)
		}
		c.stopTimeout = d
		return nil
	}
}

// WithRequestTimeout sets how long [Request] waits for a reply when its
// context has no deadline (10s by default).
func WithRequestTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: request timeout %v", ErrInvalidOption, d)
		}
		c.requestTimeout = d
		return nil
	}
}

// WithPoisonQueue sends messages that failed every retry, or could not be
// decoded, to topic, with the reason in their metadata (Watermill's
// middleware.PoisonQueue). Without it they are dropped: logged, counted by
// [Bus.Dropped] and acknowledged, so that they never block the topic.
func WithPoisonQueue(topic string) Option {
	return func(c *config) error {
		if topic == "" {
			return fmt.Errorf("%w: empty poison topic", ErrInvalidOption)
		}
		c.poisonTopic = topic
		return nil
	}
}

// WithErrors registers domain errors (sentinels such as
// ErrInsufficientFunds) so that they keep their identity through
// request/reply across processes: [errors.Is] matches them on the caller's
// side. An error is known on the wire by its message, which must be unique
// and stable. Registered errors are answers, not failures: they are never
// retried. The errors of package es that callers act on
// ([es.ErrWrongExpectedVersion], [es.ErrStreamNotFound],
// [es.ErrStreamDeleted], [es.ErrInvalidArgument]) are registered by
// default.
func WithErrors(errs ...error) Option {
	return func(c *config) error {
		for _, err := range errs {
			if err == nil {
				return fmt.Errorf("%w: nil error", ErrInvalidOption)
			}
			c.errs = append(c.errs, err)
		}
		return nil
	}
}

// WithRemoteCommands declares command types that handlers in other
// processes handle on the same transport, so that Send and Request accept
// them without a local handler.
func WithRemoteCommands(names ...string) Option {
	return func(c *config) error {
		for _, n := range names {
			if n == "" {
				return fmt.Errorf("%w: empty command name", ErrInvalidOption)
			}
		}
		c.remote = append(c.remote, names...)
		return nil
	}
}
