package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/internal/backend"
	"github.com/eventfold/eventfold/internal/backoff"
)

// Open connects to PostgreSQL with a pgx connection string (a URL such as
// "postgres://user@host:5432/db?sslmode=disable" or key=value pairs) and
// opens the event store in that database, creating its schema if needed.
// The Store owns the pool it creates and closes it on Close.
func Open(ctx context.Context, connString string, opts ...sqlstore.Option) (*sqlstore.Store, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	return OpenConfig(ctx, cfg, opts...)
}

// OpenConfig is [Open] with a pool configuration of the caller's (from
// pgxpool.ParseConfig, with its size or hooks set): the Store creates the
// pool, owns it and closes it on Close, waiting at most a second for
// connections that an outage left to pgx's cleanup.
func OpenConfig(ctx context.Context, cfg *pgxpool.Config, opts ...sqlstore.Option) (*sqlstore.Store, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: postgres.OpenConfig with a nil configuration", sqlstore.ErrInvalidOption)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: connect to PostgreSQL: %w", err)
	}
	s, err := open(ctx, pool, true, opts)
	if err != nil {
		ClosePool(pool) // if the store did not close it already
		return nil, err
	}
	return s, nil
}

// New opens the event store in the database of an existing pool, creating
// its schema if needed. The pool stays the caller's: Close does not close
// it, and the caller closes it after the Store (see [ClosePool]). The Store
// also opens one connection of its own, outside the pool, with the pool's
// configuration, to listen for notifications.
//
// The store's commits wait for the WAL flush whatever the pool's sessions
// say: a pool whose synchronous_commit is off (so that the rest of the
// program commits without waiting) still gets durable events.
//
// The Store keeps one connection of the pool for its writes, and takes
// others for its reads and subscriptions while they fetch a page: a pool
// shared with other work (read models, an outbox) needs room for both.
func New(ctx context.Context, pool *pgxpool.Pool, opts ...sqlstore.Option) (*sqlstore.Store, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: postgres.New with a nil pool", sqlstore.ErrInvalidOption)
	}
	return open(ctx, pool, false, opts)
}

func open(ctx context.Context, pool *pgxpool.Pool, owned bool, opts []sqlstore.Option) (*sqlstore.Store, error) {
	s, err := backend.Open(ctx, backend.Postgres, "connect to PostgreSQL", func(cfg backend.Config) (backend.DB, error) {
		return &db{pool: pool, owned: owned, n: cfg.Names, cfg: cfg, lockKey: lockKey(cfg.Names.Raw), channel: channel(cfg.Names.Raw)}, nil
	}, opts)
	if err != nil {
		return nil, err
	}
	return s.(*sqlstore.Store), nil
}

// lockKey returns the key of the advisory lock that serialises the writes
// to the events table named table.
func lockKey(table string) int64 {
	h := fnv.New64a()
	h.Write([]byte("eventfold/sqlstore lock " + table))
	return int64(h.Sum64())
}

// channel returns the name of the channel on which appends to the events
// table named table are notified.
func channel(table string) string {
	h := fnv.New64a()
	h.Write([]byte(table))
	return fmt.Sprintf("eventfold_%016x", h.Sum64())
}

// db is the PostgreSQL backend.
type db struct {
	pool    *pgxpool.Pool
	owned   bool
	n       backend.Names
	cfg     backend.Config
	lockKey int64
	channel string

	writerMu sync.Mutex    // held while writer is in use
	writer   *pgxpool.Conn // kept between writes; nil until the first
}

func (d *db) Reader() backend.Queryer { return pgxReader{d.pool} }

func (d *db) Ping(ctx context.Context) error { return d.pool.Ping(ctx) }

// begin are the first statements of a write transaction: see Write. The
// lock's key is set for each store.
var begin = []backend.Stmt{
	{SQL: "BEGIN ISOLATION LEVEL READ COMMITTED"},
	// A session whose commits do not wait for the WAL flush (a pool
	// shared with a read side that turned synchronous_commit off) still
	// waits for the events' commits: "local", "remote_write" and the
	// other settings are kept.
	{SQL: "SELECT set_config('synchronous_commit', 'on', true) WHERE current_setting('synchronous_commit') = 'off'"},
	{SQL: "SELECT pg_advisory_xact_lock($1)"},
}

