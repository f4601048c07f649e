package bus_test

import (
	"context"
	"fmt"
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

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// BenchmarkCommandRoundTrip measures a command's round trip over GoChannel:
// request → handler → an aggregate appends to a memstore → reply. The
// handler is the same in both: "eventfold" goes through the bus;
// "watermill" through plain cqrs.CommandBus, cqrs.CommandProcessor and
// requestreply with the same middleware (Recoverer, Retry, Timeout). The
// difference is what eventfold adds: typed handlers, registry names,
// metadata, deadlines, error identity, the shared replies inbox.
func BenchmarkCommandRoundTrip(b *testing.B) {
	b.Run("eventfold", func(b *testing.B) {
		repo := benchRepo(b)
		bs, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()))
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
	})

	b.Run("watermill", func(b *testing.B) {
		repo := benchRepo(b)
		logger := watermill.NewSlogLogger(testLogger())
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
		retry := middleware.Retry{MaxRetries: 3, InitialInterval: 100 * time.Millisecond, MaxInterval: 2 * time.Second, Multiplier: 2, ResetContextOnRetry: true}
		router.AddMiddleware(retry.Middleware, middleware.Timeout(30*time.Second), middleware.Recoverer)
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
}

func benchRepo(b *testing.B) *aggregate.Repository[Account, Event] {
	repo, err := aggregate.New(memstore.New(), eventTypes(), accounts)
	if err != nil {
		b.Fatal(err)
	}
	return repo
}

// BenchmarkRelay measures the relay: a projection runner catches up on
// 10,000 stored events and publishes them through the bus, over GoChannel,
// to an event handler that counts them.
func BenchmarkRelay(b *testing.B) {
	const n = 10_000
	store := memstore.New()
	for s := range 100 {
		events := make([]es.EventData, n/100)
		for i := range events {
			events[i] = es.EventData{Type: "MoneyDeposited", Data: fmt.Appendf(nil, `{"amount":%d}`, i)}
		}
		if _, err := store.Append(b.Context(), "account-"+strconv.Itoa(s), es.NoStream, events...); err != nil {
			b.Fatal(err)
		}
	}
	bs, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()))
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	var count atomic.Int64
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
	relay := bus.NewRelay(bs)
	handle := func(ctx context.Context, _ projection.NoTx, batch projection.Batch) error {
		events := make([]es.RecordedEvent, len(batch.Events))
		for i, e := range batch.Events {
			events[i] = e.RecordedEvent
		}
		return relay.Publish(ctx, events...)
	}
	b.ReportAllocs()
	for b.Loop() {
		runner, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), eventTypes(),
			projection.Projection[projection.NoTx]{Name: "relay", Handle: handle}, projection.WithLogger(testLogger()))
		if err != nil {
			b.Fatal(err)
		}
		if err := runner.CatchUp(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if got := count.Load(); got != int64(n*b.N) {
		b.Fatalf("handled %d events, want %d", got, n*b.N)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}
