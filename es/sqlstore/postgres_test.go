package sqlstore_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/internal/sqltest"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
)

// TestPostgresNotify checks that an append through one Store reaches a
// subscription on another at once, by notification: the subscriber's poll
// interval is far longer than the test.
func TestPostgresNotify(t *testing.T) {
	url := postgresURL(t)
	schema := newSchema(t, url)
	open := func() *sqlstore.Store {
		s, err := postgres.Open(t.Context(), url, sqlstore.WithSchema(schema), sqlstore.WithPollInterval(time.Hour))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	}
	reader, writer := open(), open()
	sub := subscribe(t, reader.SubscribeStream, "notified", es.SubscribeStreamOptions{})
	msg, err := sub.receive(t)
	require.NoError(t, err)
	require.Equal(t, es.KindCaughtUp, msg.Kind)
	for i := range 3 {
		_, err := writer.Append(t.Context(), "notified", es.Any, es.EventData{Type: "Notified"})
		require.NoError(t, err)
		assert.Equal(t, uint64(i), sub.next(t).Revision)
	}
}

// TestPostgresListenerLost kills the connection a Store listens on: its
// subscriptions still get the events that other Stores append, by polling
// and once it has listened again.
func TestPostgresListenerLost(t *testing.T) {
	url := postgresURL(t)
	schema := newSchema(t, url)
	app := "sqlstore_test_" + uuid.NewString()[:8]
	reader, err := postgres.Open(t.Context(), withParam(url, "application_name", app),
		sqlstore.WithSchema(schema), sqlstore.WithPollInterval(50*time.Millisecond),
		sqlstore.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer func() { require.NoError(t, reader.Close()) }()
	writer := openPostgresSchema(t, url, schema)
	sub := subscribe(t, reader.SubscribeStream, "lost", es.SubscribeStreamOptions{})

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
		assert.Equal(t, uint64(i), sub.next(t).Revision)
	}
	require.Eventually(t, func() bool { return kill() > 0 }, 10*time.Second, 10*time.Millisecond, "the store listens again")
}

func openPostgresSchema(t *testing.T, url, schema string, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	return sqltest.OpenPostgres(t, url, schema, opts...)
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
