package bus_test

import (
	"context"
	"encoding/json"
	"fmt"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/components/requestreply"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// BenchmarkCommandRoundTrip measures a command's round trip over GoChannel:
// request → handler → an aggregate appends to a memstore → reply. The
// handler is the same in both: impl=eventfold goes through the bus;
// impl=watermill, the baseline, through plain cqrs.CommandBus,
// cqrs.CommandProcessor and requestreply with the same middleware
// (Recoverer, Retry with the bus's settings, Timeout), and Watermill's
// NopLogger (its slog adapter builds every trace line's fields before it
// checks the level, which the bus's logger avoids). The difference is what
// eventfold adds: typed handlers, registry names, metadata, deadlines,
// error identity, the shared replies inbox. Run it in interleaved rounds
// with BenchmarkRelay (see docs/performance.md).
func BenchmarkCommandRoundTrip(b *testing.B) {
	b.Run("impl=watermill", func(b *testing.B) {
		repo := benchRepo(b)
		logger := watermill.LoggerAdapter(watermill.NopLogger{})
		commands := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, logger)
		defer commands.Close()
		// Per-request reply subscriptions need a non-blocking GoChannel
		// (as in Watermill's own requestreply tests).
		replies := gochannel.NewGoChannel(gochannel.Config{}, logger)
		defer replies.Close()
		marshaler := cqrs.JSONMarshaler{GenerateName: cqrs.StructName}
		router, err := message.NewRouter(message.RouterConfig{}, logger)
		if err != nil {
			b.Fatal(err)
		}
		router.AddMiddleware(benchRetry().Middleware, middleware.Timeout(30*time.Second), middleware.Recoverer)
		backend, err := requestreply.NewPubSubBackend(requestreply.PubSubBackendConfig{
			Publisher: replies,
			SubscriberConstructor: func(requestreply.PubSubBackendSubscribeParams) (message.Subscriber, error) {
				return replies, nil
			},
			GenerateSubscribeTopic: func(requestreply.PubSubBackendSubscribeParams) (string, error) { return "replies", nil },
			GeneratePublishTopic:   func(requestreply.PubSubBackendPublishParams) (string, error) { return "replies", nil },
			AckCommandErrors:       true,
			Logger:                 logger,
		}, requestreply.BackendPubsubJSONMarshaler[Balance]{})
		if err != nil {
			b.Fatal(err)
		}
		cmdBus, err := cqrs.NewCommandBusWithConfig(commands, cqrs.CommandBusConfig{
			GeneratePublishTopic: func(cqrs.CommandBusGeneratePublishTopicParams) (string, error) { return "commands", nil },
			Marshaler:            marshaler,
			Logger:               logger,
		})
		if err != nil {
			b.Fatal(err)
		}
		proc, err := cqrs.NewCommandProcessorWithConfig(router, cqrs.CommandProcessorConfig{
			GenerateSubscribeTopic: func(cqrs.CommandProcessorGenerateSubscribeTopicParams) (string, error) { return "commands", nil },
			SubscriberConstructor: func(cqrs.CommandProcessorSubscriberConstructorParams) (message.Subscriber, error) {
				return commands, nil
			},
			Marshaler: marshaler,
			Logger:    logger,
		})
		if err != nil {
			b.Fatal(err)
		}
		err = proc.AddHandlers(requestreply.NewCommandHandlerWithResult("open", backend,
			func(ctx context.Context, cmd *OpenAccount) (Balance, error) {
				res, err := repo.Create(ctx, cmd.ID, open(*cmd))
				return Balance{Balance: res.State.Balance}, err
			}))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(b.Context())
		defer cancel()
		go router.Run(ctx)
		defer router.Close()
		<-router.Running()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			reply, err := requestreply.SendWithReply[Balance](rctx, cmdBus, backend, &OpenAccount{ID: strconv.Itoa(i), Owner: "ada"})
			cancel()
			if err == nil {
				err = reply.Error
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})

	// The bus with its telemetry on the global no-op providers (an
	// application without an OpenTelemetry SDK), and switched off.
	b.Run("impl=eventfold", func(b *testing.B) { roundTrip(b) })
	b.Run("impl=eventfold-telemetry-off", func(b *testing.B) { roundTrip(b, bus.WithoutTelemetry()) })
	// With an SDK recording every span (batched to an exporter that drops
	// them) and the metrics.
	b.Run("impl=eventfold-sdk", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardSpans{}))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		defer func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) }()
		roundTrip(b, bus.WithTracerProvider(tp), bus.WithMeterProvider(mp))
	})
}

