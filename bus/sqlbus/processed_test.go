package sqlbus_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/sqlbus"
	"github.com/eventfold/eventfold/es"
)

// wait bounds every wait of the tests; nothing waits for it unless
// something is broken.
const wait = 30 * time.Second

// databases are the databases the tests run on: SQLite always,
// PostgreSQL when EVENTFOLD_TEST_POSTGRES names one.
var databases = map[string]func(t *testing.T) *sql.DB{
	"SQLite": func(t *testing.T) *sql.DB {
		db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/processed.db")
		require.NoError(t, err)
		return db
	},
	"PostgreSQL": func(t *testing.T) *sql.DB {
		url := os.Getenv("EVENTFOLD_TEST_POSTGRES")
		if url == "" {
			t.Skip("EVENTFOLD_TEST_POSTGRES is not set: skipping sqlbus.Processed on PostgreSQL (set it to the server's URL, as .ci/run does)")
		}
		db, err := sql.Open("pgx", url)
		require.NoError(t, err)
		return db
	},
}

func TestProcessed(t *testing.T) {
	for _, name := range []string{"SQLite", "PostgreSQL"} {
		t.Run(name, func(t *testing.T) {
			db := databases[name](t)
			defer db.Close()
			table := "processed_" + uuid.NewString()[:8]
			defer db.Exec(`DROP TABLE ` + table)
			_, err := sqlbus.NewProcessed(t.Context(), db, "bad name")
			require.ErrorIs(t, err, sqlbus.ErrInvalidOption)
			_, err = sqlbus.NewProcessed(t.Context(), nil, table)
			require.ErrorIs(t, err, sqlbus.ErrInvalidOption)
			store, err := sqlbus.NewProcessed(t.Context(), db, table)
			require.NoError(t, err)
			_, err = sqlbus.NewProcessed(t.Context(), db, table) // exists: fine
			require.NoError(t, err)

			id := uuid.New()
			done, err := store.Processed(t.Context(), "h", id)
			require.NoError(t, err)
			assert.False(t, done)
			require.NoError(t, store.MarkProcessed(t.Context(), "h", id))
			require.NoError(t, store.MarkProcessed(t.Context(), "h", id), "marking twice is fine")
			done, err = store.Processed(t.Context(), "h", id)
			require.NoError(t, err)
			assert.True(t, done)
			done, err = store.Processed(t.Context(), "other", id)
			require.NoError(t, err)
			assert.False(t, done, "per group")

			testMarkProcessedTx(t, db, store)
		})
	}
}

type Deposited struct {
	Amount int `json:"amount"`
}

// testMarkProcessedTx marks events within a handler's transaction: the
// first time only, under the handler's group.
func testMarkProcessedTx(t *testing.T, db *sql.DB, store *sqlbus.Processed) {
	first, err := store.MarkProcessedTx(t.Context(), nil)
	require.NoError(t, err)
	assert.True(t, first, "outside an event handler")

	events, err := es.NewRegistry(es.Type[Deposited]("MoneyDeposited"))
	require.NoError(t, err)
	commands, err := es.NewRegistry()
	require.NoError(t, err)
	b, err := bus.New(commands, events, bus.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	defer b.Close()
	firsts := make(chan bool, 2)
	require.NoError(t, bus.HandleEvent(b, "tx", func(ctx context.Context, e Deposited) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		first, err := store.MarkProcessedTx(ctx, tx)
		if err != nil || !first {
			firsts <- first
			return err
		}
		firsts <- first
		return tx.Commit()
	}))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	e := es.RecordedEvent{ID: uuid.New(), Stream: "account-1", Type: "MoneyDeposited", ContentType: es.ContentTypeJSON,
		Data: []byte(`{"amount":1}`)}
	pctx, pcancel := context.WithTimeout(t.Context(), wait)
	defer pcancel()
	require.NoError(t, b.Publish(pctx, e, e)) // in process: returns once handled
	assert.True(t, <-firsts)
	assert.False(t, <-firsts)
	processed, err := store.Processed(t.Context(), "tx", e.ID)
	require.NoError(t, err)
	assert.True(t, processed, "marked under the handler's group")
}

// Replicas of a service start at once on a fresh PostgreSQL database:
// each creates the table, and none fails (CREATE TABLE IF NOT EXISTS races
// with itself there; SQLite has one writer, which a busy timeout waits for).
func TestNewProcessedConcurrently(t *testing.T) {
	for _, name := range []string{"PostgreSQL"} {
		t.Run(name, func(t *testing.T) {
			db := databases[name](t)
			defer db.Close()
			for range 5 {
				table := "processed_" + uuid.NewString()[:8]
				errs := make(chan error, 4)
				for range cap(errs) {
					go func() {
						_, err := sqlbus.NewProcessed(t.Context(), db, table)
						errs <- err
					}()
				}
				for range cap(errs) {
					assert.NoError(t, <-errs)
				}
				_, _ = db.Exec(`DROP TABLE ` + table)
			}
		})
	}
}
