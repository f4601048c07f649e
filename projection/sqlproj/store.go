package sqlproj

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/projection"
)

// The checkpoint logic is written once, in store, over a small interface
// of the database it runs on: database/sql for [Checkpoints] (SQLite and
// PostgreSQL), a pgx pool for [PgxCheckpoints]. Tx is the transaction
// type the handlers get.

// database is a pool of connections to the checkpoints' database.
type database[Tx any] interface {
	// queryRow runs a query of at most one row outside a transaction.
	queryRow(ctx context.Context, query string, args ...any) scanner
	// query runs a query outside a transaction.
	query(ctx context.Context, query string, args ...any) (rows, error)
	// exec runs a statement in a transaction of its own and returns the
	// number of rows it changed.
	exec(ctx context.Context, query string, args ...any) (int64, error)
	// begin starts a transaction; ctx bounds the wait for a connection
	// and the BEGIN, bound the whole transaction, its COMMIT included.
	begin(ctx, bound context.Context) (txn[Tx], error)
}

// txn is a transaction under way.
type txn[Tx any] interface {
	// tx is the transaction as the handlers get it.
	tx() Tx
	// exec runs a statement and returns the number of rows it changed.
	exec(ctx context.Context, query string, args ...any) (int64, error)
	queryRow(ctx context.Context, query string, args ...any) scanner
	// commit commits and frees the connection, within the bound of the
	// transaction's begin.
	commit() error
	// rollback rolls back, if the transaction is not over yet, and frees
	// the connection.
	rollback(ctx context.Context) error
}

type scanner interface {
	Scan(dest ...any) error
}

type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// store is the checkpoint logic shared by [Checkpoints] and
// [PgxCheckpoints]: the queries, fencing, leases, versions and dead
// letters.
type store[Tx any] struct {
	db      database[Tx]
	dialect Dialect
	cfg     config
	q       queries
	// instance identifies this value among the stores of its process, in
	// the leases it holds.
	instance string

	// writes holds one token: on SQLite, the writes of this value queue
	// here instead of in SQLite's busy handler.
	writes chan struct{}

	taking sync.Mutex // held while a lease is taken
	mu     sync.Mutex
	seen   map[string]seen // the checkpoints this value last read or wrote
	// leased holds the leases this value holds, by key: the commits of a
	// leased key check in their transaction that the lease is still
	// theirs (fencing).
	leased map[string]*held
	// renewals renews the leases of leased, in one statement per
	// heartbeat.
	renewals renewals
}

// seen is the stored checkpoint of a key as this store last knew it: its
// next Commit of the key applies only if the row still holds it.
type seen struct {
	cp     projection.Checkpoint
	exists bool   // a row exists
	gen    uint64 // counts the changes of this entry
	// rearm is set when a lease on the key is granted: the next Load
	// takes what it reads as the new state to expect. Other Loads (a
	// runner's Status, say) leave a known state alone.
	rearm bool
	known bool
}

