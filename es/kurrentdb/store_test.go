package kurrentdb_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/estest"
	"github.com/eventfold/eventfold/es/kurrentdb"
	"github.com/google/uuid"
	kdb "github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var quiet = slog.New(slog.DiscardHandler)

func open(t testing.TB, conn string, opts ...kurrentdb.Option) *kurrentdb.Store {
	t.Helper()
	store, err := kurrentdb.Open(conn, append([]kurrentdb.Option{kurrentdb.WithLogger(quiet)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// TestConformance runs the es.Store conformance suite through
// KurrentDB-Client-Go against the esdbtest command reporting KurrentDB
// 25.0 (multi-stream appends served) and EventStoreDB 24.10 (the
// AppendStreams subtests skip as unsupported).
func TestConformance(t *testing.T) {
	for _, version := range []string{"25.0.0", "24.10.0"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, version)
			store := open(t, srv.conn)
			estest.Run(t, func(*testing.T) es.Store { return store })
		})
	}
}

// TestConformanceRealNode runs the suite against a real KurrentDB node.
func TestConformanceRealNode(t *testing.T) {
	conn := os.Getenv("EVENTFOLD_TEST_KURRENTDB")
	if conn == "" {
		t.Skip("EVENTFOLD_TEST_KURRENTDB is not set: no real KurrentDB node to test against (see docs/eventstoredb.md)")
	}
	store := open(t, conn)
	estest.Run(t, func(*testing.T) es.Store { return store })
}

func TestOpenRejectsBadConnectionStringsWithoutEchoingThem(t *testing.T) {
	_, err := kurrentdb.Open("kurrentdb://admin:s3cret@:::bad?tls=maybe")
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	assert.NotContains(t, err.Error(), "s3cret")

	_, err = kurrentdb.Open("kurrentdb://localhost:2113", kurrentdb.WithResubscribe(0, 0), kurrentdb.WithLogger(nil), kurrentdb.WithCallTimeout(0))
	require.ErrorIs(t, err, kurrentdb.ErrInvalidOption)
	assert.Contains(t, err.Error(), "call timeout")
	assert.Contains(t, err.Error(), "nil logger")
}

// New wraps the caller's client: the Store works on it, and closing the
// Store leaves the client open for its owner.
func TestNewWrapsTheCallersClient(t *testing.T) {
	srv := startServer(t, "24.10.0")
	cfg, err := kdb.ParseConnectionString(srv.conn)
	require.NoError(t, err)
	cfg.Logger = kdb.NoopLogging()
	client, err := kdb.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })

	_, err = kurrentdb.New(nil)
	require.ErrorIs(t, err, kurrentdb.ErrInvalidOption)
	store, err := kurrentdb.New(client, kurrentdb.WithLogger(quiet))
	require.NoError(t, err)
	stream := "order-" + uuid.NewString()
	_, err = store.Append(t.Context(), stream, es.NoStream, es.EventData{Type: "OrderPlaced"})
	require.NoError(t, err)
	assert.Same(t, client, store.Client())
	require.NoError(t, store.Close())
	_, err = store.Append(t.Context(), stream, es.Any, es.EventData{Type: "OrderPlaced"})
	require.ErrorIs(t, err, kurrentdb.ErrClosed)

	// The client still works for its owner.
	_, err = client.AppendToStream(t.Context(), stream, kdb.AppendToStreamOptions{}, kdb.EventData{EventType: "OrderShipped", ContentType: kdb.ContentTypeJson, Data: []byte(`{}`)})
	require.NoError(t, err)
}

// caughtUp subscribes to $all from the start and returns the first
// caught-up message.
func caughtUp(t *testing.T, store es.Store) es.Message {
	t.Helper()
	for m, err := range store.SubscribeAll(t.Context(), es.SubscribeAllOptions{From: es.Start}) {
		require.NoError(t, err)
		if m.Kind == es.KindCaughtUp {
			return m
		}
	}
	t.Fatal("the subscription ended")
	return es.Message{}
}

func TestCaughtUpCarriesThePositionFromKurrentDB25(t *testing.T) {
	for version, reports := range map[string]bool{"25.0.0": true, "24.10.0": false} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			store := open(t, startServer(t, version).conn)
			res, err := store.Append(t.Context(), "order-"+uuid.NewString(), es.NoStream, es.EventData{Type: "OrderPlaced"})
			require.NoError(t, err)
			m := caughtUp(t, store)
			if reports {
				assert.Equal(t, res.Position, m.Position, "the position of the last event read")
			} else {
				assert.Equal(t, es.Position{}, m.Position, "EventStoreDB does not report it")
			}
		})
	}
}

