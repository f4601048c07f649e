package sqlproj_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // the "sqlite" driver

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// Added adds N to a counter stream's total. A negative N is a poison
// event for the test read model.
type Added struct {
	N int `json:"n"`
}

func types(t testing.TB) *es.Registry {
	t.Helper()
	r, err := es.NewRegistry(es.Type[Added]("Added"))
	require.NoError(t, err)
	return r
}

// sqliteDSN is how the tests open SQLite, as the package docs advise.
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"
}

// openSQLite opens the SQLite database at path, closed at the end of the
// test.
func openSQLite(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", sqliteDSN(path))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, db.PingContext(t.Context()))
	return db
}

// postgresURL returns EVENTFOLD_TEST_POSTGRES, or skips the test.
func postgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("EVENTFOLD_TEST_POSTGRES")
	if u == "" {
		t.Skip("EVENTFOLD_TEST_POSTGRES is not set: set it to a PostgreSQL connection string " +
			"(postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the PostgreSQL tests")
	}
	return u
}

// postgresSchema creates a fresh schema, dropped at the end of the test,
// and returns a connection string whose search_path is that schema.
func postgresSchema(t testing.TB) string {
	t.Helper()
	base := postgresURL(t)
	admin, err := sql.Open("pgx", base)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "sqlproj_test_" + hex.EncodeToString(b)
	_, err = admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		// t.Context() is done during cleanup.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 30*time.Second)
		defer cancel()
		_, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
		require.NoError(t, err)
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// openPostgres opens a pool on dsn, closed at the end of the test (before
// its schema is dropped).
func openPostgres(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, db.PingContext(t.Context()))
	return db
}

// checkpointStore is what the tests need of checkpoints: both
// [sqlproj.Checkpoints] and [sqlproj.PgxCheckpoints] are one.
type checkpointStore[Tx any] interface {
	projection.Checkpoints[Tx]
	projection.Leaser
	projection.LeaseHolders
	projection.Versions[Tx]
	projection.DeadLetters
}

// backend is a kind of checkpoints, on a database, that the tests run
// on. Tx is the transaction type of its handlers.
type backend[Tx any] struct {
	name    string
	dialect sqlproj.Dialect
	// create returns a new database, empty, for the test: the address
	// that connect takes.
	create func(t testing.TB) string
	// connect opens a pool on a database, for the test, to set up and
	// inspect it through database/sql, and returns it with the
	// constructor of checkpoints on a pool of their own (as in a process
	// of their own).
	connect func(t testing.TB, addr string) (*sql.DB, opener[Tx])
	// exec runs a statement in a handler's transaction.
	exec func(ctx context.Context, tx Tx, query string, args ...any) error
	// The helpers of blue/green read models for Tx.
	switchViews, resetTables, dropTables func(tables ...string) func(ctx context.Context, tx Tx, version int) error
}

var (
	sqliteBackend = backend[*sql.Tx]{
		name: "sqlite", dialect: sqlproj.SQLite,
		create: func(t testing.TB) string { return filepath.Join(t.TempDir(), "test.db") },
		connect: func(t testing.TB, path string) (*sql.DB, opener[*sql.Tx]) {
			return sqlCheckpoints(openSQLite(t, path), sqlproj.SQLite)
		},
		exec: sqlExec, switchViews: sqlproj.SwitchViews, resetTables: sqlproj.ResetTables, dropTables: sqlproj.DropTables,
	}
	postgresBackend = backend[*sql.Tx]{
		name: "postgres", dialect: sqlproj.Postgres,
		create: postgresSchema,
		connect: func(t testing.TB, dsn string) (*sql.DB, opener[*sql.Tx]) {
			return sqlCheckpoints(openPostgres(t, dsn), sqlproj.Postgres)
		},
		exec: sqlExec, switchViews: sqlproj.SwitchViews, resetTables: sqlproj.ResetTables, dropTables: sqlproj.DropTables,
	}
	pgxBackend = backend[pgx.Tx]{
		name: "pgx", dialect: sqlproj.Postgres,
		create: postgresSchema,
		connect: func(t testing.TB, dsn string) (*sql.DB, opener[pgx.Tx]) {
			pool := openPool(t, dsn)
			return openPostgres(t, dsn), func(ctx context.Context, opts ...sqlproj.Option) (checkpointStore[pgx.Tx], error) {
				return sqlproj.NewPgx(ctx, pool, opts...)
			}
		},
		exec: func(ctx context.Context, tx pgx.Tx, query string, args ...any) error {
			_, err := tx.Exec(ctx, query, args...)
			return err
		},
		switchViews: sqlproj.PgxSwitchViews, resetTables: sqlproj.PgxResetTables, dropTables: sqlproj.PgxDropTables,
	}
)

// open returns a new database, empty, for the test, as connect does.
func (b backend[Tx]) open(t testing.TB) (*sql.DB, opener[Tx]) {
	return b.connect(t, b.create(t))
}

