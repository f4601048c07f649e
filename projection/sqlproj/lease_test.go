package sqlproj_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// Two replicas, each with a pool of its own, run the same projection:
// one applies the events, the other waits in standby and takes over when
// the first stops.
func TestPostgresLeaseOneRunner(t *testing.T) {
	ctx := t.Context()
	dsn := postgresSchema(t)
	store := memstore.New()
	add(t, store, "counter-a", 1, 2)

	db1, db2 := openPostgres(t, dsn), openPostgres(t, dsn)
	cps1 := newCheckpoints(t, db1, sqlproj.Postgres, sqlproj.WithLeasePoll(10*time.Millisecond))
	cps2 := newCheckpoints(t, db2, sqlproj.Postgres, sqlproj.WithLeasePoll(10*time.Millisecond))
	m := &totals{table: "totals", dialect: sqlproj.Postgres}
	r1 := newRunner(t, store, cps1, m.projection("totals"))
	r2 := newRunner(t, store, cps2, m.projection("totals"))

	stop1 := start(t, r1)
	waitState(t, r1, projection.StateLive)
	stop2 := start(t, r2)
	waitState(t, r2, projection.StateStandby)

	res := add(t, store, "counter-a", 3)
	require.NoError(t, r1.WaitFor(ctx, res.Position))
	st2, err := r2.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, projection.StateStandby, st2.State)
	assert.Zero(t, st2.Events, "the standby replica applied nothing")

	require.NoError(t, stop1())
	waitState(t, r2, projection.StateLive)
	res = add(t, store, "counter-a", 4)
	require.NoError(t, r2.WaitFor(ctx, res.Position))
	assert.Equal(t, map[string]total{"counter-a": {10, 4, 3}}, read(t, db2, "totals"))
	st1, err := r1.Status(ctx)
	require.NoError(t, err)
	st2, err = r2.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(3), st1.Events)
	assert.Equal(t, int64(1), st2.Events, "the second replica went on from the first's checkpoint")
	require.NoError(t, stop2())
}

// A lease dies with its connection, as with a process that dies.
func TestPostgresLeaseDiesWithConnection(t *testing.T) {
	ctx := t.Context()
	dsn := postgresSchema(t)
	app := fmt.Sprintf("sqlproj_lease_%d", time.Now().UnixNano())
	db1, db2 := openPostgres(t, dsn+"&application_name="+app), openPostgres(t, dsn)
	cps1 := newCheckpoints(t, db1, sqlproj.Postgres)
	cps2 := newCheckpoints(t, db2, sqlproj.Postgres, sqlproj.WithLeasePoll(10*time.Millisecond))

	release, err := cps1.Lease(ctx, "p/v1")
	require.NoError(t, err)
	defer release()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = cps2.Lease(short, "p/v1")
	require.ErrorIs(t, err, context.DeadlineExceeded, "the lease is held")

	// End the first pool's sessions, as if its process died.
	var n int
	require.NoError(t, db2.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1`, app).Scan(&n))
	require.Positive(t, n)
	release2, err := cps2.Lease(ctx, "p/v1")
	require.NoError(t, err)
	release2()
	release() // unlocking on a dead connection closes it, and does not block
}
