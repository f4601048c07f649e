package sqlstore_test

import (
	"context"
	"database/sql"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
	"github.com/eventfold/eventfold/internal/faultproxy"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// restoringCheckpoints are checkpoints (without a lease, which the test
// does not need) that restore the proxy once n commits of events have
// failed.
type restoringCheckpoints struct {
	cps    *sqlproj.Checkpoints
	p      *faultproxy.Proxy
	n      int32
	failed atomic.Int32
}

func (c *restoringCheckpoints) Load(ctx context.Context, key string) (projection.Checkpoint, error) {
	return c.cps.Load(ctx, key)
}

func (c *restoringCheckpoints) Commit(ctx context.Context, key string, cp projection.Checkpoint, apply func(*sql.Tx) error) error {
	err := c.cps.Commit(ctx, key, cp, apply)
	if err != nil && apply != nil && c.failed.Add(1) == c.n {
		c.p.Restore()
	}
	return err
}

func (c *restoringCheckpoints) SaveDeadLetter(ctx context.Context, d projection.DeadLetter) error {
	return c.cps.SaveDeadLetter(ctx, d)
}

func (c *restoringCheckpoints) DeadLetters(ctx context.Context, name string) ([]projection.DeadLetter, error) {
	return c.cps.DeadLetters(ctx, name)
}

// TestPostgresBackDuringIsolation: a runner whose database is away fails
// its batch (a single event, E) on every attempt, then looks for the event
// at fault one event at a time, where E fails on every attempt too; then it
// commits the checkpoint alone, to tell a poison event from a database that
// is away. The database comes back just then (the proxy is restored
// exactly there, deterministically): E, which nothing is wrong with, must
// not be poisoned (skipped into the dead letters and missing from the read
// model for good), but applied.
func TestPostgresBackDuringIsolation(t *testing.T) {
	rawURL := postgresURL(t)
	schema := newSchema(t, rawURL)
	p, proxied := throughProxy(t, rawURL)
	ctx := t.Context()
	quiet := slog.New(slog.DiscardHandler)
	// The events reach the runner directly; only its read side is cut.
	store, err := postgres.Open(ctx, rawURL, sqlstore.WithSchema(schema), sqlstore.WithLogger(quiet))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	db, err := sql.Open("pgx", proxied+"&search_path="+schema)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	cps, err := sqlproj.New(ctx, db, sqlproj.Postgres, sqlproj.WithLogger(quiet))
	require.NoError(t, err)
	const attempts = 2
	// The batch's attempts, then the event's alone.
	checkpoints := &restoringCheckpoints{cps: cps, p: p, n: 2 * attempts}
	const name = "isolated"
	runner, err := projection.NewRunner(store, checkpoints, nil, projection.Projection[*sql.Tx]{
		Name: name,
		Setup: func(ctx context.Context, tx *sql.Tx, _ int) error {
			_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS isolated_seen (id uuid PRIMARY KEY)`)
			return err
		},
		Handle: func(ctx context.Context, tx *sql.Tx, b projection.Batch) error {
			for _, ev := range b.Events {
				if _, err := tx.ExecContext(ctx, `INSERT INTO isolated_seen (id) VALUES ($1)`, ev.ID); err != nil {
					return err
				}
			}
			return nil
		},
	}, projection.WithLogger(quiet), projection.WithRetry(attempts, time.Millisecond), projection.WithSkipPoison(checkpoints),
		projection.WithRestart(10*time.Millisecond, 100*time.Millisecond))
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	appendOne := func() es.AppendResult {
		res, err := store.Append(ctx, "isolated-1", es.Any, es.EventData{ID: uuid.New(), Type: "Tick"})
		require.NoError(t, err)
		return res
	}
	waitFor := func(pos es.Position) {
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		require.NoError(t, runner.WaitFor(waitCtx, pos))
	}
	waitFor(appendOne().Position)

	p.Cut() // restored by the checkpoints after the event's last attempt
	waitFor(appendOne().Position)

	dead, err := cps.DeadLetters(ctx, name)
	require.NoError(t, err)
	assert.Empty(t, dead, "an event is dead-lettered because the database was away during its attempts")
	var n int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM isolated_seen`).Scan(&n))
	assert.Equal(t, 2, n, "the read model has both events")
}
