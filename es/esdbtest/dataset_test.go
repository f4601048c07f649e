package esdbtest_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/esdbtest/internal/v4suite"
)

// The cases of the v4 client's test suite that need a populated node (its
// testdata docker image), done here against esdbtest with the dataset that
// package v4suite builds from the suite's resource files: the reads of
// read_stream_test.go and read_all_test.go, and the subscriptions of
// subscriptions_test.go and persistent_subscriptions_test.go on
// dataset20M-0. Each compares what the client reads with the suite's files
// (IDs, types, streams, revisions, positions, created times, content types,
// and here data and metadata too).

// v4Suite is the suite's resources/test directory and the dataset built
// from it, once per test binary.
var v4Suite = sync.OnceValues(func() (v4SuiteFiles, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := v4suite.ResourcesDir(ctx)
	if err != nil {
		return v4SuiteFiles{}, err
	}
	var buf bytes.Buffer
	if err := v4suite.Build(&buf, dir); err != nil {
		return v4SuiteFiles{}, err
	}
	return v4SuiteFiles{resources: dir, dataset: buf.Bytes()}, nil
})

type v4SuiteFiles struct {
	resources string
	dataset   []byte
}

// populated returns a server with the v4 suite's dataset loaded, a client
// of it, and the suite's resources directory.
func populated(t *testing.T) (*esdbtest.Server, *esdb.Client, string) {
	t.Helper()
	files, err := v4Suite()
	require.NoError(t, err, "the v4 client's module (and its resources/test) must be in the module cache")
	dataset := files.dataset
	srv := esdbtest.New(t)
	require.NoError(t, srv.Load(bytes.NewReader(dataset)))
	return srv, newClient(t, srv), files.resources
}

// fileEvents reads a resource file of the suite.
func fileEvents(t *testing.T, resources, name string) []v4suite.FileEvent {
	t.Helper()
	evs, err := v4suite.ReadEvents(resources, name)
	require.NoError(t, err)
	return evs
}

// requireSameEvents compares what the client read with the suite's file,
// field by field, as the suite does, plus data and metadata.
func requireSameEvents(t *testing.T, want []v4suite.FileEvent, got []*esdb.RecordedEvent) {
	t.Helper()
	require.GreaterOrEqual(t, len(got), len(want))
	for i, w := range want {
		g := got[i]
		assert.Equal(t, w.EventID, g.EventID, "event %d", i)
		assert.Equal(t, w.EventType, g.EventType, "event %d", i)
		assert.Equal(t, w.StreamID, g.StreamID, "event %d", i)
		assert.Equal(t, w.StreamRevision.Value, g.EventNumber, "event %d", i)
		assert.Equal(t, w.Created.Nanos, int64(g.CreatedDate.Nanosecond()), "event %d", i)
		assert.Equal(t, w.Created.Seconds, g.CreatedDate.Unix(), "event %d", i)
		assert.Equal(t, w.Position.Commit, g.Position.Commit, "event %d", i)
		assert.Equal(t, w.Position.Prepare, g.Position.Prepare, "event %d", i)
		assert.Equal(t, w.ContentType, g.ContentType, "event %d", i)
		assert.Equal(t, string(w.EventData), string(g.Data), "event %d", i)
		assert.Equal(t, string(w.UserMetadata), string(g.UserMetadata), "event %d", i)
	}
}

func TestV4SuiteReadStream(t *testing.T) {
	_, c, resources := populated(t)

	t.Run("readStreamEventsForwardsFromZeroPosition", func(t *testing.T) {
		got, err := readStream(t, c, v4suite.Stream1800, esdb.ReadStreamOptions{Direction: esdb.Forwards, ResolveLinkTos: true}, 10)
		require.NoError(t, err)
		require.Len(t, got, 10)
		requireSameEvents(t, fileEvents(t, resources, "dataset20M-1800-e0-e10.json"), got)
	})
	t.Run("readStreamEventsBackwardsFromEndPosition", func(t *testing.T) {
		got, err := readStream(t, c, v4suite.Stream1800, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}, ResolveLinkTos: true}, 10)
		require.NoError(t, err)
		require.Len(t, got, 10)
		requireSameEvents(t, fileEvents(t, resources, "dataset20M-1800-e1999-e1990.json"), got)
	})
	t.Run("every revision of both streams", func(t *testing.T) {
		for stream, n := range map[string]int{v4suite.Stream0: v4suite.Stream0Len, v4suite.Stream1800: v4suite.Stream1800Len} {
			got, err := readStream(t, c, stream, esdb.ReadStreamOptions{}, 10_000)
			require.NoError(t, err)
			require.Len(t, got, n, stream)
			for i, e := range got {
				require.Equal(t, uint64(i), e.EventNumber, stream)
				if i > 0 {
					require.Greater(t, e.Position.Commit, got[i-1].Position.Commit, stream)
				}
			}
		}
	})
}

