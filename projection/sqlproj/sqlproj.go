package sqlproj

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
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

// schemaVersion is the version of the tables this code writes: 2 added
// the leases, 3 the checkpoints' partitions.
const schemaVersion = 3

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
	// DefaultLeasePoll is how often a [Checkpoints.Lease] that waits tries
	// to take the lease again.
	DefaultLeasePoll = time.Second
	// DefaultLeaseTTL is the time-to-live of a lease ([WithLeaseTTL]).
	DefaultLeaseTTL = 15 * time.Second
	// DefaultCallTimeout bounds a call into the database that is not a
	// batch ([WithCallTimeout]).
	DefaultCallTimeout = 5 * time.Second
)

// minLeaseTTL is the shortest time-to-live WithLeaseTTL takes.
const minLeaseTTL = 100 * time.Millisecond

// Option configures [Checkpoints] and [PgxCheckpoints]. Each option checks
// its value, and [New] and [NewPgx] report every invalid option together,
// each wrapping [ErrInvalidOption].
type Option func(*config) error

type config struct {
	prefix      string
	logger      *slog.Logger
	leasePoll   time.Duration
	leaseTTL    time.Duration
	leaseHolder string
	callTimeout time.Duration
}

// WithTablePrefix sets the prefix of the names of the tables
// ([DefaultTablePrefix] by default): <prefix>checkpoints,
// <prefix>projection_versions, <prefix>dead_letters and
// <prefix>projection_schema. Checkpoints with different prefixes in one
// database are independent. The prefix is empty or an SQL identifier of
// ASCII letters, digits and underscores, at most 40 bytes long, that does
// not start with a digit.
func WithTablePrefix(prefix string) Option {
	return func(c *config) error {
		if !validPrefix.MatchString(prefix) {
			return invalid("table prefix %q: want an SQL identifier of letters, digits and '_', up to 40 bytes", prefix)
		}
		c.prefix = prefix
		return nil
	}
}

// WithLogger sets the logger of leases and configuration warnings;
// slog.Default() by default. It must not be nil.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return invalid("nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithLeasePoll sets how often a waiting lease tries to take the lease
// again ([DefaultLeasePoll] by default): the longest a standby replica
// takes to notice that a lease was given back. It must be positive.
func WithLeasePoll(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("lease poll interval %v", d)
		}
		c.leasePoll = d
		return nil
	}
}

// WithLeaseTTL sets the time-to-live of leases ([DefaultLeaseTTL] by
// default). A holder renews its lease every third of it; a holder that
// could not renew it within the time-to-live (its database was away) counts
// it lost and stops committing, and a standby may take the lease over once
// the time-to-live has passed since the holder's last renewal. Shorter
// means faster takeovers after a holder died without giving its lease
// back, and more renewals. It must be at least 100ms.
func WithLeaseTTL(ttl time.Duration) Option {
	return func(c *config) error {
		if ttl < minLeaseTTL {
			return invalid("lease time-to-live %v: want at least %v", ttl, minLeaseTTL)
		}
		c.leaseTTL = ttl
		return nil
	}
}

// WithCallTimeout bounds each call into the database that is not a batch
// ([DefaultCallTimeout] by default): a checkpoint's or the active
// version's read, a lease holder's look-up, recording a version or a dead
// letter, listing the dead letters. A database that stalls then fails the
// call instead of hanging it. The batches of a leased projection are
// bounded by their lease ([WithLeaseTTL]); the takes and renewals of
// leases by the time-to-live. It must be positive.
func WithCallTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("call timeout %v", d)
		}
		c.callTimeout = d
		return nil
	}
}

// WithLeaseHolder sets the name this process's leases are held under, as
// status reports show it ([projection.Status].Holder): the host name and
// process ID by default ("host:1234"). Any non-empty text up to 200 bytes;
// fencing does not depend on it.
func WithLeaseHolder(name string) Option {
	return func(c *config) error {
		if name == "" || len(name) > 200 {
			return invalid("lease holder %q: want 1 to 200 bytes", name)
		}
		c.leaseHolder = name
		return nil
	}
}

var validPrefix = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]{0,39})?$`)

// invalid returns an error wrapping ErrInvalidOption.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...)
}

func newConfig(d Dialect, opts []Option) (config, error) {
	cfg := config{prefix: DefaultTablePrefix, logger: slog.Default(), leasePoll: DefaultLeasePoll, leaseTTL: DefaultLeaseTTL,
		leaseHolder: defaultHolder(), callTimeout: DefaultCallTimeout}
	var errs []error
	if d != SQLite && d != Postgres {
		errs = append(errs, invalid("dialect %v", d))
	}
	for _, opt := range opts {
		if opt != nil {
			errs = append(errs, opt(&cfg))
		}
	}
	return cfg, errors.Join(errs...)
}

// Checkpoints keeps the checkpoints of projections in a SQL database and
// runs their batches in its transactions, so that a read model in the same
// database changes in the transaction that records how far it got. It also
// grants leases ([projection.Leaser]), records the active version of
// blue/green read models ([projection.Versions]) and keeps dead letters
// ([projection.DeadLetters]). It is safe for concurrent use.
//
// [PgxCheckpoints] is the same store on PostgreSQL through a pgx pool, for
// handlers that want a native [pgx.Tx] (COPY, batches).
type Checkpoints struct {
	s *store[*sql.Tx]
}

var (
	_ projection.Checkpoints[*sql.Tx] = (*Checkpoints)(nil)
	_ projection.Leaser               = (*Checkpoints)(nil)
	_ projection.LeaseHolders         = (*Checkpoints)(nil)
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
	s, err := newStore[*sql.Tx](ctx, sqlDB{db}, dialect, cfg)
	if err != nil {
		return nil, err
	}
	if dialect == SQLite {
		var busy int64
		if err := db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
			return nil, fmt.Errorf("sqlproj: busy timeout: %w", err)
		}
		if busy == 0 {
			cfg.logger.WarnContext(ctx, "sqlproj: the SQLite connection has no busy timeout: writes fail at once with SQLITE_BUSY when another connection writes; add _pragma=busy_timeout(5000) to the DSN")
		}
	}
	return &Checkpoints{s: s}, nil
}
