package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventfold/eventfold/internal/backoff"
)

// OpenPostgres connects to PostgreSQL with a pgx connection string (a URL
// such as "postgres://user@host:5432/db?sslmode=disable" or key=value
// pairs) and opens the event store in that database, creating its schema if
// needed. The Store owns the pool it creates and closes it on Close.
func OpenPostgres(ctx context.Context, connString string, opts ...Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	return OpenPostgresConfig(ctx, cfg, opts...)
}

// OpenPostgresConfig is [OpenPostgres] with a pool configuration of the
// caller's (from pgxpool.ParseConfig, with its size or hooks set): the
// Store creates the pool, owns it and closes it on Close, waiting at most
// a second for connections that an outage left to pgx's cleanup.
func OpenPostgresConfig(ctx context.Context, cfg *pgxpool.Config, opts ...Option) (*Store, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: OpenPostgresConfig with a nil configuration", ErrInvalidOption)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: connect to PostgreSQL: %w", err)
	}
	s, err := newPostgres(ctx, pool, true, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// NewPostgres opens the event store in the database of an existing pool,
// creating its schema if needed. The pool stays the caller's: Close does not
// close it. The Store also opens one connection of its own, outside the
// pool, with the pool's configuration, to listen for notifications.
func NewPostgres(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: NewPostgres with a nil pool", ErrInvalidOption)
	}
	return newPostgres(ctx, pool, false, opts)
}

func newPostgres(ctx context.Context, pool *pgxpool.Pool, owned bool, opts []Option) (*Store, error) {
	cfg, err := newConfig(kindPostgres, opts)
	if err != nil {
		return nil, err
	}
	n := newNames(cfg.schema, cfg.prefix)
	db := &postgresDB{pool: pool, owned: owned, n: n, lockKey: lockKey(n.raw), channel: channel(n.raw)}
	s := &Store{cfg: cfg, db: db, q: newQueries(n)}
	if err := s.call(ctx, pool.Ping); err != nil {
		return nil, fmt.Errorf("sqlstore: connect to PostgreSQL: %w", unavailable(err))
	}
	if err := s.open(ctx); err != nil {
		return nil, err
	}
	s.startScavenger(ctx)
	return s, nil
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

// postgresDB is the PostgreSQL backend.
type postgresDB struct {
	pool    *pgxpool.Pool
	owned   bool
	n       names
	lockKey int64
	channel string

	writerMu sync.Mutex    // held while writer is in use
	writer   *pgxpool.Conn // kept between writes; nil until the first
}

func (d *postgresDB) reader() queryer { return pgxReader{d.pool} }

// write runs f in a READ COMMITTED transaction whose first statement takes
// the store's advisory lock. Writers therefore commit one at a time, in the
// order of the positions they take, and each statement after the lock sees
// every earlier writer's commit.
//
// The transaction costs two round trips: BEGIN and the lock travel with
// f's first query, and f's writes with the COMMIT (see pgTx). The lock is
// thus held for one round trip, the server's work and the commit's WAL
// flush.
func (d *postgresDB) write(ctx context.Context, f func(tx querier) error) error {
	conn, release, err := d.writeConn(ctx)
	if err != nil {
		return err
	}
	defer release()
	t := &pgTx{conn: conn.Conn(), pending: []stmt{
		{"BEGIN ISOLATION LEVEL READ COMMITTED", nil},
		{"SELECT pg_advisory_xact_lock($1)", []any{d.lockKey}},
	}}
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
func (d *postgresDB) writeConn(ctx context.Context) (*pgxpool.Conn, func(), error) {
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

func (d *postgresDB) insertEvents(rows []eventRow) []stmt {
	var (
		pos, rev, created = make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows))
		stream, id, typ   = make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows))
		contentType       = make([]string, len(rows))
		data, metadata    = make([][]byte, len(rows)), make([][]byte, len(rows))
	)
	for i, r := range rows {
		pos[i], rev[i], created[i] = i64(r.position), i64(r.revision), r.created
		stream[i], id[i], typ[i], contentType[i] = r.stream, r.id.String(), r.typ, r.contentType
		data[i], metadata[i] = r.data, r.metadata
	}
	return []stmt{{"INSERT INTO " + d.n.events + " (" + eventColumns + ")" +
		" SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::text[], $7::bytea[], $8::bytea[], $9::bigint[])",
		[]any{pos, stream, rev, id, typ, contentType, data, metadata, created}}}
}

func (d *postgresDB) prefetch() string {
	return "SELECT (SELECT coalesce(max(position), 0) FROM " + d.n.events + "), q.name, q.id," +
		" (SELECT max(revision) FROM " + d.n.events + " WHERE stream = q.name AND id = q.id)," +
		" s.last_revision, s.tombstoned, s.metadata" +
		" FROM unnest($1::text[], $2::uuid[]) AS q(name, id) LEFT JOIN " + d.n.streams + " AS s ON s.name = q.name"
}

// notify sends the new head on the store's channel; PostgreSQL delivers it
// when the transaction commits.
func (d *postgresDB) notify(head uint64) []stmt {
	return []stmt{{"SELECT pg_notify($1, $2)", []any{d.channel, strconv.FormatUint(head, 10)}}}
}

func (d *postgresDB) tableExists(ctx context.Context, table string) (bool, error) {
	var exists bool
	_, err := queryRow(ctx, d.reader(), "SELECT to_regclass($1) IS NOT NULL", []any{table}, &exists)
	return exists, err
}

