package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/internal/backend"
	"github.com/eventfold/eventfold/internal/backoff"
)

// defaultBusyTimeout is how long, in milliseconds, a SQLite connection waits
// for a lock that another connection holds, unless the path sets
// busy_timeout.
const defaultBusyTimeout = 5000

// readConns is the size of a SQLite store's pool of read connections.
const readConns = 8

// Open opens the SQLite event store in the file at path, creating the file
// and the schema if needed, through the pure-Go driver modernc.org/sqlite
// (no cgo). The Store owns its connections and closes them on Close.
//
// path is a file name, or a SQLite URI starting with "file:" whose query
// parameters are passed on: "file:events.db?mode=ro" opens a database
// read-only (reads work, writes fail), and the driver's parameters such as
// "_pragma=busy_timeout(10000)" apply to every connection. The store puts its
// database in WAL mode, turns foreign keys on and waits up to 5 s for a lock
// unless the URI sets busy_timeout.
//
// Every connection to ":memory:" is a database of its own, so the store
// rejects it. For a database in memory that lives as long as the Store, use
// "file:/name?vfs=memdb" with a name unique in the process.
//
// SQLite has no schemas: Open rejects [sqlstore.WithSchema].
func Open(ctx context.Context, path string, opts ...sqlstore.Option) (*sqlstore.Store, error) {
	s, err := backend.Open(ctx, backend.SQLite, "open "+path, func(cfg backend.Config) (backend.DB, error) {
		return open(path, cfg)
	}, opts)
	if err != nil {
		return nil, err
	}
	return s.(*sqlstore.Store), nil
}

// open opens the connections of a SQLite store; the store pings the
// writer first, which turns WAL mode on in a new file.
func open(path string, cfg backend.Config) (*db, error) {
	dsn, err := dsn(path)
	if err != nil {
		return nil, err
	}
	// One writer connection, beginning its transactions IMMEDIATE, so that
	// appends in this process queue in Go and appends of other processes
	// wait for the file's write lock; readers have a pool of their own.
	writer, err := sql.Open("sqlite", dsn+"&_txlock=immediate&_pragma=journal_mode(WAL)")
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	reader, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: open %s: %w", path, err), writer.Close())
	}
	// Reads hold a connection only while they fetch a batch, never while
	// the caller's loop body runs: a few connections serve any number of
	// subscriptions.
	reader.SetMaxOpenConns(readConns)
	reader.SetMaxIdleConns(readConns)
	return &db{writeDB: writer, readDB: reader, n: cfg.Names, poll: cfg.Poll, stmts: make(map[string]*sql.Stmt)}, nil
}

// dsn returns the driver's data source name for path, with a query
// to which more parameters can be appended.
func dsn(path string) (string, error) {
	switch path {
	case "", ":memory:", "file::memory:":
		return "", fmt.Errorf("%w: SQLite path %q: every connection would have a database of its own: use a file, or \"file:/name?vfs=memdb\"", es.ErrInvalidArgument, path)
	}
	if !strings.HasPrefix(path, "file:") {
		path = "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	}
	base, query, _ := strings.Cut(path, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("%w: SQLite URI %q: %v", es.ErrInvalidArgument, path, err)
	}
	busy := false
	for _, p := range q["_pragma"] {
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(p)), "busy_timeout") {
			busy = true
		}
	}
	if !busy && q.Get("_busy_timeout") == "" && q.Get("_timeout") == "" {
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", defaultBusyTimeout))
	}
	q.Add("_pragma", "foreign_keys(1)")
	q.Del("_txlock") // the store sets it: IMMEDIATE for the writer
	return base + "?" + q.Encode(), nil
}

// db is the SQLite backend.
type db struct {
	writeDB *sql.DB
	readDB  *sql.DB
	n       backend.Names
	poll    time.Duration
	// stmts are prepared on the writer, by SQL text; written only before
	// the store is used.
	stmts map[string]*sql.Stmt
	// reads are the statements prepared on the read pool, by SQL text.
	reads sync.Map
}

func (d *db) Reader() backend.Queryer { return sqlReader{d.readDB, &d.reads} }

func (d *db) Write(ctx context.Context, f func(tx backend.Querier) error) error {
	tx, err := d.writeDB.BeginTx(ctx, nil) // BEGIN IMMEDIATE: see _txlock
	if err != nil {
		return err
	}
	if err := f(sqliteTx{tx: tx, d: d}); err != nil {
		return errors.Join(err, ignoreDone(tx.Rollback()))
	}
	return tx.Commit()
}

func (d *db) Ping(ctx context.Context) error { return d.writeDB.PingContext(ctx) }

