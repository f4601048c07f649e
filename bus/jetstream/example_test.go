package jetstream_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/jetstream"
	"github.com/eventfold/eventfold/es"
)

// A bus on NATS JetStream, on a connection that Open makes and owns. This
// example only compiles: it needs a NATS server with JetStream
// (nats-server -js).
func Example() {
	ctx := context.Background()
	t, err := jetstream.Open("nats://localhost:4222", slog.Default())
	if err != nil {
		panic(err)
	}
	defer t.Close() // after the bus stops

	commands, _ := es.NewRegistry(es.Type[Ping]("Ping"))
	events, _ := es.NewRegistry(es.Type[Pinged]("Pinged"))
	b, err := bus.New(commands, events, t.Options()...)
	if err != nil {
		panic(err)
	}
	_ = bus.HandleRequest(b, func(ctx context.Context, p Ping) (Pong, error) { return Pong(p), nil })
	go b.Run(ctx)
	pong, err := bus.Request[Pong](ctx, b, Ping{N: 1})
	_, _ = pong, err
}

// A bus on a connection of the caller's, here with a name and the
// transport's reconnection settings (add nats.UserCredentials, nats.Secure
// and the like as needed). The transport never closes it. This example only
// compiles: it needs a NATS server with JetStream.
func ExampleNew() {
	ctx := context.Background()
	opts := append(jetstream.ConnectOptions(jetstream.DefaultTimeout), nats.Name("orders"))
	nc, err := nats.Connect("nats://localhost:4222", opts...)
	if err != nil {
		panic(err)
	}
	defer nc.Close() // the caller's: after the transport's Close

	t, err := jetstream.New(nc, slog.Default())
	if err != nil {
		panic(err)
	}
	defer t.Close() // after the bus stops; leaves nc open

	commands, _ := es.NewRegistry(es.Type[Ping]("Ping"))
	events, _ := es.NewRegistry(es.Type[Pinged]("Pinged"))
	b, err := bus.New(commands, events, t.Options()...)
	if err != nil {
		panic(err)
	}
	_ = bus.HandleRequest(b, func(ctx context.Context, p Ping) (Pong, error) { return Pong(p), nil })
	go b.Run(ctx)
	pong, err := bus.Request[Pong](ctx, b, Ping{N: 1})
	_, _ = pong, err
}

// What a deployment left on NATS: the streams of its bus's topics, what
// their consumers have pending, and their deletion. This example only
// compiles: it needs a NATS server with JetStream.
func ExampleTransport_Streams() {
	ctx := context.Background()
	t, err := jetstream.Open("nats://localhost:4222", nil, jetstream.WithTimeout(2*time.Second))
	if err != nil {
		panic(err)
	}
	defer t.Close()
	prefix := "eventfold-d3f9a2c41b07-" // bus.Bus.TopicPrefix of the deployment's bus
	streams, err := t.Streams(ctx, prefix)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(streams), "streams,", jetstream.Pending(streams), "messages pending")
	if _, err := t.DeleteStreams(ctx, prefix); err != nil {
		panic(err)
	}
}
