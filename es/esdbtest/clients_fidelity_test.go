package esdbtest_test

import (
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/persistent"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// Deviations from EventStoreDB found through the Node.js clients, each
// checked here with the v4 Go client or raw gRPC.

// TestStreamReadCarriesCommitPosition: servers from 22.6.0 on send the
// commit position of events read from a stream (the Node.js clients'
// getStreamMetadata returns it as metastreamRevision); older ones send
// none.
func TestStreamReadCarriesCommitPosition(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    bool
	}{{"24.10.0", true}, {"23.10.0", true}, {"22.6.0", true}, {"22.4.0", false}, {"21.10.9", false}} {
		t.Run(tc.version, func(t *testing.T) {
			srv := esdbtest.New(t, esdbtest.WithServerVersion(tc.version))
			c := newClient(t, srv)
			res := appendEvents(t, c, "s", esdb.NoStream{}, events(2)...)
			rs, err := c.ReadStream(t.Context(), "s", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
			require.NoError(t, err)
			defer rs.Close()
			ev, err := rs.Recv()
			require.NoError(t, err)
			if !tc.want {
				assert.Nil(t, ev.Commit)
				return
			}
			require.NotNil(t, ev.Commit)
			assert.Equal(t, res.CommitPosition, *ev.Commit)
		})
	}
}

// TestPersistentErrorMessages: EventStoreDB's persistent-subscription
// errors name the group and stream without quotes (the Node.js clients'
// tests compare the whole text, e.g. "5 NOT_FOUND: Subscription group g
// on stream $all does not exist.").
func TestPersistentErrorMessages(t *testing.T) {
	srv := esdbtest.New(t)
	ps := persistent.NewPersistentSubscriptionsClient(rawConn(t, srv))
	ctx := ctxWithTimeout(t)
	all := &persistent.GetInfoReq_Options_All{All: &shared.Empty{}}

	_, err := ps.GetInfo(ctx, &persistent.GetInfoReq{Options: &persistent.GetInfoReq_Options{StreamOption: all, GroupName: "g"}})
	assertStatus(t, err, codes.NotFound, "Subscription group g on stream $all does not exist.")
	_, err = ps.List(ctx, &persistent.ListReq{Options: &persistent.ListReq_Options{ListOption: &persistent.ListReq_Options_ListForStream{
		ListForStream: &persistent.ListReq_StreamOption{StreamOption: &persistent.ListReq_StreamOption_All{All: &shared.Empty{}}},
	}}})
	assertStatus(t, err, codes.NotFound, "Subscription group  on stream $all does not exist.")

	c := newClient(t, srv)
	opts := esdb.PersistentStreamSubscriptionOptions{
		Settings: settings(func(s *esdb.PersistentSubscriptionSettings) { s.MaxSubscriberCount = 1 }),
	}
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", opts))
	_, err = ps.Create(ctx, rawCreate("s", "g", ""))
	assertStatus(t, err, codes.AlreadyExists, "Subscription group g on stream s exists.")

	first := connectPersistent(t, c, "s", "g", 10)
	second, err := ps.Read(ctx)
	require.NoError(t, err)
	require.NoError(t, second.Send(&persistent.ReadReq{Content: &persistent.ReadReq_Options_{Options: &persistent.ReadReq_Options{
		StreamOption: &persistent.ReadReq_Options_StreamIdentifier{StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte("s")}},
		GroupName:    "g",
		BufferSize:   10,
		UuidOption:   &persistent.ReadReq_Options_UUIDOption{Content: &persistent.ReadReq_Options_UUIDOption_String_{String_: &shared.Empty{}}},
	}}}))
	_, err = second.Recv()
	assertStatus(t, err, codes.FailedPrecondition, "Maximum subscriptions reached for subscription group g on stream s.")

	require.NoError(t, c.UpdatePersistentSubscription(ctx, "s", "g", opts))
	ev := first.next(t)
	require.NotNil(t, ev.SubscriptionDropped)
	assert.Contains(t, ev.SubscriptionDropped.Error.Error(), "Subscription group g on stream s was dropped.")
}

// assertStatus checks the gRPC status of err.
func assertStatus(t *testing.T, err error, code codes.Code, message string) {
	t.Helper()
	s, ok := status.FromError(err)
	require.True(t, ok, "not a gRPC status: %v", err)
	assert.Equal(t, code, s.Code())
	assert.Equal(t, message, s.Message())
}

// rawCreate returns the request that creates a group on a stream from its
// start, with EventStoreDB's default settings and the consumer strategy
// named in the consumer_strategy field (as clients newer than the v4 Go
// client send it; "" for none).
func rawCreate(stream, group, strategy string) *persistent.CreateReq {
	return &persistent.CreateReq{Options: &persistent.CreateReq_Options{
		StreamOption: &persistent.CreateReq_Options_Stream{Stream: &persistent.CreateReq_StreamOptions{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(stream)},
			RevisionOption:   &persistent.CreateReq_StreamOptions_Start{Start: &shared.Empty{}},
		}},
		GroupName: group,
		Settings: &persistent.CreateReq_Settings{
			MaxRetryCount: 10, MinCheckpointCount: 10, MaxCheckpointCount: 1000,
			LiveBufferSize: 500, ReadBatchSize: 20, HistoryBufferSize: 500,
			ConsumerStrategy: strategy,
			MessageTimeout:   &persistent.CreateReq_Settings_MessageTimeoutMs{MessageTimeoutMs: 30000},
			CheckpointAfter:  &persistent.CreateReq_Settings_CheckpointAfterMs{CheckpointAfterMs: 2000},
		},
	}}
}
