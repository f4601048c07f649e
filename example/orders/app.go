package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"github.com/eventfold/eventfold/es/esotel"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/eventstoredb"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/eventfold/eventfold/example/orders/readmodel"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/replay"
	"github.com/eventfold/eventfold/projection/sqlproj"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"  // also the database/sql driver "pgx"
	sqlitedriver "modernc.org/sqlite" // also the database/sql driver "sqlite"
)

// infra says where the application keeps its data. With no flags,
// everything (events, read models, checkpoints) lives in one SQLite file.
type infra struct {
	data     string // SQLite file
	esdb     string // EventStoreDB connection string: events there
	postgres string // PostgreSQL connection string: events (unless esdb) and read models there
	nats     string // NATS URL: the bus there (serve)
	busESDB  bool   // the bus on EventStoreDB, esdb (serve -bus-esdb)
	command  string // the command that runs, as in "orders serve"
	readOnly bool   // the command only reads: SQLite files open read-only
	// leaseTTL is the time-to-live of the leases and memberships of the
	// read models' partitions and of the relay (serve's -lease-ttl); the
	// libraries' default if 0.
	leaseTTL time.Duration
}

// flags defines the infrastructure flags on fs, with defaults from the
// environment.
func (in *infra) flags(fs *flag.FlagSet) {
	in.command = fs.Name()
	fs.StringVar(&in.data, "data", envOr("ORDERS_DATA", "orders.db"), "the SQLite `file` that keeps events, read models and checkpoints ($ORDERS_DATA)")
	fs.StringVar(&in.esdb, "esdb", os.Getenv("EVENTFOLD_ESDB"), "keep events in EventStoreDB at this `connection string` (esdb://host:2113?tls=false; $EVENTFOLD_ESDB)")
	fs.StringVar(&in.postgres, "postgres", os.Getenv("ORDERS_POSTGRES"), "keep read models (and events, without --esdb) in PostgreSQL at this `URL` ($ORDERS_POSTGRES)")
	fs.StringVar(&in.nats, "nats", os.Getenv("ORDERS_NATS"), "carry commands and events on NATS JetStream at this `URL` ($ORDERS_NATS)")
}

// leaseHolder names this process in the leases of its projections, as
// status and the replay tool show them: "orders serve, pid 1234 on host".
func (in infra) leaseHolder() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown host"
	}
	command := in.command
	if command == "" {
		command = "orders"
	}
	return fmt.Sprintf("%s, pid %d on %s", command, os.Getpid(), host)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// sqliteDSN opens path with what the SQL stores need: a busy timeout, WAL,
// and transactions that take the write lock at once.
func sqliteDSN(path string) string {
	// A path is not a URI: its %, ? and # are escaped, so that
	// "-data 'we?ird.db'" opens the file "we?ird.db", not "we".
	path = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"
}

// describe says where the events and the read models live, for people:
// no credentials.
func (in infra) describe() (events, readModels string) {
	sqlite := "SQLite file " + in.data
	if abs, err := filepath.Abs(in.data); err == nil {
		sqlite = "SQLite file " + abs
	}
	readModels, events = sqlite, sqlite
	if in.postgres != "" {
		readModels = "PostgreSQL"
		if cfg, err := pgxpool.ParseConfig(in.postgres); err == nil {
			c := cfg.ConnConfig
			readModels = fmt.Sprintf("PostgreSQL database %q on %s:%d", c.Database, c.Host, c.Port)
		}
		events = readModels
	}
	if in.esdb != "" {
		events = "EventStoreDB"
		if u, err := url.Parse(in.esdb); err == nil {
			events = "EventStoreDB at " + u.Host
		}
	}
	return events, readModels
}

