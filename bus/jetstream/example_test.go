package jetstream_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/jetstream"
	"github.com/eventfold/eventfold/es"
)

// A bus on NATS JetStream. This example only compiles: it needs a NATS
// server with JetStream (nats-server -js).
func Example() {
	ctx := context.Background()
	t, err := jetstream.New("nats://localhost:4222", slog.Default())
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

// What a deployment left on NATS: the streams of its bus's topics, what
// their consumers have pending, and their deletion. This example only
// compiles: it needs a NATS server with JetStream.
func ExampleTransport_Streams() {
	ctx := context.Background()
	t, err := jetstream.New("nats://localhost:4222", nil, jetstream.WithTimeout(2*time.Second))
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
