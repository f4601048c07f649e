package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es/sqlstore/internal/backend"
)

// The backends (packages sqlstore/sqlite and sqlstore/postgres) open a
// Store through backend.Open, which is set here rather than exported, so
// that no public constructor of this package takes a backend.
func init() {
	backend.Open = openStore
}

// openStore opens a Store on the backend that open returns: see
// backend.Open.
func openStore(ctx context.Context, kind backend.Kind, what string, open func(backend.Config) (backend.DB, error), opts any) (any, error) {
	options, _ := opts.([]Option)
	cfg, err := newConfig(string(kind), options)
	if err != nil {
		return nil, err
	}
	q := newQueries(newNames(cfg.schema, cfg.prefix))
	db, err := open(backend.Config{
		Names: backend.Names{Schema: q.schema, Events: q.events, Streams: q.streams, Index: q.index, Raw: q.raw},
		Poll:  cfg.poll, CallTimeout: cfg.callTimeout, Logger: cfg.logger,
	})
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, db: dbOf{db}, q: q}
	if err := s.call(ctx, db.Ping); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: %s: %w", what, s.unavailable(err)), db.Close())
	}
	if err := s.open(ctx); err != nil {
		return nil, err
	}
	if p, ok := db.(backend.Preparer); ok {
		// The statements of writes, prepared once the tables exist.
		queries := []string{q.loadForWrite, q.loadStream, q.idsFrom, q.positionAt, q.upsertLast, q.upsertMeta, q.upsertTombstone}
		if err := s.call(ctx, func(ctx context.Context) error { return p.Prepare(ctx, queries) }); err != nil {
			return nil, errors.Join(err, s.Close())
		}
	}
	s.startScavenger(ctx)
	return s, nil
}

// database is what a Store needs from a database: its backend, seen
// through the types of this package (see backend.DB).
type database interface {
	reader() queryer
	write(ctx context.Context, f func(tx querier) error) error
	insertEvents(rows []eventRow) []stmt
	prefetch() string
	notify(head uint64) []stmt
	tableExists(ctx context.Context, table string) (bool, error)
	ddl() []string
	watch(ctx context.Context, s *Store)
	unavailable(err error) bool
	close() error
}

// queryer runs queries: a pool of connections or a transaction. Statements
// use $1, $2, … for their arguments on both databases.
type queryer interface {
	query(ctx context.Context, sql string, args ...any) (rows, error)
}

// querier runs the statements of a write transaction.
type querier interface {
	queryer
	exec(ctx context.Context, sql string, args ...any) error
	// execAll runs statements in order, in one round trip where the
	// database allows.
	execAll(ctx context.Context, stmts []stmt) error
}

type (
	// stmt is a statement and its arguments.
	stmt = backend.Stmt
	// rows is the result of a query.
	rows = backend.Rows
	// unknownOutcomeError is the error of a write whose outcome is
	// unknown.
	unknownOutcomeError = backend.UnknownOutcomeError
)

// eventRow is an event as inserted.
type eventRow struct {
	position    uint64
	stream      string
	revision    uint64
	id          uuid.UUID
	typ         string
	contentType string
	data        []byte
	metadata    []byte
	created     int64 // Unix time in nanoseconds
}

// dbOf is a backend.DB as a database.
type dbOf struct{ db backend.DB }

func (d dbOf) reader() queryer { return queryerOf{d.db.Reader()} }

func (d dbOf) write(ctx context.Context, f func(tx querier) error) error {
	return d.db.Write(ctx, func(tx backend.Querier) error { return f(querierOf{tx}) })
}

func (d dbOf) insertEvents(rs []eventRow) []stmt {
	out := make([]backend.EventRow, len(rs))
	for i, r := range rs {
		out[i] = backend.EventRow{Position: i64(r.position), Stream: r.stream, Revision: i64(r.revision), ID: r.id,
			Type: r.typ, ContentType: r.contentType, Data: r.data, Metadata: r.metadata, Created: r.created}
	}
	return d.db.InsertEvents(out)
}

func (d dbOf) prefetch() string          { return d.db.Prefetch() }
func (d dbOf) notify(head uint64) []stmt { return d.db.Notify(head) }
func (d dbOf) ddl() []string             { return d.db.DDL() }
func (d dbOf) unavailable(err error) bool {
	return d.db.Unavailable(err)
}
func (d dbOf) close() error { return d.db.Close() }

func (d dbOf) tableExists(ctx context.Context, table string) (bool, error) {
	return d.db.TableExists(ctx, table)
}

func (d dbOf) watch(ctx context.Context, s *Store) { d.db.Watch(ctx, head{s}) }

// head is a Store as the backend's watch sees it.
type head struct{ s *Store }

func (h head) Advance(n uint64)         { h.s.advance(n) }
func (h head) Poll(ctx context.Context) { h.s.poll(ctx) }

// queryerOf is a backend.Queryer as a queryer.
type queryerOf struct{ q backend.Queryer }

func (q queryerOf) query(ctx context.Context, sql string, args ...any) (rows, error) {
	return q.q.Query(ctx, sql, args...)
}

// querierOf is a backend.Querier as a querier.
type querierOf struct{ q backend.Querier }

func (q querierOf) query(ctx context.Context, sql string, args ...any) (rows, error) {
	return q.q.Query(ctx, sql, args...)
}

func (q querierOf) exec(ctx context.Context, sql string, args ...any) error {
	return q.q.Exec(ctx, sql, args...)
}

func (q querierOf) execAll(ctx context.Context, stmts []stmt) error { return q.q.ExecAll(ctx, stmts) }
