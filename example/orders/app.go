package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/eventstoredb"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/eventfold/eventfold/example/orders/readmodel"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// infra says where the application keeps its data. With no flags,
// everything (events, read models, checkpoints) lives in one SQLite file.
type infra struct {
	data     string // SQLite file
	esdb     string // EventStoreDB connection string: events there
	postgres string // PostgreSQL connection string: events (unless esdb) and read models there
	nats     string // NATS URL: the bus there (serve)
}

// flags defines the infrastructure flags on fs, with defaults from the
// environment.
func (in *infra) flags(fs *flag.FlagSet) {
	fs.StringVar(&in.data, "data", envOr("ORDERS_DATA", "orders.db"), "the SQLite `file` that keeps events, read models and checkpoints ($ORDERS_DATA)")
	fs.StringVar(&in.esdb, "esdb", os.Getenv("EVENTFOLD_ESDB"), "keep events in EventStoreDB at this `connection string` (esdb://host:2113?tls=false; $EVENTFOLD_ESDB)")
	fs.StringVar(&in.postgres, "postgres", os.Getenv("ORDERS_POSTGRES"), "keep read models (and events, without --esdb) in PostgreSQL at this `URL` ($ORDERS_POSTGRES)")
	fs.StringVar(&in.nats, "nats", os.Getenv("ORDERS_NATS"), "carry commands and events on NATS JetStream at this `URL` ($ORDERS_NATS)")
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
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"
}

// maxIdleConns is how many idle connections the pool of the read models
// keeps. database/sql keeps 2 by default: the requests, runners and event
// handlers of a service under load would then open a connection for nearly
// every query, and close it after (on PostgreSQL, a new server process each
// time).
const maxIdleConns = 32

// app is the orders application: its event store, aggregates and read side.
type app struct {
	store       es.Store
	types       *es.Registry
	orders      *aggregate.Repository[order.Order, order.Event]
	db          *sql.DB // read models and checkpoints
	checkpoints *sqlproj.Checkpoints
	runners     []*projection.Runner[*sql.Tx]
	queries     *readmodel.Queries
	logger      *slog.Logger
	closers     []func() error
}

// openApp connects to the infrastructure in and builds the application.
func openApp(ctx context.Context, in infra, logger *slog.Logger) (_ *app, err error) {
	a := &app{logger: logger}
	defer func() {
		if err != nil {
			_ = a.Close()
		}
	}()
	if a.types, err = order.Types(); err != nil {
		return nil, err
	}

	// The event store.
	switch {
	case in.esdb != "":
		s, err := eventstoredb.New(in.esdb, eventstoredb.WithLogger(logger))
		if err != nil {
			return nil, err
		}
		a.store, a.closers = s, append(a.closers, s.Close)
	case in.postgres != "":
		s, err := sqlstore.OpenPostgres(ctx, in.postgres, sqlstore.WithLogger(logger))
		if err != nil {
			return nil, err
		}
		a.store, a.closers = s, append(a.closers, s.Close)
	default:
		s, err := sqlstore.OpenSQLite(ctx, sqliteDSN(in.data), sqlstore.WithLogger(logger))
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", in.data, err)
		}
		a.store, a.closers = s, append(a.closers, s.Close)
	}

	// The read models and their checkpoints.
	dialect := sqlproj.SQLite
	if in.postgres != "" {
		dialect = sqlproj.Postgres
		a.db, err = sql.Open("pgx", in.postgres)
	} else {
		a.db, err = sql.Open("sqlite", sqliteDSN(in.data))
	}
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.db.Close)
	a.db.SetMaxIdleConns(maxIdleConns)
	return a, a.build(ctx, dialect)
}

// build makes the aggregates and the read side on a.store and a.db.
func (a *app) build(ctx context.Context, dialect sqlproj.Dialect) (err error) {
	logger := a.logger
	if a.types == nil {
		if a.types, err = order.Types(); err != nil {
			return err
		}
	}
	if a.orders, err = aggregate.New(a.store, a.types, order.Definition(), aggregate.WithLogger(logger)); err != nil {
		return err
	}
	if a.checkpoints, err = sqlproj.New(ctx, a.db, dialect, sqlproj.WithLogger(logger)); err != nil {
		return err
	}
	for _, p := range []projection.Projection[*sql.Tx]{readmodel.Summaries(), readmodel.Details()} {
		r, err := projection.NewRunner(a.store, a.checkpoints, a.types, p,
			projection.WithLogger(logger), projection.WithSkipPoison(a.checkpoints))
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