// discardSpans is a span exporter that drops what it is given.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

// roundTrip measures requests to a bus made with opts whose handler
// creates an aggregate.
func roundTrip(b *testing.B, opts ...bus.Option) {
	{
		repo := benchRepo(b)
		bs, err := bus.New(commandTypes(), eventTypes(), append([]bus.Option{bus.WithLogger(testLogger())}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		defer bs.Close()
		err = bus.HandleRequest(bs, func(ctx context.Context, cmd OpenAccount) (Balance, error) {
			res, err := repo.Create(ctx, cmd.ID, open(cmd))
			return Balance{Balance: res.State.Balance}, err
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(b.Context())
		defer cancel()
		go bs.Run(ctx)
		<-bs.Running()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if _, err := bus.Request[Balance](ctx, bs, OpenAccount{ID: strconv.Itoa(i), Owner: "ada"}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkConcurrentRequests measures requests from 16 goroutines on
// the default transport, to a handler that waits 1ms (a database's disk
// flush): with concurrency=1 they queue behind one handler, near 1,000
// requests/s; with the default, up to DefaultCommandConcurrency are
// handled at once.
func BenchmarkConcurrentRequests(b *testing.B) {
	for _, n := range []int{1, bus.DefaultCommandConcurrency} {
		b.Run("concurrency="+strconv.Itoa(n), func(b *testing.B) {
			bs, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()), bus.WithCommandConcurrency(n))
			if err != nil {
				b.Fatal(err)
			}
			defer bs.Close()
			err = bus.HandleRequest(bs, func(ctx context.Context, cmd Deposit) (Balance, error) {
				time.Sleep(time.Millisecond)
				return Balance{Balance: cmd.Amount}, nil
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(b.Context())
			defer cancel()
			go bs.Run(ctx)
			<-bs.Running()
			b.SetParallelism((16 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := bus.Request[Balance](ctx, bs, Deposit{ID: "1", Amount: 1}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}

func benchRepo(b *testing.B) *aggregate.Repository[Account, Event] {
	repo, err := aggregate.New(memstore.MustNew(), eventTypes(), accounts)
	if err != nil {
		b.Fatal(err)
	}
	return repo
}

// relayEvents is the number of stored events each op of BenchmarkRelay
// carries, in batches of relayBatch (the runner's default batch).
const (
	relayEvents = 10_000
	relayBatch  = 500
)

// BenchmarkRelay measures how fast stored events reach a handler, 10,000
// per op, each handler decoding the payload into a Deposited and counting
// it; besides events/s, it reports the process's CPU time per event
// (cpu-ns/event, user and system, every goroutine and the GC). Run its sub-benchmarks in interleaved rounds (see docs/performance.md)
// and compare them with benchstat -col /impl:
//
//   - impl=gochannel: the baseline: the events, as Watermill messages
//     (payload and type name), published in batches of 500 on a GoChannel
//     that waits for each ack (the bus's default transport), to a
//     subscriber goroutine;
//   - impl=watermill: the same, to a plain Watermill router handler with the
//     bus's middleware (Retry, Timeout, Recoverer);
//   - impl=eventfold: a projection runner without a registry catches up on
//     the events in a memstore and publishes them with Bus.Relay to a
//     bus.HandleEvent handler.
func BenchmarkRelay(b *testing.B) {
	store := memstore.MustNew()
	for s := range 100 {
		events := make([]es.EventData, relayEvents/100)
		for i := range events {
			events[i] = es.EventData{Type: "MoneyDeposited", Data: fmt.Appendf(nil, `{"amount":%d}`, i),
				Metadata: fmt.Appendf(nil, `{"$causationId":"%s","$correlationId":"%s"}`, uuid.New(), uuid.New())}
		}
		if _, err := store.Append(b.Context(), "account-"+strconv.Itoa(s), es.NoStream, events...); err != nil {
			b.Fatal(err)
		}
	}
	var stored []es.RecordedEvent
	for e, err := range store.ReadAll(b.Context(), es.ReadAllOptions{}) {
		if err != nil {
			b.Fatal(err)
		}
		stored = append(stored, e)
	}
	if len(stored) != relayEvents {
		b.Fatalf("%d stored events, want %d", len(stored), relayEvents)
	}
	var count atomic.Int64
	handle := func(payload []byte) error {
		var e Deposited
		if err := json.Unmarshal(payload, &e); err != nil {
			return err
		}
		count.Add(1)
		return nil
	}
	// publish publishes the stored events as plain messages.
	publish := func(pub message.Publisher) error {
		for batch := range slices.Chunk(stored, relayBatch) {
			msgs := make([]*message.Message, len(batch))
			for i, e := range batch {
				msgs[i] = message.NewMessage(e.ID.String(), e.Data)
				msgs[i].Metadata.Set("name", e.Type)
			}
			if err := pub.Publish("events", msgs...); err != nil {
				return err
			}
		}
		return nil
	}
	measure := func(b *testing.B, op func() error) {
		count.Store(0)
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			if err := op(); err != nil {
				b.Fatal(err)
			}
		}
		cpu = cpuTime() - cpu
		if got := count.Load(); got != int64(relayEvents*b.N) {
			b.Fatalf("handled %d events, want %d", got, relayEvents*b.N)
		}
		b.ReportMetric(float64(relayEvents*b.N)/b.Elapsed().Seconds(), "events/s")
		if cpu > 0 {
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(relayEvents*b.N), "cpu-ns/event")
		}
	}

	b.Run("impl=gochannel", func(b *testing.B) {
		gc := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
		defer gc.Close()
		msgs, err := gc.Subscribe(b.Context(), "events")
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for msg := range msgs {
				if err := handle(msg.Payload); err != nil {
					b.Error(err)
				}
				msg.Ack()
			}
		}()
		measure(b, func() error { return publish(gc) })
		_ = gc.Close()
		<-done
	})

	b.Run("impl=watermill", func(b *testing.B) {
		gc := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
		defer gc.Close()
		router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
		if err != nil {
			b.Fatal(err)
		}
		router.AddMiddleware(benchRetry().Middleware, middleware.Timeout(30*time.Second), middleware.Recoverer)
		router.AddConsumerHandler("count", "events", gc, func(msg *message.Message) error { return handle(msg.Payload) })
		ctx, cancel := context.WithCancel(b.Context())
		defer cancel()
		go router.Run(ctx)
		defer router.Close()
		<-router.Running()
		measure(b, func() error { return publish(gc) })
	})

	b.Run("impl=eventfold", func(b *testing.B) {
		bs, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()))
		if err != nil {
			b.Fatal(err)
		}
		defer bs.Close()
		if err := bus.HandleEvent(bs, "count", func(ctx context.Context, e Deposited) error {
			count.Add(1)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(b.Context())
		defer cancel()
		go bs.Run(ctx)
		<-bs.Running()
		p := projection.Relay(bs.Publish)
		measure(b, func() error {
			// No registry: the runner hands the events over as stored.
			runner, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, p,
				projection.WithLogger(testLogger()), projection.WithBatch(relayBatch, 100*time.Millisecond))
			if err != nil {
				return err
			}
			return runner.CatchUp(ctx)
		})
	})
}

// benchRetry is the bus's retry middleware with its default settings.
func benchRetry() middleware.Retry {
	return middleware.Retry{MaxRetries: 3, InitialInterval: 100 * time.Millisecond, MaxInterval: 2 * time.Second,
		Multiplier: 2, RandomizationFactor: 0.2, ResetContextOnRetry: true}
}
