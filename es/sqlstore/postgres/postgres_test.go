package postgres_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/internal/sqltest"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestPostgresNewerSchema(t *testing.T) {
	url := sqltest.PostgresURL(t)
	schema := sqltest.NewSchema(t, url)
	s := sqltest.OpenPostgres(t, url, schema)
	_, err := s.Append(t.Context(), "kept", es.NoStream, es.EventData{Type: "Kept"})
	require.NoError(t, err)

	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.WithoutCancel(t.Context()))
	_, err = conn.Exec(t.Context(), `UPDATE `+pgx.Identifier{schema, "eventfold_schema"}.Sanitize()+` SET version = 2`)
	require.NoError(t, err)

	_, err = postgres.Open(t.Context(), url, sqlstore.WithSchema(schema))
	require.ErrorIs(t, err, sqlstore.ErrSchemaVersion)
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM `+pgx.Identifier{schema, "eventfold_events"}.Sanitize()).Scan(&n))
	assert.Equal(t, 1, n)
}

// TestPostgresPool checks New: the pool stays the caller's.
func TestPostgresPool(t *testing.T) {
	url := sqltest.PostgresURL(t)
	schema := sqltest.NewSchema(t, url)
	pool, err := pgxpool.New(t.Context(), url)
	require.NoError(t, err)
	defer pool.Close()

	s, err := postgres.New(t.Context(), pool, sqlstore.WithSchema(schema), sqlstore.WithTablePrefix("pooled_"))
	require.NoError(t, err)
	_, err = s.Append(t.Context(), "pooled", es.NoStream, es.EventData{Type: "Pooled"})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM `+pgx.Identifier{schema, "pooled_events"}.Sanitize()).Scan(&n),
		"the pool still works after Close")
	assert.Equal(t, 1, n)

	_, err = postgres.New(t.Context(), nil)
	assert.ErrorIs(t, err, sqlstore.ErrInvalidOption)
}

func TestPostgresOpenErrors(t *testing.T) {
	url := sqltest.PostgresURL(t)
	_, err := postgres.Open(t.Context(), "not a connection string=")
	assert.Error(t, err)
	_, err = postgres.Open(t.Context(), url, sqlstore.WithSchema("bad-schema"))
	assert.ErrorIs(t, err, sqlstore.ErrInvalidOption)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = postgres.Open(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	assert.ErrorContains(t, err, "sqlstore: ", "a server that does not answer")
}

// TestPostgresLockWait holds the store's advisory lock from another
// connection: an append waits for it, gives up when its context ends,
// writes nothing, and leaves the store usable.
func TestPostgresLockWait(t *testing.T) {
	url := sqltest.PostgresURL(t)
	schema := sqltest.NewSchema(t, url)
	s := sqltest.OpenPostgres(t, url, schema)
	_, err := s.Append(t.Context(), "locked", es.NoStream, es.EventData{Type: "First"})
	require.NoError(t, err)

	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.WithoutCancel(t.Context()))
	_, err = conn.Exec(t.Context(), "SELECT pg_advisory_lock($1)", postgres.LockKey(schema, sqlstore.DefaultTablePrefix))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err = s.Append(ctx, "locked", es.Exact(0), es.EventData{Type: "Waited"})
	require.ErrorIs(t, err, context.DeadlineExceeded, "an append waiting for the lock ends with its context")
	assert.ErrorContains(t, err, `sqlstore: append to stream "locked"`)

	_, err = conn.Exec(t.Context(), "SELECT pg_advisory_unlock($1)", postgres.LockKey(schema, sqlstore.DefaultTablePrefix))
	require.NoError(t, err)
	res, err := s.Append(t.Context(), "locked", es.Exact(0), es.EventData{Type: "Second"})
	require.NoError(t, err, "the store is usable once the lock is free")
	assert.Equal(t, uint64(1), res.Revision, "the append that gave up wrote nothing")
}

// TestPostgresNotify checks that an append through one Store reaches a
// subscription on another at once, by notification: the subscriber's poll
// interval is far longer than the test.
func TestPostgresNotify(t *testing.T) {
	url := sqltest.PostgresURL(t)
	schema := sqltest.NewSchema(t, url)
	open := func() *sqlstore.Store {
		s, err := postgres.Open(t.Context(), url, sqlstore.WithSchema(schema), sqlstore.WithPollInterval(time.Hour))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	}
	reader, writer := open(), open()
	sub := sqltest.Subscribe(t, reader.SubscribeStream, "notified", es.SubscribeStreamOptions{})
	msg, err := sub.Receive(t)
	require.NoError(t, err)
	require.Equal(t, es.KindCaughtUp, msg.Kind)
	for i := range 3 {
		_, err := writer.Append(t.Context(), "notified", es.Any, es.EventData{Type: "Notified"})
		require.NoError(t, err)
		assert.Equal(t, uint64(i), sub.Next(t).Revision)
	}
}

// TestPostgresListenerLost kills the connection a Store listens on: its
// subscriptions still get the events that other Stores append, by polling
// and once it has listened again.
func TestPostgresListenerLost(t *testing.T) {
	url := sqltest.PostgresURL(t)
	schema := sqltest.NewSchema(t, url)
	app := "sqlstore_test_" + uuid.NewString()[:8]
	reader, err := postgres.Open(t.Context(), withParam(url, "application_name", app),
		sqlstore.WithSchema(schema), sqlstore.WithPollInterval(50*time.Millisecond),
		sqlstore.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer func() { require.NoError(t, reader.Close()) }()
	writer := sqltest.OpenPostgres(t, url, schema)
	sub := sqltest.Subscribe(t, reader.SubscribeStream, "lost", es.SubscribeStreamOptions{})

	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.WithoutCancel(t.Context()))
	kill := func() int {
		var n int
		require.NoError(t, conn.QueryRow(t.Context(),
			`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'`, app).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return kill() > 0 }, 10*time.Second, 10*time.Millisecond, "the store listens")
	for i := range 3 {
		_, err := writer.Append(t.Context(), "lost", es.Any, es.EventData{Type: "AfterKill"})
		require.NoError(t, err)
		assert.Equal(t, uint64(i), sub.Next(t).Revision)
	}
	require.Eventually(t, func() bool { return kill() > 0 }, 10*time.Second, 10*time.Millisecond, "the store listens again")
}

// withParam adds a parameter to a connection string, a URL or key=value
// pairs.
func withParam(conn, key, value string) string {
	switch {
	case !strings.HasPrefix(conn, "postgres://") && !strings.HasPrefix(conn, "postgresql://"):
		return conn + " " + key + "=" + value
	case strings.Contains(conn, "?"):
		return conn + "&" + key + "=" + value
	}
	return conn + "?" + key + "=" + value
}
