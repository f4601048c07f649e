package esdbtest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// psSubscription pumps a persistent subscription into a channel.
type psSubscription struct {
	sub  *esdb.PersistentSubscription
	ch   chan *esdb.PersistentSubscriptionEvent
	stop chan struct{}
	done chan struct{}
}

func watchPersistent(t testing.TB, sub *esdb.PersistentSubscription) *psSubscription {
	t.Helper()
	s := &psSubscription{
		sub:  sub,
		ch:   make(chan *esdb.PersistentSubscriptionEvent),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		for {
			ev := sub.Recv()
			select {
			case s.ch <- ev:
			case <-s.stop:
				return
			}
			if ev.SubscriptionDropped != nil {
				return
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

// close stops the pump and the subscription; calling it again does nothing.
func (s *psSubscription) close() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	_ = s.sub.Close()
	<-s.done
}

// next returns the next message.
func (s *psSubscription) next(t testing.TB) *esdb.PersistentSubscriptionEvent {
	t.Helper()
	select {
	case ev := <-s.ch:
		return ev
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a persistent subscription message")
		return nil
	}
}

// event returns the next message, which must be an event.
func (s *psSubscription) event(t testing.TB) *esdb.EventAppeared {
	t.Helper()
	ev := s.next(t)
	require.NotNil(t, ev.EventAppeared, "expected an event, got %+v", ev)
	return ev.EventAppeared
}

// name is "stream/revision (retry)" for an event.
func name(ev *esdb.EventAppeared) string {
	e := ev.Event.OriginalEvent()
	return fmt.Sprintf("%s/%d (%d)", e.StreamID, e.EventNumber, ev.RetryCount)
}

func connectPersistent(t *testing.T, c *esdb.Client, stream, group string, buffer int) *psSubscription {
	t.Helper()
	sub, err := c.SubscribeToPersistentSubscription(t.Context(), stream, group, esdb.SubscribeToPersistentSubscriptionOptions{BufferSize: uint32(buffer)})
	require.NoError(t, err)
	return watchPersistent(t, sub)
}

func settings(mutate func(*esdb.PersistentSubscriptionSettings)) *esdb.PersistentSubscriptionSettings {
	s := esdb.SubscriptionSettingsDefault()
	if mutate != nil {
		mutate(&s)
	}
	return &s
}

func TestPersistentLifecycleErrors(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()

	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{}))
	err := c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{})
	assert.Equal(t, esdb.ErrorCodeResourceAlreadyExists, errorCode(t, err))
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g2", esdb.PersistentStreamSubscriptionOptions{}), "another group")
	require.NoError(t, c.CreatePersistentSubscription(ctx, "other", "g", esdb.PersistentStreamSubscriptionOptions{}), "another stream")

	err = c.UpdatePersistentSubscription(ctx, "s", "missing", esdb.PersistentStreamSubscriptionOptions{})
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, errorCode(t, err))
	err = c.DeletePersistentSubscription(ctx, "s", "missing", esdb.DeletePersistentSubscriptionOptions{})
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, errorCode(t, err))
	_, err = c.SubscribeToPersistentSubscription(ctx, "s", "missing", esdb.SubscribeToPersistentSubscriptionOptions{})
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, errorCode(t, err))
	_, err = c.GetPersistentSubscriptionInfo(ctx, "s", "missing", esdb.GetPersistentSubscriptionOptions{})
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, errorCode(t, err))
	err = c.ReplayParkedMessages(ctx, "s", "missing", esdb.ReplayParkedMessagesOptions{})
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, errorCode(t, err))

	require.NoError(t, c.DeletePersistentSubscription(ctx, "s", "g", esdb.DeletePersistentSubscriptionOptions{}))
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{}), "create after delete")

	require.NoError(t, c.CreatePersistentSubscriptionToAll(ctx, "g", esdb.PersistentAllSubscriptionOptions{}))
	err = c.CreatePersistentSubscriptionToAll(ctx, "g", esdb.PersistentAllSubscriptionOptions{})
	assert.Equal(t, esdb.ErrorCodeResourceAlreadyExists, errorCode(t, err))
	require.NoError(t, c.UpdatePersistentSubscriptionToAll(ctx, "g", esdb.PersistentAllSubscriptionOptions{Settings: settings(nil)}))
	require.NoError(t, c.DeletePersistentSubscriptionToAll(ctx, "g", esdb.DeletePersistentSubscriptionOptions{}))
	err = c.DeletePersistentSubscriptionToAll(ctx, "g", esdb.DeletePersistentSubscriptionOptions{})
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, errorCode(t, err))

	require.NoError(t, c.RestartPersistentSubscriptionSubsystem(ctx, esdb.RestartPersistentSubscriptionSubsystemOptions{}))
}

