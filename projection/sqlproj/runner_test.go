package sqlproj_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
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

func TestCatchUpThenLive(t *testing.T) {
	onEach(t, testCatchUpThenLive[*sql.Tx], testCatchUpThenLive[pgx.Tx])
}

func testCatchUpThenLive[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	db, checkpoints := b.open(t)
	cps := checkpoints.must(t)
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2, 3)
	add(t, store, "counter-b", 10)
	add(t, store, "other-x", 100) // not this projection's category

	m := newTotals(b, "totals")
	r := newRunner(t, store, cps, m.projection("totals"))
	require.NoError(t, r.CatchUp(ctx))
	assert.Equal(t, map[string]total{"counter-a": {6, 3, 2}, "counter-b": {10, 1, 0}}, read(t, db, "totals"))

	stop := start(t, r)
	res := add(t, store, "counter-a", 4)
	require.NoError(t, r.WaitFor(ctx, res.Position))
	assert.Equal(t, total{10, 4, 3}, read(t, db, "totals")["counter-a"])
	require.NoError(t, stop())

	// The checkpoint is in the database: a new runner on new
	// checkpoints resumes after it.
	st, err := newRunner(t, store, checkpoints.must(t), m.projection("totals")).Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, res.Position, st.Checkpoint)
	assert.Equal(t, 1, mustActive(t, cps, "totals"))
}

func mustActive[Tx any](t testing.TB, cps projection.Versions[Tx], name string) int {
	t.Helper()
	v, err := cps.ActiveVersion(t.Context(), name)
	require.NoError(t, err)
	return v
}

// A failing apply rolls back the read model's changes and the checkpoint.
func TestCommitRollsBackTogether(t *testing.T) {
	onEach(t, testCommitRollsBackTogether[*sql.Tx], testCommitRollsBackTogether[pgx.Tx])
}