// newStore creates the tables in db if needed and returns the store.
func newStore[Tx any](ctx context.Context, db database[Tx], dialect Dialect, cfg config) (*store[Tx], error) {
	s := &store[Tx]{db: db, dialect: dialect, cfg: cfg, q: newQueries(dialect, cfg.prefix),
		writes: make(chan struct{}, 1), seen: make(map[string]seen), leased: make(map[string]*held),
		instance: uuid.NewString()}
	instances.Store(s.instance, struct{}{})
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// migrate creates the tables, in one transaction.
func (s *store[Tx]) migrate(ctx context.Context) error {
	return s.write(ctx, func(tx txn[Tx]) error {
		exec := func(query string, args ...any) error {
			if _, err := tx.exec(ctx, query, args...); err != nil {
				return fmt.Errorf("sqlproj: create tables: %w", err)
			}
			return nil
		}
		if s.dialect == Postgres {
			// Serialize concurrent migrations: CREATE TABLE IF NOT EXISTS
			// races with itself in PostgreSQL.
			if err := exec("SELECT pg_advisory_xact_lock($1)", lockID("sqlproj-migrate", s.cfg.prefix)); err != nil {
				return err
			}
		}
		if err := exec(s.q.createSchema); err != nil {
			return err
		}
		var version int64
		err := tx.queryRow(ctx, "SELECT version FROM "+s.q.schema+" WHERE id = 1").Scan(&version)
		switch {
		case isNoRows(err):
		case err != nil:
			return fmt.Errorf("sqlproj: schema version: %w", err)
		case version > schemaVersion:
			return fmt.Errorf("%w: the tables %s* are at version %d, this code knows up to %d: upgrade it", ErrSchemaVersion, s.cfg.prefix, version, schemaVersion)
		case version == schemaVersion:
			return nil
		}
		for _, ddl := range s.q.ddl {
			if err := exec(ddl); err != nil {
				return err
			}
		}
		if err := s.addPartitions(ctx, tx); err != nil {
			return err
		}
		return exec("INSERT INTO "+s.q.schema+" (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = excluded.version", int64(schemaVersion))
	})
}

// addPartitions adds the column partitions (version 3) to a checkpoints
// table of an earlier version; the tables created by this version have it.
func (s *store[Tx]) addPartitions(ctx context.Context, tx txn[Tx]) error {
	alter := "ALTER TABLE " + s.q.checkpoints + " ADD COLUMN partitions "
	if s.dialect == Postgres {
		alter = "ALTER TABLE " + s.q.checkpoints + " ADD COLUMN IF NOT EXISTS partitions "
	} else {
		var n int64
		// The prefix is an identifier of letters, digits and '_' (WithTablePrefix).
		err := tx.queryRow(ctx, "SELECT count(*) FROM pragma_table_info('"+s.q.checkpoints+"') WHERE name = 'partitions'").Scan(&n)
		if err != nil {
			return fmt.Errorf("sqlproj: upgrade %s: %w", s.q.checkpoints, err)
		}
		if n > 0 {
			return nil
		}
	}
	bigint := "BIGINT"
	if s.dialect == SQLite {
		bigint = "INTEGER"
	}
	if _, err := tx.exec(ctx, alter+bigint+" NOT NULL DEFAULT 0"); err != nil {
		return fmt.Errorf("sqlproj: upgrade %s: %w", s.q.checkpoints, err)
	}
	return nil
}

// write runs f in a transaction, committed if f returns nil and rolled
// back otherwise; f's error is returned as is. On SQLite, writes of s run
// one at a time. ctx bounds the wait for a connection and f's statements;
// once f has returned nil, the COMMIT runs to its end.
func (s *store[Tx]) write(ctx context.Context, f func(tx txn[Tx]) error) error {
	return s.writeWithin(ctx, context.WithoutCancel(ctx), f)
}

// boundedWrite is write, with the whole transaction, its COMMIT included,
// bounded by the call timeout.
func (s *store[Tx]) boundedWrite(ctx context.Context, f func(tx txn[Tx]) error) error {
	bound, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.callTimeout)
	defer cancel()
	ctx, cancelCtx := context.WithDeadline(ctx, time.Now().Add(s.cfg.callTimeout))
	defer cancelCtx()
	return s.writeWithin(ctx, bound, f)
}

// call bounds a call into the database that the caller's context may not
// bound: a query, or a statement outside a leased commit.
func (s *store[Tx]) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.callTimeout)
}