func (d *postgresDB) ddl() []string {
	return []string{
		`CREATE TABLE ` + d.n.streams + ` (
			name          text PRIMARY KEY,
			last_revision bigint NOT NULL DEFAULT -1,
			tombstoned    boolean NOT NULL DEFAULT false,
			metadata      text
		)`,
		`CREATE TABLE ` + d.n.events + ` (
			position     bigint PRIMARY KEY CHECK (position > 0),
			stream       text NOT NULL REFERENCES ` + d.n.streams + ` (name),
			revision     bigint NOT NULL,
			id           uuid NOT NULL,
			type         text NOT NULL,
			content_type text NOT NULL,
			data         bytea,
			metadata     bytea,
			created      bigint NOT NULL,
			UNIQUE (stream, revision)
		)`,
		`COMMENT ON COLUMN ` + d.n.events + `.created IS 'Unix time in nanoseconds'`,
		`CREATE INDEX ` + d.n.index + ` ON ` + d.n.events + ` (stream, id)`,
	}
}

// watch keeps one connection, outside the pool, listening on the store's
// channel, and advances the store's head on every notification. It polls
// when no notification came for the poll interval, and while it has no
// connection, so that a lost notification only delays a subscription. It
// reconnects with a backoff that doubles from 100 ms up to the poll interval
// (at least 1 s, at most 10 s).
func (d *postgresDB) watch(ctx context.Context, s *Store) {
	retry := backoff.Policy{First: 100 * time.Millisecond, Max: min(10*time.Second, max(s.cfg.poll, time.Second))}
	failures := 0
	for ctx.Err() == nil {
		err := d.listen(ctx, s, func() { failures = 0 })
		if ctx.Err() != nil {
			return
		}
		failures++
		wait := retry.Wait(failures)
		s.cfg.logger.WarnContext(ctx, "sqlstore: listening for new events", "channel", d.channel, "error", err, "retry", wait)
		s.poll(ctx)
		if backoff.Sleep(ctx, wait) != nil {
			return
		}
	}
}

// listen listens on one connection until ctx is done or the connection
// fails. It calls listening once it listens.
func (d *postgresDB) listen(ctx context.Context, s *Store, listening func()) error {
	cfg := d.pool.Config().ConnConfig
	// A timed-out wait must leave the connection usable: end it with a
	// deadline, not a cancel request.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.callTimeout)
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
	s.poll(ctx) // what was committed before LISTEN took effect
	for {
		wait, cancel := context.WithTimeout(ctx, s.cfg.poll)
		n, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case err == nil:
			h, perr := strconv.ParseUint(n.Payload, 10, 64)
			if perr != nil {
				s.poll(ctx)
				continue
			}
			s.advance(h)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			s.poll(ctx)
		default:
			return err
		}
	}
}

func (d *postgresDB) close() error {
	d.writerMu.Lock()
	if d.writer != nil {
		d.writer.Release()
		d.writer = nil
	}
	d.writerMu.Unlock()
	if d.owned {
		closePool(d.pool, closeWait)
	}
	return nil
}

// closeWait bounds how long Close waits for the pool it owns to close.
const closeWait = time.Second

// closePool closes pool, waiting at most wait. pgx closes a connection
// that a deadline ended (a call that timed out) in the background: it sends
// the server a cancel request and waits for its answer, and the pool's
// Close waits for that, up to 15 s while the server does not answer. Past
// wait, the pool finishes closing by itself.
func closePool(pool *pgxpool.Pool, wait time.Duration) {
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

func (q pgxReader) query(ctx context.Context, sql string, args ...any) (rows, error) {
	r, err := q.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// sendBatch runs statements in one round trip.
func sendBatch(ctx context.Context, db interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}, stmts []stmt) error {
	b := &pgx.Batch{}
	for _, s := range stmts {
		b.Queue(s.sql, s.args...)
	}
	return db.SendBatch(ctx, b).Close()
}

// pgTx is a transaction on one connection that saves round trips: the
// statements given to execAll are not sent at once but with the next
// statement, or with the COMMIT, and their errors are reported there. The
// first statements pending are BEGIN and the lock. (pgx prepares every
// statement of a batch before it runs the first, so a batch cannot use a
// table that one of its statements creates: exec, which the schema's
// creation uses, sends its statement at once.)
type pgTx struct {
	conn    *pgx.Conn
	pending []stmt
	sent    bool // something was sent: there is a transaction to end
}

func (t *pgTx) query(ctx context.Context, sql string, args ...any) (rows, error) {
	b := &pgx.Batch{}
	for _, s := range t.pending {
		b.Queue(s.sql, s.args...)
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

func (t *pgTx) exec(ctx context.Context, sql string, args ...any) error {
	stmts := append(t.pending, stmt{sql, args})
	t.pending, t.sent = nil, true
	return sendBatch(ctx, t.conn, stmts)
}

func (t *pgTx) execAll(_ context.Context, stmts []stmt) error {
	t.pending = append(t.pending, stmts...)
	return nil
}

// commit sends the pending statements and COMMIT, in one round trip. If
// one fails, the server skips the rest, COMMIT included, and commit rolls
// back.
func (t *pgTx) commit(ctx context.Context) error {
	if !t.sent && len(t.pending) == 2 {
		return nil // nothing but BEGIN and the lock: nothing to do
	}
	t.sent = true
	if err := sendBatch(ctx, t.conn, append(t.pending, stmt{"COMMIT", nil})); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) && !pgconn.SafeToRetry(err) {
			// Sent, and no answer: the server may have committed.
			err = &unknownOutcomeError{err}
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
