package esdbtest_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/google/uuid"
	v2 "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/streams"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/structpb"
)

// record is an append-session record of type Multi with a fresh ID.
func record(props map[string]*structpb.Value) *v2.AppendRecord {
	id := uuid.NewString()
	return &v2.AppendRecord{
		RecordId:   &id,
		Properties: props,
		Schema:     &v2.SchemaInfo{Format: v2.SchemaFormat_SCHEMA_FORMAT_JSON, Name: "Multi"},
		Data:       []byte(`{"n":1}`),
	}
}

// appendSession sends one request per part and returns the response.
func appendSession(t *testing.T, srv *esdbtest.Server, reqs ...*v2.AppendRequest) (*v2.AppendSessionResponse, error) {
	t.Helper()
	call, err := v2.NewStreamsServiceClient(rawConn(t, srv)).AppendSession(t.Context())
	require.NoError(t, err)
	for _, r := range reqs {
		if err := call.Send(r); err != nil {
			break // the server answered early: CloseAndRecv reports it
		}
	}
	return call.CloseAndRecv()
}

func expected(r int64) *int64 { return &r }

// methods returns the method names GetSupportedMethods reports.
func methods(t *testing.T, srv *esdbtest.Server) []string {
	t.Helper()
	res, err := serverfeatures.NewServerFeaturesClient(rawConn(t, srv)).GetSupportedMethods(t.Context(), &shared.Empty{})
	require.NoError(t, err)
	var out []string
	for _, m := range res.GetMethods() {
		out = append(out, m.GetMethodName())
	}
	return out
}

func TestAppendSessionOnlyFromKurrentDB25(t *testing.T) {
	old := esdbtest.New(t)
	assert.NotContains(t, methods(t, old), "appendsession")
	_, err := appendSession(t, old, &v2.AppendRequest{Stream: "a-" + uuid.NewString(), Records: []*v2.AppendRecord{record(nil)}})
	assert.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)

	srv := esdbtest.New(t, esdbtest.WithServerVersion("25.0.0"))
	assert.Contains(t, methods(t, srv), "appendsession")
	assert.NotContains(t, methods(t, srv), "appendrecords", "AppendRecords (26.1) is not served")
}

func TestAppendSessionWritesEveryPartContiguously(t *testing.T) {
	srv := esdbtest.New(t, esdbtest.WithServerVersion("25.0.0"))
	client := newClient(t, srv)
	a, b := "a-"+uuid.NewString(), "b-"+uuid.NewString()
	_, err := client.AppendToStream(t.Context(), b, esdb.AppendToStreamOptions{}, events(2)...)
	require.NoError(t, err)
	_, err = client.AppendToStream(t.Context(), "other-"+uuid.NewString(), esdb.AppendToStreamOptions{}, events(1)...)
	require.NoError(t, err)

	res, err := appendSession(t, srv,
		&v2.AppendRequest{Stream: a, ExpectedRevision: expected(-1), Records: []*v2.AppendRecord{
			record(map[string]*structpb.Value{"z": structpb.NewStringValue("1"), "a": structpb.NewStringValue("2")}), record(nil)}},
		&v2.AppendRequest{Stream: b, ExpectedRevision: expected(1), Records: []*v2.AppendRecord{record(nil)}})
	require.NoError(t, err)
	require.Len(t, res.GetOutput(), 2)
	assert.Equal(t, a, res.GetOutput()[0].GetStream())
	assert.Equal(t, int64(1), res.GetOutput()[0].GetStreamRevision())
	assert.Equal(t, int64(2), res.GetOutput()[1].GetStreamRevision())
	assert.Equal(t, res.GetOutput()[1].GetPosition(), res.GetPosition(), "the session's position is its last event's")

	rs, err := client.ReadAll(t.Context(), esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 3)
	require.NoError(t, err)
	defer rs.Close()
	var got []*esdb.RecordedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		got = append([]*esdb.RecordedEvent{ev.Event}, got...)
	}
	require.Len(t, got, 3)
	assert.Equal(t, []string{a, a, b}, []string{got[0].StreamID, got[1].StreamID, got[2].StreamID}, "the parts follow each other in $all, in order")
	// KurrentDB 25 adds the record's schema to its properties, as
	// KurrentDB-Client-Go's own multi-append test expects.
	assert.Equal(t, `{"$schema.format":"Json","$schema.name":"Multi","a":"2","z":"1"}`, string(got[0].UserMetadata),
		"properties and schema are the event's metadata, keys sorted, no white space")
	assert.Equal(t, `{"$schema.format":"Json","$schema.name":"Multi"}`, string(got[1].UserMetadata))
	assert.Equal(t, "application/json", got[0].ContentType)
	assert.Equal(t, uint64(res.GetPosition()), got[2].Position.Commit)
}

// errorDetail returns the type name and fields of an error's only detail.
func errorDetail(t *testing.T, err error) (string, map[protowire.Number]uint64, map[protowire.Number]string) {
	t.Helper()
	st, ok := status.FromError(err)
	require.True(t, ok, "%v", err)
	d := st.Proto().GetDetails()
	require.Len(t, d, 1)
	ints, strs := map[protowire.Number]uint64{}, map[protowire.Number]string{}
	b := d[0].GetValue()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		require.GreaterOrEqual(t, n, 0)
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			require.GreaterOrEqual(t, n, 0)
			ints[num], b = v, b[n:]
		case protowire.BytesType:
			v, n := protowire.ConsumeString(b)
			require.GreaterOrEqual(t, n, 0)
			strs[num], b = v, b[n:]
		default:
			t.Fatalf("unexpected wire type %v", typ)
		}
	}
	return d[0].GetTypeUrl(), ints, strs
}

func TestAppendSessionFailsWholeWithKurrentDBsDetails(t *testing.T) {
	srv := esdbtest.New(t, esdbtest.WithServerVersion("25.0.0"))
	client := newClient(t, srv)
	fresh, existing := "a-"+uuid.NewString(), "b-"+uuid.NewString()
	_, err := client.AppendToStream(t.Context(), existing, esdb.AppendToStreamOptions{}, events(1)...)
	require.NoError(t, err)

	_, err = appendSession(t, srv,
		&v2.AppendRequest{Stream: fresh, ExpectedRevision: expected(-1), Records: []*v2.AppendRecord{record(nil)}},
		&v2.AppendRequest{Stream: existing, ExpectedRevision: expected(5), Records: []*v2.AppendRecord{record(nil)}})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	url, ints, strs := errorDetail(t, err)
	assert.Equal(t, "type.googleapis.com/kurrentdb.protocol.v2.streams.errors.StreamRevisionConflictErrorDetails", url)
	assert.Equal(t, existing, strs[1])
	assert.Equal(t, int64(5), protowire.DecodeZigZag(ints[2]), "expected revision")
	assert.Equal(t, int64(0), protowire.DecodeZigZag(ints[3]), "actual revision")
	rs, err := client.ReadStream(t.Context(), fresh, esdb.ReadStreamOptions{}, 1)
	require.NoError(t, err)
	_, err = rs.Recv()
	rs.Close()
	var e *esdb.Error
	require.ErrorAs(t, err, &e, "nothing written to the other part's stream")
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, e.Code())

	_, err = client.TombstoneStream(t.Context(), existing, esdb.TombstoneStreamOptions{ExpectedRevision: esdb.Any{}})
	require.NoError(t, err)
	_, err = appendSession(t, srv, &v2.AppendRequest{Stream: existing, Records: []*v2.AppendRecord{record(nil)}})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	url, _, strs = errorDetail(t, err)
	assert.Equal(t, "type.googleapis.com/kurrentdb.protocol.v2.streams.errors.StreamTombstonedErrorDetails", url)
	assert.Equal(t, existing, strs[1])

	soft := "c-" + uuid.NewString()
	_, err = client.AppendToStream(t.Context(), soft, esdb.AppendToStreamOptions{}, events(1)...)
	require.NoError(t, err)
	_, err = client.DeleteStream(t.Context(), soft, esdb.DeleteStreamOptions{ExpectedRevision: esdb.Any{}})
	require.NoError(t, err)
	_, err = appendSession(t, srv, &v2.AppendRequest{Stream: soft, ExpectedRevision: expected(-4), Records: []*v2.AppendRecord{record(nil)}})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	url, _, strs = errorDetail(t, err)
	assert.Equal(t, "type.googleapis.com/kurrentdb.protocol.v2.streams.errors.StreamDeletedErrorDetails", url, "a soft-deleted stream expected to exist")
	assert.Equal(t, soft, strs[1])

	twice := &v2.AppendRequest{Stream: fresh, Records: []*v2.AppendRecord{record(nil)}}
	_, err = appendSession(t, srv, twice, twice)
	require.Equal(t, codes.Aborted, status.Code(err), "%v", err)
	url, _, _ = errorDetail(t, err)
	assert.Contains(t, url, "StreamAlreadyInAppendSessionErrorDetails")

	_, err = appendSession(t, srv)
	assert.Equal(t, codes.FailedPrecondition, status.Code(err), "a session without requests")
}

// caughtUpFields subscribes to $all (stream "") or a stream from the start
// and returns the unknown fields of the first caught-up message.
func caughtUpFields(t *testing.T, srv *esdbtest.Server, stream string) []byte {
	t.Helper()
	opts := &api.ReadReq_Options{
		ReadDirection: api.ReadReq_Options_Forwards,
		ResolveLinks:  false,
		CountOption:   &api.ReadReq_Options_Subscription{Subscription: &api.ReadReq_Options_SubscriptionOptions{}},
		FilterOption:  &api.ReadReq_Options_NoFilter{NoFilter: &shared.Empty{}},
		UuidOption:    &api.ReadReq_Options_UUIDOption{Content: &api.ReadReq_Options_UUIDOption_String_{String_: &shared.Empty{}}},
	}
	if stream == "" {
		opts.StreamOption = &api.ReadReq_Options_All{All: &api.ReadReq_Options_AllOptions{AllOption: &api.ReadReq_Options_AllOptions_Start{Start: &shared.Empty{}}}}
	} else {
		opts.StreamOption = &api.ReadReq_Options_Stream{Stream: &api.ReadReq_Options_StreamOptions{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(stream)},
			RevisionOption:   &api.ReadReq_Options_StreamOptions_Start{Start: &shared.Empty{}},
		}}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	call, err := api.NewStreamsClient(rawConn(t, srv)).Read(ctx, &api.ReadReq{Options: opts})
	require.NoError(t, err)
	for {
		msg, err := call.Recv()
		require.NoError(t, err)
		if c := msg.GetCaughtUp(); c != nil {
			return c.ProtoReflect().GetUnknown()
		}
	}
}

func TestCaughtUpCarriesKurrentDB25Details(t *testing.T) {
	old := esdbtest.New(t)
	newClient(t, old)
	assert.Empty(t, caughtUpFields(t, old, ""), "EventStoreDB's caught-up message is empty")

	srv := esdbtest.New(t, esdbtest.WithServerVersion("25.0.0"))
	client := newClient(t, srv)
	stream := "s-" + uuid.NewString()
	res, err := client.AppendToStream(t.Context(), stream, esdb.AppendToStreamOptions{}, events(2)...)
	require.NoError(t, err)

	fields := func(b []byte) map[protowire.Number][]byte {
		out := map[protowire.Number][]byte{}
		for len(b) > 0 {
			num, _, n := protowire.ConsumeField(b)
			require.GreaterOrEqual(t, n, 0)
			out[num] = b[:n]
			b = b[n:]
		}
		return out
	}
	all := fields(caughtUpFields(t, srv, ""))
	assert.Contains(t, all, protowire.Number(1), "timestamp")
	require.Contains(t, all, protowire.Number(3), "position")
	_, _, n := protowire.ConsumeTag(all[3])
	pos, _ := protowire.ConsumeBytes(all[3][n:])
	posFields := fields(pos)
	_, _, n = protowire.ConsumeTag(posFields[1])
	commit, _ := protowire.ConsumeVarint(posFields[1][n:])
	assert.Equal(t, res.CommitPosition, commit, "the position of the last event scanned")

	st := fields(caughtUpFields(t, srv, stream))
	require.Contains(t, st, protowire.Number(2), "stream revision")
	_, _, n = protowire.ConsumeTag(st[2])
	rev, _ := protowire.ConsumeVarint(st[2][n:])
	assert.Equal(t, uint64(1), rev)
	assert.NotContains(t, st, protowire.Number(3))
}

func TestAppendSessionOverTheMaximumAppendSize(t *testing.T) {
	srv := esdbtest.New(t, esdbtest.WithServerVersion("25.0.0"), esdbtest.WithMaxAppendSize(1000))
	big := func(stream string) *v2.AppendRequest {
		r := record(nil)
		r.Data = make([]byte, 600)
		return &v2.AppendRequest{Stream: stream, Records: []*v2.AppendRecord{r}}
	}
	a, b := "a-"+uuid.NewString(), "b-"+uuid.NewString()
	_, err := appendSession(t, srv, big(a), big(b))
	require.Equal(t, codes.Aborted, status.Code(err), "%v", err)
	url, ints, _ := errorDetail(t, err)
	assert.Equal(t, "type.googleapis.com/kurrentdb.protocol.v2.streams.errors.AppendTransactionSizeExceededErrorDetails", url)
	assert.Equal(t, uint64(1000), ints[2], "the maximum")
	assert.Greater(t, ints[1], uint64(1000), "the session's size")
	assert.Empty(t, srv.Events(a), "nothing written")
}
