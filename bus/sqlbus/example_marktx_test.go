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

// Refunded is the event of this example.
type Refunded struct {
	Amount int `json:"amount"`
}

// refunds keeps the sum of the refunds in a SQL table, and marks each
// event processed in the same transaction: a redelivered event changes
// nothing, even after a crash between the write and the mark.
type refunds struct {
	db        *sql.DB
	processed *sqlbus.Processed
}

func (r refunds) handle(ctx context.Context, e Refunded) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	first, err := r.processed.MarkProcessedTx(ctx, tx) // the group and the event come from ctx
	if err != nil || !first {
		return err // a redelivery: nothing to do
	}
	if _, err = tx.ExecContext(ctx, `UPDATE refund_total SET amount = amount + $1`, e.Amount); err != nil {
		return err
	}
	return tx.Commit()
}

// An event handler that writes its effect and marks its event in one
// transaction, for an effect exactly once.
func ExampleProcessed_MarkProcessedTx() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, _ := os.MkdirTemp("", "sqlbus")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "refunds.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `CREATE TABLE refund_total (amount INTEGER NOT NULL); INSERT INTO refund_total VALUES (0)`)
	if err != nil {
		fmt.Println(err)
		return
	}
	processed, err := sqlbus.NewProcessed(ctx, db, "processed_events")
	if err != nil {
		fmt.Println(err)
		return
	}

	commands, _ := es.NewRegistry()
	events, _ := es.NewRegistry(es.Type[Refunded]("Refunded"))
	b, err := bus.New(commands, events)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	_ = bus.HandleEvent(b, "refund-total", refunds{db: db, processed: processed}.handle)
	go b.Run(ctx)

	refunded := es.RecordedEvent{ID: uuid.New(), Stream: "order-1", Type: "Refunded", Data: []byte(`{"amount":15}`)}
	_ = b.Publish(ctx, refunded)
	_ = b.Publish(ctx, refunded) // again, as a relay does after a crash
	var total int
	_ = db.QueryRowContext(ctx, `SELECT amount FROM refund_total`).Scan(&total)
	fmt.Println("total:", total)
	// Output: total: 15
}
