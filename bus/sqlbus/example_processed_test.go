package sqlbus_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/uuid"
	_ "modernc.org/sqlite"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/sqlbus"
	"github.com/eventfold/eventfold/es"
)

// Paid is the event of this example.
type Paid struct {
	Amount int `json:"amount"`
}

// An event handler group that skips, across restarts, the events it
// processed before: its processed events are kept in a SQL table, under
// the group's name.
func ExampleNewProcessed() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, _ := os.MkdirTemp("", "sqlbus")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "bus.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	processed, err := sqlbus.NewProcessed(ctx, db, "processed_events")
	if err != nil {
		fmt.Println(err)
		return
	}

	commands, _ := es.NewRegistry()
	events, _ := es.NewRegistry(es.Type[Paid]("Paid"))
	b, err := bus.New(commands, events)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	total := 0
	_ = bus.HandleEvent(b, "revenue", func(ctx context.Context, e Paid) error {
		total += e.Amount
		return nil
	}, bus.WithIdempotency(processed))
	go b.Run(ctx)

	paid := es.RecordedEvent{ID: uuid.New(), Stream: "invoice-1", Type: "Paid", Data: []byte(`{"amount":40}`)}
	_ = b.Publish(ctx, paid)
	_ = b.Publish(ctx, paid) // again, as a relay does after a crash
	done, _ := processed.Processed(ctx, "revenue", paid.ID)
	fmt.Println("total:", total, "processed:", done)
	// Output: total: 40 processed: true
}
