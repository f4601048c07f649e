package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go

	"github.com/eventfold/eventfold/es"
)

// defaultBusyTimeout is how long, in milliseconds, a SQLite connection waits
// for a lock that another connection holds, unless the path sets
// busy_timeout.
const defaultBusyTimeout = 5000

// readConns is the size of a SQLite store's pool of read connections.
const readConns = 8

// OpenSQLite opens the SQLite event store in the file at path, creating the
// file and the schema if needed, through the pure-Go driver
// modernc.org/sqlite (no cgo).
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
func OpenSQLite(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg, err := newConfig(kindSQLite, opts)
	if err != nil {
		return nil, err
	}
	dsn, err := sqliteDSN(path)
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
		writer.Close()
		return nil, fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	// Reads hold a connection only while they fetch a batch, never while
	// the caller's loop body runs: a few connections serve any number of
	// subscriptions.
	reader.SetMaxOpenConns(readConns)
	reader.SetMaxIdleConns(readConns)
	db := &sqliteDB{writeDB: writer, readDB: reader, stmts: make(map[string]*sql.Stmt)}
	// The writer connects first: it turns WAL mode on in a new file.
	s := &Store{cfg: cfg, db: db, q: newQueries(newNames("", cfg.prefix))}
	db.n = s.q.names
	if err := s.call(ctx, writer.PingContext); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: open %s: %w", path, unavailable(err)), db.close())
	}
	if err := s.open(ctx); err != nil {
		return nil, err
	}
	if err := s.call(ctx, func(ctx context.Context) error { return db.prepare(ctx, s.q) }); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	s.startScavenger(ctx)
	return s, nil
}

// sqliteDSN returns the driver's data source name for path, with a query
// to which more parameters can be appended.
func sqliteDSN(path string) (string, error) {
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

// sqliteDB is the SQLite backend.
type sqliteDB struct {
	writeDB *sql.DB
	readDB  *sql.DB
	n       names
	// stmts are prepared on the writer, by SQL text; written only before
	// the store is used.
	stmts map[string]*sql.Stmt
	// reads are the statements prepared on the read pool, by SQL text.
	reads sync.Map
}

func (d *sqliteDB) reader() queryer { return sqlReader{d.readDB, &d.reads} }

func (d *sqliteDB) write(ctx context.Context, f func(tx querier) error) error {
	tx, err := d.writeDB.BeginTx(ctx, nil) // BEGIN IMMEDIATE: see _txlock
	if err != nil {
		return err
	}
	if err := f(sqliteTx{tx: tx, d: d}); err != nil {
		return errors.Join(err, ignoreDone(tx.Rollback()))
	}
	return tx.Commit()
}

// prepare prepares the statements of writes on the writer connection.
// Writes run few distinct statements: preparing each once saves most of
// the cost of a small append. It runs before any write, since the writer's
// one connection is busy during a write.
func (d *sqliteDB) prepare(ctx context.Context, q queries) error {
	for _, query := range []string{q.loadForWrite, q.loadStream, q.idsFrom, q.positionAt,
		q.upsertLast, q.upsertMeta, q.upsertTombstone, d.insert()} {
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
	d  *sqliteDB
}

// stmt returns the transaction's statement for query, or nil if none was
// prepared.
func (t sqliteTx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := t.d.stmts[query]; st != nil {
		return t.tx.StmtContext(ctx, st)
	}
	return nil
}

func (t sqliteTx) query(ctx context.Context, query string, args ...any) (rows, error) {
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

func (t sqliteTx) exec(ctx context.Context, query string, args ...any) error {
	var err error
	if st := t.stmt(ctx, query); st != nil {
		_, err = st.ExecContext(ctx, args...)
	} else {
		_, err = t.tx.ExecContext(ctx, query, args...)
	}
	return err
}

func (t sqliteTx) execAll(ctx context.Context, stmts []stmt) error {
	for _, s := range stmts {
		if err := t.exec(ctx, s.sql, s.args...); err != nil {
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

func (d *sqliteDB) insert() string {
	return "INSERT INTO " + d.n.events + " (" + eventColumns + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
}

func (d *sqliteDB) insertEvents(rows []eventRow) []stmt {
	insert := d.insert()
	stmts := make([]stmt, len(rows))
	for i, r := range rows {
		stmts[i] = stmt{insert, []any{i64(r.position), r.stream, i64(r.revision), r.id.String(),
			r.typ, r.contentType, r.data, r.metadata, r.created}}
	}
	return stmts
}

// notify returns nothing: other processes poll.
func (d *sqliteDB) notify(uint64) []stmt { return nil }

func (d *sqliteDB) prefetch() string { return "" }

func (d *sqliteDB) tableExists(ctx context.Context, table string) (bool, error) {
	var n int64
	_, err := queryRow(ctx, d.reader(), "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = $1",
		[]any{strings.Trim(table, `"`)}, &n)
	return n > 0, err
}

func (d *sqliteDB) ddl() []string {
	return []string{
		`CREATE TABLE ` + d.n.streams + ` (
			name          TEXT PRIMARY KEY,
			last_revision INTEGER NOT NULL DEFAULT -1,
			tombstoned    INTEGER NOT NULL DEFAULT 0,
			metadata      TEXT
		) STRICT`,
		`CREATE TABLE ` + d.n.events + ` (
			position     INTEGER PRIMARY KEY CHECK (position > 0),
			stream       TEXT NOT NULL REFERENCES ` + d.n.streams + ` (name),
			revision     INTEGER NOT NULL,
			id           TEXT NOT NULL,
			type         TEXT NOT NULL,
			content_type TEXT NOT NULL,
			data         BLOB,
			metadata     BLOB,
			created      INTEGER NOT NULL,
			UNIQUE (stream, revision)
		) STRICT`,
		`CREATE INDEX ` + d.n.index + ` ON ` + d.n.events + ` (stream, id)`,
	}
}

// watch polls for the appends of other processes.
func (d *sqliteDB) watch(ctx context.Context, s *Store) {
	for sleep(ctx, s.cfg.poll) {
		s.poll(ctx)
	}
}

func (d *sqliteDB) close() error {
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

func (q sqlReader) query(ctx context.Context, query string, args ...any) (rows, error) {
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