func sqlExec(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	_, err := tx.ExecContext(ctx, query, args...)
	return err
}

func sqlCheckpoints(db *sql.DB, d sqlproj.Dialect) (*sql.DB, opener[*sql.Tx]) {
	return db, func(ctx context.Context, opts ...sqlproj.Option) (checkpointStore[*sql.Tx], error) {
		return sqlproj.New(ctx, db, d, opts...)
	}
}

// opener makes checkpoints in a test's database.
type opener[Tx any] func(ctx context.Context, opts ...sqlproj.Option) (checkpointStore[Tx], error)

// must returns new checkpoints, or fails the test.
func (o opener[Tx]) must(t testing.TB, opts ...sqlproj.Option) checkpointStore[Tx] {
	t.Helper()
	cps, err := o(t.Context(), opts...)
	require.NoError(t, err)
	return cps
}

// onPostgres runs a test on [sqlproj.Checkpoints] over PostgreSQL and on
// [sqlproj.PgxCheckpoints], as [onEach] does.
func onPostgres(t *testing.T, sqlTest func(*testing.T, backend[*sql.Tx]), pgxTest func(*testing.T, backend[pgx.Tx])) {
	t.Run(postgresBackend.name, func(t *testing.T) { sqlTest(t, postgresBackend) })
	t.Run(pgxBackend.name, func(t *testing.T) { pgxTest(t, pgxBackend) })
}

// onEach runs a test on [sqlproj.Checkpoints] over SQLite, and, when
// EVENTFOLD_TEST_POSTGRES is set, over PostgreSQL, then on
// [sqlproj.PgxCheckpoints]: sqlTest and pgxTest are the instances of one
// generic test.
func onEach(t *testing.T, sqlTest func(*testing.T, backend[*sql.Tx]), pgxTest func(*testing.T, backend[pgx.Tx])) {
	for _, b := range []backend[*sql.Tx]{sqliteBackend, postgresBackend} {
		t.Run(b.name, func(t *testing.T) { sqlTest(t, b) })
	}
	t.Run(pgxBackend.name, func(t *testing.T) { pgxTest(t, pgxBackend) })
}

// newCheckpoints returns checkpoints in db.
func newCheckpoints(t testing.TB, db *sql.DB, d sqlproj.Dialect, opts ...sqlproj.Option) *sqlproj.Checkpoints {
	t.Helper()
	cps, err := sqlproj.New(t.Context(), db, d, opts...)
	require.NoError(t, err)
	return cps
}

// openPool opens a pgx pool on dsn, closed at the end of the test.
func openPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// newPgxCheckpoints returns checkpoints in the database of pool.
func newPgxCheckpoints(t testing.TB, pool *pgxpool.Pool, opts ...sqlproj.Option) *sqlproj.PgxCheckpoints {
	t.Helper()
	cps, err := sqlproj.NewPgx(t.Context(), pool, opts...)
	require.NoError(t, err)
	return cps
}

// quiet is the logger of the tests' runners.
var quiet = slog.New(slog.DiscardHandler)

// errPoison is what the read model's handler fails with on a negative N.
var errPoison = errors.New("negative amount")

// totals is a read model in SQL: per counter stream, the sum of the
// amounts, the number of events and the last revision. Version n lives in
// the table "<table>_v<n>", read through the view "<table>".
type totals[Tx any] struct {
	table string
	b     backend[Tx]
	// inHandler, if set, is called in the middle of each batch, after
	// half of its rows are written.
	inHandler func()
}

type total struct {
	Total, Events, LastRevision int64
}

// newTotals returns the read model in table, on backend b.
func newTotals[Tx any](b backend[Tx], table string) *totals[Tx] {
	return &totals[Tx]{table: table, b: b}
}

func (m *totals[Tx]) projection(name string) projection.Projection[Tx] {
	return projection.Projection[Tx]{
		Name:       name,
		Categories: []string{"counter"},
		Handle:     m.handle,
		Setup:      m.setup,
		Reset:      m.b.resetTables(m.table),
		Activate:   m.b.switchViews(m.table),
		Drop:       m.b.dropTables(m.table),
	}
}

func (m *totals[Tx]) setup(ctx context.Context, tx Tx, version int) error {
	return m.b.exec(ctx, tx, `CREATE TABLE IF NOT EXISTS `+projection.VersionedName(m.table, version)+` (
		stream        TEXT PRIMARY KEY,
		total         BIGINT NOT NULL,
		events        BIGINT NOT NULL,
		last_revision BIGINT NOT NULL
	)`)
}

