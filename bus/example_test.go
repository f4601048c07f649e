package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// A command bus on the default in-process transport: a request, its
// result, and a domain error that reaches the caller unchanged.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := memstore.MustNew()
	repo, _ := aggregate.New(store, eventTypes(), accounts)
	b, err := bus.New(commandTypes(), eventTypes(), bus.WithErrors(ErrInsufficientFunds))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	_ = bus.HandleRequest(b, func(ctx context.Context, cmd OpenAccount) (Balance, error) {
		_, err := repo.Create(ctx, cmd.ID, open(cmd))
		return Balance{}, err
	})
	_ = bus.HandleRequest(b, func(ctx context.Context, cmd Withdraw) (Balance, error) {
		res, err := repo.Update(ctx, cmd.ID, withdraw(cmd.Amount))
		return Balance{Balance: res.State.Balance}, err
	})
	_ = bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error {
		_, err := repo.Update(ctx, cmd.ID, deposit(cmd.Amount))
		return err
	})
	go b.Run(ctx)

	_, err = bus.Request[Balance](ctx, b, OpenAccount{ID: "7", Owner: "ada"})
	fmt.Println("opened:", err)
	err = b.Send(ctx, Deposit{ID: "7", Amount: 100}) // in process: returns once handled
	fmt.Println("deposited:", err)
	balance, err := bus.Request[Balance](ctx, b, Withdraw{ID: "7", Amount: 30})
	fmt.Println("balance:", balance.Balance, err)
	_, err = bus.Request[Balance](ctx, b, Withdraw{ID: "7", Amount: 500})
	fmt.Println(errors.Is(err, ErrInsufficientFunds), err)
	err = b.Send(ctx, Unhandled{})
	fmt.Println(errors.Is(err, bus.ErrNoHandler), err)
	// Output:
	// opened: <nil>
	// deposited: <nil>
	// balance: 70 <nil>
	// true account: insufficient funds: balance 70, withdrawing 500
	// true bus: no handler for command "Unhandled"
}

// The relay publishes stored events to the event handlers, from a
// checkpointed projection; the events of a command carry its metadata.
func ExampleRelay() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := memstore.MustNew()
	repo, _ := aggregate.New(store, eventTypes(), accounts)
	b, _ := bus.New(commandTypes(), eventTypes())
	defer b.Close()
	_ = bus.HandleCommand(b, func(ctx context.Context, cmd OpenAccount) error {
		_, err := repo.Create(ctx, cmd.ID, open(cmd))
		return err
	})
	opened := make(chan string)
	_ = bus.HandleEvent(b, "welcome", func(ctx context.Context, e Opened) error {
		rec, _ := bus.EventFromContext(ctx)
		md := es.MetadataFromContext(ctx) // es.CausedBy(rec): for the commands this handler sends
		opened <- fmt.Sprintf("%s opened %s, correlation %s, causation is the event: %t",
			e.Owner, rec.Stream, md.CorrelationID, md.CausationID == rec.ID.String())
		return nil
	})
	go b.Run(ctx)

	relay := bus.NewRelay(b)
	// No registry (nil): the runner hands the events over as stored.
	runner, _ := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Projection[projection.NoTx]{
		Name: "relay",
		Handle: func(ctx context.Context, _ projection.NoTx, batch projection.Batch) error {
			return relay.Publish(ctx, batch.Recorded()...)
		},
	}, projection.WithBatch(100, 10*time.Millisecond))
	go runner.Run(ctx)

	_ = b.Send(es.WithCorrelationID(ctx, "signup-1"), OpenAccount{ID: "7", Owner: "ada"})
	fmt.Println(<-opened)
	// Output:
	// ada opened account-7, correlation signup-1, causation is the event: true
}

// An event delivered twice (the relay published it again after a crash)
// is handled once.
func ExampleIdempotent() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, _ := bus.New(commandTypes(), eventTypes())
	defer b.Close()
	processed := new(bus.MemoryProcessed) // or bus.NewSQLProcessed: survives restarts
	total := 0
	_ = bus.HandleEvent(b, "totals", bus.Idempotent(processed, "totals", func(ctx context.Context, e Deposited) error {
		total += e.Amount
		return nil
	}))
	go b.Run(ctx)

	deposited := es.RecordedEvent{ID: uuid.New(), Stream: "account-7", Type: "MoneyDeposited", Data: []byte(`{"amount":100}`)}
	relay := bus.NewRelay(b)
	_ = relay.Publish(ctx, deposited)
	_ = relay.Publish(ctx, deposited) // in process: returns once handled
	fmt.Println("total:", total)
	// Output: total: 100
}

// Two deployments that share a broker keep their topics apart with a
// namespace each: here the ID a deployment keeps in its event store.
func ExampleWithNamespace() {
	b, err := bus.New(commandTypes(), eventTypes(), bus.WithNamespace("d3f9a2c41b07"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	fmt.Println(b.TopicPrefix())

	_, err = bus.New(commandTypes(), eventTypes(), bus.WithNamespace("orders.eu"))
	fmt.Println(errors.Is(err, bus.ErrInvalidOption))
	// Output:
	// eventfold-d3f9a2c41b07-
	// true
}

// A relay whose bus stopped fails its batch with an error that blames no
// event: its runner retries, then restarts (projection.WithRestart), and
// its checkpoint stays before the events.
func ExampleRelay_stopped() {
	b, err := bus.New(commandTypes(), eventTypes())
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = b.Close()
	err = bus.NewRelay(b).Publish(context.Background(), es.RecordedEvent{ID: uuid.New(), Stream: "account-1", Type: "MoneyDeposited"})
	fmt.Println(errors.Is(err, projection.ErrUnavailable), errors.Is(err, bus.ErrStopped))
	// Output: true true
}

// A bus on a transport of the caller's: a GoChannel that delivers every
// message to every subscription, so that one subscriber serves every
// consumer (bus.Shared does the same); a broker would create a consumer
// group, durable consumer or queue per consumer name.
func ExampleSubscriberFactory() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pubsub := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
	defer pubsub.Close()
	var mu sync.Mutex
	var consumers []string
	factory := bus.SubscriberFactory(func(consumer string) (message.Subscriber, error) {
		mu.Lock()
		defer mu.Unlock()
		consumers = append(consumers, consumer)
		return pubsub, nil
	})
	b, err := bus.New(commandTypes(), eventTypes(), bus.WithTransport(pubsub, factory))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	_ = bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error { return nil })
	go b.Run(ctx)
	fmt.Println(b.Send(ctx, Deposit{ID: "7", Amount: 1}))
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(consumers)
	for _, c := range consumers {
		if strings.HasPrefix(c, "replies-") {
			c = "replies-<this bus's instance>"
		}
		fmt.Println(c)
	}
	// Output:
	// <nil>
	// command-Deposit
	// replies-<this bus's instance>
}