// Write runs f in a READ COMMITTED transaction that takes the store's
// advisory lock before f runs. Writers therefore commit one at a time, in
// the order of the positions they take, and each statement after the lock
// sees every earlier writer's commit. The commit waits for the WAL flush
// even if the session's synchronous_commit is off.
//
// The transaction costs two round trips: BEGIN and the lock travel with
// f's first query, and f's writes with the COMMIT (see pgTx). The lock is
// thus held for one round trip, the server's work and the commit's WAL
// flush.
func (d *db) Write(ctx context.Context, f func(tx backend.Querier) error) error {
	conn, release, err := d.writeConn(ctx)
	if err != nil {
		return err
	}
	defer release()
	t := &pgTx{conn: conn.Conn(), pending: slices.Clone(begin)}
	t.pending[len(t.pending)-1].Args = []any{d.lockKey}
	err = f(t)
	if err != nil {
		t.rollback(ctx)
	} else {
		err = t.commit(ctx)
	}
	if err != nil && ctx.Err() == nil && conn.Conn().IsClosed() && isUnavailable(err) {
		// The connection was lost: the pool's idle connections most
		// likely were too (a network failure, a server restart). Drop
		// them, so that the next write, or its retry, connects anew
		// instead of failing on one of them.
		d.pool.Reset()
	}
	return err
}

// writeConn returns a connection for a write and the function that gives
// it back. The store's writer keeps one connection of the pool between its
// writes, so that it never queues for a connection behind the reads of the
// store; a write that finds that connection busy (a scavenge) takes
// another from the pool. A connection that broke, or that a failed
// ROLLBACK left inside a transaction, goes back to the pool, which
// destroys it.
func (d *db) writeConn(ctx context.Context) (*pgxpool.Conn, func(), error) {
	if !d.writerMu.TryLock() {
		conn, err := d.pool.Acquire(ctx)
		if err != nil {
			return nil, nil, err
		}
		return conn, conn.Release, nil
	}
	if d.writer == nil {
		conn, err := d.pool.Acquire(ctx)
		if err != nil {
			d.writerMu.Unlock()
			return nil, nil, err
		}
		d.writer = conn
	}
	return d.writer, func() {
		if c := d.writer.Conn(); c.IsClosed() || c.PgConn().TxStatus() != 'I' {
			d.writer.Release()
			d.writer = nil
		}
		d.writerMu.Unlock()
	}, nil
}

func (d *db) InsertEvents(rows []backend.EventRow) []backend.Stmt {
	var (
		pos, rev, created = make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows))
		stream, id, typ   = make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows))
		contentType       = make([]string, len(rows))
		data, metadata    = make([][]byte, len(rows)), make([][]byte, len(rows))
	)
	for i, r := range rows {
		pos[i], rev[i], created[i] = r.Position, r.Revision, r.Created
		stream[i], id[i], typ[i], contentType[i] = r.Stream, r.ID.String(), r.Type, r.ContentType
		data[i], metadata[i] = r.Data, r.Metadata
	}
	return []backend.Stmt{{SQL: "INSERT INTO " + d.n.Events + " (" + backend.EventColumns + ")" +
		" SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::text[], $7::bytea[], $8::bytea[], $9::bigint[])",
		Args: []any{pos, stream, rev, id, typ, contentType, data, metadata, created}}}
}

func (d *db) Prefetch() string {
	return "SELECT (SELECT coalesce(max(position), 0) FROM " + d.n.Events + "), q.name, q.id," +
		" (SELECT max(revision) FROM " + d.n.Events + " WHERE stream = q.name AND id = q.id)," +
		" s.last_revision, s.tombstoned, s.metadata" +
		" FROM unnest($1::text[], $2::uuid[]) AS q(name, id) LEFT JOIN " + d.n.Streams + " AS s ON s.name = q.name"
}

// notify sends the new head on the store's channel; PostgreSQL delivers it
// when the transaction commits.
func (d *db) Notify(head uint64) []backend.Stmt {
	return []backend.Stmt{{SQL: "SELECT pg_notify($1, $2)", Args: []any{d.channel, strconv.FormatUint(head, 10)}}}
}

func (d *db) TableExists(ctx context.Context, table string) (bool, error) {
	var exists bool
	err := d.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists)
	return exists, err
}

