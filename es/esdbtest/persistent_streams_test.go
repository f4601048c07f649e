package esdbtest_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/persistent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// correlated is an event whose metadata carries a `$correlationId`.
func correlated(id string) esdb.EventData {
	ev := event("Correlated")
	ev.Metadata = []byte(fmt.Sprintf(`{"$correlationId":%q}`, id))
	return ev
}

// groupInfo returns the info of a stream group.
func groupInfo(t *testing.T, c *esdb.Client, stream, group string) *esdb.PersistentSubscriptionInfo {
	t.Helper()
	info, err := c.GetPersistentSubscriptionInfo(t.Context(), stream, group, esdb.GetPersistentSubscriptionOptions{})
	require.NoError(t, err)
	return info
}

// receiveFrom takes n events from any of subs and returns, per event, the
// index of the consumer that got it.
func receiveFrom(t *testing.T, subs []*psSubscription, n int) map[*esdb.EventAppeared]int {
	t.Helper()
	got := map[*esdb.EventAppeared]int{}
	for len(got) < n {
		select {
		case ev := <-subs[0].ch:
			require.NotNil(t, ev.EventAppeared, "%+v", ev)
			got[ev.EventAppeared] = 0
		case ev := <-subs[1].ch:
			require.NotNil(t, ev.EventAppeared, "%+v", ev)
			got[ev.EventAppeared] = 1
		case <-time.After(waitTimeout):
			t.Fatal("timed out waiting for events")
		}
	}
	return got
}

// plain is an event without metadata.
func plain() esdb.EventData {
	ev := event("Plain")
	ev.Metadata = nil
	return ev
}

// pinKey is what PinnedByCorrelation pins on: the correlation ID, or the
// stream without one.
func pinKey(ev *esdb.EventAppeared) string {
	var meta struct {
		ID string `json:"$correlationId"`
	}
	e := ev.Event.OriginalEvent()
	if json.Unmarshal(e.UserMetadata, &meta) == nil && meta.ID != "" {
		return meta.ID
	}
	return e.StreamID
}

func TestPersistentPinnedByCorrelation(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	// The v4 client cannot create this strategy (it panics on the name):
	// create the group over the raw API, as newer clients do.
	_, err := persistent.NewPersistentSubscriptionsClient(rawConn(t, srv)).Create(ctx, rawCreate("orders", "g", "PinnedByCorrelation"))
	require.NoError(t, err)
	assert.Equal(t, esdb.ConsumerStrategy("PinnedByCorrelation"), groupInfo(t, c, "orders", "g").Settings.ConsumerStrategyName)

	subs := []*psSubscription{connectPersistent(t, c, "orders", "g", 100), connectPersistent(t, c, "orders", "g", 100)}
	waitFor(t, func() bool { return len(groupInfo(t, c, "orders", "g").Connections) == 2 })
	var evs []esdb.EventData
	for i := range 24 {
		if i%4 == 3 {
			evs = append(evs, plain()) // no correlation: pinned by stream
		} else {
			evs = append(evs, correlated(fmt.Sprintf("c-%d", i%6)))
		}
	}
	appendEvents(t, c, "orders", esdb.NoStream{}, evs...)

	owner := map[string]int{}
	for ev, i := range receiveFrom(t, subs, len(evs)) {
		key := pinKey(ev)
		if prev, ok := owner[key]; ok {
			assert.Equal(t, prev, i, "key %s went to two consumers", key)
		}
		owner[key] = i
		require.NoError(t, subs[i].sub.Ack(ev.Event))
	}
	assert.Len(t, owner, 7, "six correlation IDs and the stream")

	// The consumer that leaves hands its keys to the one that stays.
	subs[0].close()
	waitFor(t, func() bool { return len(groupInfo(t, c, "orders", "g").Connections) == 1 })
	appendEvents(t, c, "orders", esdb.Revision(23), correlated("c-0"), correlated("c-1"), plain())
	for range 3 {
		require.NoError(t, subs[1].sub.Ack(subs[1].event(t).Event))
	}
}