func TestPersistentStartPoints(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	appendEvents(t, c, "s", esdb.NoStream{}, events(5)...)

	tests := []struct {
		from esdb.StreamPosition
		want string
	}{
		{esdb.Start{}, "s/0 (0)"},
		{esdb.Revision(3), "s/3 (0)"},
		{esdb.Revision(7), "s/7 (0)"},
		{esdb.End{}, "s/5 (0)"},
	}
	for i, tt := range tests {
		group := fmt.Sprintf("g%d", i)
		require.NoError(t, c.CreatePersistentSubscription(ctx, "s", group, esdb.PersistentStreamSubscriptionOptions{StartFrom: tt.from}))
	}
	// Appended after the groups were created: End starts here.
	appendEvents(t, c, "s", esdb.Revision(4), events(3)...)
	for i, tt := range tests {
		sub := connectPersistent(t, c, "s", fmt.Sprintf("g%d", i), 10)
		assert.Equal(t, tt.want, name(sub.event(t)), "start %T %v", tt.from, tt.from)
	}
}

func TestPersistentBufferAckAndNack(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	appendEvents(t, c, "s", esdb.NoStream{}, events(4)...)
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{StartFrom: esdb.Start{}}))

	sub := connectPersistent(t, c, "s", "g", 2)
	first, second := sub.event(t), sub.event(t)
	assert.Equal(t, "s/0 (0)", name(first))
	assert.Equal(t, "s/1 (0)", name(second))

	info, err := c.GetPersistentSubscriptionInfo(ctx, "s", "g", esdb.GetPersistentSubscriptionOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(2), info.Stats.TotalItems, "a full buffer stops delivery")
	assert.Equal(t, int64(2), info.Stats.TotalInFlightMessages)
	require.Len(t, info.Connections, 1)
	assert.Equal(t, int64(0), info.Connections[0].AvailableSlots)

	require.NoError(t, sub.sub.Ack(first.Event))
	assert.Equal(t, "s/2 (0)", name(sub.event(t)))

	require.NoError(t, sub.sub.Nack("again", esdb.NackActionRetry, second.Event))
	assert.Equal(t, "s/1 (1)", name(sub.event(t)), "a retried message comes back with its retry count")
}

func TestPersistentParkAndReplay(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{
		StartFrom: esdb.Start{},
		Settings:  settings(func(s *esdb.PersistentSubscriptionSettings) { s.MaxRetryCount = 1 }),
	}))
	sub := connectPersistent(t, c, "s", "g", 10)
	appendEvents(t, c, "s", esdb.NoStream{}, events(2)...)

	e0, e1 := sub.event(t), sub.event(t)
	require.NoError(t, sub.sub.Nack("bad", esdb.NackActionPark, e0.Event))
	require.NoError(t, sub.sub.Nack("retry", esdb.NackActionRetry, e1.Event))
	e1 = sub.event(t)
	assert.Equal(t, "s/1 (1)", name(e1))
	require.NoError(t, sub.sub.Nack("retry", esdb.NackActionRetry, e1.Event))

	// Both are parked now: one by request, one past MaxRetryCount. Poll
	// the info until the server has applied the nacks.
	waitFor(t, func() bool {
		info, err := c.GetPersistentSubscriptionInfo(ctx, "s", "g", esdb.GetPersistentSubscriptionOptions{})
		require.NoError(t, err)
		return info.Stats.ParkedMessagesCount == 2
	})

	require.NoError(t, c.ReplayParkedMessages(ctx, "s", "g", esdb.ReplayParkedMessagesOptions{}))
	assert.Equal(t, "s/0 (0)", name(sub.event(t)))
	assert.Equal(t, "s/1 (0)", name(sub.event(t)))
}

