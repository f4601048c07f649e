package sqlstore_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/estest"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/internal/sqltest"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openSQLite opens a store in a new file, closed at the end of the test.
func openSQLite(t testing.TB, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "events.db"), opts...)
	require.NoError(t, err, "sqlite.Open")
	t.Cleanup(func() { require.NoError(t, s.Close(), "Close") })
	return s
}

// postgresURL returns the connection string in EVENTFOLD_TEST_POSTGRES, or
// skips the test.
func postgresURL(t testing.TB) string {
	t.Helper()
	return sqltest.PostgresURL(t)
}

// newSchema returns the name of a PostgreSQL schema of the test's own,
// dropped with everything in it at the end of the test.
func newSchema(t testing.TB, url string) string {
	t.Helper()
	return sqltest.NewSchema(t, url)
}

// openPostgres opens a store in a new schema, closed and dropped at the end
// of the test.
func openPostgres(t testing.TB, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	url := postgresURL(t)
	schema := newSchema(t, url)
	s, err := postgres.Open(t.Context(), url, append([]sqlstore.Option{sqlstore.WithSchema(schema)}, opts...)...)
	require.NoError(t, err, "postgres.Open")
	t.Cleanup(func() { require.NoError(t, s.Close(), "Close") })
	return s
}

func TestSQLiteConformance(t *testing.T) {
	estest.Run(t, func(t *testing.T) es.Store { return openSQLite(t) })
}

func TestPostgresConformance(t *testing.T) {
	store := openPostgres(t)
	estest.Run(t, func(t *testing.T) es.Store { return store })
}