func TestPersistentPinnedKeepsKeysWhenAConsumerJoins(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	require.NoError(t, c.CreatePersistentSubscriptionToAll(ctx, "g", esdb.PersistentAllSubscriptionOptions{
		StartFrom: esdb.End{},
		Filter:    &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"p-"}},
		Settings:  settings(func(s *esdb.PersistentSubscriptionSettings) { s.ConsumerStrategyName = esdb.ConsumerStrategyPinned }),
	}))
	first, err := c.SubscribeToPersistentSubscriptionToAll(ctx, "g", esdb.SubscribeToPersistentSubscriptionOptions{BufferSize: 100})
	require.NoError(t, err)
	a := watchPersistent(t, first)
	for i := range 4 {
		appendEvents(t, c, fmt.Sprintf("p-%d", i), esdb.NoStream{}, event("E"))
	}
	for range 4 {
		require.NoError(t, first.Ack(a.event(t).Event))
	}
	// A new consumer only gets keys nobody holds: the four streams stay.
	second, err := c.SubscribeToPersistentSubscriptionToAll(ctx, "g", esdb.SubscribeToPersistentSubscriptionOptions{BufferSize: 100})
	require.NoError(t, err)
	b := watchPersistent(t, second)
	waitFor(t, func() bool {
		info, err := c.GetPersistentSubscriptionInfoToAll(ctx, "g", esdb.GetPersistentSubscriptionOptions{})
		require.NoError(t, err)
		return len(info.Connections) == 2
	})
	for i := range 4 {
		appendEvents(t, c, fmt.Sprintf("p-%d", i), esdb.Revision(0), event("E"))
	}
	for ev, i := range receiveFrom(t, []*psSubscription{a, b}, 4) {
		assert.Equal(t, 0, i, "%s moved to the new consumer", ev.Event.OriginalEvent().StreamID)
	}
}

func TestPersistentParkedStream(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	const parked = "$persistentsubscription-s::g-parked"
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{StartFrom: esdb.Start{}}))
	appendEvents(t, c, "s", esdb.NoStream{}, events(3)...)
	sub := connectPersistent(t, c, "s", "g", 10)
	for range 3 {
		require.NoError(t, sub.sub.Nack("bad", esdb.NackActionPark, sub.event(t).Event))
	}
	waitFor(t, func() bool { return groupInfo(t, c, "s", "g").Stats.ParkedMessagesCount == 3 })

	links, err := readStream(t, c, parked, esdb.ReadStreamOptions{ResolveLinkTos: true}, 10)
	require.NoError(t, err)
	require.Len(t, links, 3)
	rs, err := c.ReadStream(ctx, parked, esdb.ReadStreamOptions{ResolveLinkTos: true}, 1)
	require.NoError(t, err)
	first, err := rs.Recv()
	require.NoError(t, err)
	rs.Close()
	require.NotNil(t, first.Link)
	assert.Equal(t, "$>", first.Link.EventType)
	assert.Equal(t, "0@s", string(first.Link.Data))
	assert.Equal(t, "s", first.Event.StreamID, "resolved, the link shows the original")
	assert.Equal(t, uint64(0), first.Event.EventNumber)

	// Replay the oldest two: they come back, and the parked stream is
	// truncated past them.
	require.NoError(t, c.ReplayParkedMessages(ctx, "s", "g", esdb.ReplayParkedMessagesOptions{StopAt: 2}))
	for _, want := range []string{"s/0 (0)", "s/1 (0)"} {
		ev := sub.event(t)
		assert.Equal(t, want, name(ev))
		require.NoError(t, sub.sub.Ack(ev.Event))
	}
	assert.Equal(t, int64(1), groupInfo(t, c, "s", "g").Stats.ParkedMessagesCount)
	left, err := readStream(t, c, parked, esdb.ReadStreamOptions{ResolveLinkTos: true}, 10)
	require.NoError(t, err)
	require.Len(t, left, 1)
	assert.Equal(t, "2@s", string(left[0].Data))

	require.NoError(t, c.ReplayParkedMessages(ctx, "s", "g", esdb.ReplayParkedMessagesOptions{}))
	assert.Equal(t, "s/2 (0)", name(sub.event(t)))
	assert.Equal(t, int64(0), groupInfo(t, c, "s", "g").Stats.ParkedMessagesCount)

	// Deleting the group deletes its parked stream.
	require.NoError(t, c.DeletePersistentSubscription(ctx, "s", "g", esdb.DeletePersistentSubscriptionOptions{}))
	_, err = readStream(t, c, parked, esdb.ReadStreamOptions{}, 10)
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, errorCode(t, err))
}

