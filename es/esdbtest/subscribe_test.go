package esdbtest_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventfold/eventfold/es/esdbtest"
)

func subscribeStream(t *testing.T, c *esdb.Client, stream string, from esdb.StreamPosition) *subscription {
	t.Helper()
	sub, err := c.SubscribeToStream(t.Context(), stream, esdb.SubscribeToStreamOptions{From: from})
	require.NoError(t, err)
	require.NotEmpty(t, sub.Id())
	return watch(t, sub)
}

func subscribeAll(t *testing.T, c *esdb.Client, opts esdb.SubscribeToAllOptions) *subscription {
	t.Helper()
	sub, err := c.SubscribeToAll(t.Context(), opts)
	require.NoError(t, err)
	return watch(t, sub)
}

func TestSubscribeToStream(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "s", esdb.NoStream{}, events(3)...)
	appendEvents(t, c, "other", esdb.NoStream{}, events(1)...)

	t.Run("from start", func(t *testing.T) {
		sub := subscribeStream(t, c, "s", esdb.Start{})
		assert.Equal(t, []string{"s/0", "s/1", "s/2", "caught-up"}, sub.take(t, 4))
	})
	t.Run("from a revision is exclusive", func(t *testing.T) {
		sub := subscribeStream(t, c, "s", esdb.Revision(0))
		assert.Equal(t, []string{"s/1", "s/2", "caught-up"}, sub.take(t, 3))
	})
	t.Run("from end", func(t *testing.T) {
		sub := subscribeStream(t, c, "s", esdb.End{})
		assert.Equal(t, "caught-up", sub.next(t))
	})
	t.Run("from revision 2^64-1, the end", func(t *testing.T) {
		stream := "after-end"
		appendEvents(t, c, stream, esdb.NoStream{}, events(2)...)
		sub := subscribeStream(t, c, stream, esdb.Revision(math.MaxUint64))
		assert.Equal(t, "caught-up", sub.next(t))
		appendEvents(t, c, stream, esdb.Revision(1), events(1)...)
		assert.Equal(t, fmt.Sprintf("%s/2", stream), sub.next(t), "live from the end, as EventStoreDB")
	})
	t.Run("live", func(t *testing.T) {
		stream := "live"
		appendEvents(t, c, stream, esdb.NoStream{}, events(1)...)
		sub := subscribeStream(t, c, stream, esdb.Start{})
		assert.Equal(t, []string{"live/0", "caught-up"}, sub.take(t, 2))
		appendEvents(t, c, "other", esdb.Any{}, events(1)...)
		appendEvents(t, c, stream, esdb.Revision(0), events(2)...)
		assert.Equal(t, []string{"live/1", "live/2"}, sub.take(t, 2))
	})
	t.Run("missing stream waits", func(t *testing.T) {
		sub := subscribeStream(t, c, "later", esdb.Start{})
		assert.Equal(t, "caught-up", sub.next(t))
		appendEvents(t, c, "later", esdb.NoStream{}, events(1)...)
		assert.Equal(t, "later/0", sub.next(t))
	})
}

func TestSubscribeToStreamTombstonedWhileSubscribed(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "s", esdb.NoStream{}, events(1)...)
	sub := subscribeStream(t, c, "s", esdb.Start{})
	assert.Equal(t, []string{"s/0", "caught-up"}, sub.take(t, 2))

	_, err := c.TombstoneStream(t.Context(), "s", esdb.TombstoneStreamOptions{})
	require.NoError(t, err)
	ev := sub.nextEvent(t)
	require.NotNil(t, ev.EventAppeared)
	assert.Equal(t, "$streamDeleted", ev.EventAppeared.OriginalEvent().EventType)
	ev = sub.nextEvent(t)
	require.NotNil(t, ev.SubscriptionDropped)
	st := status.Convert(ev.SubscriptionDropped.Error)
	assert.Equal(t, codes.FailedPrecondition, st.Code())
}

func TestSubscribeToStreamAcrossSoftDelete(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "s", esdb.NoStream{}, events(2)...)
	_, err := c.DeleteStream(t.Context(), "s", esdb.DeleteStreamOptions{})
	require.NoError(t, err)

	sub := subscribeStream(t, c, "s", esdb.Start{})
	assert.Equal(t, "caught-up", sub.next(t), "a soft-deleted stream has no history")
	appendEvents(t, c, "s", esdb.NoStream{}, events(1)...)
	assert.Equal(t, "s/2", sub.next(t))
}

func TestSubscribeToAll(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "a", esdb.NoStream{}, events(2)...)
	appendEvents(t, c, "b", esdb.NoStream{}, events(1)...)
	all := readAll(t, c, esdb.ReadAllOptions{}, 10)

	t.Run("from start", func(t *testing.T) {
		sub := subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.Start{}})
		assert.Equal(t, []string{"a/0", "a/1", "b/0", "caught-up"}, sub.take(t, 4))
	})
	t.Run("from a position is exclusive", func(t *testing.T) {
		sub := subscribeAll(t, c, esdb.SubscribeToAllOptions{From: all[0].Position})
		assert.Equal(t, []string{"a/1", "b/0", "caught-up"}, sub.take(t, 3))
	})
	t.Run("from end then live", func(t *testing.T) {
		sub := subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.End{}})
		assert.Equal(t, "caught-up", sub.next(t))
		appendEvents(t, c, "c", esdb.NoStream{}, events(2)...)
		assert.Equal(t, []string{"c/0", "c/1"}, sub.take(t, 2))
	})
}

