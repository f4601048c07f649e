package sqlproj_test

import (
	"database/sql"
	"sync"
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

// Two Checkpoints on one database, as two processes would have: each
// writes a checkpoint only if it still holds what that one last saw.
func TestCommitFenced(t *testing.T) { onEach(t, testCommitFenced[*sql.Tx], testCommitFenced[pgx.Tx]) }

func testCommitFenced[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	db, checkpoints := b.open(t)
	a, c := checkpoints.must(t), checkpoints.must(t)
	_, err := db.ExecContext(ctx, "CREATE TABLE rm (id INTEGER PRIMARY KEY)")
	require.NoError(t, err)
	at := func(n uint64) projection.Checkpoint {
		return projection.Checkpoint{Position: es.Position{Commit: n, Prepare: n}}
	}
	insert := func(id int) func(tx Tx) error {
		return func(tx Tx) error {
			return b.exec(ctx, tx, "INSERT INTO rm (id) VALUES ("+b.dialect.Placeholder(1)+")", id)
		}
	}

	for _, cps := range []checkpointStore[Tx]{a, c} {
		cp, err := cps.Load(ctx, "p/v1")
		require.NoError(t, err)
		require.Zero(t, cp)
	}
	require.NoError(t, a.Commit(ctx, "p/v1", at(1), insert(1)))
	err = c.Commit(ctx, "p/v1", at(1), insert(2))
	require.ErrorIs(t, err, sqlproj.ErrConflict, "c saw no checkpoint, a wrote one")

	cp, err := c.Load(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, at(1), cp)
	require.ErrorIs(t, c.Commit(ctx, "p/v1", at(2), insert(3)), sqlproj.ErrConflict,
		"a Load without a lease (a Status) does not change what c expects")
	_, release, err := c.Lease(ctx, "p/v1")
	require.NoError(t, err)
	_, err = c.Load(ctx, "p/v1")
	require.NoError(t, err)
	require.NoError(t, c.Commit(ctx, "p/v1", at(2), insert(3)), "a Load after a lease does")
	release()
	require.ErrorIs(t, a.Commit(ctx, "p/v1", at(2), insert(4)), sqlproj.ErrConflict)

	var ids []int
	rows, err := db.QueryContext(ctx, "SELECT id FROM rm ORDER BY id")
	require.NoError(t, err)
	for rows.Next() {
		var id int
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []int{1, 3}, ids, "the conflicting commits wrote nothing")

	// Forgetting a checkpoint (the zero Checkpoint) is not fenced.
	require.NoError(t, a.Commit(ctx, "p/v1", projection.Checkpoint{}, nil))
	cp, err = c.Load(ctx, "p/v1")
	require.NoError(t, err)
	assert.Zero(t, cp)
}

// A runner whose checkpoint another runner moved (a second process on the
// same SQLite file, a lost lease) stops with ErrConflict instead of
// applying events twice.
func TestRunnerStopsOnConflict(t *testing.T) {
	onEach(t, testRunnerStopsOnConflict[*sql.Tx], testRunnerStopsOnConflict[pgx.Tx])
}

func testRunnerStopsOnConflict[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	db, checkpoints := b.open(t)
	store := memstore.MustNew()
	for range 5 {
		add(t, store, "counter-a", 1, 1)
	}
	other := checkpoints.must(t)
	var once sync.Once
	moved := func(projection.Progress) {
		once.Do(func() { // after the first batch: another runner goes on
			cp, err := other.Load(ctx, "totals/v1")
			assert.NoError(t, err)
			cp.Position.Commit += 2
			cp.Position.Prepare += 2
			assert.NoError(t, other.Commit(ctx, "totals/v1", cp, nil))
		})
	}
	m := newTotals(b, "totals")
	r := newRunner(t, store, checkpoints.must(t), m.projection("totals"),
		projection.WithBatch(2, time.Hour), projection.WithProgress(time.Hour, moved))
	err := r.CatchUp(ctx)
	require.ErrorIs(t, err, sqlproj.ErrConflict)
	assert.Equal(t, map[string]total{"counter-a": {2, 2, 1}}, read(t, db, "totals_v1"), "only the first batch")
}