// Prepare prepares the statements of writes on the writer connection.
// Writes run few distinct statements: preparing each once saves most of
// the cost of a small append. It runs before any write, since the writer's
// one connection is busy during a write.
func (d *db) Prepare(ctx context.Context, queries []string) error {
	for _, query := range append(queries, d.insert()) {
		st, err := d.writeDB.PrepareContext(ctx, query)
		if err != nil {
			return fmt.Errorf("sqlstore: prepare %s: %w", query, err)
		}
		d.stmts[query] = st
	}
	return nil
}

// sqliteTx is a write transaction that runs prepared statements.
type sqliteTx struct {
	tx *sql.Tx
	d  *db
}

// stmt returns the transaction's statement for query, or nil if none was
// prepared.
func (t sqliteTx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := t.d.stmts[query]; st != nil {
		return t.tx.StmtContext(ctx, st)
	}
	return nil
}

func (t sqliteTx) Query(ctx context.Context, query string, args ...any) (backend.Rows, error) {
	var (
		r   *sql.Rows
		err error
	)
	if st := t.stmt(ctx, query); st != nil {
		r, err = st.QueryContext(ctx, args...)
	} else {
		r, err = t.tx.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

func (t sqliteTx) Exec(ctx context.Context, query string, args ...any) error {
	var err error
	if st := t.stmt(ctx, query); st != nil {
		_, err = st.ExecContext(ctx, args...)
	} else {
		_, err = t.tx.ExecContext(ctx, query, args...)
	}
	return err
}

func (t sqliteTx) ExecAll(ctx context.Context, stmts []backend.Stmt) error {
	for _, s := range stmts {
		if err := t.Exec(ctx, s.SQL, s.Args...); err != nil {
			return err
		}
	}
	return nil
}

// ignoreDone drops the error of rolling back a transaction that the driver
// already ended, as SQLite does on some errors.
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

func (d *db) insert() string {
	return "INSERT INTO " + d.n.Events + " (" + backend.EventColumns + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
}

func (d *db) InsertEvents(rows []backend.EventRow) []backend.Stmt {
	insert := d.insert()
	stmts := make([]backend.Stmt, len(rows))
	for i, r := range rows {
		stmts[i] = backend.Stmt{SQL: insert, Args: []any{r.Position, r.Stream, r.Revision, r.ID.String(),
			r.Type, r.ContentType, r.Data, r.Metadata, r.Created}}
	}
	return stmts
}

// notify returns nothing: other processes poll.
func (d *db) Notify(uint64) []backend.Stmt { return nil }

func (d *db) Prefetch() string { return "" }

func (d *db) TableExists(ctx context.Context, table string) (bool, error) {
	var n int64
	err := d.readDB.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = $1",
		strings.Trim(table, `"`)).Scan(&n)
	return n > 0, err
}

// Unavailable reports no more than backend.IsUnavailable: SQLite's errors
// (SQLITE_BUSY past the busy timeout, a full disk) come from a database
// that answers.
func (d *db) Unavailable(error) bool { return false }

func (d *db) DDL() []string {
	return []string{
		`CREATE TABLE ` + d.n.Streams + ` (
			name          TEXT PRIMARY KEY,
			last_revision INTEGER NOT NULL DEFAULT -1,
			tombstoned    INTEGER NOT NULL DEFAULT 0,
			metadata      TEXT
		) STRICT`,
		`CREATE TABLE ` + d.n.Events + ` (
			position     INTEGER PRIMARY KEY CHECK (position > 0),
			stream       TEXT NOT NULL REFERENCES ` + d.n.Streams + ` (name),
			revision     INTEGER NOT NULL,
			id           TEXT NOT NULL,
			type         TEXT NOT NULL,
			content_type TEXT NOT NULL,
			data         BLOB,
			metadata     BLOB,
			created      INTEGER NOT NULL,
			UNIQUE (stream, revision)
		) STRICT`,
		`CREATE INDEX ` + d.n.Index + ` ON ` + d.n.Events + ` (stream, id)`,
	}
}

// watch polls for the appends of other processes.
func (d *db) Watch(ctx context.Context, h backend.Head) {
	for backoff.Sleep(ctx, d.poll) == nil {
		h.Poll(ctx)
	}
}

func (d *db) Close() error {
	var errs []error
	for _, st := range d.stmts {
		errs = append(errs, st.Close())
	}
	d.reads.Range(func(_, st any) bool {
		errs = append(errs, st.(*sql.Stmt).Close())
		return true
	})
	return errors.Join(append(errs, d.readDB.Close(), d.writeDB.Close())...)
}

// sqlReader is the queryer of a database/sql pool. It prepares each
// statement once (database/sql prepares it again on each connection that
// runs it, once): a read store runs a few statements many times, and
// SQLite would otherwise compile each query anew.
type sqlReader struct {
	db    *sql.DB
	stmts *sync.Map // SQL text → *sql.Stmt
}

func (q sqlReader) Query(ctx context.Context, query string, args ...any) (backend.Rows, error) {
	st, err := q.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	r, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

func (q sqlReader) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := q.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := q.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := q.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }
