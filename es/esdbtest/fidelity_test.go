package esdbtest_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/persistent"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// legacyUpdate sends an Update the way the Node.js clients do: the stream
// in the deprecated stream_identifier field and the start in the
// deprecated settings.revision.
func legacyUpdate(t *testing.T, srv *esdbtest.Server, stream, group string, revision uint64) {
	t.Helper()
	opts := &persistent.UpdateReq_Options{
		//lint:ignore SA1019 the deprecated fields are what this test sends
		StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(stream)},
		GroupName:        group,
		Settings: &persistent.UpdateReq_Settings{
			//lint:ignore SA1019 the deprecated fields are what this test sends
			Revision:      revision,
			MaxRetryCount: 10, MinCheckpointCount: 10, MaxCheckpointCount: 1000,
			LiveBufferSize: 500, ReadBatchSize: 20, HistoryBufferSize: 500,
			NamedConsumerStrategy: persistent.UpdateReq_RoundRobin,
			MessageTimeout:        &persistent.UpdateReq_Settings_MessageTimeoutMs{MessageTimeoutMs: 30000},
			CheckpointAfter:       &persistent.UpdateReq_Settings_CheckpointAfterMs{CheckpointAfterMs: 2000},
		},
	}
	_, err := persistent.NewPersistentSubscriptionsClient(rawConn(t, srv)).Update(ctxWithTimeout(t), &persistent.UpdateReq{Options: opts})
	require.NoError(t, err)
}

func TestPersistentUpdateThroughDeprecatedFields(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	appendEvents(t, c, "s", esdb.NoStream{}, events(5)...)
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{StartFrom: esdb.Start{}}))

	legacyUpdate(t, srv, "s", "g", ^uint64(0))
	assert.Equal(t, esdb.End{}, groupInfo(t, c, "s", "g").Settings.StartFrom, "2^64-1 is the end")

	legacyUpdate(t, srv, "s", "g", 3)
	assert.Equal(t, esdb.Revision(3), groupInfo(t, c, "s", "g").Settings.StartFrom)
	sub := connectPersistent(t, c, "s", "g", 10)
	assert.Equal(t, "s/3 (0)", name(sub.event(t)), "the group starts at the new revision")
	assert.Equal(t, "s/4 (0)", name(sub.event(t)))
}

// batchClient is one BatchAppend call.
type batchClient struct {
	t    *testing.T
	call api.Streams_BatchAppendClient
}

func openBatch(t *testing.T, srv *esdbtest.Server) *batchClient {
	t.Helper()
	call, err := api.NewStreamsClient(rawConn(t, srv)).BatchAppend(ctxWithTimeout(t))
	require.NoError(t, err)
	return &batchClient{t: t, call: call}
}

func (b *batchClient) send(req *api.BatchAppendReq) {
	b.t.Helper()
	require.NoError(b.t, b.call.Send(req))
}

func (b *batchClient) recv() *api.BatchAppendResp {
	b.t.Helper()
	resp, err := b.call.Recv()
	require.NoError(b.t, err)
	return resp
}

func batchOptions(stream string, exp func(*api.BatchAppendReq_Options)) *api.BatchAppendReq_Options {
	o := &api.BatchAppendReq_Options{
		StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(stream)},
		DeadlineOption:   &api.BatchAppendReq_Options_Deadline{Deadline: durationpb.New(10 * time.Second)},
	}
	exp(o)
	return o
}

func noStream(o *api.BatchAppendReq_Options) {
	o.ExpectedStreamPosition = &api.BatchAppendReq_Options_NoStream{NoStream: &emptypb.Empty{}}
}

func anyRevision(o *api.BatchAppendReq_Options) {
	o.ExpectedStreamPosition = &api.BatchAppendReq_Options_Any{Any: &emptypb.Empty{}}
}

func atRevision(r uint64) func(*api.BatchAppendReq_Options) {
	return func(o *api.BatchAppendReq_Options) {
		o.ExpectedStreamPosition = &api.BatchAppendReq_Options_StreamPosition{StreamPosition: r}
	}
}

func batchEvent(id uuid.UUID, data string) *api.BatchAppendReq_ProposedMessage {
	return &api.BatchAppendReq_ProposedMessage{
		Id:       &shared.UUID{Value: &shared.UUID_String_{String_: id.String()}},
		Metadata: map[string]string{"type": "Tested", "content-type": "application/octet-stream"},
		Data:     []byte(data),
	}
}

func correlation(id uuid.UUID) *shared.UUID {
	return &shared.UUID{Value: &shared.UUID_String_{String_: id.String()}}
}