// writeWithin is write, with the whole transaction bounded by bound: when
// bound ends, the transaction is rolled back, or its COMMIT cut short.
func (s *store[Tx]) writeWithin(ctx, bound context.Context, f func(tx txn[Tx]) error) error {
	if s.dialect == SQLite {
		select {
		case s.writes <- struct{}{}:
			defer func() { <-s.writes }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// ctx cancels the transaction's statements, not its COMMIT: a COMMIT
	// cut off on the client may still commit on the server after the
	// caller has moved on (and, say, loaded the old checkpoint again).
	tx, err := s.db.begin(ctx, bound)
	if err != nil {
		return fmt.Errorf("sqlproj: begin: %w", withCtx(ctx, err))
	}
	if err := f(tx); err != nil {
		if rerr := tx.rollback(ctx); rerr != nil {
			err = errors.Join(err, fmt.Errorf("sqlproj: rollback: %w", rerr))
		}
		return withCtx(ctx, err)
	}
	if err := tx.commit(); err != nil {
		return fmt.Errorf("sqlproj: commit: %w", withCtx(bound, err))
	}
	return nil
}

// isNoRows reports whether err says that a query returned no row: pgx's
// ErrNoRows matches sql.ErrNoRows.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

func (s *store[Tx]) load(ctx context.Context, key string) (projection.Checkpoint, error) {
	s.mu.Lock()
	gen := s.seen[key].gen
	s.mu.Unlock()
	cp, exists, err := s.read(ctx, key)
	if err == nil {
		s.mu.Lock()
		// Expect what was read if nothing is expected yet, or after a
		// lease, unless a Commit of key ended meanwhile.
		if st := s.seen[key]; st.gen == gen && (!st.known || st.rearm) {
			s.seen[key] = seen{cp: cp, exists: exists, gen: gen + 1, known: true}
		}
		s.mu.Unlock()
	}
	return cp, err
}

// rearm makes the next Load of key set the state its Commits expect.
func (s *store[Tx]) rearm(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.seen[key]
	st.rearm, st.gen = true, st.gen+1
	s.seen[key] = st
}

func (s *store[Tx]) read(ctx context.Context, key string) (cp projection.Checkpoint, exists bool, err error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	// Scanned as they are, so that a value of the wrong type is reported
	// as a corrupt checkpoint rather than as a failure of the database.
	var commit, prepare, rebuilding, partitions any
	err = s.db.queryRow(ctx, s.q.loadCheckpoint, key).Scan(&commit, &prepare, &rebuilding, &partitions)
	switch {
	case isNoRows(err):
		return projection.Checkpoint{}, false, nil
	case err != nil:
		return projection.Checkpoint{}, false, fmt.Errorf("sqlproj: load checkpoint %q: %w", key, withCtx(ctx, err))
	}
	c64, ok1 := commit.(int64)
	p64, ok2 := prepare.(int64)
	var ok3 bool
	switch r := rebuilding.(type) {
	case bool:
		cp.Rebuilding, ok3 = r, true
	case int64: // SQLite
		cp.Rebuilding, ok3 = r == 1, r == 0 || r == 1
	}
	n64, ok4 := partitions.(int64)
	if !ok1 || !ok2 || !ok3 || !ok4 || c64 < 0 || p64 < 0 || n64 < 0 || n64 > math.MaxInt32 {
		return projection.Checkpoint{}, false, fmt.Errorf("%w: %q in %s: position (%s, %s), rebuilding %s, partitions %s",
			projection.ErrCorruptCheckpoint, key, s.q.checkpoints, show(commit), show(prepare), show(rebuilding), show(partitions))
	}
	cp.Partitions = int(n64)
	cp.Position = es.Position{Commit: uint64(c64), Prepare: uint64(p64)}
	return cp, true, nil
}

// show formats a column's value for an error message.
func show(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return strconv.Quote(v)
	case []byte:
		return strconv.Quote(string(v))
	}
	return fmt.Sprint(v)
}

func (s *store[Tx]) commit(ctx context.Context, key string, cp projection.Checkpoint, apply func(tx Tx) error) (err error) {
	commit, prepare, err := positionArgs(cp.Position)
	if err != nil {
		return fmt.Errorf("sqlproj: checkpoint %q: %w", key, err)
	}
	if cp.Partitions < 0 || cp.Partitions > math.MaxInt32 {
		return fmt.Errorf("sqlproj: checkpoint %q: %d partitions", key, cp.Partitions)
	}
	partitions := int64(cp.Partitions)
	s.mu.Lock()
	last := s.seen[key]
	s.mu.Unlock()
	known := last.known && cp != (projection.Checkpoint{})
	lease, err := s.leaseOf(key)
	if err != nil {
		return err
	}
	// The transaction of a leased key ends when the lease is lost, so that
	// a holder cut off from its database never hangs in a COMMIT.
	bound := context.WithoutCancel(ctx)
	if lease != nil {
		var stop context.CancelFunc
		bound, stop = lease.bound(bound)
		defer stop()
	}
	err = s.writeWithin(ctx, bound, func(tx txn[Tx]) error {
		if lease != nil {
			if err := s.fence(ctx, tx, lease); err != nil {
				return err
			}
		}
		var n int64
		var err error
		switch {
		case !known:
			n, err = tx.exec(ctx, s.q.saveCheckpoint, key, commit, prepare, cp.Rebuilding, partitions)
		case !last.exists:
			n, err = tx.exec(ctx, s.q.insertCheckpoint, key, commit, prepare, cp.Rebuilding, partitions)
		default:
			n, err = tx.exec(ctx, s.q.updateCheckpoint, key, commit, prepare, cp.Rebuilding, partitions,
				int64(last.cp.Position.Commit), int64(last.cp.Position.Prepare), last.cp.Rebuilding,
				int64(last.cp.Partitions))
		}
		if err != nil {
			return fmt.Errorf("sqlproj: save checkpoint %q: %w", key, err)
		}
		if known && n != 1 {
			return fmt.Errorf("%w: %q was at %v when last seen", ErrConflict, key, describe(last))
		}
		if apply != nil {
			return apply(tx.tx())
		}
		return nil
	})
	if err == nil {
		s.mu.Lock()
		s.seen[key] = seen{cp: cp, exists: true, gen: s.seen[key].gen + 1, known: true}
		s.mu.Unlock()
	}
	return err
}

func describe(st seen) string {
	if !st.exists {
		return "none"
	}
	if st.cp.Rebuilding {
		return st.cp.Position.String() + " (rebuilding)"
	}
	return st.cp.Position.String()
}

func (s *store[Tx]) activeVersion(ctx context.Context, name string) (int, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	var v int64
	err := s.db.queryRow(ctx, s.q.loadVersion, name).Scan(&v)
	switch {
	case isNoRows(err):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("sqlproj: active version of %q: %w", name, withCtx(ctx, err))
	}
	return int(v), nil
}

func (s *store[Tx]) setActiveVersion(ctx context.Context, name string, version int, apply func(tx Tx) error) error {
	if version < 0 {
		return fmt.Errorf("sqlproj: active version of %q: negative version %d", name, version)
	}
	return s.boundedWrite(ctx, func(tx txn[Tx]) error {
		if _, err := tx.exec(ctx, s.q.saveVersion, name, int64(version)); err != nil {
			return fmt.Errorf("sqlproj: set active version of %q: %w", name, err)
		}
		if apply != nil {
			return apply(tx.tx())
		}
		return nil
	})
}

func (s *store[Tx]) saveDeadLetter(ctx context.Context, d projection.DeadLetter) error {
	ev := d.Event
	commit, prepare, err := positionArgs(ev.Position)
	if err != nil {
		return fmt.Errorf("sqlproj: dead letter %s: %w", ev.ID, err)
	}
	revision, err := i64("revision", ev.Revision)
	if err != nil {
		return fmt.Errorf("sqlproj: dead letter %s: %w", ev.ID, err)
	}
	err = s.boundedWrite(ctx, func(tx txn[Tx]) error {
		_, err := tx.exec(ctx, s.q.saveDeadLetter, d.Projection, ev.ID.String(), ev.Stream, revision, commit, prepare,
			ev.Type, ev.ContentType, s.dialect.timeArg(ev.Created), ev.Data, ev.Metadata, d.Error, s.dialect.timeArg(d.At))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlproj: save dead letter %s of %q: %w", ev.ID, d.Projection, err)
	}
	return nil
}

func (s *store[Tx]) deadLetters(ctx context.Context, projectionName string) ([]projection.DeadLetter, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	rows, err := s.db.query(ctx, s.q.listDeadLetters, projectionName)
	if err != nil {
		return nil, fmt.Errorf("sqlproj: dead letters of %q: %w", projectionName, withCtx(ctx, err))
	}
	defer rows.Close()
	var out []projection.DeadLetter
	for rows.Next() {
		var (
			id                        string
			revision, commit, prepare int64
			created, at               any
			d                         = projection.DeadLetter{Projection: projectionName}
			ev                        = &d.Event
		)
		if err := rows.Scan(&id, &ev.Stream, &revision, &commit, &prepare, &ev.Type, &ev.ContentType, &created,
			&ev.Data, &ev.Metadata, &d.Error, &at); err != nil {
			return nil, fmt.Errorf("sqlproj: dead letters of %q: %w", projectionName, err)
		}
		var errs []error
		ev.ID, err = uuid.Parse(id)
		errs = append(errs, err)
		ev.Created, err = parseTime(created)
		errs = append(errs, err)
		d.At, err = parseTime(at)
		errs = append(errs, err)
		if revision < 0 || commit < 0 || prepare < 0 {
			errs = append(errs, fmt.Errorf("negative revision or position"))
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("sqlproj: dead letter %s of %q: %w", id, projectionName, err)
		}
		ev.Revision = uint64(revision)
		ev.Position = es.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlproj: dead letters of %q: %w", projectionName, err)
	}
	return out, nil
}

// lockID returns the 64-bit key of a PostgreSQL advisory lock.
func lockID(parts ...string) int64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

// withCtx makes err match ctx's error when ctx is done, so that callers
// know a failure for the consequence of their cancellation: drivers do not
// always say so (a connection attempt cut short reports a dial timeout).
//
// A deadline counts from the moment it passes: a driver that dials with
// the deadline may fail before ctx's timer has fired.
func withCtx(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	cerr := ctx.Err()
	if d, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(d) {
		cerr = context.DeadlineExceeded
	}
	if cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", err, cerr)
	}
	return err
}
