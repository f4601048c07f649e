package jetstream_test

import (
	"context"
	"fmt"
	"time"

	"github.com/eventfold/eventfold/bus/jetstream"
)

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
	deleted, err := t.DeleteStreams(ctx, prefix)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(deleted), "streams deleted")
}
