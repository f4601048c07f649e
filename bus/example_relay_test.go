package bus_test

import (
	"context"
	"fmt"
	"time"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// MemberJoined is the event that this example stores and relays.
type MemberJoined struct {
	Name string `json:"name"`
}

// The relay publishes stored events to the event handlers, from a
// checkpointed projection over the store; each event carries the metadata
// it was stored with.
func Example_relay() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := memstore.MustNew()
	commands, _ := es.NewRegistry()
	events, _ := es.NewRegistry(es.Type[MemberJoined]("MemberJoined"))
	b, err := bus.New(commands, events)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	welcomed := make(chan string)
	_ = bus.HandleEvent(b, "welcome", func(ctx context.Context, e MemberJoined) error {
		rec, _ := bus.EventFromContext(ctx)
		md := es.MetadataFromContext(ctx) // es.CausedBy(rec): for the commands this handler sends
		welcomed <- fmt.Sprintf("welcome %s (%s), correlation %s, causation is the event: %t",
			e.Name, rec.Stream, md.CorrelationID, md.CausationID == rec.ID.String())
		return nil
	})
	go b.Run(ctx)

	// No registry (nil): the relay's runner hands the events over as stored.
	relay, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Relay(b.Publish, "member"),
		projection.WithBatch(100, 10*time.Millisecond))
	if err != nil {
		fmt.Println(err)
		return
	}
	go relay.Run(ctx)

	joined, _ := events.Encode(es.WithCorrelationID(ctx, "signup-1"), MemberJoined{Name: "ada"})
	_, _ = store.Append(ctx, "member-7", es.NoStream, joined)
	fmt.Println(<-welcomed)
	// Output: welcome ada (member-7), correlation signup-1, causation is the event: true
}