func TestSubscribeCaughtUpAgainAfterFallingBehind(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	sub := subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.Start{}})
	assert.Equal(t, "caught-up", sub.next(t))

	// One write far larger than the live buffer: the subscription reports
	// it fell behind (as EventStoreDB does since 23.10), reads the write
	// as history and reports caught-up again.
	seed := make([]esdbtest.Event, 2000)
	for i := range seed {
		seed[i] = esdbtest.Event{Type: "Tested"}
	}
	require.NoError(t, srv.Seed("bulk", seed...))
	want := make([]string, 0, 2002)
	want = append(want, "fell-behind")
	for i := range seed {
		want = append(want, fmt.Sprintf("bulk/%d", i))
	}
	want = append(want, "caught-up")
	assert.Equal(t, want, sub.take(t, len(want)))
}

func TestFilteredSubscriptions(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "order-1", esdb.NoStream{}, event("OrderPlaced"))
	appendEvents(t, c, "invoice-1", esdb.NoStream{}, event("InvoiceSent"))
	_, err := c.DeleteStream(t.Context(), "invoice-1", esdb.DeleteStreamOptions{}) // writes a $metadata event
	require.NoError(t, err)
	appendEvents(t, c, "order-2", esdb.NoStream{}, event("OrderPlaced"))

	t.Run("exclude system events", func(t *testing.T) {
		sub := subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.Start{}, Filter: esdb.ExcludeSystemEventsFilter()})
		assert.Equal(t, []string{"order-1/0", "invoice-1/0", "order-2/0", "checkpoint", "caught-up"}, stripPositions(sub.take(t, 5)))
	})
	t.Run("stream prefix", func(t *testing.T) {
		sub := subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.Start{}, Filter: &esdb.SubscriptionFilter{
			Type: esdb.StreamFilterType, Prefixes: []string{"order-"},
		}})
		assert.Equal(t, []string{"order-1/0", "order-2/0", "checkpoint", "caught-up"}, stripPositions(sub.take(t, 4)))
		appendEvents(t, c, "invoice-2", esdb.NoStream{}, event("InvoiceSent"))
		appendEvents(t, c, "order-3", esdb.NoStream{}, event("OrderPlaced"))
		assert.Equal(t, "order-3/0", sub.next(t))
	})
	t.Run("event type regex", func(t *testing.T) {
		sub := subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.Start{}, Filter: &esdb.SubscriptionFilter{
			Type: esdb.EventFilterType, Regex: "Sent$",
		}})
		assert.Equal(t, []string{"invoice-1/0", "invoice-2/0", "checkpoint", "caught-up"}, stripPositions(sub.take(t, 4)))
	})
}

// stripPositions drops the positions of checkpoints.
func stripPositions(msgs []string) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		if len(m) > len("checkpoint") && m[:len("checkpoint")] == "checkpoint" {
			m = "checkpoint"
		}
		out[i] = m
	}
	return out
}

func TestFilteredSubscriptionCheckpoints(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	seed := make([]esdbtest.Event, 50)
	for i := range seed {
		seed[i] = esdbtest.Event{Type: "Noise"}
	}
	require.NoError(t, srv.Seed("noise", seed...))
	all := srv.All()

	// Window 10 × multiplier 2: a checkpoint every 20 records scanned,
	// matching or not, and one before caught-up.
	sub := subscribeAll(t, c, esdb.SubscribeToAllOptions{
		From:               esdb.Start{},
		Filter:             &esdb.SubscriptionFilter{Type: esdb.EventFilterType, Prefixes: []string{"Match"}},
		MaxSearchWindow:    10,
		CheckpointInterval: 2,
	})
	want := []string{
		fmt.Sprintf("checkpoint@%d", all[19].Position),
		fmt.Sprintf("checkpoint@%d", all[39].Position),
		fmt.Sprintf("checkpoint@%d", all[49].Position),
		"caught-up",
	}
	assert.Equal(t, want, sub.take(t, len(want)))

	// Live: 10 more noise events make 20 since the last periodic one.
	require.NoError(t, srv.Seed("noise", seed[:10]...))
	require.NoError(t, srv.Seed("match", esdbtest.Event{Type: "Match"}))
	all = srv.All()
	assert.Equal(t, []string{fmt.Sprintf("checkpoint@%d", all[59].Position), "match/0"}, sub.take(t, 2))
}

func TestUnfilteredSubscriptionSendsNoCheckpoints(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	seed := make([]esdbtest.Event, 100)
	for i := range seed {
		seed[i] = esdbtest.Event{Type: "Noise"}
	}
	require.NoError(t, srv.Seed("noise", seed...))
	sub := subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.Start{}})
	for i := range 100 {
		require.Equal(t, fmt.Sprintf("noise/%d", i), sub.next(t))
	}
	assert.Equal(t, "caught-up", sub.next(t))
}

func TestDropSubscriptions(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	stream := subscribeStream(t, c, "s", esdb.Start{})
	all := subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.Start{}})
	assert.Equal(t, "caught-up", stream.next(t))
	assert.Equal(t, "caught-up", all.next(t))

	srv.DropSubscriptions()
	for _, sub := range []*subscription{stream, all} {
		ev := sub.nextEvent(t)
		require.NotNil(t, ev.SubscriptionDropped)
		assert.Equal(t, codes.Unavailable, status.Code(ev.SubscriptionDropped.Error))
	}

	// New subscriptions are not affected.
	again := subscribeStream(t, c, "s", esdb.Start{})
	assert.Equal(t, "caught-up", again.next(t))
	appendEvents(t, c, "s", esdb.NoStream{}, events(1)...)
	assert.Equal(t, "s/0", again.next(t))
}