// handle applies a batch with multi-row upserts. It
// writes first and fails afterwards on a poison event, so that a failure
// has something to roll back.
func (m *totals[Tx]) handle(ctx context.Context, tx Tx, b projection.Batch) error {
	var poison error
	var order []string
	rows := make(map[string]*total)
	for _, ev := range b.Events {
		a := ev.Payload.(Added)
		if a.N < 0 {
			poison = fmt.Errorf("%w: %d", errPoison, a.N)
		}
		r := rows[ev.Stream]
		if r == nil {
			r = &total{}
			rows[ev.Stream] = r
			order = append(order, ev.Stream)
		}
		r.Total += int64(a.N)
		r.Events++
		r.LastRevision = int64(ev.Revision)
	}
	table := b.Table(m.table)
	half := len(order) / 2
	if m.inHandler != nil && half > 0 {
		if err := m.upsert(ctx, tx, table, order[:half], rows); err != nil {
			return err
		}
		m.inHandler()
		order = order[half:]
	}
	if err := m.upsert(ctx, tx, table, order, rows); err != nil {
		return err
	}
	return poison
}

func (m *totals[Tx]) upsert(ctx context.Context, tx Tx, table string, streams []string, rows map[string]*total) error {
	// One statement per batch on PostgreSQL (up to 65535 parameters);
	// smaller ones on SQLite, whose driver binds in time quadratic in the
	// number of parameters.
	chunk := 5000
	if m.b.dialect == sqlproj.SQLite {
		chunk = 250
	}
	var sb strings.Builder
	for len(streams) > 0 {
		n := min(len(streams), chunk)
		sb.Reset()
		sb.WriteString("INSERT INTO " + table + " (stream, total, events, last_revision) VALUES ")
		args := make([]any, 0, 4*n)
		for i, s := range streams[:n] {
			if i > 0 {
				sb.WriteString(", ")
			}
			p := m.b.dialect.Placeholder
			fmt.Fprintf(&sb, "(%s, %s, %s, %s)", p(4*i+1), p(4*i+2), p(4*i+3), p(4*i+4))
			r := rows[s]
			args = append(args, s, r.Total, r.Events, r.LastRevision)
		}
		sb.WriteString(" ON CONFLICT (stream) DO UPDATE SET total = " + table + ".total + excluded.total, events = " +
			table + ".events + excluded.events, last_revision = excluded.last_revision")
		if err := m.b.exec(ctx, tx, sb.String(), args...); err != nil {
			return err
		}
		streams = streams[n:]
	}
	return nil
}

// read returns the rows of a table or view.
func read(t testing.TB, db *sql.DB, table string) map[string]total {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT stream, total, events, last_revision FROM "+table)
	require.NoError(t, err)
	defer rows.Close()
	out := make(map[string]total)
	for rows.Next() {
		var s string
		var r total
		require.NoError(t, rows.Scan(&s, &r.Total, &r.Events, &r.LastRevision))
		out[s] = r
	}
	require.NoError(t, rows.Err())
	return out
}

// add appends events with amounts ns to stream.
func add(t testing.TB, store es.Store, stream string, ns ...int) es.AppendResult {
	t.Helper()
	evs := make([]es.EventData, len(ns))
	for i, n := range ns {
		evs[i] = es.EventData{Type: "Added", Data: fmt.Appendf(nil, `{"n":%d}`, n)}
	}
	res, err := store.Append(t.Context(), stream, es.Any, evs...)
	require.NoError(t, err)
	return res
}

func newRunner[Tx any](t testing.TB, store es.Store, cps projection.Checkpoints[Tx], p projection.Projection[Tx], opts ...projection.Option) *projection.Runner[Tx] {
	t.Helper()
	r, err := projection.NewRunner(store, cps, types(t), p, append([]projection.Option{projection.WithRetry(2, time.Millisecond), projection.WithLogger(quiet)}, opts...)...)
	require.NoError(t, err)
	return r
}

// start runs r in a goroutine owned by the test and returns the function
// that stops it and returns Run's error.
func start[Tx any](t *testing.T, r *projection.Runner[Tx]) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitState polls r's status until it is want, failing after a deadline.
func waitState[Tx any](t *testing.T, r *projection.Runner[Tx], want projection.State) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := r.Status(t.Context())
		require.NoError(t, err)
		if st.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("runner %s: state %q, want %q (error %v)", r.Name(), st.State, want, st.Err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// replay builds the read model afresh from store, in the table check
// of db, and returns it: the reference a read model must equal.
func replay(t testing.TB, store es.Store, db *sql.DB, d sqlproj.Dialect) map[string]total {
	t.Helper()
	cps := newCheckpoints(t, db, d, sqlproj.WithTablePrefix("check_"))
	b := sqliteBackend
	if d == sqlproj.Postgres {
		b = postgresBackend
	}
	m := newTotals(b, "check_totals")
	r := newRunner(t, store, cps, m.projection("check"), projection.WithBatch(1000, time.Millisecond))
	require.NoError(t, r.CatchUp(t.Context()))
	return read(t, db, "check_totals_v1")
}