func TestV4SuiteReadAll(t *testing.T) {
	_, c, resources := populated(t)

	t.Run("readAllEventsForwardsFromZeroPosition", func(t *testing.T) {
		got := readAll(t, c, esdb.ReadAllOptions{Direction: esdb.Forwards, From: esdb.Start{}, ResolveLinkTos: true}, 10)
		require.Len(t, got, 10)
		requireSameEvents(t, fileEvents(t, resources, "all-e0-e10.json"), got)
	})
	t.Run("readAllEventsForwardsFromNonZeroPosition", func(t *testing.T) {
		got := readAll(t, c, esdb.ReadAllOptions{From: esdb.Position{Commit: 1_788, Prepare: 1_788}, ResolveLinkTos: true}, 10)
		require.Len(t, got, 10)
		requireSameEvents(t, fileEvents(t, resources, "all-c1788-p1788.json"), got)
	})
	t.Run("readAllEventsBackwardsFromZeroPosition", func(t *testing.T) {
		// The suite reads 30 more and skips events a node wrote since it
		// started (not from 2020); esdbtest writes none.
		got := readAll(t, c, esdb.ReadAllOptions{From: esdb.End{}, Direction: esdb.Backwards, ResolveLinkTos: true}, 40)
		require.Len(t, got, 40)
		assert.Equal(t, 2020, got[0].CreatedDate.Year())
		requireSameEvents(t, fileEvents(t, resources, "all-back-e0-e10.json"), got)
	})
	t.Run("readAllEventsBackwardsFromNonZeroPosition", func(t *testing.T) {
		got := readAll(t, c, esdb.ReadAllOptions{From: esdb.Position{Commit: 3_386, Prepare: 3_386}, Direction: esdb.Backwards, ResolveLinkTos: true}, 10)
		require.Len(t, got, 10)
		requireSameEvents(t, fileEvents(t, resources, "all-back-c3386-p3386.json"), got)
	})
	t.Run("readAllEventsWithCredentialsOverride", func(t *testing.T) {
		got := readAll(t, c, esdb.ReadAllOptions{
			Authenticated: &esdb.Credentials{Login: "admin", Password: "changeit"},
			From:          esdb.Position{Commit: 3_386, Prepare: 3_386},
		}, 10)
		require.Len(t, got, 10)
		assert.Equal(t, uint64(3_386), got[0].Position.Commit)
	})
}