// requireData fails unless the SQLite file exists, where the data lives in
// one: commands that only read it (status, replay) must not create an empty
// database for a mistyped -data.
func (in infra) requireData() error {
	if in.postgres != "" {
		return nil // the read models (and the events, or EventStoreDB) are elsewhere
	}
	if _, err := os.Stat(in.data); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no data file %s: the demo, seed and serve create it (or set -data, -postgres)", in.data)
		}
		return err
	}
	return nil
}

// readOnlyMode returns the end of the DSNs that open the SQLite file path
// for a command that only reads it: read-only; and, when the file cannot
// be opened read-only either (a WAL file in a directory this user cannot
// write, where SQLite cannot create its shared-memory file), immutable:
// without locks, as a snapshot that a service writing the file at the same
// moment could make fail, which a retry mends.
func readOnlyMode(ctx context.Context, path string) (string, error) {
	const ro = "&mode=ro"
	db, err := sql.Open("sqlite", sqliteDSN(path)+ro)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n)
	var serr *sqlitedriver.Error
	switch {
	case err == nil:
		return ro, nil
	case errors.As(err, &serr) && serr.Code()&0xff == sqliteReadOnly:
		return ro + "&immutable=1", nil
	}
	return "", fmt.Errorf("open %s: %w", path, err)
}

// sqliteReadOnly is SQLITE_READONLY, the primary code of the errors that
// say a database cannot be written.
const sqliteReadOnly = 8

// readSideDSN opens path for the read models, their checkpoints and the
// event handlers' bookkeeping: as sqliteDSN, with synchronous=NORMAL, so
// that their commits do not wait for the disk. In WAL mode that keeps the
// file consistent, and a power cut can only lose the last commits of the
// read side, which are rebuilt from the log: a read model's checkpoint goes
// back with its changes, and an event handler runs again (delivery is
// at-least-once). The events themselves keep synchronous=FULL: the event
// store's commits wait for the disk, and cover the read side's commits
// written before them.
func readSideDSN(path string) string {
	return sqliteDSN(path) + "&_pragma=synchronous(NORMAL)"
}

// poolSize is the size of the one pool of PostgreSQL connections of the
// application unless the URL sets pool_max_conns: the event store (its
// writer, the pages of its reads and subscriptions) and the read side (the
// read models, their checkpoints and leases, the event handlers'
// bookkeeping, the queries of the HTTP API) share it. pgxpool's default
// (the number of CPUs, at least 4) would make the commands, the
// subscriptions of the read models and the relay, and the read side queue
// for four connections. Each use holds a connection only for a query or a
// transaction, so 48 serve a service under load; two replicas, with the
// store's listening connection each (outside the pool), stay below
// PostgreSQL's default limit of 100 connections.
const poolSize = 48

// newPool opens a pool; a variable, so that a test counts the pools.
var newPool = pgxpool.NewWithConfig

// openPool opens the application's one pool on PostgreSQL at url, for the
// event store and the read side. Its sessions commit with
// synchronous_commit off: the read side's commits (the read models, their
// checkpoints, the event handlers' bookkeeping) do not wait for the WAL
// flush. Like synchronous=NORMAL on SQLite (see readSideDSN), a crash can
// then lose the read side's last commits, never corrupt them: a read
// model's checkpoint goes back with its changes and is replayed from the
// log, and an event handler runs again (delivery is at-least-once). The
// event store's commits still wait for the disk: its backend turns
// synchronous_commit back on in each of its write transactions
// (see sqlstore/postgres.New).
func openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = poolSize
	}
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	return newPool(ctx, cfg)
}

// scavengeEvery is how often the SQL event store deletes the events that
// stream metadata hides (the relay's old checkpoints, $maxCount 1).
const scavengeEvery = 10 * time.Minute

// scavengeHorizon is the position below which the event store may delete
// hidden events: the lowest checkpoint of the service's runners (the relay
// and the read models) while a service runs, the start of the log (nothing)
// otherwise. The read models consume only order events, which no metadata
// hides, so a rebuild in another process loses nothing either.
func (a *app) scavengeHorizon(ctx context.Context) (es.Position, error) {
	f := a.horizon.Load()
	if f == nil {
		return es.Start, nil
	}
	return (*f)(ctx)
}