func TestPersistentParkedStreamOfAllGroup(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	require.NoError(t, c.CreatePersistentSubscriptionToAll(ctx, "g", esdb.PersistentAllSubscriptionOptions{
		StartFrom: esdb.End{},
		Settings:  settings(func(s *esdb.PersistentSubscriptionSettings) { s.MaxRetryCount = 0 }),
	}))
	sub, err := c.SubscribeToPersistentSubscriptionToAll(ctx, "g", esdb.SubscribeToPersistentSubscriptionOptions{})
	require.NoError(t, err)
	ps := watchPersistent(t, sub)
	appendEvents(t, c, "a", esdb.NoStream{}, events(2)...)
	ev := ps.event(t)
	require.NoError(t, sub.Nack("again", esdb.NackActionRetry, ev.Event), "past MaxRetryCount 0: parked")
	next := ps.event(t)
	assert.Equal(t, "a/1 (0)", name(next), "the group does not deliver its own parked stream")
	require.NoError(t, sub.Ack(next.Event))
	waitFor(t, func() bool {
		info, err := c.GetPersistentSubscriptionInfoToAll(ctx, "g", esdb.GetPersistentSubscriptionOptions{})
		require.NoError(t, err)
		return info.Stats.ParkedMessagesCount == 1
	})

	links, err := readStream(t, c, "$persistentsubscription-$all::g-parked", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	require.Len(t, links, 1)
	assert.Equal(t, "0@a", string(links[0].Data))
	all := readAll(t, c, esdb.ReadAllOptions{}, 1000)
	assert.Contains(t, streamsOf(all), "$persistentsubscription-$all::g-parked", "$all reads show system streams")
}

// streamsOf returns the streams of events.
func streamsOf(evs []*esdb.RecordedEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.StreamID)
	}
	return out
}

// lastCheckpoint reads the newest event of a checkpoint stream.
func lastCheckpoint(t *testing.T, c *esdb.Client, stream string) *esdb.RecordedEvent {
	t.Helper()
	evs, err := readStream(t, c, stream, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	return evs[0]
}

func TestPersistentCheckpointStream(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	const stream = "$persistentsubscription-s::g-checkpoint"
	// A maximum below the minimum is accepted: it forces a checkpoint
	// every two settled messages.
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{
		StartFrom: esdb.Start{},
		Settings: settings(func(s *esdb.PersistentSubscriptionSettings) {
			s.CheckpointLowerBound, s.CheckpointUpperBound, s.CheckpointAfter = 10, 2, 60_000
		}),
	}))
	appendEvents(t, c, "s", esdb.NoStream{}, events(5)...)
	sub := connectPersistent(t, c, "s", "g", 10)
	var got []*esdb.EventAppeared
	for range 5 {
		got = append(got, sub.event(t))
	}
	// Acknowledged out of order: the checkpoint stays before the first
	// unacknowledged message.
	require.NoError(t, sub.sub.Ack(got[1].Event, got[2].Event))
	require.NoError(t, sub.sub.Nack("skip", esdb.NackActionSkip, got[0].Event))
	waitFor(t, func() bool {
		p := groupInfo(t, c, "s", "g").Stats.LastCheckpointedEventRevision
		return p != nil && *p == 2
	})
	cp := lastCheckpoint(t, c, stream)
	assert.Equal(t, "$SubscriptionCheckpoint", cp.EventType)
	assert.JSONEq(t, `"2"`, string(cp.Data))

	// All consumers leave with 3 and 4 unacknowledged: the group resumes
	// from its checkpoint, redelivering only those.
	require.NoError(t, sub.sub.Ack(got[4].Event))
	waitFor(t, func() bool { return groupInfo(t, c, "s", "g").Stats.TotalInFlightMessages == 1 })
	sub.close()
	waitFor(t, func() bool { return len(groupInfo(t, c, "s", "g").Connections) == 0 })
	again := connectPersistent(t, c, "s", "g", 10)
	ev := again.event(t)
	assert.Equal(t, "s/3 (1)", name(ev))
	require.NoError(t, again.sub.Ack(ev.Event))
	waitFor(t, func() bool {
		p := groupInfo(t, c, "s", "g").Stats.LastCheckpointedEventRevision
		return p != nil && *p == 4
	})
	assert.JSONEq(t, `"4"`, string(lastCheckpoint(t, c, stream).Data))
	meta, err := c.GetStreamMetadata(ctx, stream, esdb.ReadStreamOptions{})
	require.NoError(t, err)
	require.NotNil(t, meta.MaxCount())
	assert.Equal(t, uint64(2), *meta.MaxCount(), "only the newest checkpoints are kept")

	require.NoError(t, c.DeletePersistentSubscription(ctx, "s", "g", esdb.DeletePersistentSubscriptionOptions{}))
	_, err = readStream(t, c, stream, esdb.ReadStreamOptions{}, 10)
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, errorCode(t, err), "deleting the group deletes its checkpoints")
}