func TestPersistentMessageTimeout(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{
		StartFrom: esdb.Start{},
		Settings:  settings(func(s *esdb.PersistentSubscriptionSettings) { s.MessageTimeout = 50 }),
	}))
	appendEvents(t, c, "s", esdb.NoStream{}, events(1)...)
	sub := connectPersistent(t, c, "s", "g", 10)
	assert.Equal(t, "s/0 (0)", name(sub.event(t)))
	// Not acknowledged in time: delivered again.
	ev := sub.event(t)
	assert.Equal(t, "s/0 (1)", name(ev))
	require.NoError(t, sub.sub.Ack(ev.Event))
}

func TestPersistentConsumerLeavesAndMessagesMove(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{StartFrom: esdb.Start{}}))
	appendEvents(t, c, "s", esdb.NoStream{}, events(1)...)

	first := connectPersistent(t, c, "s", "g", 10)
	assert.Equal(t, "s/0 (0)", name(first.event(t)))
	first.close()

	second := connectPersistent(t, c, "s", "g", 10)
	assert.Equal(t, "s/0 (1)", name(second.event(t)))
}

func TestPersistentDeleteDropsConsumers(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{
		Settings: settings(func(s *esdb.PersistentSubscriptionSettings) { s.MaxSubscriberCount = 1 }),
	}))
	sub := connectPersistent(t, c, "s", "g", 10)

	_, err := c.SubscribeToPersistentSubscription(ctx, "s", "g", esdb.SubscribeToPersistentSubscriptionOptions{})
	require.Error(t, err, "only one subscriber allowed")

	require.NoError(t, c.DeletePersistentSubscription(ctx, "s", "g", esdb.DeletePersistentSubscriptionOptions{}))
	ev := sub.next(t)
	require.NotNil(t, ev.SubscriptionDropped)
	assert.Equal(t, codes.NotFound, status.Code(ev.SubscriptionDropped.Error))
}

func TestPersistentToAllWithFilter(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	appendEvents(t, c, "order-1", esdb.NoStream{}, event("OrderPlaced"))
	appendEvents(t, c, "invoice-1", esdb.NoStream{}, event("InvoiceSent"))
	require.NoError(t, c.CreatePersistentSubscriptionToAll(ctx, "g", esdb.PersistentAllSubscriptionOptions{
		StartFrom: esdb.Start{},
		Filter:    &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"order-"}},
		Settings: settings(func(s *esdb.PersistentSubscriptionSettings) {
			s.CheckpointLowerBound, s.CheckpointUpperBound = 1, 1
		}),
	}))
	sub, err := c.SubscribeToPersistentSubscriptionToAll(ctx, "g", esdb.SubscribeToPersistentSubscriptionOptions{})
	require.NoError(t, err)
	ps := watchPersistent(t, sub)
	ev := ps.event(t)
	assert.Equal(t, "order-1/0 (0)", name(ev))
	require.NoError(t, sub.Ack(ev.Event))
	appendEvents(t, c, "invoice-2", esdb.NoStream{}, event("InvoiceSent"))
	appendEvents(t, c, "order-2", esdb.NoStream{}, event("OrderPlaced"))
	ev = ps.event(t)
	assert.Equal(t, "order-2/0 (0)", name(ev))
	require.NoError(t, sub.Ack(ev.Event))

	waitFor(t, func() bool {
		info, err := c.GetPersistentSubscriptionInfoToAll(ctx, "g", esdb.GetPersistentSubscriptionOptions{})
		require.NoError(t, err)
		return info.Stats.LastCheckpointedPosition != nil && *info.Stats.LastCheckpointedPosition == ev.Event.OriginalEvent().Position
	})
}