func (d *db) DDL() []string {
	return []string{
		`CREATE TABLE ` + d.n.Streams + ` (
			name          text PRIMARY KEY,
			last_revision bigint NOT NULL DEFAULT -1,
			tombstoned    boolean NOT NULL DEFAULT false,
			metadata      text
		)`,
		`CREATE TABLE ` + d.n.Events + ` (
			position     bigint PRIMARY KEY CHECK (position > 0),
			stream       text NOT NULL REFERENCES ` + d.n.Streams + ` (name),
			revision     bigint NOT NULL,
			id           uuid NOT NULL,
			type         text NOT NULL,
			content_type text NOT NULL,
			data         bytea,
			metadata     bytea,
			created      bigint NOT NULL,
			UNIQUE (stream, revision)
		)`,
		`COMMENT ON COLUMN ` + d.n.Events + `.created IS 'Unix time in nanoseconds'`,
		`CREATE INDEX ` + d.n.Index + ` ON ` + d.n.Events + ` (stream, id)`,
	}
}

// watch keeps one connection, outside the pool, listening on the store's
// channel, and advances the store's head on every notification. It polls
// when no notification came for the poll interval, and while it has no
// connection, so that a lost notification only delays a subscription. It
// reconnects with a backoff that doubles from 100 ms up to the poll interval
// (at least 1 s, at most 10 s).
func (d *db) Watch(ctx context.Context, h backend.Head) {
	retry := backoff.Policy{First: 100 * time.Millisecond, Max: min(10*time.Second, max(d.cfg.Poll, time.Second))}
	failures := 0
	for ctx.Err() == nil {
		err := d.listen(ctx, h, func() { failures = 0 })
		if ctx.Err() != nil {
			return
		}
		failures++
		wait := retry.Wait(failures)
		d.cfg.Logger.WarnContext(ctx, "sqlstore: listening for new events", "channel", d.channel, "error", err, "retry", wait)
		h.Poll(ctx)
		if backoff.Sleep(ctx, wait) != nil {
			return
		}
	}
}

// listen listens on one connection until ctx is done or the connection
// fails. It calls listening once it listens.
func (d *db) listen(ctx context.Context, h backend.Head, listening func()) error {
	cfg := d.pool.Config().ConnConfig
	// A timed-out wait must leave the connection usable: end it with a
	// deadline, not a cancel request.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	cctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{d.channel}.Sanitize()); err != nil {
		return err
	}
	cancel()
	listening()
	h.Poll(ctx) // what was committed before LISTEN took effect
	for {
		wait, cancel := context.WithTimeout(ctx, d.cfg.Poll)
		n, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case err == nil:
			head, perr := strconv.ParseUint(n.Payload, 10, 64)
			if perr != nil {
				h.Poll(ctx)
				continue
			}
			h.Advance(head)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			h.Poll(ctx)
		default:
			return err
		}
	}
}

func (d *db) Close() error {
	d.writerMu.Lock()
	if d.writer != nil {
		d.writer.Release()
		d.writer = nil
	}
	d.writerMu.Unlock()
	if d.owned {
		ClosePool(d.pool)
	}
	return nil
}

// CloseWait bounds how long [ClosePool] waits for a pool to close.
const CloseWait = time.Second

// ClosePool closes pool, waiting at most [CloseWait], as a Store's Close
// does for the pool that [Open] or [OpenConfig] made; a program that passes
// its own pool to [New] can close it so after the Store. pgx closes a
// connection that a deadline ended (a call that timed out) in the
// background: it sends the server a cancel request and waits for its
// answer, and the pool's Close waits for that, up to 15 s while the server
// does not answer. Past CloseWait, the pool finishes closing by itself.
func ClosePool(pool *pgxpool.Pool) {
	wait := CloseWait
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		pool.Close()
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
	}
}

// pgxReader is the queryer of a pool.
type pgxReader struct {
	pool *pgxpool.Pool
}

func (q pgxReader) Query(ctx context.Context, sql string, args ...any) (backend.Rows, error) {
	r, err := q.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// sendBatch runs statements in one round trip.
func sendBatch(ctx context.Context, db interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}, stmts []backend.Stmt) error {
	b := &pgx.Batch{}
	for _, s := range stmts {
		b.Queue(s.SQL, s.Args...)
	}
	return db.SendBatch(ctx, b).Close()
}

