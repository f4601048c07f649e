package sqlproj

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/eventfold/eventfold/projection"
)

// Errors of this package, matched with [errors.Is].
var (
	// ErrInvalidOption means an [Option] or a [Dialect] was given a value
	// it does not accept.
	ErrInvalidOption = errors.New("sqlproj: invalid option")
	// ErrSchemaVersion means the tables were written by a newer version of
	// this package than the running one: [New] refuses them rather than
	// write rows that the newer code would misread.
	ErrSchemaVersion = errors.New("sqlproj: unsupported schema version")
	// ErrPositionRange means a position or revision does not fit in a SQL
	// BIGINT (it is above 2^63-1). EventStoreDB's positions always fit.
	ErrPositionRange = errors.New("sqlproj: position beyond the range of a SQL BIGINT")
	// ErrConflict means a checkpoint changed in the database since this
	// [Checkpoints] last read or wrote it: another runner of the same
	// projection (in another process, or one whose lease was lost)
	// applied events, or a commit reported as failed had succeeded.
	// Nothing was written. Recovery: start the runner again, which loads
	// the checkpoint again.
	ErrConflict = fmt.Errorf("sqlproj: checkpoint changed by another runner: %w", projection.ErrFenced)
)

// schemaVersion is the version of the tables this code writes.
const schemaVersion = 1

// Dialect is the SQL database the checkpoints live in.
type Dialect uint8

// Dialects.
const (
	// SQLite is SQLite through modernc.org/sqlite (driver name "sqlite").
	SQLite Dialect = iota + 1
	// Postgres is PostgreSQL through github.com/jackc/pgx/v5/stdlib
	// (driver name "pgx").
	Postgres
)

// String returns "sqlite" or "postgres".
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Dialect(%d)", uint8(d))
}

// Placeholder returns the placeholder of the n-th parameter (from 1) of a
// statement: "$n" on PostgreSQL, "?" on SQLite. SQLite accepts "$n" too,
// but modernc.org/sqlite binds it by name, which costs time quadratic in
// the number of parameters: multi-row statements of a SQLite read model
// should use "?".
func (d Dialect) Placeholder(n int) string {
	if d == SQLite {
		return "?"
	}
	return "$" + strconv.Itoa(n)
}

// Defaults of the options.
const (
	// DefaultTablePrefix starts the names of the package's tables.
	DefaultTablePrefix = "eventfold_"
	// DefaultLeasePoll is how often a PostgreSQL [Checkpoints.Lease] that
	// waits tries the lock again.
	DefaultLeasePoll = time.Second
)

// Option configures [Checkpoints]. Options are validated by [New]: an
// invalid one makes it fail with an error wrapping [ErrInvalidOption].
type Option func(*config)

type config struct {
	prefix    string
	logger    *slog.Logger
	loggerSet bool
	leasePoll time.Duration
}

// WithTablePrefix sets the prefix of the names of the tables
// ([DefaultTablePrefix] by default): <prefix>checkpoints,
// <prefix>projection_versions, <prefix>dead_letters and
// <prefix>projection_schema. Checkpoints with different prefixes in one
// database are independent. The prefix is empty or an SQL identifier of
// ASCII letters, digits and underscores, at most 40 bytes long, that does
// not start with a digit.
func WithTablePrefix(prefix string) Option {
	return func(c *config) { c.prefix = prefix }
}

// WithLogger sets the logger of leases and configuration warnings;
// slog.Default() by default. It must not be nil.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger, c.loggerSet = l, true }
}

// WithLeasePoll sets how often a waiting PostgreSQL lease tries to take
// its lock again ([DefaultLeasePoll] by default): the longest a standby
// replica takes to notice that the lease is free. It must be positive.
func WithLeasePoll(d time.Duration) Option {
	return func(c *config) { c.leasePoll = d }
}

