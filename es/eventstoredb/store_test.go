package eventstoredb_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/estest"
	"github.com/eventfold/eventfold/es/eventstoredb"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var quiet = slog.New(slog.DiscardHandler)

func open(t testing.TB, conn string, opts ...eventstoredb.Option) *eventstoredb.Store {
	t.Helper()
	store, err := eventstoredb.Open(conn, append([]eventstoredb.Option{eventstoredb.WithLogger(quiet)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// TestConformance runs the es.Store conformance suite through the real v4
// client over a real gRPC connection to an in-process server.
func TestConformance(t *testing.T) {
	srv := esdbtest.New(t)
	store := open(t, srv.ConnectionString())
	estest.Run(t, func(*testing.T) es.Store { return store })
}

// TestConformanceRealNode runs the suite against a real EventStoreDB node.
func TestConformanceRealNode(t *testing.T) {
	conn := os.Getenv("EVENTFOLD_TEST_ESDB")
	if conn == "" {
		t.Skip("EVENTFOLD_TEST_ESDB is not set: no real EventStoreDB node to test against (see docs/eventstoredb.md)")
	}
	store := open(t, conn)
	estest.Run(t, func(*testing.T) es.Store { return store })
}

func TestOpenRejectsBadConnectionStringsWithoutEchoingThem(t *testing.T) {
	_, err := eventstoredb.Open("esdb://admin:s3cret@:::bad?tls=maybe")
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	assert.NotContains(t, err.Error(), "s3cret")

	_, err = eventstoredb.Open("esdb://localhost:2113", eventstoredb.WithResubscribe(0, 0), eventstoredb.WithLogger(nil))
	require.ErrorIs(t, err, eventstoredb.ErrInvalidOption)
}

// New wraps the caller's client: the Store works on it, and closing the
// Store leaves the client open for its owner.
func TestNewWrapsTheCallersClient(t *testing.T) {
	srv := esdbtest.New(t)
	cfg, err := esdb.ParseConnectionString(srv.ConnectionString())
	require.NoError(t, err)
	client, err := esdb.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })

	_, err = eventstoredb.New(nil)
	require.ErrorIs(t, err, eventstoredb.ErrInvalidOption)
	store, err := eventstoredb.New(client, eventstoredb.WithLogger(quiet))
	require.NoError(t, err)
	stream := "order-" + uuid.NewString()
	_, err = store.Append(t.Context(), stream, es.NoStream, es.EventData{Type: "OrderPlaced"})
	require.NoError(t, err)
	assert.Same(t, client, store.Client())
	require.NoError(t, store.Close())

	// The client is still open: it reads what the Store wrote.
	rs, err := client.ReadStream(t.Context(), stream, esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	defer rs.Close()
	ev, err := rs.Recv()
	require.NoError(t, err)
	assert.Equal(t, "OrderPlaced", ev.Event.EventType)
}

func TestWrongExpectedVersionOnDeleteIsMapped(t *testing.T) {
	ctx := t.Context()
	srv := esdbtest.New(t)
	store := open(t, srv.ConnectionString())
	stream := "order-" + uuid.NewString()
	_, err := store.Append(ctx, stream, es.NoStream, es.EventData{Type: "OrderPlaced"}, es.EventData{Type: "OrderConfirmed"})
	require.NoError(t, err)

	_, err = store.DeleteStream(ctx, stream, es.Exact(0))
	var wev *es.WrongExpectedVersionError
	require.ErrorAs(t, err, &wev)
	assert.Equal(t, stream, wev.Stream)
	assert.Equal(t, es.Exact(0), wev.Expected)
	assert.Equal(t, es.Exact(1), wev.Actual)

	_, err = store.TombstoneStream(ctx, stream, es.Exact(5))
	require.ErrorAs(t, err, &wev)
	assert.Equal(t, es.Exact(1), wev.Actual)
}

func TestSubscriptionResumesAfterDrops(t *testing.T) {
	ctx := t.Context()
	srv := esdbtest.New(t)
	store := open(t, srv.ConnectionString(), eventstoredb.WithResubscribe(20, time.Millisecond))
	stream := "order-" + uuid.NewString()
	const total = 30

	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan es.Message)
	done := make(chan error, 1)
	go func() {
		defer close(got)
		for m, err := range store.SubscribeAll(subCtx, es.SubscribeAllOptions{Filter: es.StreamPrefixes(stream)}) {
			if err != nil {
				done <- err
				return
			}
			select {
			case got <- m:
			case <-subCtx.Done():
			}
		}
	}()

	var revisions []uint64
	appendOne := func(i int) {
		_, err := store.Append(ctx, stream, es.Any, es.EventData{Type: "Tick", Data: []byte(`{}`)})
		require.NoError(t, err, "append %d", i)
	}
	appendOne(0)
	deadline := time.After(20 * time.Second)
	for len(revisions) < total {
		select {
		case m, ok := <-got:
			if !ok {
				t.Fatalf("the subscription ended: %v", <-done)
			}
			if m.Kind != es.KindEvent {
				continue
			}
			revisions = append(revisions, m.Event.Revision)
			// Drop the subscription after every third event, then append
			// more: the store must resubscribe from where it was.
			if len(revisions)%3 == 0 {
				srv.DropSubscriptions()
			}
			if len(revisions) < total {
				appendOne(len(revisions))
			}
		case <-deadline:
			t.Fatalf("timed out after %d events: %v", len(revisions), revisions)
		}
	}
	for i, rev := range revisions {
		require.Equal(t, uint64(i), rev, "events delivered once each, in order: %v", revisions)
	}
	cancel()
	for range got {
	}
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	default:
	}
}

func TestSubscriptionGivesUpOnPermanentErrors(t *testing.T) {
	srv := esdbtest.New(t)
	store := open(t, srv.ConnectionString(), eventstoredb.WithResubscribe(2, time.Millisecond))
	srv.SetError(esdbtest.MethodRead, status.Error(codes.PermissionDenied, "access denied"))
	for _, err := range store.SubscribeAll(t.Context(), es.SubscribeAllOptions{}) {
		require.Error(t, err)
		assert.Equal(t, codes.PermissionDenied, status.Code(err))
		return
	}
	t.Fatal("the subscription ended without an error")
}

func TestSubscriptionYieldsTheErrorAfterTooManyFailures(t *testing.T) {
	srv := esdbtest.New(t)
	store := open(t, srv.ConnectionString(), eventstoredb.WithResubscribe(3, time.Millisecond))
	srv.SetError(esdbtest.MethodRead, status.Error(codes.Unavailable, "down"))
	for _, err := range store.SubscribeAll(t.Context(), es.SubscribeAllOptions{}) {
		require.Error(t, err)
		assert.True(t, errors.Is(err, err)) // the client's error, wrapped
		assert.Contains(t, err.Error(), "down")
		return
	}
	t.Fatal("the subscription ended without an error")
}

// WithResubscribe counts attempts as every package does: the tries in all,
// the first included. With 3 attempts, a subscription whose first 2 tries
// fail delivers; one whose first 3 tries fail yields the last error.
func TestResubscribeCountsTriesInAll(t *testing.T) {
	down := status.Error(codes.Unavailable, "down")
	for fails, delivers := range map[int]bool{2: true, 3: false} {
		srv := esdbtest.New(t)
		require.NoError(t, srv.Seed("s", esdbtest.Event{Type: "A", Data: []byte(`{}`)}))
		store := open(t, srv.ConnectionString(), eventstoredb.WithResubscribe(3, time.Millisecond))
		srv.FailNext(esdbtest.MethodRead, fails, down)
		for msg, err := range store.SubscribeAll(t.Context(), es.SubscribeAllOptions{From: es.Start}) {
			if !delivers {
				require.Error(t, err, "%d failed tries of 3", fails)
				assert.Contains(t, err.Error(), "down")
				break
			}
			require.NoError(t, err, "%d failed tries of 3", fails)
			assert.Equal(t, "A", msg.Event.Type)
			break
		}
	}
}

func TestReadErrorsMidStreamAreNotTheEnd(t *testing.T) {
	ctx := t.Context()
	srv := esdbtest.New(t)
	store := open(t, srv.ConnectionString())
	srv.SetError(esdbtest.MethodRead, status.Error(codes.Unavailable, "gone"))
	n := 0
	var last error
	for _, err := range store.ReadAll(ctx, es.ReadAllOptions{}) {
		n++
		last = err
	}
	require.Equal(t, 1, n)
	require.Error(t, last)
}

// TestTLSAndCredentials connects over TLS with credentials taken from the
// connection string, and checks that nothing logs the password.
func TestTLSAndCredentials(t *testing.T) {
	ctx := t.Context()
	srv := esdbtest.New(t, esdbtest.WithTLS(), esdbtest.WithUser("ops", "s3cret-pw"))
	conn := strings.Replace(srv.ConnectionString(), esdbtest.DefaultUser+":"+esdbtest.DefaultPassword, "ops:s3cret-pw", 1)
	require.Contains(t, conn, "ops:s3cret-pw@")

	// The store logs from goroutines of its own (connecting, abandoned
	// calls): the buffer is shared.
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := eventstoredb.Open(conn, eventstoredb.WithLogger(logger))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	stream := "order-" + uuid.NewString()
	_, err = store.Append(ctx, stream, es.NoStream, es.EventData{Type: "OrderPlaced", Data: []byte(`{}`)})
	require.NoError(t, err)
	n := 0
	for _, err := range store.ReadStream(ctx, stream, es.ReadStreamOptions{}) {
		require.NoError(t, err)
		n++
	}
	assert.Equal(t, 1, n)

	// Wrong credentials are refused.
	bad, err := eventstoredb.Open(strings.Replace(conn, "s3cret-pw", "wrong", 1), eventstoredb.WithLogger(logger))
	require.NoError(t, err)
	t.Cleanup(func() { _ = bad.Close() })
	_, err = bad.Append(ctx, stream, es.Any, es.EventData{Type: "OrderPlaced", Data: []byte(`{}`)})
	require.Error(t, err)

	assert.NotContains(t, logs.String(), "s3cret-pw")
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