func testCommitRollsBackTogether[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	db, checkpoints := b.open(t)
	cps := checkpoints.must(t)
	_, err := db.ExecContext(ctx, "CREATE TABLE rm (id INTEGER PRIMARY KEY)")
	require.NoError(t, err)

	at := func(n uint64) projection.Checkpoint {
		return projection.Checkpoint{Position: es.Position{Commit: n, Prepare: n}}
	}
	require.NoError(t, cps.Commit(ctx, "p/v1", at(1), func(tx Tx) error {
		return b.exec(ctx, tx, "INSERT INTO rm (id) VALUES (1)")
	}))
	boom := errors.New("boom")
	err = cps.Commit(ctx, "p/v1", at(2), func(tx Tx) error {
		if err := b.exec(ctx, tx, "INSERT INTO rm (id) VALUES (2)"); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	assert.Equal(t, boom, err, "the handler's error is returned as is")

	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM rm").Scan(&n))
	assert.Equal(t, 1, n)
	cp, err := cps.Load(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, at(1), cp)

	// Rebuilding and positions up to 2^63-1 round-trip; larger ones
	// are refused.
	big := projection.Checkpoint{Position: es.Position{Commit: math.MaxInt64, Prepare: math.MaxInt64 - 1}, Rebuilding: true}
	require.NoError(t, cps.Commit(ctx, "p/v1", big, nil))
	cp, err = cps.Load(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, big, cp)
	err = cps.Commit(ctx, "p/v1", projection.Checkpoint{Position: es.Position{Commit: math.MaxInt64 + 1}}, nil)
	require.ErrorIs(t, err, sqlproj.ErrPositionRange)
	assert.ErrorContains(t, err, "sqlproj: ")

	cp, err = cps.Load(ctx, "missing/v1")
	require.NoError(t, err)
	assert.Equal(t, projection.Checkpoint{}, cp)
}

func TestPoison(t *testing.T) { onEach(t, testPoison[*sql.Tx], testPoison[pgx.Tx]) }

func testPoison[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	db, checkpoints := b.open(t)
	cps := checkpoints.must(t)
	store := memstore.MustNew()
	first := add(t, store, "counter-a", 1, 2)
	add(t, store, "counter-b", 5, -1, 7) // -1 is a poison event
	add(t, store, "counter-a", 3)

	t.Run("stop", func(t *testing.T) {
		m := newTotals(b, "stopped")
		// One batch holds every event, so the first two are committed
		// only once the runner has isolated the culprit.
		r := newRunner(t, store, cps, m.projection("stopped"), projection.WithBatch(100, time.Second))
		err := r.CatchUp(ctx)
		var perr *projection.PoisonError
		require.ErrorAs(t, err, &perr)
		assert.ErrorIs(t, err, errPoison)
		assert.Equal(t, "counter-b", perr.Event.Stream)
		assert.Equal(t, uint64(1), perr.Event.Revision)
		// Events before the poison event are applied; it and the
		// events after it are not, and neither is the checkpoint.
		assert.Equal(t, map[string]total{"counter-a": {3, 2, 1}, "counter-b": {5, 1, 0}}, read(t, db, "stopped_v1"))
		st, err := r.Status(ctx)
		require.NoError(t, err)
		assert.Equal(t, first.Position.Commit+1, st.Checkpoint.Commit)
		dead, err := cps.DeadLetters(ctx, "stopped")
		require.NoError(t, err)
		assert.Empty(t, dead)
	})

	t.Run("skip", func(t *testing.T) {
		m := newTotals(b, "skipped")
		r := newRunner(t, store, cps, m.projection("skipped"), projection.WithBatch(100, time.Second), projection.WithSkipPoison(cps))
		require.NoError(t, r.CatchUp(ctx))
		assert.Equal(t, map[string]total{"counter-a": {6, 3, 2}, "counter-b": {12, 2, 2}}, read(t, db, "skipped"))

		dead, err := cps.DeadLetters(ctx, "skipped")
		require.NoError(t, err)
		require.Len(t, dead, 1)
		d := dead[0]
		assert.Equal(t, "skipped", d.Projection)
		assert.Equal(t, "counter-b", d.Event.Stream)
		assert.Equal(t, uint64(1), d.Event.Revision)
		assert.Equal(t, "Added", d.Event.Type)
		assert.JSONEq(t, `{"n":-1}`, string(d.Event.Data))
		assert.Contains(t, d.Error, errPoison.Error())
		assert.WithinDuration(t, time.Now(), d.At, time.Minute)
		var orig es.RecordedEvent
		for ev, err := range store.ReadStream(ctx, "counter-b", es.ReadStreamOptions{From: 1, Limit: 1}) {
			require.NoError(t, err)
			orig = ev
		}
		assert.Equal(t, orig.ID, d.Event.ID)
		assert.Equal(t, orig.Position, d.Event.Position)
		assert.WithinDuration(t, orig.Created, d.Event.Created, time.Microsecond, "PostgreSQL keeps microseconds")

		// Saving the same dead letter again keeps one.
		d.Error = "again"
		require.NoError(t, cps.SaveDeadLetter(ctx, d))
		dead, err = cps.DeadLetters(ctx, "skipped")
		require.NoError(t, err)
		require.Len(t, dead, 1)
		assert.Equal(t, "again", dead[0].Error)
	})
}

func TestRebuildInPlace(t *testing.T) {
	onEach(t, testRebuildInPlace[*sql.Tx], testRebuildInPlace[pgx.Tx])
}

func testRebuildInPlace[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	db, checkpoints := b.open(t)
	cps := checkpoints.must(t)
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2, 3)
	add(t, store, "counter-b", 4)

	m := newTotals(b, "totals")
	r := newRunner(t, store, cps, m.projection("totals"), projection.WithBatch(2, time.Millisecond))
	require.NoError(t, r.CatchUp(ctx))
	want := read(t, db, "totals")
	_, err := db.ExecContext(ctx, "UPDATE totals_v1 SET total = 999")
	require.NoError(t, err)

	var last projection.Progress
	require.NoError(t, r.Rebuild(ctx, func(p projection.Progress) { last = p }))
	assert.Equal(t, want, read(t, db, "totals"))
	assert.True(t, last.Done)
	assert.Equal(t, int64(4), last.Events)
	st, err := r.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, projection.StateStopped, st.State, "the rebuild is over")
}

func TestBlueGreen(t *testing.T) { onEach(t, testBlueGreen[*sql.Tx], testBlueGreen[pgx.Tx]) }