func TestV4SuiteSubscriptions(t *testing.T) {
	t.Run("streamSubscriptionDeliversAllEventsInStreamAndListensForNewEvents", func(t *testing.T) {
		_, c, _ := populated(t)
		sub, err := c.SubscribeToStream(ctxWithTimeout(t), v4suite.Stream0, esdb.SubscribeToStreamOptions{From: esdb.Start{}})
		require.NoError(t, err)
		w := watch(t, sub)
		for i := range v4suite.Stream0Len {
			ev := w.nextEvent(t)
			require.NotNil(t, ev.EventAppeared, "message %d: %s", i, describe(ev))
			require.Equal(t, uint64(i), ev.EventAppeared.OriginalEvent().EventNumber)
		}
		// subscriptionToStreamCaughtUpMessage: caught up after the 6,000.
		require.Equal(t, "caught-up", w.next(t))

		live := event("TestEvent")
		live.EventID = uuid.MustParse("84c8e36c-4e64-11ea-8b59-b7f658acfc9f")
		res, err := c.AppendToStream(ctxWithTimeout(t), v4suite.Stream0, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(5_999)}, live)
		require.NoError(t, err)
		require.Equal(t, uint64(6_000), res.NextExpectedVersion)
		ev := w.nextEvent(t)
		require.NotNil(t, ev.EventAppeared, describe(ev))
		got := ev.EventAppeared.OriginalEvent()
		assert.Equal(t, live.EventID, got.EventID)
		assert.Equal(t, uint64(6_000), got.EventNumber)
		assert.Equal(t, v4suite.Stream0, got.StreamID)
		assert.Equal(t, live.Data, got.Data)
		assert.Equal(t, live.Metadata, got.UserMetadata)
	})

	t.Run("allSubscriptionWithFilterDeliversCorrectEvents", func(t *testing.T) {
		_, c, resources := populated(t)
		versions, positions, err := v4suite.ReadFiltered(resources)
		require.NoError(t, err)
		sub, err := c.SubscribeToAll(ctxWithTimeout(t), esdb.SubscribeToAllOptions{
			From:   esdb.Start{},
			Filter: &esdb.SubscriptionFilter{Type: esdb.EventFilterType, Prefixes: []string{v4suite.FilterPrefix}},
		})
		require.NoError(t, err)
		w := watch(t, sub)
		for i := 0; i < len(versions); {
			ev := w.nextEvent(t)
			require.Nil(t, ev.SubscriptionDropped)
			if ev.EventAppeared == nil {
				continue // checkpoints
			}
			got := ev.EventAppeared.OriginalEvent()
			require.True(t, strings.HasPrefix(got.EventType, v4suite.FilterPrefix), got.EventType)
			require.Equal(t, versions[i], got.EventNumber, "event %d", i)
			require.Equal(t, positions[i].Commit, got.Position.Commit, "event %d", i)
			require.Equal(t, positions[i].Prepare, got.Position.Prepare, "event %d", i)
			i++
		}
	})

	t.Run("connectionClosing", func(t *testing.T) {
		_, c, _ := populated(t)
		sub, err := c.SubscribeToStream(ctxWithTimeout(t), v4suite.Stream0, esdb.SubscribeToStreamOptions{From: esdb.Start{}})
		require.NoError(t, err)
		w := watch(t, sub)
		for i := range 11 {
			require.Equal(t, fmt.Sprintf("%s/%d", v4suite.Stream0, i), w.next(t))
		}
		require.NoError(t, sub.Close())
		for {
			if s := w.next(t); s == "dropped" {
				break
			}
		}
	})

	t.Run("subscriptionAllWithCredentialsOverride", func(t *testing.T) {
		_, c, _ := populated(t)
		sub, err := c.SubscribeToAll(ctxWithTimeout(t), esdb.SubscribeToAllOptions{
			Authenticated: &esdb.Credentials{Login: "admin", Password: "changeit"},
			From:          esdb.Start{},
			Filter:        esdb.ExcludeSystemEventsFilter(),
		})
		require.NoError(t, err)
		w := watch(t, sub)
		for {
			ev := w.nextEvent(t)
			if ev.EventAppeared != nil {
				assert.Equal(t, v4suite.Stream0+"/0", describe(ev), "the first event that is not a system event")
				break
			}
		}
	})

	t.Run("testPersistentSubscriptionClosing", func(t *testing.T) {
		_, c, _ := populated(t)
		require.NoError(t, c.CreatePersistentSubscription(ctxWithTimeout(t), v4suite.Stream0, "Group 1",
			esdb.PersistentStreamSubscriptionOptions{StartFrom: esdb.Start{}}))
		sub, err := c.SubscribeToPersistentSubscription(ctxWithTimeout(t), v4suite.Stream0, "Group 1",
			esdb.SubscribeToPersistentSubscriptionOptions{BufferSize: 2})
		require.NoError(t, err)
		for i := range 10 {
			ev := sub.Recv()
			require.NotNil(t, ev.EventAppeared, "message %d", i)
			require.Equal(t, uint64(i), ev.EventAppeared.Event.OriginalEvent().EventNumber)
			require.NoError(t, sub.Ack(ev.EventAppeared.Event))
		}
		require.NoError(t, sub.Close())
		for {
			ev := sub.Recv()
			if ev.SubscriptionDropped != nil {
				break
			}
		}
	})
}
