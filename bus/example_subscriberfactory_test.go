package bus_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
)

// Ping is the command of this example.
type Ping struct {
	N int `json:"n"`
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
	commands, _ := es.NewRegistry(es.Type[Ping]("Ping"))
	events, _ := es.NewRegistry()
	b, err := bus.New(commands, events, bus.WithTransport(pubsub, factory))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	_ = bus.HandleCommand(b, func(ctx context.Context, cmd Ping) error { return nil })
	go b.Run(ctx)
	fmt.Println(b.Send(ctx, Ping{N: 1}))
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
	// command-Ping
	// replies-<this bus's instance>
}