func testBlueGreen[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	db, checkpoints := b.open(t)
	cps := checkpoints.must(t)
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2)

	m := newTotals(b, "totals")
	p := m.projection("totals")
	r := newRunner(t, store, cps, p)
	require.NoError(t, r.CatchUp(ctx))
	v1 := read(t, db, "totals")
	require.Equal(t, map[string]total{"counter-a": {3, 2, 1}}, v1)

	// Events that version 1 has not seen yet (its runner is stopped),
	// but version 2 will.
	add(t, store, "counter-b", 10)

	switched := false
	p.Activate = func(ctx context.Context, tx Tx, version int) error {
		assert.Equal(t, 2, version)
		assert.Equal(t, v1, read(t, db, "totals"), "queries see version 1 until the switch")
		if err := b.switchViews("totals")(ctx, tx, version); err != nil {
			return err
		}
		if b.dialect == sqlproj.SQLite { // readers do not wait for the writer in WAL mode
			assert.Equal(t, v1, read(t, db, "totals"), "queries see version 1 until the switch commits")
		}
		switched = true
		return nil
	}
	r = newRunner(t, store, cps, p)
	from, to, err := r.RebuildBlueGreen(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, from)
	assert.Equal(t, 2, to)
	assert.True(t, switched)
	assert.Equal(t, map[string]total{"counter-a": {3, 2, 1}, "counter-b": {10, 1, 0}}, read(t, db, "totals"))
	assert.Equal(t, 2, mustActive(t, cps, "totals"))
	assert.Equal(t, v1, read(t, db, "totals_v1"), "version 1 stays until dropped")

	require.Error(t, r.DropVersion(ctx, 2), "the active version cannot be dropped")
	require.NoError(t, r.DropVersion(ctx, 1))
	_, err = db.ExecContext(ctx, "SELECT 1 FROM totals_v1")
	require.Error(t, err, "version 1 is dropped")

	// The runner goes on with version 2.
	stop := start(t, r)
	res := add(t, store, "counter-b", 1)
	require.NoError(t, r.WaitFor(ctx, res.Position))
	assert.Equal(t, total{11, 2, 1}, read(t, db, "totals")["counter-b"])
	require.NoError(t, stop())
}

func TestSwitchViewsChangesColumns(t *testing.T) {
	for _, b := range []backend[*sql.Tx]{sqliteBackend, postgresBackend} {
		t.Run(b.name, func(t *testing.T) { testSwitchViewsChangesColumns(t, b) })
	}
}

func testSwitchViewsChangesColumns(t *testing.T, b backend[*sql.Tx]) {
	ctx := t.Context()
	db, _ := b.open(t)
	for _, ddl := range []string{"CREATE TABLE t_v1 (a INTEGER)", "CREATE TABLE t_v2 (b TEXT, c INTEGER)",
		"INSERT INTO t_v1 (a) VALUES (1)", "INSERT INTO t_v2 (b, c) VALUES ('x', 2)"} {
		_, err := db.ExecContext(ctx, ddl)
		require.NoError(t, err)
	}
	switchTo := func(version int) {
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, sqlproj.SwitchViews("t")(ctx, tx, version))
		require.NoError(t, tx.Commit())
	}
	switchTo(1)
	var a int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT a FROM t").Scan(&a))
	assert.Equal(t, 1, a)
	switchTo(2)
	var s string
	require.NoError(t, db.QueryRowContext(ctx, "SELECT b FROM t").Scan(&s))
	assert.Equal(t, "x", s)

	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback()
	assert.ErrorContains(t, sqlproj.SwitchViews("t; DROP TABLE t_v1")(ctx, tx, 1), "invalid table name")
	assert.ErrorContains(t, sqlproj.DropTables("bad name")(ctx, tx, 1), "invalid table name")
}

func TestCorruptCheckpoint(t *testing.T) {
	onEach(t, testCorruptCheckpoint[*sql.Tx], testCorruptCheckpoint[pgx.Tx])
}

func testCorruptCheckpoint[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	db, checkpoints := b.open(t)
	cps := checkpoints.must(t)
	store := memstore.MustNew()
	add(t, store, "counter-a", 1)
	m := newTotals(b, "totals")
	r := newRunner(t, store, cps, m.projection("totals"))
	require.NoError(t, r.CatchUp(ctx))

	updates := []string{"commit_pos = -1", "prepare_pos = -5"}
	if b.dialect == sqlproj.SQLite { // SQLite's columns take any value
		updates = append(updates, "commit_pos = 'garbage'", "rebuilding = 7", "commit_pos = 1.5")
	}
	for _, set := range updates {
		t.Run(set, func(t *testing.T) {
			_, err := db.ExecContext(ctx, "UPDATE eventfold_checkpoints SET "+set)
			require.NoError(t, err)
			t.Cleanup(func() {
				_, err := db.ExecContext(context.WithoutCancel(ctx), "UPDATE eventfold_checkpoints SET commit_pos = 1, prepare_pos = 1, rebuilding = false")
				require.NoError(t, err)
			})
			_, err = cps.Load(ctx, "totals/v1")
			require.ErrorIs(t, err, projection.ErrCorruptCheckpoint)
			assert.ErrorContains(t, err, `"totals/v1"`)
			err = r.CatchUp(ctx)
			require.ErrorIs(t, err, projection.ErrCorruptCheckpoint, "never a silent restart")
		})
	}
}

