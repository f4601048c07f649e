package jetstream_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/jetstream"
	"github.com/eventfold/eventfold/es"
)

// Add is the command of this example; Sum is its handler's answer.
type (
	Add struct {
		A int `json:"a"`
		B int `json:"b"`
	}
	Sum struct {
		N int `json:"n"`
	}
)

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

	commands, _ := es.NewRegistry(es.Type[Add]("Add"))
	events, _ := es.NewRegistry()
	b, err := bus.New(commands, events, t.Options()...)
	if err != nil {
		panic(err)
	}
	_ = bus.HandleRequest(b, func(ctx context.Context, a Add) (Sum, error) { return Sum{N: a.A + a.B}, nil })
	go b.Run(ctx)
	sum, err := bus.Request[Sum](ctx, b, Add{A: 1, B: 2})
	fmt.Println(sum.N, err)
}
