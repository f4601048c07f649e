package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore/internal/backend"
)

// Errors of this package, matched with [errors.Is]. Errors about events and
// streams match the sentinels of package es instead.
var (
	// ErrInvalidOption means an [Option] was given a value it does not
	// accept, or an option that the database does not support.
	ErrInvalidOption = errors.New("sqlstore: invalid option")
	// ErrSchemaVersion means the database's schema was written by a newer
	// version of this package than the running one. The store refuses to
	// open it rather than write rows that the newer code would misread.
	ErrSchemaVersion = errors.New("sqlstore: unsupported schema version")
	// ErrClosed means the [Store] was closed.
	ErrClosed = errors.New("sqlstore: store closed")
)

// Defaults of the options.
const (
	// DefaultTablePrefix starts the names of the store's tables.
	DefaultTablePrefix = "eventfold_"
	// DefaultSQLitePollInterval is how often a SQLite store looks for
	// events appended by other processes.
	DefaultSQLitePollInterval = 250 * time.Millisecond
	// DefaultPostgresPollInterval is how often a PostgreSQL store looks for
	// new events when no notification came.
	DefaultPostgresPollInterval = 2 * time.Second
	// DefaultCallTimeout bounds each call into the database when the
	// caller's context has no earlier deadline (see [WithCallTimeout]).
	DefaultCallTimeout = 5 * time.Second
)

// Option configures a [Store]. Each option checks its value, and the
// constructor reports every invalid option together, each wrapping
// [ErrInvalidOption].
type Option func(*config) error

type config struct {
	prefix        string
	schema        string
	schemaSet     bool
	maxAppendSize int
	now           func() time.Time
	poll          time.Duration
	callTimeout   time.Duration
	logger        *slog.Logger
	// WithScavenge
	scavengeSet     bool
	scavengeEvery   time.Duration
	scavengeHorizon func(ctx context.Context) (es.Position, error)
	// scavengeRows, scavengeStreams and scavengePage override the
	// constants of the same names when positive (tests).
	scavengeRows, scavengeStreams, scavengePage int
}

// WithTablePrefix sets the prefix of the names of the store's tables
// ([DefaultTablePrefix] by default): the tables are <prefix>events,
// <prefix>streams and <prefix>schema. Stores with different prefixes in the
// same database are independent. The prefix is empty or an SQL identifier of
// ASCII letters, digits and underscores, at most 40 bytes long, that does not
// start with a digit.
func WithTablePrefix(prefix string) Option {
	return func(c *config) error {
		if prefix != "" && (!identifier.MatchString(prefix) || len(prefix) > 40) {
			return invalid("table prefix %q: want at most 40 ASCII letters, digits and underscores, not starting with a digit", prefix)
		}
		c.prefix = prefix
		return nil
	}
}

// WithSchema puts the store's tables in a PostgreSQL schema, created if it
// does not exist; by default they are created in the first schema of the
// connection's search_path. The name follows the rules of [WithTablePrefix]
// but may not be empty, and is at most 63 bytes long. SQLite has no schemas:
// sqlstore/sqlite.Open rejects this option.
func WithSchema(schema string) Option {
	return func(c *config) error {
		if !identifier.MatchString(schema) || len(schema) > 63 {
			return invalid("schema %q: want 1 to 63 ASCII letters, digits and underscores, not starting with a digit", schema)
		}
		c.schema, c.schemaSet = schema, true
		return nil
	}
}

// WithMaxAppendSize sets the maximum total size in bytes of the data and
// metadata of the events of one append; [es.MaxAppendSize] (1 MiB) by
// default. It must be positive.
func WithMaxAppendSize(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return invalid("maximum append size %d: must be positive", n)
		}
		c.maxAppendSize = n
		return nil
	}
}

// WithClock sets the clock that stamps events' Created time and enforces
// `$maxAge` on reads; time.Now by default.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return invalid("WithClock(nil)")
		}
		c.now = now
		return nil
	}
}

// WithPollInterval sets how often the store looks for events that it did not
// append itself and was not told about: on SQLite, appends by other
// processes ([DefaultSQLitePollInterval]); on PostgreSQL, a lost notification
// or a broken listening connection ([DefaultPostgresPollInterval]). Appends
// through the same Store wake its subscriptions at once whatever the
// interval. It must be positive.
func WithPollInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("poll interval %v: must be positive", d)
		}
		c.poll = d
		return nil
	}
}

// WithCallTimeout bounds each call into the database by d when the
// caller's context has no earlier deadline; [DefaultCallTimeout] by
// default. It bounds each write as its caller waits for it (in line
// behind other writes, then its transaction, from BEGIN to COMMIT), each
// query of a read or a subscription (a read or a subscription that lasts
// longer is not bounded as a whole: each page is), each transaction of a
// scavenge, and each step of opening the store. A call that the timeout
// ends returns an error wrapping [es.ErrUnavailable], like a call that
// cannot reach the database; a call that the caller's context ends returns
// the context's error. A write that ended so may still have been
// committed: its error says so, and retrying it with the same event IDs is
// safe. d must be positive.
func WithCallTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("call timeout %v: must be positive", d)
		}
		c.callTimeout = d
		return nil
	}
}

// WithLogger sets the logger of the store's background work (the listening
// connection, polls), whose errors cannot be returned to a caller;
// slog.Default() by default.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return invalid("WithLogger(nil)")
		}
		c.logger = l
		return nil
	}
}

// WithScavenge runs [Store.Scavenge] in the background, every period
// every (the first time one period after the store opens), below the
// position that horizon returns: the lowest checkpoint of the consumers of
// `$all` that must still receive the events after it (see "Retention" in
// the package documentation). The goroutine belongs to the Store and stops
// on Close; horizon is called with a context that Close cancels. An error
// of horizon or of the scavenge is logged as a warning (see [WithLogger])
// and the scavenge is tried again one period later; each pass is logged at
// debug level with the number of events deleted. By default the store never
// scavenges. every must be positive and horizon not nil.
func WithScavenge(every time.Duration, horizon func(ctx context.Context) (es.Position, error)) Option {
	return func(c *config) error {
		var errs []error
		if every <= 0 {
			errs = append(errs, invalid("WithScavenge every %v: must be positive", every))
		}
		if horizon == nil {
			errs = append(errs, invalid("WithScavenge with a nil horizon"))
		}
		c.scavengeSet, c.scavengeEvery, c.scavengeHorizon = true, every, horizon
		return errors.Join(errs...)
	}
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// invalid returns an error wrapping ErrInvalidOption.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...)
}

// newConfig applies opts over the defaults for a database of the given
// kind ("sqlite" or "postgres"), and reports every invalid option.
func newConfig(kind string, opts []Option) (config, error) {
	c := config{prefix: DefaultTablePrefix, poll: DefaultSQLitePollInterval}
	if kind == string(backend.Postgres) {
		c.poll = DefaultPostgresPollInterval
	}
	c.now, c.logger, c.maxAppendSize, c.callTimeout = time.Now, slog.Default(), es.MaxAppendSize, DefaultCallTimeout
	var errs []error
	for _, opt := range opts {
		if opt != nil {
			errs = append(errs, opt(&c))
		}
	}
	if c.schemaSet && kind != string(backend.Postgres) {
		errs = append(errs, invalid("WithSchema(%q): SQLite has no schemas (use WithTablePrefix)", c.schema))
	}
	return c, errors.Join(errs...)
}