// detail unpacks the detail of a batch append error.
func detail[T proto.Message](t *testing.T, resp *api.BatchAppendResp, into T) T {
	t.Helper()
	require.NotNil(t, resp.GetError(), "an error response")
	require.Len(t, resp.GetError().GetDetails(), 1)
	require.NoError(t, resp.GetError().GetDetails()[0].UnmarshalTo(into))
	return into
}

func TestBatchAppend(t *testing.T) {
	srv := esdbtest.New(t)
	b := openBatch(t, srv)

	// Two appends interleaved on one call, each in two chunks.
	c1, c2 := uuid.New(), uuid.New()
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	b.send(&api.BatchAppendReq{CorrelationId: correlation(c1), Options: batchOptions("a", noStream),
		ProposedMessages: []*api.BatchAppendReq_ProposedMessage{batchEvent(ids[0], "a0")}})
	b.send(&api.BatchAppendReq{CorrelationId: correlation(c2), Options: batchOptions("b", anyRevision), IsFinal: true,
		ProposedMessages: []*api.BatchAppendReq_ProposedMessage{batchEvent(uuid.New(), "b0")}})
	resp := b.recv()
	assert.Equal(t, c2.String(), resp.GetCorrelationId().GetString_())
	assert.Equal(t, "b", string(resp.GetStreamIdentifier().GetStreamName()))
	assert.NotNil(t, resp.GetAny(), "the expected position is echoed")
	require.NotNil(t, resp.GetSuccess())
	assert.Equal(t, uint64(0), resp.GetSuccess().GetCurrentRevision())
	assert.Empty(t, srv.Events("a"), "nothing is written before the final chunk")

	b.send(&api.BatchAppendReq{CorrelationId: correlation(c1), IsFinal: true,
		ProposedMessages: []*api.BatchAppendReq_ProposedMessage{batchEvent(ids[1], "a1"), batchEvent(ids[2], "a2")}})
	resp = b.recv()
	assert.Equal(t, c1.String(), resp.GetCorrelationId().GetString_())
	require.NotNil(t, resp.GetSuccess())
	assert.Equal(t, uint64(2), resp.GetSuccess().GetCurrentRevision())
	pos := resp.GetSuccess().GetPosition()
	require.NotNil(t, pos)
	assert.Positive(t, pos.GetCommitPosition())
	require.Len(t, srv.Events("a"), 3)

	// A retry of the same events is idempotent.
	c3 := uuid.New()
	b.send(&api.BatchAppendReq{CorrelationId: correlation(c3), Options: batchOptions("a", noStream), IsFinal: true,
		ProposedMessages: []*api.BatchAppendReq_ProposedMessage{batchEvent(ids[0], "a0"), batchEvent(ids[1], "a1"), batchEvent(ids[2], "a2")}})
	resp = b.recv()
	require.NotNil(t, resp.GetSuccess())
	assert.Equal(t, uint64(2), resp.GetSuccess().GetCurrentRevision())
	assert.Equal(t, pos.GetCommitPosition(), resp.GetSuccess().GetPosition().GetCommitPosition())
	assert.Len(t, srv.Events("a"), 3)

	// Wrong expected version: an error in the response, the call goes on.
	b.send(&api.BatchAppendReq{CorrelationId: correlation(uuid.New()), Options: batchOptions("a", atRevision(7)), IsFinal: true,
		ProposedMessages: []*api.BatchAppendReq_ProposedMessage{batchEvent(uuid.New(), "x")}})
	resp = b.recv()
	assert.Equal(t, int32(codes.FailedPrecondition), resp.GetError().GetCode())
	wev := detail(t, resp, &shared.WrongExpectedVersion{})
	assert.Equal(t, uint64(2), wev.GetCurrentStreamRevision())
	assert.Equal(t, uint64(7), wev.GetExpectedStreamPosition())

	// An empty append on a missing stream reports no stream.
	b.send(&api.BatchAppendReq{CorrelationId: correlation(uuid.New()), Options: batchOptions("empty", anyRevision), IsFinal: true})
	resp = b.recv()
	require.NotNil(t, resp.GetSuccess())
	assert.NotNil(t, resp.GetSuccess().GetNoStream())
	assert.NotNil(t, resp.GetSuccess().GetNoPosition())

	require.NoError(t, b.call.CloseSend())
	_, err := b.call.Recv()
	assert.ErrorIs(t, err, io.EOF, "the server ends the call when the client does")
}

