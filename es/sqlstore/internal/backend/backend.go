// Package backend is the contract between package sqlstore, which holds
// the semantics of the event store, and its database backends (packages
// sqlstore/sqlite and sqlstore/postgres), which hold the dialects and the
// connections. It is internal so that the contract is not public API of
// sqlstore: a user opens a Store through a backend package and never sees
// these types.
//
// A backend package opens a Store with [Open], which package sqlstore sets
// when it is initialised (before any package that imports it, so before
// any backend's constructor can run).
package backend

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
)

// Kind names a database, for the options that depend on it.
type Kind string

// Kinds of databases.
const (
	SQLite   Kind = "sqlite"
	Postgres Kind = "postgres"
)

// Open opens a *sqlstore.Store on the backend that open returns: it
// validates opts (a []sqlstore.Option) for a database of the given kind,
// calls open with the resulting configuration, pings the database through
// the backend (an error is reported as "sqlstore: <what>: …"), checks or
// creates the schema and starts the store's background work. On error it
// closes the backend. The result is a *sqlstore.Store.
//
// Package sqlstore sets Open in its init function; it is a variable here,
// rather than an exported function of sqlstore, so that sqlstore's API has
// no constructor taking a backend.
var Open func(ctx context.Context, kind Kind, what string, open func(Config) (DB, error), opts any) (any, error)

// Config is what a backend needs of the store's configuration.
type Config struct {
	Names Names
	// Poll is how often the backend looks for events that others
	// appended, when it is not told (see Head).
	Poll time.Duration
	// CallTimeout bounds a call of the backend's own (a connection of its
	// watch) when nothing else does.
	CallTimeout time.Duration
	// Logger logs the errors of the backend's background work.
	Logger *slog.Logger
}

// Names are the quoted, qualified names of a store's tables.
type Names struct {
	Events  string
	Streams string
	Index   string // the index on (stream, id), unqualified
	Raw     string // the unquoted qualified name of the events table
}

// DB is what a Store needs from a database: its dialect and connections.
type DB interface {
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Reader returns the queryer of reads, outside any transaction.
	Reader() Queryer
	// Write runs f in a transaction that no other writer of the store's
	// tables runs at the same time, in this process or another, and
	// commits it when f returns nil. Every statement of f sees everything
	// that the writers before it committed. A commit whose outcome is
	// unknown returns an error wrapped in an [UnknownOutcomeError].
	Write(ctx context.Context, f func(tx Querier) error) error
	// InsertEvents returns the statements that insert events.
	InsertEvents(rows []EventRow) []Stmt
	// Prefetch returns the query that reads, for arrays of stream names
	// ($1) and event IDs ($2), rows of the head of the log, the name, the
	// ID, and what loadForWrite reads of the stream; "" where one query per
	// write costs no round trip.
	Prefetch() string
	// Notify returns the statements that tell other processes, when the
	// transaction commits, that the head of the log is now head.
	Notify(head uint64) []Stmt
	// TableExists reports whether the table exists, without writing.
	TableExists(ctx context.Context, table string) (bool, error)
	// DDL returns the statements that create the schema of version 1.
	DDL() []string
	// Watch looks for events appended by others until ctx is done, and
	// tells h of the head of the log it learns of.
	Watch(ctx context.Context, h Head)
	// Unavailable reports whether err, an error of this database that
	// [IsUnavailable] does not recognise, is a failure to reach it.
	Unavailable(err error) bool
	// Close releases the connections the backend owns.
	Close() error
}

// Preparer is a DB that prepares the statements of writes once the schema
// exists, before the first write.
type Preparer interface {
	Prepare(ctx context.Context, queries []string) error
}

// Head is the store's view of the head of the log, as a watch sees it.
type Head interface {
	// Advance records that the head of the log is at least h.
	Advance(h uint64)
	// Poll reads the head of the log and advances to it.
	Poll(ctx context.Context)
}

// Queryer runs queries: a pool of connections or a transaction. Statements
// use $1, $2, … for their arguments on both databases.
type Queryer interface {
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
}

// Querier runs the statements of a write transaction.
type Querier interface {
	Queryer
	Exec(ctx context.Context, sql string, args ...any) error
	// ExecAll runs statements in order, in one round trip where the
	// database allows.
	ExecAll(ctx context.Context, stmts []Stmt) error
}

// Stmt is a statement and its arguments.
type Stmt struct {
	SQL  string
	Args []any
}

// Rows is the result of a query.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// EventRow is an event as inserted; positions and revisions are below
// math.MaxInt64.
type EventRow struct {
	Position    int64
	Stream      string
	Revision    int64
	ID          uuid.UUID
	Type        string
	ContentType string
	Data        []byte
	Metadata    []byte
	Created     int64 // Unix time in nanoseconds
}

// EventColumns are the columns of the events table in the order of
// EventRow.
const EventColumns = "position, stream, revision, id, type, content_type, data, metadata, created"

// UnknownOutcomeError is the error of a write whose outcome is unknown: a
// COMMIT sent and not answered, or a write that the writer had taken when
// its caller stopped waiting for it. It may have been committed.
type UnknownOutcomeError struct{ Err error }

func (e *UnknownOutcomeError) Error() string {
	return "the outcome of the write is unknown, it may have been committed (retrying with the same event IDs is safe): " + e.Err.Error()
}

func (e *UnknownOutcomeError) Unwrap() error { return e.Err }

// IsUnavailable reports whether err is a failure to reach a database that
// any database/sql or network client reports alike, after which retrying
// may succeed: es.ErrUnavailable, a connection refused, reset or lost, a
// network error. The backends add their own errors (see DB.Unavailable).
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var netErr net.Error
	return errors.Is(err, es.ErrUnavailable) || errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Unavailable returns err wrapping es.ErrUnavailable if it is a failure to
// reach the database (IsUnavailable, or other), and err otherwise.
func Unavailable(err error, other func(error) bool) error {
	if errors.Is(err, es.ErrUnavailable) || !(IsUnavailable(err) || other != nil && other(err)) {
		return err
	}
	return fmt.Errorf("%w: %w", es.ErrUnavailable, err)
}
