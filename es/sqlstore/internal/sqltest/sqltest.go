// Package sqltest holds the helpers of the tests of package sqlstore and
// its backends.
package sqltest

import (
	"context"
	"iter"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
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

// Sub is a subscription running in a goroutine that the test owns: it is
// cancelled and waited for at the end of the test.
type Sub struct {
	msgs <-chan received
}

type received struct {
	msg es.Message
	err error
}

// Subscribe starts a stream subscription with subscribe (a Store's
// SubscribeStream method).
func Subscribe(t testing.TB, subscribe func(context.Context, string, es.SubscribeStreamOptions) iter.Seq2[es.Message, error],
	stream string, opts es.SubscribeStreamOptions) *Sub {
	t.Helper()
	return Start(t, func(ctx context.Context) iter.Seq2[es.Message, error] { return subscribe(ctx, stream, opts) })
}

// Start runs the subscription that seq starts.
func Start(t testing.TB, seq func(ctx context.Context) iter.Seq2[es.Message, error]) *Sub {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	msgs := make(chan received, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(msgs)
		for msg, err := range seq(ctx) {
			select {
			case msgs <- received{msg, err}:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &Sub{msgs: msgs}
}

// Receive returns the next message or error, failing the test after 10 s.
func (s *Sub) Receive(t testing.TB) (es.Message, error) {
	t.Helper()
	select {
	case r, ok := <-s.msgs:
		require.True(t, ok, "the subscription ended without an error")
		return r.msg, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription delivered nothing within 10 s")
		return es.Message{}, nil
	}
}

// Next returns the next event, skipping other messages.
func (s *Sub) Next(t testing.TB) es.RecordedEvent {
	t.Helper()
	for {
		msg, err := s.Receive(t)
		require.NoError(t, err, "the subscription failed")
		if msg.Kind == es.KindEvent {
			return msg.Event
		}
	}
}

// OpenSQLite opens a store on path with a poll interval of 10 ms, closed
// at the end of the test.
func OpenSQLite(t testing.TB, path string, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, append([]sqlstore.Option{sqlstore.WithPollInterval(10 * time.Millisecond)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}