func TestPersistentCheckpointAfterToAll(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	require.NoError(t, c.CreatePersistentSubscriptionToAll(ctx, "g", esdb.PersistentAllSubscriptionOptions{
		StartFrom: esdb.End{},
		Settings: settings(func(s *esdb.PersistentSubscriptionSettings) {
			s.CheckpointLowerBound, s.CheckpointUpperBound, s.CheckpointAfter = 2, 1000, 20
		}),
	}))
	sub, err := c.SubscribeToPersistentSubscriptionToAll(ctx, "g", esdb.SubscribeToPersistentSubscriptionOptions{})
	require.NoError(t, err)
	ps := watchPersistent(t, sub)
	appendEvents(t, c, "a", esdb.NoStream{}, events(2)...)
	var last *esdb.EventAppeared
	for range 2 {
		last = ps.event(t)
		require.NoError(t, sub.Ack(last.Event))
	}
	pos := last.Event.OriginalEvent().Position
	waitFor(t, func() bool {
		info, err := c.GetPersistentSubscriptionInfoToAll(ctx, "g", esdb.GetPersistentSubscriptionOptions{})
		require.NoError(t, err)
		return info.Stats.LastCheckpointedPosition != nil && *info.Stats.LastCheckpointedPosition == pos
	})
	cp := lastCheckpoint(t, c, "$persistentsubscription-$all::g-checkpoint")
	assert.Equal(t, "$SubscriptionCheckpoint", cp.EventType)
	assert.JSONEq(t, strconv.Quote(fmt.Sprintf("C:%d/P:%d", pos.Commit, pos.Prepare)), string(cp.Data))

	// Fewer than the minimum since then: no checkpoint however long it waits.
	appendEvents(t, c, "a", esdb.Revision(1), events(1)...)
	require.NoError(t, sub.Ack(ps.event(t).Event))
	appendEvents(t, c, "b", esdb.NoStream{}, events(1)...)
	ev := ps.event(t)
	require.NoError(t, sub.Ack(ev.Event))
	pos = ev.Event.OriginalEvent().Position
	waitFor(t, func() bool {
		info, err := c.GetPersistentSubscriptionInfoToAll(ctx, "g", esdb.GetPersistentSubscriptionOptions{})
		require.NoError(t, err)
		return info.Stats.LastCheckpointedPosition != nil && *info.Stats.LastCheckpointedPosition == pos
	})
}

func TestPersistentConnectionName(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	require.NoError(t, c.CreatePersistentSubscription(t.Context(), "s", "g", esdb.PersistentStreamSubscriptionOptions{}))
	// The v4 client sends no connection name itself; other clients send
	// this header.
	ctx := metadata.AppendToOutgoingContext(t.Context(), "connection-name", "worker-1")
	sub, err := c.SubscribeToPersistentSubscription(ctx, "s", "g", esdb.SubscribeToPersistentSubscriptionOptions{})
	require.NoError(t, err)
	watchPersistent(t, sub)
	waitFor(t, func() bool { return len(groupInfo(t, c, "s", "g").Connections) == 1 })
	assert.Equal(t, "worker-1", groupInfo(t, c, "s", "g").Connections[0].ConnectionName)
}

func TestSystemStreamsNeedAdmin(t *testing.T) {
	srv := esdbtest.New(t, esdbtest.WithTLS(), esdbtest.WithUser("ops", "secret"))
	admin := newClient(t, srv)
	cfg, err := esdb.ParseConnectionString(srv.ConnectionString())
	require.NoError(t, err)
	cfg.Username, cfg.Password = "ops", "secret"
	ops, err := esdb.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ops.Close() })

	const stream = "$persistentsubscription-s::g-checkpoint"
	_, err = ops.AppendToStream(t.Context(), stream, esdb.AppendToStreamOptions{}, event("E"))
	assert.Equal(t, esdb.ErrorCodeAccessDenied, errorCode(t, err))
	_, err = ops.AppendToStream(t.Context(), "user-stream", esdb.AppendToStreamOptions{}, event("E"))
	require.NoError(t, err, "ordinary users write ordinary streams")
	_, err = admin.AppendToStream(t.Context(), stream, esdb.AppendToStreamOptions{}, event("E"))
	require.NoError(t, err, "the admin writes system streams")
	_, err = ops.DeleteStream(t.Context(), stream, esdb.DeleteStreamOptions{})
	assert.Equal(t, esdb.ErrorCodeAccessDenied, errorCode(t, err))
}
