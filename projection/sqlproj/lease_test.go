package sqlproj_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// Two replicas, each with a pool of its own, run the same projection:
// one applies the events, the other waits in standby and takes over when
// the first stops.
func TestPostgresLeaseOneRunner(t *testing.T) {
	onPostgres(t, testPostgresLeaseOneRunner[*sql.Tx], testPostgresLeaseOneRunner[pgx.Tx])
}

func testPostgresLeaseOneRunner[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	dsn := b.create(t)
	store := memstore.New()
	add(t, store, "counter-a", 1, 2)

	_, open1 := b.connect(t, dsn)
	db2, open2 := b.connect(t, dsn)
	cps1 := open1.must(t, sqlproj.WithLeasePoll(10*time.Millisecond))
	cps2 := open2.must(t, sqlproj.WithLeasePoll(10*time.Millisecond))
	m := newTotals(b, "totals")
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
	onPostgres(t, testPostgresLeaseDiesWithConnection[*sql.Tx], testPostgresLeaseDiesWithConnection[pgx.Tx])
}

func testPostgresLeaseDiesWithConnection[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	dsn := b.create(t)
	app := fmt.Sprintf("sqlproj_lease_%d", time.Now().UnixNano())
	_, open1 := b.connect(t, dsn+"&application_name="+app)
	db2, open2 := b.connect(t, dsn)
	cps1 := open1.must(t)
	cps2 := open2.must(t, sqlproj.WithLeasePoll(10*time.Millisecond))

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

// A lease holder whose lease session PostgreSQL terminates while its
// process lives can no longer commit: its commits run on its lease's
// session, which is gone, and so is its lock. The standby takes the lease and goes on
// from the checkpoint, never fenced, and every event is applied once.
func TestPostgresLeaseHolderCutOff(t *testing.T) {
	onPostgres(t, testPostgresLeaseHolderCutOff[*sql.Tx], testPostgresLeaseHolderCutOff[pgx.Tx])
}

func testPostgresLeaseHolderCutOff[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	dsn := b.create(t)
	store := memstore.New()
	add(t, store, "counter-a", 1, 2)
	app := fmt.Sprintf("sqlproj_cut_%d", time.Now().UnixNano())
	_, open1 := b.connect(t, dsn+"&application_name="+app)
	db2, open2 := b.connect(t, dsn)
	cps1 := open1.must(t, sqlproj.WithLeasePoll(10*time.Millisecond))
	cps2 := open2.must(t, sqlproj.WithLeasePoll(10*time.Millisecond))
	m := newTotals(b, "totals")
	// The first replica restarts after its failure (and waits for the
	// lease in standby); the second one returns any failure, ErrFenced
	// included.
	r1 := newRunner(t, store, cps1, m.projection("totals"), projection.WithRestart(10*time.Millisecond, 50*time.Millisecond))
	r2 := newRunner(t, store, cps2, m.projection("totals"))
	stop1 := start(t, r1)
	waitState(t, r1, projection.StateLive)
	stop2 := start(t, r2)
	waitState(t, r2, projection.StateStandby)

	// The session that holds the first replica's lock ends on the server;
	// its process, and the other connections of its pool, go on.
	var n int
	require.NoError(t, db2.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(l.pid))
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1`, app).Scan(&n))
	require.Equal(t, 1, n)
	waitState(t, r2, projection.StateLive)

	for i := range 5 {
		res := add(t, store, "counter-a", 10+i)
		require.NoError(t, r2.WaitFor(ctx, res.Position), "the new holder applies every event")
	}
	st2, err := r2.Status(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, projection.StateFailed, st2.State, "the new holder is not fenced: %v", st2.Err)
	assert.Equal(t, map[string]total{"counter-a": {63, 7, 6}}, read(t, db2, "totals"), "every event applied once")
	require.NoError(t, stop2(), "the new holder was never fenced")
	require.NoError(t, stop1())
}

// Checkpoints and PgxCheckpoints with the same table prefix share their
// rows and their leases: either can take over from the other.
func TestPgxSharesCheckpoints(t *testing.T) {
	ctx := t.Context()
	dsn := postgresSchema(t)
	_, openSQL := postgresBackend.connect(t, dsn)
	_, openPgx := pgxBackend.connect(t, dsn)
	viaSQL := openSQL.must(t)
	viaPgx := openPgx.must(t, sqlproj.WithLeasePoll(10*time.Millisecond))

	release, err := viaSQL.Lease(ctx, "p/v1")
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = viaPgx.Lease(short, "p/v1")
	require.ErrorIs(t, err, context.DeadlineExceeded, "the lease is held through database/sql")

	cp := projection.Checkpoint{Position: es.Position{Commit: 7, Prepare: 7}, Rebuilding: true}
	_, err = viaSQL.Load(ctx, "p/v1")
	require.NoError(t, err)
	require.NoError(t, viaSQL.Commit(ctx, "p/v1", cp, nil))
	require.NoError(t, viaSQL.SetActiveVersion(ctx, "p", 3, nil))
	release()

	release, err = viaPgx.Lease(ctx, "p/v1")
	require.NoError(t, err)
	defer release()
	got, err := viaPgx.Load(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, cp, got)
	v, err := viaPgx.ActiveVersion(ctx, "p")
	require.NoError(t, err)
	assert.Equal(t, 3, v)
	next := projection.Checkpoint{Position: es.Position{Commit: 9, Prepare: 9}}
	require.NoError(t, viaPgx.Commit(ctx, "p/v1", next, nil))
	require.ErrorIs(t, viaSQL.Commit(ctx, "p/v1", projection.Checkpoint{Position: es.Position{Commit: 8, Prepare: 8}}, nil),
		sqlproj.ErrConflict, "fenced across the two clients")
}