var validPrefix = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]{0,39})?$`)

func newConfig(d Dialect, opts []Option) (config, error) {
	cfg := config{prefix: DefaultTablePrefix, leasePoll: DefaultLeasePoll}
	for _, opt := range opts {
		opt(&cfg)
	}
	var errs []error
	if d != SQLite && d != Postgres {
		errs = append(errs, fmt.Errorf("%w: dialect %v", ErrInvalidOption, d))
	}
	if !validPrefix.MatchString(cfg.prefix) {
		errs = append(errs, fmt.Errorf("%w: table prefix %q: want an SQL identifier of letters, digits and '_', up to 40 bytes", ErrInvalidOption, cfg.prefix))
	}
	if cfg.leasePoll <= 0 {
		errs = append(errs, fmt.Errorf("%w: lease poll interval %v", ErrInvalidOption, cfg.leasePoll))
	}
	switch {
	case cfg.loggerSet && cfg.logger == nil:
		errs = append(errs, fmt.Errorf("%w: nil logger", ErrInvalidOption))
	case cfg.logger == nil:
		cfg.logger = slog.Default()
	}
	return cfg, errors.Join(errs...)
}

// Checkpoints keeps the checkpoints of projections in a SQL database and
// runs their batches in its transactions, so that a read model in the same
// database changes in the transaction that records how far it got. It also
// grants leases ([projection.Leaser]), records the active version of
// blue/green read models ([projection.Versions]) and keeps dead letters
// ([projection.DeadLetters]). It is safe for concurrent use.
type Checkpoints struct {
	db      *sql.DB
	dialect Dialect
	cfg     config
	q       queries
	lockNS  string // what PostgreSQL lease locks are scoped by

	// writes holds one token: on SQLite, the writes of this value queue
	// here instead of in SQLite's busy handler.
	writes chan struct{}
	local  projection.MemoryCheckpoints // in-process leases, on SQLite

	mu   sync.Mutex
	seen map[string]seen // the checkpoints this value last read or wrote
}

// seen is the stored checkpoint of a key as this Checkpoints last knew it:
// its next Commit of the key applies only if the row still holds it.
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

var (
	_ projection.Checkpoints[*sql.Tx] = (*Checkpoints)(nil)
	_ projection.Leaser               = (*Checkpoints)(nil)
	_ projection.Versions[*sql.Tx]    = (*Checkpoints)(nil)
	_ projection.DeadLetters          = (*Checkpoints)(nil)
)

// New returns checkpoints kept in db, a database of the given dialect. It
// creates the tables if they do not exist (idempotently, also when several
// processes start at once) and fails with [ErrSchemaVersion] if they were
// written by a newer version of this package. db stays the caller's: New
// does not close it.
func New(ctx context.Context, db *sql.DB, dialect Dialect, opts ...Option) (*Checkpoints, error) {
	cfg, err := newConfig(dialect, opts)
	if err != nil {
		return nil, err
	}
	if db == nil {
		return nil, fmt.Errorf("%w: nil *sql.DB", ErrInvalidOption)
	}
	c := &Checkpoints{db: db, dialect: dialect, cfg: cfg, q: newQueries(dialect, cfg.prefix),
		writes: make(chan struct{}, 1), seen: make(map[string]seen)}
	if err := c.migrate(ctx); err != nil {
		return nil, err
	}
	switch dialect {
	case Postgres:
		var schema sql.NullString
		if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			return nil, fmt.Errorf("sqlproj: current schema: %w", err)
		}
		c.lockNS = schema.String + "." + cfg.prefix
	case SQLite:
		var busy int64
		if err := db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
			return nil, fmt.Errorf("sqlproj: busy timeout: %w", err)
		}
		if busy == 0 {
			cfg.logger.WarnContext(ctx, "sqlproj: the SQLite connection has no busy timeout: writes fail at once with SQLITE_BUSY when another connection writes; add _pragma=busy_timeout(5000) to the DSN")
		}
	}
	return c, nil
}

// migrate creates the tables, in one transaction.
func (c *Checkpoints) migrate(ctx context.Context) error {
	exec := func(tx *sql.Tx, query string, args ...any) error {
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("sqlproj: create tables: %w", err)
		}
		return nil
	}
	return c.write(ctx, func(tx *sql.Tx) error {
		if c.dialect == Postgres {
			// Serialize concurrent migrations: CREATE TABLE IF NOT EXISTS
			// races with itself in PostgreSQL.
			if err := exec(tx, "SELECT pg_advisory_xact_lock($1)", lockID("sqlproj-migrate", c.cfg.prefix)); err != nil {
				return err
			}
		}
		if err := exec(tx, c.q.createSchema); err != nil {
			return err
		}
		var version int64
		err := tx.QueryRowContext(ctx, "SELECT version FROM "+c.q.schema+" WHERE id = 1").Scan(&version)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("sqlproj: schema version: %w", err)
		case version > schemaVersion:
			return fmt.Errorf("%w: the tables %s* are at version %d, this code knows up to %d: upgrade it", ErrSchemaVersion, c.cfg.prefix, version, schemaVersion)
		case version == schemaVersion:
			return nil
		}
		for _, ddl := range c.q.ddl {
			if err := exec(tx, ddl); err != nil {
				return err
			}
		}
		return exec(tx, "INSERT INTO "+c.q.schema+" (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = excluded.version", schemaVersion)
	})
}

// write runs f in a transaction, committed if f returns nil and rolled
// back otherwise; f's error is returned as is. On SQLite, writes of c run
// one at a time. ctx bounds the wait for a connection and f's statements;
// once f has returned nil, the COMMIT runs to its end.
func (c *Checkpoints) write(ctx context.Context, f func(tx *sql.Tx) error) error {
	if c.dialect == SQLite {
		select {
		case c.writes <- struct{}{}:
			defer func() { <-c.writes }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlproj: begin: %w", withCtx(ctx, err))
	}
	defer conn.Close()
	// ctx cancels the transaction's statements, not its COMMIT: a COMMIT
	// cut off on the client may still commit on the server after the
	// caller has moved on (and, say, loaded the old checkpoint again).
	tx, err := conn.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return fmt.Errorf("sqlproj: begin: %w", withCtx(ctx, err))
	}
	if err := f(tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			err = errors.Join(err, fmt.Errorf("sqlproj: rollback: %w", rerr))
		}
		return withCtx(ctx, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlproj: commit: %w", err)
	}
	return nil
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
