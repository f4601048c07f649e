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
		Names: backend.Names{Events: q.events, Streams: q.streams, Index: q.index, Raw: q.raw},
		Poll:  cfg.poll, CallTimeout: cfg.callTimeout, Logger: cfg.logger,
	})
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, db: db, q: q}
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

// The types that the backends share with the store.
type (
	// queryer runs queries: a pool of connections or a transaction.
	queryer = backend.Queryer
	// querier runs the statements of a write transaction.
	querier = backend.Querier
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

// insertEvents returns the statements that insert rows.
func (s *Store) insertEvents(rows []eventRow) []stmt {
	out := make([]backend.EventRow, len(rows))
	for i, r := range rows {
		out[i] = backend.EventRow{Position: i64(r.position), Stream: r.stream, Revision: i64(r.revision), ID: r.id,
			Type: r.typ, ContentType: r.contentType, Data: r.data, Metadata: r.metadata, Created: r.created}
	}
	return s.db.InsertEvents(out)
}

// head is a Store as the backend's watch sees it.
type head struct{ s *Store }

func (h head) Advance(n uint64)         { h.s.advance(n) }
func (h head) Poll(ctx context.Context) { h.s.poll(ctx) }