func TestCheckpointBeyondHead(t *testing.T) {
	onEach(t, testCheckpointBeyondHead[*sql.Tx], testCheckpointBeyondHead[pgx.Tx])
}

func testCheckpointBeyondHead[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	_, checkpoints := b.open(t)
	cps := checkpoints.must(t)
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2, 3)
	m := newTotals(b, "totals")
	require.NoError(t, newRunner(t, store, cps, m.projection("totals")).CatchUp(ctx))

	// Another (empty) event store under the same database.
	err := newRunner(t, memstore.MustNew(), cps, m.projection("totals")).CatchUp(ctx)
	require.ErrorIs(t, err, projection.ErrCheckpointBeyondHead)
}

func TestNew(t *testing.T) { onEach(t, testNew[*sql.Tx], testNew[pgx.Tx]) }

func testNew[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	db, checkpoints := b.open(t)
	checkpoints.must(t)
	checkpoints.must(t) // idempotent

	t.Run("concurrently", func(t *testing.T) {
		errs := make(chan error, 4)
		for range cap(errs) {
			go func() {
				_, err := checkpoints(ctx, sqlproj.WithTablePrefix("concurrent_"))
				errs <- err
			}()
		}
		for range cap(errs) {
			require.NoError(t, <-errs)
		}
	})

	t.Run("newer schema", func(t *testing.T) {
		_, err := db.ExecContext(ctx, "UPDATE eventfold_projection_schema SET version = 99")
		require.NoError(t, err)
		_, err = checkpoints(ctx)
		require.ErrorIs(t, err, sqlproj.ErrSchemaVersion)
		assert.ErrorContains(t, err, "version 99")
		// Other prefixes are independent.
		checkpoints.must(t, sqlproj.WithTablePrefix("other_"))
	})

	t.Run("invalid options", func(t *testing.T) {
		for _, opts := range [][]sqlproj.Option{
			{sqlproj.WithTablePrefix("bad-prefix")},
			{sqlproj.WithTablePrefix("1x")},
			{sqlproj.WithLeasePoll(0)},
			{sqlproj.WithLogger(nil)},
		} {
			_, err := checkpoints(ctx, opts...)
			assert.ErrorIs(t, err, sqlproj.ErrInvalidOption)
		}
	})
}

func TestNewInvalid(t *testing.T) {
	ctx := t.Context()
	_, err := sqlproj.New(ctx, nil, sqlproj.SQLite)
	assert.ErrorIs(t, err, sqlproj.ErrInvalidOption)
	_, err = sqlproj.New(ctx, new(sql.DB), sqlproj.Dialect(9))
	assert.ErrorIs(t, err, sqlproj.ErrInvalidOption)
	_, err = sqlproj.NewPgx(ctx, nil)
	assert.ErrorIs(t, err, sqlproj.ErrInvalidOption)
}

func TestSQLiteLease(t *testing.T) {
	ctx := t.Context()
	cps := newCheckpoints(t, openSQLite(t, t.TempDir()+"/lease.db"), sqlproj.SQLite)
	_, release, err := cps.Lease(ctx, "p/v1")
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, _, err = cps.Lease(short, "p/v1")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, other, err := cps.Lease(ctx, "q/v1")
	require.NoError(t, err)
	other()
	release()
	release() // idempotent
	_, again, err := cps.Lease(ctx, "p/v1")
	require.NoError(t, err)
	again()
}

// Writers on one SQLite file, through separate pools and Checkpoints and
// without _txlock=immediate, wait for each other instead of failing with
// SQLITE_BUSY: each transaction's first statement is a write.
func TestSQLiteConcurrentWriters(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "shared.db")
	store := memstore.MustNew()
	for i := range 200 {
		add(t, store, fmt.Sprintf("counter-%d", i%7), i)
	}
	open := func() *sql.DB {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		return db
	}
	errs := make(chan error, 4)
	for i := range cap(errs) {
		db := open()
		cps := newCheckpoints(t, db, sqlproj.SQLite)
		m := newTotals(sqliteBackend, fmt.Sprintf("totals%d", i))
		r := newRunner(t, store, cps, m.projection(fmt.Sprintf("totals%d", i)),
			projection.WithBatch(3, time.Millisecond), projection.WithRetry(1, 0))
		go func() { errs <- r.CatchUp(ctx) }()
	}
	for range cap(errs) {
		require.NoError(t, <-errs)
	}
	db := open()
	want := read(t, db, "totals0")
	for i := 1; i < cap(errs); i++ {
		assert.Equal(t, want, read(t, db, fmt.Sprintf("totals%d", i)))
	}
}
