package sqlstore_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/estest"
	"github.com/eventfold/eventfold/es/sqlstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openSQLite opens a store in a new file, closed at the end of the test.
func openSQLite(t testing.TB, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "events.db"), opts...)
	require.NoError(t, err, "OpenSQLite")
	t.Cleanup(func() { require.NoError(t, s.Close(), "Close") })
	return s
}

// postgresURL returns the connection string in EVENTFOLD_TEST_POSTGRES, or
// skips the test.
func postgresURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("EVENTFOLD_TEST_POSTGRES")
	if url == "" {
		t.Skip("EVENTFOLD_TEST_POSTGRES is not set: set it to a PostgreSQL connection string " +
			"(such as postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the PostgreSQL tests")
	}
	return url
}

// newSchema returns the name of a PostgreSQL schema of the test's own,
// dropped with everything in it at the end of the test.
func newSchema(t testing.TB, url string) string {
	t.Helper()
	schema := "sqlstore_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	t.Cleanup(func() {
		ctx := context.WithoutCancel(t.Context())
		conn, err := pgx.Connect(ctx, url)
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		require.NoError(t, err, "drop schema %s", schema)
	})
	return schema
}

// openPostgres opens a store in a new schema, closed and dropped at the end
// of the test.
func openPostgres(t testing.TB, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	url := postgresURL(t)
	schema := newSchema(t, url)
	s, err := sqlstore.OpenPostgres(t.Context(), url, append([]sqlstore.Option{sqlstore.WithSchema(schema)}, opts...)...)
	require.NoError(t, err, "OpenPostgres")
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
