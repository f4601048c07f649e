// Package sqltest holds the helpers of the tests of package sqlstore and
// its backends.
package sqltest

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
)

// PostgresURL returns the connection string in EVENTFOLD_TEST_POSTGRES, or
// skips the test.
func PostgresURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("EVENTFOLD_TEST_POSTGRES")
	if url == "" {
		t.Skip("EVENTFOLD_TEST_POSTGRES is not set: set it to a PostgreSQL connection string " +
			"(such as postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the PostgreSQL tests")
	}
	return url
}

// NewSchema returns the name of a PostgreSQL schema of the test's own,
// dropped with everything in it at the end of the test.
func NewSchema(t testing.TB, url string) string {
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

// OpenPostgres opens a store in schema, closed at the end of the test.
func OpenPostgres(t testing.TB, url, schema string, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), url, append([]sqlstore.Option{sqlstore.WithSchema(schema)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}
