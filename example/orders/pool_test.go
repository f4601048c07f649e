package main

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/aggregate"
)

// TestOnePoolOnPostgreSQL checks that on PostgreSQL the application opens
// one pool, which the event store and the read side share, and that the
// read side's sessions commit without waiting for the WAL flush.
func TestOnePoolOnPostgreSQL(t *testing.T) {
	pg := os.Getenv("EVENTFOLD_TEST_POSTGRES")
	if pg == "" {
		t.Skip("EVENTFOLD_TEST_POSTGRES is not set: no PostgreSQL for the pool test")
	}
	var pools atomic.Int32
	open := newPool
	newPool = func(ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, error) {
		pools.Add(1)
		return open(ctx, cfg)
	}
	t.Cleanup(func() { newPool = open })

	a := openTestApp(t, infra{postgres: postgresSchema(t, pg)}, slog.New(slog.DiscardHandler))
	assert.Equal(t, int32(1), pools.Load(), "pools opened")
	require.NotNil(t, a.pool)
	assert.Equal(t, int32(poolSize), a.pool.Config().MaxConns)

	before := a.pool.Stat().AcquireCount()
	var sc string
	require.NoError(t, a.db.QueryRowContext(t.Context(), "SHOW synchronous_commit").Scan(&sc))
	assert.Equal(t, "off", sc, "the read side's sessions")
	assert.Greater(t, a.pool.Stat().AcquireCount(), before, "the read side borrows the pool's connections")

	before = a.pool.Stat().AcquireCount()
	_, _, err := a.orders.Load(t.Context(), "pool-1")
	require.ErrorIs(t, err, aggregate.ErrNotFound)
	assert.Greater(t, a.pool.Stat().AcquireCount(), before, "the event store reads through the pool")
}
