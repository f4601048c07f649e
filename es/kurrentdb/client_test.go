package kurrentdb_test

// The project's own end-to-end tests of KurrentDB-Client-Go against the
// esdbtest command: what a team on KurrentDB does with the client itself,
// next to the es.Store.

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/uuid"
	kdb "github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newClient connects KurrentDB-Client-Go to conn.
func newClient(t *testing.T, conn string) *kdb.Client {
	t.Helper()
	cfg, err := kdb.ParseConnectionString(conn)
	require.NoError(t, err)
	cfg.Logger = kdb.NoopLogging()
	client, err := kdb.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// bounded is a context for one server call.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func jsonEvent(typ string) kdb.EventData {
	return kdb.EventData{EventID: uuid.New(), EventType: typ, ContentType: kdb.ContentTypeJson, Data: []byte(`{"n":1}`), Metadata: []byte(`{"tenant":"t1"}`)}
}

// drain reads a read to its end.
func drain(rs *kdb.ReadStream, err error) ([]*kdb.RecordedEvent, error) {
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*kdb.RecordedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev.OriginalEvent())
	}
}

func code(err error) kdb.ErrorCode {
	var e *kdb.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return -1
}

func TestClient(t *testing.T) {
	srv := startServer(t, "25.0.0")
	client := newClient(t, srv.conn)

	t.Run("Streams", func(t *testing.T) {
		stream := "order-" + uuid.NewString()
		res, err := client.AppendToStream(bounded(t), stream, kdb.AppendToStreamOptions{StreamState: kdb.NoStream{}}, jsonEvent("A"), jsonEvent("B"), jsonEvent("C"))
		require.NoError(t, err)
		assert.Equal(t, uint64(2), res.NextExpectedVersion)

		_, err = client.AppendToStream(bounded(t), stream, kdb.AppendToStreamOptions{StreamState: kdb.Revision(7)}, jsonEvent("D"))
		assert.Equal(t, kdb.ErrorCodeWrongExpectedVersion, code(err), "%v", err)
		assert.Contains(t, err.Error(), "but got '2'")

		evs, err := drain(client.ReadStream(bounded(t), stream, kdb.ReadStreamOptions{}, 10))
		require.NoError(t, err)
		require.Len(t, evs, 3)
		assert.Equal(t, []string{"A", "B", "C"}, []string{evs[0].EventType, evs[1].EventType, evs[2].EventType})
		assert.JSONEq(t, `{"tenant":"t1"}`, string(evs[0].UserMetadata))

		back, err := drain(client.ReadStream(bounded(t), stream, kdb.ReadStreamOptions{Direction: kdb.Backwards, From: kdb.End{}}, 2))
		require.NoError(t, err)
		require.Len(t, back, 2)
		assert.Equal(t, uint64(2), back[0].EventNumber)

		_, err = drain(client.ReadStream(bounded(t), "none-"+uuid.NewString(), kdb.ReadStreamOptions{}, 1))
		assert.Equal(t, kdb.ErrorCodeResourceNotFound, code(err), "%v", err)
	})

	t.Run("All", func(t *testing.T) {
		stream := "order-" + uuid.NewString()
		res, err := client.AppendToStream(bounded(t), stream, kdb.AppendToStreamOptions{}, jsonEvent("A"))
		require.NoError(t, err)
		last, err := drain(client.ReadAll(bounded(t), kdb.ReadAllOptions{Direction: kdb.Backwards, From: kdb.End{}}, 1))
		require.NoError(t, err)
		require.Len(t, last, 1)
		assert.Equal(t, stream, last[0].StreamID)
		assert.Equal(t, res.CommitPosition, last[0].Position.Commit)
	})

	t.Run("Subscriptions", func(t *testing.T) {
		stream := "sub-" + uuid.NewString()
		_, err := client.AppendToStream(bounded(t), stream, kdb.AppendToStreamOptions{}, jsonEvent("A"))
		require.NoError(t, err)
		sub, err := client.SubscribeToStream(bounded(t), stream, kdb.SubscribeToStreamOptions{From: kdb.Start{}})
		require.NoError(t, err)
		defer sub.Close()
		ev := sub.Recv()
		require.NotNil(t, ev.EventAppeared)
		assert.Equal(t, "A", ev.EventAppeared.OriginalEvent().EventType)
		ev = sub.Recv()
		require.NotNil(t, ev.CaughtUp, "KurrentDB 25 reports caught-up with its details")
		require.NotNil(t, ev.CaughtUp.StreamRevision)
		assert.Equal(t, uint64(0), *ev.CaughtUp.StreamRevision)
		_, err = client.AppendToStream(bounded(t), stream, kdb.AppendToStreamOptions{}, jsonEvent("B"))
		require.NoError(t, err)
		ev = sub.Recv()
		require.NotNil(t, ev.EventAppeared)
		assert.Equal(t, "B", ev.EventAppeared.OriginalEvent().EventType)

		prefix := "filtered-" + uuid.NewString()
		all, err := client.SubscribeToAll(bounded(t), kdb.SubscribeToAllOptions{From: kdb.Start{}, Filter: &kdb.SubscriptionFilter{Type: kdb.StreamFilterType, Prefixes: []string{prefix}}})
		require.NoError(t, err)
		defer all.Close()
		_, err = client.AppendToStream(bounded(t), prefix+"-1", kdb.AppendToStreamOptions{}, jsonEvent("F"))
		require.NoError(t, err)
		for {
			ev := all.Recv()
			require.Nil(t, ev.SubscriptionDropped)
			if ev.EventAppeared != nil {
				assert.Equal(t, prefix+"-1", ev.EventAppeared.OriginalEvent().StreamID)
				break
			}
		}
	})

	t.Run("Deletes", func(t *testing.T) {
		stream := "del-" + uuid.NewString()
		_, err := client.AppendToStream(bounded(t), stream, kdb.AppendToStreamOptions{}, jsonEvent("A"))
		require.NoError(t, err)
		_, err = client.DeleteStream(bounded(t), stream, kdb.DeleteStreamOptions{StreamState: kdb.Revision(0)})
		require.NoError(t, err)
		_, err = drain(client.ReadStream(bounded(t), stream, kdb.ReadStreamOptions{}, 1))
		assert.Equal(t, kdb.ErrorCodeResourceNotFound, code(err), "%v", err)
		res, err := client.AppendToStream(bounded(t), stream, kdb.AppendToStreamOptions{StreamState: kdb.NoStream{}}, jsonEvent("B"))
		require.NoError(t, err, "a soft-deleted stream is recreated")
		assert.Equal(t, uint64(1), res.NextExpectedVersion)

		_, err = client.TombstoneStream(bounded(t), stream, kdb.TombstoneStreamOptions{StreamState: kdb.Any{}})
		require.NoError(t, err)
		_, err = client.AppendToStream(bounded(t), stream, kdb.AppendToStreamOptions{}, jsonEvent("C"))
		assert.Equal(t, kdb.ErrorCodeStreamDeleted, code(err), "%v", err)
		_, err = drain(client.ReadStream(bounded(t), stream, kdb.ReadStreamOptions{}, 1))
		assert.Equal(t, kdb.ErrorCodeStreamDeleted, code(err), "%v", err)
	})

	t.Run("Metadata", func(t *testing.T) {
		stream := "meta-" + uuid.NewString()
		var m kdb.StreamMetadata
		m.SetMaxCount(3)
		m.AddCustomProperty("owner", "billing")
		_, err := client.SetStreamMetadata(bounded(t), stream, kdb.AppendToStreamOptions{}, m)
		require.NoError(t, err)
		got, err := client.GetStreamMetadata(bounded(t), stream, kdb.ReadStreamOptions{})
		require.NoError(t, err)
		require.NotNil(t, got.MaxCount())
		assert.Equal(t, uint64(3), *got.MaxCount())
		assert.Equal(t, "billing", got.CustomProperty("owner"))

		for range 5 {
			_, err = client.AppendToStream(bounded(t), stream, kdb.AppendToStreamOptions{}, jsonEvent("A"))
			require.NoError(t, err)
		}
		evs, err := drain(client.ReadStream(bounded(t), stream, kdb.ReadStreamOptions{}, 10))
		require.NoError(t, err)
		assert.Len(t, evs, 3, "max count keeps the last 3")
	})

	t.Run("MultiStreamAppend", func(t *testing.T) {
		a, b := "ma-"+uuid.NewString(), "mb-"+uuid.NewString()
		res, err := client.MultiStreamAppend(bounded(t), func(yield func(kdb.AppendStreamRequest) bool) {
			_ = yield(kdb.AppendStreamRequest{StreamName: a, ExpectedStreamState: kdb.NoStream{}, Events: func(y func(kdb.EventData) bool) { _ = y(jsonEvent("A")) && y(jsonEvent("B")) }}) &&
				yield(kdb.AppendStreamRequest{StreamName: b, ExpectedStreamState: kdb.Any{}, Events: func(y func(kdb.EventData) bool) { _ = y(jsonEvent("C")) }})
		})
		require.NoError(t, err)
		require.Len(t, res.Responses, 2)
		assert.Equal(t, int64(1), res.Responses[0].StreamRevision)
		assert.Equal(t, int64(0), res.Responses[1].StreamRevision)

		_, err = client.MultiStreamAppend(bounded(t), func(yield func(kdb.AppendStreamRequest) bool) {
			_ = yield(kdb.AppendStreamRequest{StreamName: a, ExpectedStreamState: kdb.NoStream{}, Events: func(y func(kdb.EventData) bool) { _ = y(jsonEvent("D")) }})
		})
		require.Equal(t, kdb.ErrorCodeStreamRevisionConflict, code(err), "%v", err)
		var conflict *kdb.StreamRevisionConflictError
		require.ErrorAs(t, err, &conflict)
		assert.Equal(t, a, conflict.Stream)
		assert.Equal(t, kdb.StreamRevision{Value: 1}, conflict.ActualRevision)
	})

	t.Run("PersistentSubscriptions", func(t *testing.T) {
		stream := "ps-" + uuid.NewString()
		group := "g-" + uuid.NewString()
		_, err := client.AppendToStream(bounded(t), stream, kdb.AppendToStreamOptions{}, jsonEvent("A"), jsonEvent("B"))
		require.NoError(t, err)
		settings := kdb.SubscriptionSettingsDefault()
		settings.MaxRetryCount = 0
		require.NoError(t, client.CreatePersistentSubscription(bounded(t), stream, group, kdb.PersistentStreamSubscriptionOptions{Settings: &settings, StartFrom: kdb.Start{}}))
		err = client.CreatePersistentSubscription(bounded(t), stream, group, kdb.PersistentStreamSubscriptionOptions{})
		assert.Equal(t, kdb.ErrorCodeResourceAlreadyExists, code(err), "%v", err)

		settings.ExtraStatistics = true
		require.NoError(t, client.UpdatePersistentSubscription(bounded(t), stream, group, kdb.PersistentStreamSubscriptionOptions{Settings: &settings}))
		info, err := client.GetPersistentSubscriptionInfo(bounded(t), stream, group, kdb.GetPersistentSubscriptionOptions{})
		require.NoError(t, err)
		assert.Equal(t, group, info.GroupName)
		assert.Equal(t, stream, info.EventSource)
		require.NotNil(t, info.Settings)
		assert.True(t, info.Settings.ExtraStatistics, "the update is kept")
		list, err := client.ListPersistentSubscriptionsForStream(bounded(t), stream, kdb.ListPersistentSubscriptionsOptions{})
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.Equal(t, group, list[0].GroupName)

		sub, err := client.SubscribeToPersistentSubscription(bounded(t), stream, group, kdb.SubscribeToPersistentSubscriptionOptions{})
		require.NoError(t, err)
		defer sub.Close()
		next := func() *kdb.ResolvedEvent {
			t.Helper()
			for {
				ev := sub.Recv()
				require.Nil(t, ev.SubscriptionDropped)
				if ev.EventAppeared != nil {
					return ev.EventAppeared.Event
				}
			}
		}
		a := next()
		assert.Equal(t, "A", a.OriginalEvent().EventType)
		require.NoError(t, sub.Ack(a))
		b := next()
		assert.Equal(t, "B", b.OriginalEvent().EventType)
		require.NoError(t, sub.Nack("cannot handle it", kdb.NackActionPark, b))

		parked := func() int64 {
			info, err := client.GetPersistentSubscriptionInfo(bounded(t), stream, group, kdb.GetPersistentSubscriptionOptions{})
			require.NoError(t, err)
			return info.Stats.ParkedMessagesCount
		}
		require.Eventually(t, func() bool { return parked() == 1 }, 10*time.Second, 10*time.Millisecond, "the nacked event is parked")
		require.NoError(t, client.ReplayParkedMessages(bounded(t), stream, group, kdb.ReplayParkedMessagesOptions{}))
		again := next()
		assert.Equal(t, b.OriginalEvent().EventID, again.OriginalEvent().EventID, "a replayed parked event comes again")
		require.NoError(t, sub.Ack(again))

		require.NoError(t, client.DeletePersistentSubscription(bounded(t), stream, group, kdb.DeletePersistentSubscriptionOptions{}))
		_, err = client.GetPersistentSubscriptionInfo(bounded(t), stream, group, kdb.GetPersistentSubscriptionOptions{})
		assert.Equal(t, kdb.ErrorCodeResourceNotFound, code(err), "%v", err)
	})
}