func TestBatchAppendErrors(t *testing.T) {
	srv := esdbtest.New(t, esdbtest.WithMaxAppendSize(100))
	c := newClient(t, srv)
	appendEvents(t, c, "gone", esdb.NoStream{}, events(1)...)
	_, err := c.TombstoneStream(t.Context(), "gone", esdb.TombstoneStreamOptions{ExpectedRevision: esdb.Any{}})
	require.NoError(t, err)
	b := openBatch(t, srv)

	b.send(&api.BatchAppendReq{CorrelationId: correlation(uuid.New()), Options: batchOptions("gone", anyRevision), IsFinal: true,
		ProposedMessages: []*api.BatchAppendReq_ProposedMessage{batchEvent(uuid.New(), "x")}})
	resp := b.recv()
	assert.Equal(t, "gone", string(detail(t, resp, &shared.StreamDeleted{}).GetStreamIdentifier().GetStreamName()))

	// Over the size limit across chunks: answered at once, later chunks dropped.
	big := uuid.New()
	b.send(&api.BatchAppendReq{CorrelationId: correlation(big), Options: batchOptions("big", anyRevision),
		ProposedMessages: []*api.BatchAppendReq_ProposedMessage{batchEvent(uuid.New(), strings.Repeat("x", 60))}})
	b.send(&api.BatchAppendReq{CorrelationId: correlation(big),
		ProposedMessages: []*api.BatchAppendReq_ProposedMessage{batchEvent(uuid.New(), strings.Repeat("x", 60))}})
	resp = b.recv()
	assert.Equal(t, big.String(), resp.GetCorrelationId().GetString_())
	assert.Equal(t, uint32(100), detail(t, resp, &shared.MaximumAppendSizeExceeded{}).GetMaxAppendSize())
	b.send(&api.BatchAppendReq{CorrelationId: correlation(big), IsFinal: true,
		ProposedMessages: []*api.BatchAppendReq_ProposedMessage{batchEvent(uuid.New(), "y")}})
	assert.Empty(t, srv.Events("big"))

	// An event without a type.
	bad := batchEvent(uuid.New(), "x")
	delete(bad.Metadata, "type")
	b.send(&api.BatchAppendReq{CorrelationId: correlation(uuid.New()), Options: batchOptions("s", anyRevision), IsFinal: true,
		ProposedMessages: []*api.BatchAppendReq_ProposedMessage{bad}})
	resp = b.recv()
	assert.Equal(t, int32(codes.InvalidArgument), resp.GetError().GetCode())
	detail(t, resp, &shared.BadRequest{})

	// A deadline that passes before the final chunk: Timeout.
	slow := uuid.New()
	opts := batchOptions("slow", anyRevision)
	opts.DeadlineOption = &api.BatchAppendReq_Options_Deadline_21_10_0{Deadline_21_10_0: timestamppb.New(time.Now().Add(50 * time.Millisecond))}
	b.send(&api.BatchAppendReq{CorrelationId: correlation(slow), Options: opts,
		ProposedMessages: []*api.BatchAppendReq_ProposedMessage{batchEvent(uuid.New(), "x")}})
	resp = b.recv()
	assert.Equal(t, slow.String(), resp.GetCorrelationId().GetString_())
	assert.Equal(t, int32(codes.DeadlineExceeded), resp.GetError().GetCode())
	detail(t, resp, &shared.Timeout{})
	assert.Empty(t, srv.Events("slow"))
}

func TestPersistentExtraStatistics(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	appendEvents(t, c, "s", esdb.NoStream{}, events(5)...)
	for _, group := range []string{"plain", "extra"} {
		opts := esdb.PersistentStreamSubscriptionOptions{StartFrom: esdb.Start{}, Settings: settings(func(s *esdb.PersistentSubscriptionSettings) {
			s.ExtraStatistics = group == "extra"
		})}
		require.NoError(t, c.CreatePersistentSubscription(ctx, "s", group, opts))
		sub := connectPersistent(t, c, "s", group, 10)
		for range 5 {
			require.NoError(t, sub.sub.Ack(sub.event(t).Event))
		}
		waitFor(t, func() bool { return groupInfo(t, c, "s", group).Stats.OutstandingMessagesCount == 0 })
	}

	plain := groupInfo(t, c, "s", "plain")
	require.Len(t, plain.Connections, 1)
	assert.Empty(t, plain.Connections[0].ExtraStatistics, "off by default")

	extra := groupInfo(t, c, "s", "extra")
	assert.True(t, extra.Settings.ExtraStatistics)
	require.Len(t, extra.Connections, 1)
	var keys []string
	values := map[string]int64{}
	for _, m := range extra.Connections[0].ExtraStatistics {
		keys = append(keys, m.Key)
		values[m.Key] = m.Value
	}
	assert.Equal(t, []string{"Mean", "Median", "Fastest", "Quintile 1", "Quintile 2", "Quintile 3", "Quintile 4",
		"Quintile 5", "90%", "95%", "99%", "99.5%", "99.9%", "Highest"}, keys)
	assert.LessOrEqual(t, values["Fastest"], values["Median"])
	assert.LessOrEqual(t, values["Median"], values["Highest"])
	assert.GreaterOrEqual(t, values["Fastest"], int64(0))
}
