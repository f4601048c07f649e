package jetstream_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/jetstream"
	"github.com/eventfold/eventfold/es"
)

// Hello is the command of this example; Greeting is its handler's answer.
type (
	Hello struct {
		Name string `json:"name"`
	}
	Greeting struct {
		Text string `json:"text"`
	}
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

	commands, _ := es.NewRegistry(es.Type[Hello]("Hello"))
	events, _ := es.NewRegistry()
	b, err := bus.New(commands, events, t.Options()...)
	if err != nil {
		panic(err)
	}
	_ = bus.HandleRequest(b, func(ctx context.Context, h Hello) (Greeting, error) {
		return Greeting{Text: "hello, " + h.Name}, nil
	})
	go b.Run(ctx)
	greeting, err := bus.Request[Greeting](ctx, b, Hello{Name: "ada"})
	fmt.Println(greeting.Text, err)
}