// pgTx is a transaction on one connection that saves round trips: the
// statements given to execAll are not sent at once but with the next
// statement, or with the COMMIT, and their errors are reported there. The
// first statements pending are those of begin. (pgx prepares every
// statement of a batch before it runs the first, so a batch cannot use a
// table that one of its statements creates: exec, which the schema's
// creation uses, sends its statement at once.)
type pgTx struct {
	conn    *pgx.Conn
	pending []backend.Stmt
	sent    bool // something was sent: there is a transaction to end
}

func (t *pgTx) Query(ctx context.Context, sql string, args ...any) (backend.Rows, error) {
	b := &pgx.Batch{}
	for _, s := range t.pending {
		b.Queue(s.SQL, s.Args...)
	}
	n := len(t.pending)
	t.pending, t.sent = nil, true
	b.Queue(sql, args...)
	br := t.conn.SendBatch(ctx, b)
	for range n {
		if _, err := br.Exec(); err != nil {
			return nil, errors.Join(err, br.Close())
		}
	}
	r, err := br.Query()
	if err != nil {
		return nil, errors.Join(err, br.Close())
	}
	return &batchRows{Rows: r, br: br}, nil
}

func (t *pgTx) Exec(ctx context.Context, sql string, args ...any) error {
	stmts := append(t.pending, backend.Stmt{SQL: sql, Args: args})
	t.pending, t.sent = nil, true
	return sendBatch(ctx, t.conn, stmts)
}

func (t *pgTx) ExecAll(_ context.Context, stmts []backend.Stmt) error {
	t.pending = append(t.pending, stmts...)
	return nil
}

// commit sends the pending statements and COMMIT, in one round trip. If
// one fails, the server skips the rest, COMMIT included, and commit rolls
// back.
func (t *pgTx) commit(ctx context.Context) error {
	if !t.sent && len(t.pending) == len(begin) {
		return nil // nothing but the beginning: nothing to do
	}
	t.sent = true
	if err := sendBatch(ctx, t.conn, append(t.pending, backend.Stmt{SQL: "COMMIT"})); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) && !pgconn.SafeToRetry(err) {
			// Sent, and no answer: the server may have committed.
			err = &backend.UnknownOutcomeError{Err: err}
		}
		t.rollback(ctx)
		return err
	}
	return nil
}

// rollback ends the transaction. If it cannot, the connection stays in the
// transaction and its release destroys it, which ends the transaction too.
func (t *pgTx) rollback(ctx context.Context) {
	if t.sent {
		_, _ = t.conn.Exec(ctx, "ROLLBACK")
	}
}

// batchRows are the rows of the last query of a batch: closing them closes
// the batch. Every result of the batch has been read by then, so closing it
// can only fail if the connection broke, which the transaction's next
// statement or commit reports.
type batchRows struct {
	pgx.Rows
	br pgx.BatchResults
}

func (r *batchRows) Close() {
	r.Rows.Close()
	_ = r.br.Close()
}

// Unavailable reports whether err is a failure to reach PostgreSQL that
// backend.IsUnavailable does not know of: see isUnavailable.
func (d *db) Unavailable(err error) bool { return isUnavailable(err) }

// isUnavailable reports whether err is a failure to reach PostgreSQL, or
// one that a working connection to it would not have had, after which
// retrying may succeed: a connection refused, reset, lost or timed out, a
// server shutting down or starting up, too many connections. Errors of
// SQL (a constraint, a syntax error) and a failed authentication are not.
func isUnavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return unavailableState(pgErr.Code)
	}
	var connectErr *pgconn.ConnectError
	return backend.IsUnavailable(err) || errors.As(err, &connectErr) || pgconn.Timeout(err) || errors.Is(err, pgconn.ErrConnClosed)
}

// unavailableState reports whether a PostgreSQL error code says that the
// server cannot serve the connection now: class 08 (connection exception),
// 57P01 to 57P03 (the connection terminated by an administrator or a
// shutdown, the server starting up), 53300 (too many connections).
func unavailableState(code string) bool {
	switch code {
	case "57P01", "57P02", "57P03", "53300":
		return true
	}
	return strings.HasPrefix(code, "08")
}