// restart makes the service's runners ride through outages: a runner that
// fails (its subscription, its database) starts again after 100ms, then
// twice as long each time up to 10s, instead of stopping the service. A
// poison event is skipped into the dead letters (WithSkipPoison); what
// needs a person (a corrupt checkpoint, one beyond the head of the log)
// still stops the runner, and the service with it.
var restart = projection.WithRestart(100*time.Millisecond, 10*time.Second)

// maxIdleConns is how many idle connections the SQLite pool of the read
// models keeps. database/sql keeps 2 by default: the requests, runners and
// event handlers of a service under load would then open a connection for
// nearly every query, and close it after. (On PostgreSQL, the read side
// borrows the connections of the application's one pool: see openPool.)
const maxIdleConns = 32

// readModel runs a read model's projection: a *projection.Runner, or a
// *projection.Partitioned for one split into partitions, which the
// replicas of the service share.
type readModel interface {
	replay.Projection
	Run(ctx context.Context) error
	CatchUp(ctx context.Context) error
	WaitFor(ctx context.Context, p es.Position) error
}

// app is the orders application: its event store, aggregates and read side.
type app struct {
	store  es.Store
	types  *es.Registry
	orders *aggregate.Repository[order.Order, order.Event]
	db     *sql.DB // read models and checkpoints
	// pool, on PostgreSQL, is the one pool of the event store and the
	// read side (db is a database/sql view of it).
	pool        *pgxpool.Pool
	checkpoints *sqlproj.Checkpoints
	runners     []readModel
	// horizon, once a service runs on the app, returns the lowest
	// checkpoint of its consumers of the log (see scavengeHorizon).
	horizon atomic.Pointer[func(context.Context) (es.Position, error)]
	queries *readmodel.Queries
	logger  *slog.Logger
	holder  string // names this process in leases; a default if empty
	// leaseTTL is the time-to-live of the leases (infra.leaseTTL); the
	// libraries' default if 0.
	leaseTTL time.Duration
	// esdb is the event store when it is EventStoreDB (store wraps it),
	// for the bus on EventStoreDB (serve -bus-esdb).
	esdb   *eventstoredb.Store
	system string // the event store's kind, for telemetry: "sqlite", "postgresql", "eventstoredb"
	// sqliteMode ends the SQLite DSNs of a command that only reads:
	// read-only, and immutable if even that fails (see readOnlyMode).
	sqliteMode string
	closers    []func() error
}

// openApp connects to the infrastructure in and builds the application.
func openApp(ctx context.Context, in infra, logger *slog.Logger) (_ *app, err error) {
	a := &app{logger: logger, holder: in.leaseHolder(), leaseTTL: in.leaseTTL}
	defer func() {
		if err != nil {
			_ = a.Close()
		}
	}()
	if a.types, err = order.Types(); err != nil {
		return nil, err
	}
	if in.readOnly && in.postgres == "" { // SQLite keeps the read models, and maybe the events
		if a.sqliteMode, err = readOnlyMode(ctx, in.data); err != nil {
			return nil, err
		}
	}

	// The event store.
	switch {
	case in.esdb != "":
		s, err := eventstoredb.Open(in.esdb, eventstoredb.WithLogger(logger))
		if err != nil {
			return nil, err
		}
		a.store, a.esdb, a.closers, a.system = s, s, append(a.closers, s.Close), "eventstoredb"
	case in.postgres != "":
		if err := a.openPool(ctx, in.postgres); err != nil {
			return nil, err
		}
		s, err := postgres.New(ctx, a.pool, sqlstore.WithLogger(logger), sqlstore.WithScavenge(scavengeEvery, a.scavengeHorizon))
		if err != nil {
			return nil, err
		}
		a.store, a.closers, a.system = s, append(a.closers, s.Close), "postgresql"
	default:
		s, err := sqlite.Open(ctx, sqliteDSN(in.data)+a.sqliteMode, sqlstore.WithLogger(logger), sqlstore.WithScavenge(scavengeEvery, a.scavengeHorizon))
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", in.data, err)
		}
		a.store, a.closers, a.system = s, append(a.closers, s.Close), "sqlite"
	}

	// The read models and their checkpoints.
	dialect := sqlproj.SQLite
	switch {
	case in.postgres != "":
		dialect = sqlproj.Postgres
		if err := a.openPool(ctx, in.postgres); err != nil { // the event store's, unless it is EventStoreDB
			return nil, err
		}
		// The same pool, through database/sql: it holds no idle
		// connections of its own (the pool keeps them).
		a.db = stdlib.OpenDBFromPool(a.pool)
	default:
		if a.db, err = sql.Open("sqlite", readSideDSN(in.data)+a.sqliteMode); err != nil {
			return nil, err
		}
		a.db.SetMaxIdleConns(maxIdleConns)
		a.db.SetMaxOpenConns(1)
	}
	a.closers = append(a.closers, a.db.Close)
	return a, a.build(ctx, dialect)
}