func TestPersistentListAndInfo(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	custom := settings(func(s *esdb.PersistentSubscriptionSettings) {
		s.MaxRetryCount = 3
		s.MessageTimeout = 1234
		s.ConsumerStrategyName = esdb.ConsumerStrategyDispatchToSingle
		s.ResolveLinkTos = true
	})
	require.NoError(t, c.CreatePersistentSubscription(ctx, "/a/b", "/g/1", esdb.PersistentStreamSubscriptionOptions{
		StartFrom: esdb.Revision(5), Settings: custom,
	}))
	require.NoError(t, c.CreatePersistentSubscription(ctx, "/a/b", "g2", esdb.PersistentStreamSubscriptionOptions{}))
	require.NoError(t, c.CreatePersistentSubscriptionToAll(ctx, "all", esdb.PersistentAllSubscriptionOptions{}))

	info, err := c.GetPersistentSubscriptionInfo(ctx, "/a/b", "/g/1", esdb.GetPersistentSubscriptionOptions{})
	require.NoError(t, err)
	assert.Equal(t, "/a/b", info.EventSource)
	assert.Equal(t, "/g/1", info.GroupName)
	assert.Equal(t, "Live", info.Status)
	assert.Equal(t, esdb.Revision(5), info.Settings.StartFrom)
	assert.Equal(t, int32(3), info.Settings.MaxRetryCount)
	assert.Equal(t, int32(1234), info.Settings.MessageTimeout)
	assert.Equal(t, esdb.ConsumerStrategyDispatchToSingle, info.Settings.ConsumerStrategyName)
	assert.True(t, info.Settings.ResolveLinkTos)

	all, err := c.ListAllPersistentSubscriptions(ctx, esdb.ListPersistentSubscriptionsOptions{})
	require.NoError(t, err)
	assert.Len(t, all, 3)
	forStream, err := c.ListPersistentSubscriptionsForStream(ctx, "/a/b", esdb.ListPersistentSubscriptionsOptions{})
	require.NoError(t, err)
	assert.Len(t, forStream, 2)
	toAll, err := c.ListPersistentSubscriptionsToAll(ctx, esdb.ListPersistentSubscriptionsOptions{})
	require.NoError(t, err)
	require.Len(t, toAll, 1)
	assert.Equal(t, "$all", toAll[0].EventSource)
	assert.Equal(t, esdb.End{}, toAll[0].Settings.StartFrom)
	_, err = c.ListPersistentSubscriptionsForStream(ctx, "nothing", esdb.ListPersistentSubscriptionsOptions{})
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, errorCode(t, err))
}

// waitFor polls cond until it holds or the wait times out.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitTimeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("condition not met in time")
		}
	}
}

func TestPersistentUpdateDropsConsumersAndAppliesSettings(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{}))
	sub := connectPersistent(t, c, "s", "g", 10)

	updated := settings(func(s *esdb.PersistentSubscriptionSettings) {
		s.MaxRetryCount = 7
		s.ConsumerStrategyName = esdb.ConsumerStrategyPinned
	})
	require.NoError(t, c.UpdatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{Settings: updated}))
	ev := sub.next(t)
	require.NotNil(t, ev.SubscriptionDropped)
	assert.Equal(t, codes.Canceled, status.Code(ev.SubscriptionDropped.Error))

	info, err := c.GetPersistentSubscriptionInfo(ctx, "s", "g", esdb.GetPersistentSubscriptionOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(7), info.Settings.MaxRetryCount)
	assert.Equal(t, esdb.ConsumerStrategyPinned, info.Settings.ConsumerStrategyName)
	assert.Empty(t, info.Connections)
}

func TestPersistentInvalidSettings(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	bad := settings(func(s *esdb.PersistentSubscriptionSettings) { s.MaxRetryCount = -1 })
	err := c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{Settings: bad})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "negative counts")

	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{}))
	err = c.UpdatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{Settings: bad})
	require.Error(t, err)
}

