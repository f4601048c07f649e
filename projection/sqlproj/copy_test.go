package sqlproj_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
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

// ledger is a read model of one row per event, on PgxCheckpoints: it
// COPYs the rows of batches of copyFrom events or more, and writes the
// others with a multi-row upsert (so that the tests run both).
type ledger struct {
	table string
	// copyFrom is the size of the smallest batch that is copied; 0
	// copies none.
	copyFrom int
	// copied and upserted count the batches written each way.
	copied, upserted atomic.Int64
}

var ledgerColumns = []string{"stream", "revision", "n"}

func (m *ledger) projection(name string) projection.Projection[pgx.Tx] {
	return projection.Projection[pgx.Tx]{
		Name:       name,
		Categories: []string{"counter"},
		Handle:     m.handle,
		Setup: func(ctx context.Context, tx pgx.Tx, version int) error {
			_, err := tx.Exec(ctx, ledgerDDL(projection.VersionedName(m.table, version)))
			return err
		},
		// TRUNCATE is transactional in PostgreSQL, and much faster than
		// DELETE (ResetTables) on large tables.
		Reset: func(ctx context.Context, tx pgx.Tx, version int) error {
			_, err := tx.Exec(ctx, "TRUNCATE "+projection.VersionedName(m.table, version))
			return err
		},
		Activate: sqlproj.PgxSwitchViews(m.table),
		Drop:     sqlproj.PgxDropTables(m.table),
	}
}

func ledgerDDL(table string) string {
	return `CREATE TABLE IF NOT EXISTS ` + table + ` (
		stream   TEXT NOT NULL,
		revision BIGINT NOT NULL,
		n        BIGINT NOT NULL,
		PRIMARY KEY (stream, revision)
	)`
}

func (m *ledger) handle(ctx context.Context, tx pgx.Tx, b projection.Batch) error {
	rows := make([][]any, len(b.Events))
	for i, ev := range b.Events {
		rows[i] = []any{ev.Stream, int64(ev.Revision), int64(ev.Payload.(Added).N)}
	}
	if m.copyFrom > 0 && len(rows) >= m.copyFrom {
		m.copied.Add(1)
		return copyRows(ctx, tx, b.Table(m.table), rows)
	}
	m.upserted.Add(1)
	return upsertRows(ctx, tx, b.Table(m.table), rows)
}

// copyRows writes rows into table with COPY.
func copyRows(ctx context.Context, tx pgx.Tx, table string, rows [][]any) error {
	_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, ledgerColumns, pgx.CopyFromRows(rows))
	return err
}

// upsertRows writes rows into table with one multi-row upsert.
func upsertRows(ctx context.Context, tx pgx.Tx, table string, rows [][]any) error {
	query, args := upsertStatement(table, rows)
	_, err := tx.Exec(ctx, query, args...)
	return err
}

// upsertStatement returns the multi-row upsert of rows into table.
func upsertStatement(table string, rows [][]any) (string, []any) {
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + table + " (stream, revision, n) VALUES ")
	args := make([]any, 0, 3*len(rows))
	for i, r := range rows {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "($%d, $%d, $%d)", 3*i+1, 3*i+2, 3*i+3)
		args = append(args, r...)
	}
	sb.WriteString(" ON CONFLICT (stream, revision) DO UPDATE SET n = excluded.n")
	return sb.String(), args
}