// openPool opens a.pool on PostgreSQL at url, unless it is open, and
// closes it last (see openPool). A Store passed a pool leaves it open on
// Close: the pool's close is bounded as the Store's own would be, since
// after an outage pgx may wait up to 15 s for the server to answer the
// cancel requests of timed-out calls.
func (a *app) openPool(ctx context.Context, url string) error {
	if a.pool != nil {
		return nil
	}
	pool, err := openPool(ctx, url)
	if err != nil {
		return err
	}
	a.pool, a.closers = pool, append(a.closers, func() error {
		postgres.ClosePool(pool)
		return nil
	})
	return nil
}

// build makes the aggregates and the read side on a.store and a.db.
func (a *app) build(ctx context.Context, dialect sqlproj.Dialect) (err error) {
	logger := a.logger
	if a.types == nil {
		if a.types, err = order.Types(); err != nil {
			return err
		}
	}
	// Spans and append metrics for every store (es/esotel): no-ops unless
	// the process installed OpenTelemetry (serve does).
	if _, ok := a.store.(*esotel.Store); !ok {
		if a.store, err = esotel.New(a.store, esotel.WithSystem(a.storeSystem())); err != nil {
			return err
		}
	}
	if a.orders, err = aggregate.New(a.store, a.types, order.Definition(), aggregate.WithLogger(logger)); err != nil {
		return err
	}
	opts := []sqlproj.Option{sqlproj.WithLogger(logger)}
	if a.holder != "" {
		opts = append(opts, sqlproj.WithLeaseHolder(a.holder))
	}
	if a.leaseTTL > 0 {
		opts = append(opts, sqlproj.WithLeaseTTL(a.leaseTTL))
	}
	if a.checkpoints, err = sqlproj.New(ctx, a.db, dialect, opts...); err != nil {
		return err
	}
	for _, p := range []projection.Projection[*sql.Tx]{readmodel.Summaries(), readmodel.Details()} {
		opts := []projection.Option{projection.WithLogger(logger), projection.WithSkipPoison(a.checkpoints), restart}
		var r readModel
		if p.Partitions > 1 {
			r, err = projection.NewPartitioned(a.store, a.checkpoints, a.types, p, opts...)
		} else {
			r, err = projection.NewRunner(a.store, a.checkpoints, a.types, p, opts...)
		}
		if err != nil {
			return err
		}
		a.runners = append(a.runners, r)
	}
	a.queries = readmodel.NewQueries(a.db)
	return nil
}

// Close releases the connections, newest first.
func (a *app) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

// storeSystem names the kind of the event store for telemetry
// (db.system.name).
func (a *app) storeSystem() string {
	if a.system == "" {
		return "memory"
	}
	return a.system
}
