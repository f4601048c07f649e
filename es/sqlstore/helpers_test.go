package sqlstore_test

import (
	"context"
	"iter"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/internal/sqltest"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
)

// openSQLitePath opens a store on an existing path, closed at the end of
// the test.
func openSQLitePath(t *testing.T, path string, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	return sqltest.OpenSQLite(t, path, opts...)
}

// subscribe starts a stream subscription with subscribe (a Store's
// SubscribeStream method).
func subscribe(t *testing.T, subscribe func(context.Context, string, es.SubscribeStreamOptions) iter.Seq2[es.Message, error],
	stream string, opts es.SubscribeStreamOptions) *sqltest.Sub {
	t.Helper()
	return sqltest.Subscribe(t, subscribe, stream, opts)
}

// start runs the subscription that seq starts.
func start(t *testing.T, seq func(ctx context.Context) iter.Seq2[es.Message, error]) *sqltest.Sub {
	t.Helper()
	return sqltest.Start(t, seq)
}

// sharedSQLite returns a function that opens Stores on one new SQLite
// database, as if in processes of their own; each is closed at the end of
// the test that opens it.
func sharedSQLite(t *testing.T, opts ...sqlstore.Option) func(t *testing.T) *sqlstore.Store {
	path := filepath.Join(t.TempDir(), "events.db")
	return func(t *testing.T) *sqlstore.Store {
		s, err := sqlite.Open(t.Context(), path, opts...)
		require.NoError(t, err, "sqlite.Open")
		t.Cleanup(func() { require.NoError(t, s.Close(), "Close") })
		return s
	}
}

// sharedPostgres returns a function that opens Stores on one new
// PostgreSQL schema (dropped at the end of t), as if in processes of their
// own; each is closed at the end of the test that opens it. It skips t if
// EVENTFOLD_TEST_POSTGRES is not set.
func sharedPostgres(t *testing.T, opts ...sqlstore.Option) func(t *testing.T) *sqlstore.Store {
	url := postgresURL(t)
	opts = append([]sqlstore.Option{sqlstore.WithSchema(newSchema(t, url))}, opts...)
	return func(t *testing.T) *sqlstore.Store {
		s, err := postgres.Open(t.Context(), url, opts...)
		require.NoError(t, err, "postgres.Open")
		t.Cleanup(func() { require.NoError(t, s.Close(), "Close") })
		return s
	}
}