func TestPersistentConsumerStrategies(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()

	// delivered returns how many messages each connection was given.
	delivered := func(t *testing.T, stream, group string) []int64 {
		info, err := c.GetPersistentSubscriptionInfo(ctx, stream, group, esdb.GetPersistentSubscriptionOptions{})
		require.NoError(t, err)
		var out []int64
		for _, conn := range info.Connections {
			out = append(out, conn.TotalItemsProcessed)
		}
		return out
	}

	for _, tt := range []struct {
		strategy esdb.ConsumerStrategy
		want     []int64
	}{
		{esdb.ConsumerStrategyRoundRobin, []int64{2, 2}},
		{esdb.ConsumerStrategyDispatchToSingle, []int64{4, 0}},
	} {
		t.Run(string(tt.strategy), func(t *testing.T) {
			stream := "s-" + string(tt.strategy)
			require.NoError(t, c.CreatePersistentSubscription(ctx, stream, "g", esdb.PersistentStreamSubscriptionOptions{
				StartFrom: esdb.Start{},
				Settings:  settings(func(s *esdb.PersistentSubscriptionSettings) { s.ConsumerStrategyName = tt.strategy }),
			}))
			a := connectPersistent(t, c, stream, "g", 10)
			b := connectPersistent(t, c, stream, "g", 10)
			waitFor(t, func() bool { return len(delivered(t, stream, "g")) == 2 })

			appendEvents(t, c, stream, esdb.NoStream{}, events(4)...)
			got := 0
			for got < 4 {
				select {
				case ev := <-a.ch:
					require.NotNil(t, ev.EventAppeared)
					got++
				case ev := <-b.ch:
					require.NotNil(t, ev.EventAppeared)
					got++
				case <-time.After(waitTimeout):
					t.Fatal("timed out")
				}
			}
			assert.Equal(t, tt.want, delivered(t, stream, "g"))
		})
	}

	t.Run("Pinned", func(t *testing.T) {
		require.NoError(t, c.CreatePersistentSubscriptionToAll(ctx, "pinned", esdb.PersistentAllSubscriptionOptions{
			StartFrom: esdb.End{},
			Settings:  settings(func(s *esdb.PersistentSubscriptionSettings) { s.ConsumerStrategyName = esdb.ConsumerStrategyPinned }),
		}))
		var subs []*psSubscription
		for range 2 {
			sub, err := c.SubscribeToPersistentSubscriptionToAll(ctx, "pinned", esdb.SubscribeToPersistentSubscriptionOptions{BufferSize: 50})
			require.NoError(t, err)
			subs = append(subs, watchPersistent(t, sub))
		}
		for i := range 6 {
			appendEvents(t, c, fmt.Sprintf("p-%d", i%3), esdb.Any{}, events(2)...)
		}
		owner := map[string]int{}
		seen := func(i int, ev *esdb.PersistentSubscriptionEvent) {
			require.NotNil(t, ev.EventAppeared)
			stream := ev.EventAppeared.Event.OriginalEvent().StreamID
			if prev, ok := owner[stream]; ok {
				assert.Equal(t, prev, i, "stream %s moved between consumers", stream)
			}
			owner[stream] = i
		}
		for range 12 {
			select {
			case ev := <-subs[0].ch:
				seen(0, ev)
			case ev := <-subs[1].ch:
				seen(1, ev)
			case <-time.After(waitTimeout):
				t.Fatal("timed out")
			}
		}
		assert.Len(t, owner, 3)
	})
}

func TestDropSubscriptionsEndsPersistentConsumers(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{StartFrom: esdb.Start{}}))
	appendEvents(t, c, "s", esdb.NoStream{}, events(1)...)
	sub := connectPersistent(t, c, "s", "g", 10)
	assert.Equal(t, "s/0 (0)", name(sub.event(t)))

	srv.DropSubscriptions()
	ev := sub.next(t)
	require.NotNil(t, ev.SubscriptionDropped)
	assert.Equal(t, codes.Unavailable, status.Code(ev.SubscriptionDropped.Error))

	// The unacknowledged event comes back on the next connection.
	again := connectPersistent(t, c, "s", "g", 10)
	assert.Equal(t, "s/0 (1)", name(again.event(t)))
}