// A read model written with COPY on PgxCheckpoints, its runner stopped at
// random points while rebuilding and while live, holds each event exactly
// once in the end: COPY into a table keyed by event would fail on an
// event applied twice, and the comparison finds any event lost.
func TestPgxCopyRandomStops(t *testing.T) {
	ctx := t.Context()
	db, checkpoints := pgxBackend.open(t)
	cps := checkpoints.must(t)
	store := memstore.MustNew()
	rng := rand.New(rand.NewPCG(9, 5))
	type appendOp struct {
		stream string
		ns     []int
	}
	// appends returns n appends of a few events each, drawn from rng in
	// the test's goroutine.
	appends := func(n int) []appendOp {
		out := make([]appendOp, n)
		for i := range out {
			ns := make([]int, 1+rng.IntN(4))
			for j := range ns {
				ns[j] = rng.IntN(100)
			}
			out[i] = appendOp{fmt.Sprintf("counter-%d", rng.IntN(25)), ns}
		}
		return out
	}
	write := func(ops []appendOp) {
		for _, op := range ops {
			evs := make([]es.EventData, len(op.ns))
			for j, n := range op.ns {
				evs[j] = es.EventData{Type: "Added", Data: fmt.Appendf(nil, `{"n":%d}`, n)}
			}
			_, err := store.Append(ctx, op.stream, es.Any, evs...)
			assert.NoError(t, err)
		}
	}
	write(appends(200))

	m := &ledger{table: "ledger", copyFrom: 8}
	r := newRunner(t, store, cps, m.projection("ledger"), projection.WithBatch(32, time.Millisecond))
	for i := range 30 {
		more := appends(rng.IntN(30))
		runCtx, cancel := context.WithTimeout(ctx, time.Duration(rng.IntN(40_000))*time.Microsecond)
		var wg sync.WaitGroup
		wg.Go(func() { write(more) })
		var err error
		if i%4 == 1 {
			err = r.Rebuild(runCtx, nil)
		} else {
			err = r.Run(runCtx)
		}
		cancel()
		wg.Wait()
		if !errors.Is(err, context.DeadlineExceeded) {
			require.NoError(t, err)
		}
	}
	require.NoError(t, r.CatchUp(ctx))
	// One batch of each kind, whatever the timing above.
	add(t, store, "counter-0", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	require.NoError(t, r.CatchUp(ctx))
	add(t, store, "counter-1", 11)
	require.NoError(t, r.CatchUp(ctx))

	want := make(map[string]int64)
	for ev, err := range store.ReadAll(ctx, es.ReadAllOptions{}) {
		require.NoError(t, err)
		var a Added
		require.NoError(t, json.Unmarshal(ev.Data, &a))
		want[fmt.Sprintf("%s@%d", ev.Stream, ev.Revision)] = int64(a.N)
	}
	got := make(map[string]int64)
	rows, err := db.QueryContext(ctx, "SELECT stream, revision, n FROM ledger")
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var stream string
		var revision, n int64
		require.NoError(t, rows.Scan(&stream, &revision, &n))
		got[fmt.Sprintf("%s@%d", stream, revision)] = n
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, want)
	assert.Equal(t, want, got)
	assert.Positive(t, m.copied.Load(), "batches copied")
	assert.Positive(t, m.upserted.Load(), "batches upserted")
}

// copyMerge is the handler of totals on PgxCheckpoints that COPYs the
// batch's totals into a temporary table and merges them into the read
// model with one statement.
func (m *totals[Tx]) copyMerge(ctx context.Context, tx pgx.Tx, b projection.Batch) error {
	var order []string
	rows := make(map[string]*total)
	for _, ev := range b.Events {
		r := rows[ev.Stream]
		if r == nil {
			r = &total{}
			rows[ev.Stream] = r
			order = append(order, ev.Stream)
		}
		r.Total += int64(ev.Payload.(Added).N)
		r.Events++
		r.LastRevision = int64(ev.Revision)
	}
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS totals_batch (
		stream TEXT, total BIGINT, events BIGINT, last_revision BIGINT) ON COMMIT DELETE ROWS`); err != nil {
		return err
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"totals_batch"}, []string{"stream", "total", "events", "last_revision"},
		pgx.CopyFromSlice(len(order), func(i int) ([]any, error) {
			r := rows[order[i]]
			return []any{order[i], r.Total, r.Events, r.LastRevision}, nil
		}))
	if err != nil {
		return err
	}
	table := b.Table(m.table)
	_, err = tx.Exec(ctx, "INSERT INTO "+table+" SELECT * FROM totals_batch ON CONFLICT (stream) DO UPDATE SET total = "+
		table+".total + excluded.total, events = "+table+".events + excluded.events, last_revision = excluded.last_revision")
	return err
}