func TestAppendStreams(t *testing.T) {
	t.Parallel()
	older := open(t, startServer(t, "24.10.0").conn)
	part := func() es.StreamAppend {
		return es.StreamAppend{Stream: "order-" + uuid.NewString(), Expected: es.NoStream, Events: []es.EventData{{Type: "OrderPlaced"}}}
	}
	_, err := es.AppendStreams(t.Context(), older, part(), part())
	require.ErrorIs(t, err, errors.ErrUnsupported, "EventStoreDB and KurrentDB before 25.0")

	store := open(t, startServer(t, "25.0.0").conn)
	bad := part()
	bad.Events[0].Metadata = []byte(`{"n":1}`)
	first := part()
	_, err = es.AppendStreams(t.Context(), store, first, bad)
	require.ErrorIs(t, err, es.ErrInvalidArgument, "metadata with a value that is not a string")
	assert.Contains(t, err.Error(), "JSON object of strings")
	_, ok, err := es.LastEvent(t.Context(), store, first.Stream)
	require.NoError(t, err)
	assert.False(t, ok, "nothing written")

	soft := part()
	_, err = store.Append(t.Context(), soft.Stream, es.NoStream, soft.Events...)
	require.NoError(t, err)
	_, err = store.DeleteStream(t.Context(), soft.Stream, es.Any)
	require.NoError(t, err)
	again := part()
	again.Stream, again.Expected = soft.Stream, es.StreamExists
	_, err = es.AppendStreams(t.Context(), store, part(), again)
	require.ErrorIs(t, err, es.ErrStreamDeleted, "a soft-deleted stream expected to exist")
	assert.Contains(t, err.Error(), soft.Stream)

	first.Events[0].Metadata = []byte(`{"tenant":"t1"}`)
	res, err := es.AppendStreams(t.Context(), store, first, part())
	require.NoError(t, err)
	require.Len(t, res, 2)
	ev, ok, err := es.LastEvent(t.Context(), store, first.Stream)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, `{"tenant":"t1"}`, string(ev.Metadata), "without the schema KurrentDB adds")
	assert.Equal(t, res[0].Position, ev.Position)
	assert.Less(t, res[0].Position.Compare(res[1].Position), 0)
}

// A server whose maximum append size is below eventfold's refuses a
// multi-stream append over it as a whole.
func TestAppendStreamsOverTheServersMaximumSize(t *testing.T) {
	store := open(t, startServer(t, "25.0.0", "-max-append-size", "1000").conn)
	big := func() es.StreamAppend {
		return es.StreamAppend{Stream: "order-" + uuid.NewString(), Expected: es.Any, Events: []es.EventData{
			{Type: "Big", ContentType: es.ContentTypeBinary, Data: make([]byte, 600)}}}
	}
	_, err := es.AppendStreams(t.Context(), store, big(), big())
	require.ErrorIs(t, err, es.ErrMaxAppendSizeExceeded)
}

// A subscription that falls behind (one append far larger than the
// server's live buffer) reports caught-up once more when it is live again,
// from servers that send the details (25.0) and from those that do not.
func TestCaughtUpAgainAfterFallingBehind(t *testing.T) {
	for _, version := range []string{"25.0.0", "24.10.0"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			store := open(t, startServer(t, version).conn)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var kinds []es.Kind
			events := 0
			for m, err := range store.SubscribeAll(ctx, es.SubscribeAllOptions{From: es.Start, Filter: es.StreamPrefixes("bulk-")}) {
				require.NoError(t, err)
				switch m.Kind {
				case es.KindEvent:
					events++
				case es.KindCaughtUp:
					kinds = append(kinds, m.Kind)
				}
				if m.Kind == es.KindCaughtUp && len(kinds) == 1 {
					bulk := make([]es.EventData, 2000)
					for i := range bulk {
						bulk[i] = es.EventData{Type: "Bulk"}
					}
					_, err := store.Append(ctx, "bulk-"+uuid.NewString(), es.NoStream, bulk...)
					require.NoError(t, err)
				}
				if len(kinds) == 2 {
					break
				}
			}
			assert.Equal(t, 2000, events, "every event between the two caught-up messages")
		})
	}
}
