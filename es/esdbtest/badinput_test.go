package esdbtest_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/projections"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/eventfold/eventfold/es/esdbtest"
)

var empty = &shared.Empty{}

func streamID(name string) *shared.StreamIdentifier {
	return &shared.StreamIdentifier{StreamName: []byte(name)}
}

// validRead returns a well-formed forwards read of stream "s".
func validRead() *api.ReadReq {
	return &api.ReadReq{Options: &api.ReadReq_Options{
		StreamOption: &api.ReadReq_Options_Stream{Stream: &api.ReadReq_Options_StreamOptions{
			StreamIdentifier: streamID("s"),
			RevisionOption:   &api.ReadReq_Options_StreamOptions_Start{Start: empty},
		}},
		CountOption:  &api.ReadReq_Options_Count{Count: 10},
		FilterOption: &api.ReadReq_Options_NoFilter{NoFilter: empty},
		UuidOption:   &api.ReadReq_Options_UUIDOption{Content: &api.ReadReq_Options_UUIDOption_String_{String_: empty}},
	}}
}

// rawRead runs a read to its end and returns the messages and the status.
func rawRead(t *testing.T, c api.StreamsClient, req *api.ReadReq) ([]*api.ReadResp, error) {
	t.Helper()
	rc, err := c.Read(ctxWithTimeout(t), req)
	require.NoError(t, err)
	var out []*api.ReadResp
	for {
		msg, err := rc.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, msg)
	}
}

func TestMalformedReads(t *testing.T) {
	srv := esdbtest.New(t)
	c := api.NewStreamsClient(rawConn(t, srv))
	require.NoError(t, srv.Seed("s", esdbtest.Event{Type: "A"}))

	tests := []struct {
		name   string
		mutate func(*api.ReadReq)
	}{
		{"no options", func(r *api.ReadReq) { r.Options = nil }},
		{"no stream option", func(r *api.ReadReq) { r.Options.StreamOption = nil }},
		{"no stream identifier", func(r *api.ReadReq) { r.Options.GetStream().StreamIdentifier = nil }},
		{"empty stream name", func(r *api.ReadReq) { r.Options.GetStream().StreamIdentifier = streamID("") }},
		{"no revision option", func(r *api.ReadReq) { r.Options.GetStream().RevisionOption = nil }},
		{"no $all position", func(r *api.ReadReq) {
			r.Options.StreamOption = &api.ReadReq_Options_All{All: &api.ReadReq_Options_AllOptions{}}
		}},
		{"commit before prepare", func(r *api.ReadReq) {
			r.Options.StreamOption = &api.ReadReq_Options_All{All: &api.ReadReq_Options_AllOptions{
				AllOption: &api.ReadReq_Options_AllOptions_Position{Position: &api.ReadReq_Options_Position{CommitPosition: 1, PreparePosition: 2}},
			}}
		}},
		{"no count option", func(r *api.ReadReq) { r.Options.CountOption = nil }},
		{"no filter option", func(r *api.ReadReq) { r.Options.FilterOption = nil }},
		{"no uuid option", func(r *api.ReadReq) { r.Options.UuidOption = nil }},
		{"filter without window", func(r *api.ReadReq) {
			r.Options.StreamOption = &api.ReadReq_Options_All{All: &api.ReadReq_Options_AllOptions{AllOption: &api.ReadReq_Options_AllOptions_Start{Start: empty}}}
			r.Options.FilterOption = &api.ReadReq_Options_Filter{Filter: &api.ReadReq_Options_FilterOptions{
				Filter: &api.ReadReq_Options_FilterOptions_EventType{EventType: &api.ReadReq_Options_FilterOptions_Expression{Prefix: []string{"A"}}},
			}}
		}},
		{"zero count", func(r *api.ReadReq) { r.Options.CountOption = &api.ReadReq_Options_Count{Count: 0} }},
		{"unknown direction", func(r *api.ReadReq) { r.Options.ReadDirection = 7 }},
		{"backwards subscription", func(r *api.ReadReq) {
			r.Options.ReadDirection = api.ReadReq_Options_Backwards
			r.Options.CountOption = &api.ReadReq_Options_Subscription{Subscription: &api.ReadReq_Options_SubscriptionOptions{}}
		}},
		{"filter on a stream", func(r *api.ReadReq) {
			r.Options.FilterOption = &api.ReadReq_Options_Filter{Filter: &api.ReadReq_Options_FilterOptions{
				Filter: &api.ReadReq_Options_FilterOptions_EventType{EventType: &api.ReadReq_Options_FilterOptions_Expression{Prefix: []string{"A"}}},
			}}
		}},
		{"filter without expression", func(r *api.ReadReq) {
			r.Options.StreamOption = &api.ReadReq_Options_All{All: &api.ReadReq_Options_AllOptions{AllOption: &api.ReadReq_Options_AllOptions_Start{Start: empty}}}
			r.Options.FilterOption = &api.ReadReq_Options_Filter{Filter: &api.ReadReq_Options_FilterOptions{}}
		}},
		{"invalid regex", func(r *api.ReadReq) {
			r.Options.StreamOption = &api.ReadReq_Options_All{All: &api.ReadReq_Options_AllOptions{AllOption: &api.ReadReq_Options_AllOptions_Start{Start: empty}}}
			r.Options.FilterOption = &api.ReadReq_Options_Filter{Filter: &api.ReadReq_Options_FilterOptions{
				Filter: &api.ReadReq_Options_FilterOptions_StreamIdentifier{StreamIdentifier: &api.ReadReq_Options_FilterOptions_Expression{Regex: "("}},
			}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRead()
			tt.mutate(req)
			msgs, err := rawRead(t, c, req)
			assert.Empty(t, msgs)
			assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
		})
	}

	t.Run("valid read with string ids", func(t *testing.T) {
		msgs, err := rawRead(t, c, validRead())
		require.NoError(t, err)
		require.Len(t, msgs, 1)
		id := msgs[0].GetEvent().GetEvent().GetId().GetString_()
		assert.Equal(t, srv.Events("s")[0].ID.String(), id)
	})
	t.Run("not found is a message", func(t *testing.T) {
		req := validRead()
		req.Options.GetStream().StreamIdentifier = streamID("missing")
		msgs, err := rawRead(t, c, req)
		require.NoError(t, err)
		require.Len(t, msgs, 1)
		assert.Equal(t, "missing", string(msgs[0].GetStreamNotFound().GetStreamIdentifier().GetStreamName()))
	})
}

// rawAppend sends append messages and returns the response or status, and
// the trailers.
func rawAppend(t *testing.T, c api.StreamsClient, msgs ...*api.AppendReq) (*api.AppendResp, metadata.MD, error) {
	t.Helper()
	var trailer metadata.MD
	call, err := c.Append(ctxWithTimeout(t), grpc.Trailer(&trailer))
	require.NoError(t, err)
	for _, m := range msgs {
		if err := call.Send(m); err != nil {
			break // the server ended the call early; CloseAndRecv says why
		}
	}
	resp, err := call.CloseAndRecv()
	return resp, trailer, err
}

func appendOptions(name string) *api.AppendReq {
	return &api.AppendReq{Content: &api.AppendReq_Options_{Options: &api.AppendReq_Options{
		StreamIdentifier:       streamID(name),
		ExpectedStreamRevision: &api.AppendReq_Options_Any{Any: empty},
	}}}
}

func proposed(id *shared.UUID, md map[string]string, data []byte) *api.AppendReq {
	return &api.AppendReq{Content: &api.AppendReq_ProposedMessage_{ProposedMessage: &api.AppendReq_ProposedMessage{
		Id: id, Metadata: md, Data: data,
	}}}
}

func stringID(s string) *shared.UUID {
	return &shared.UUID{Value: &shared.UUID_String_{String_: s}}
}

func TestMalformedAppends(t *testing.T) {
	srv := esdbtest.New(t, esdbtest.WithMaxAppendSize(100))
	c := api.NewStreamsClient(rawConn(t, srv))
	good := map[string]string{"type": "A", "content-type": "application/json"}
	id := stringID(uuid.NewString())

	tests := []struct {
		name      string
		msgs      []*api.AppendReq
		exception string
	}{
		{"no messages", nil, ""},
		{"proposal first", []*api.AppendReq{proposed(id, good, nil)}, ""},
		{"options twice", []*api.AppendReq{appendOptions("s"), appendOptions("s")}, ""},
		{"no expected revision", []*api.AppendReq{{Content: &api.AppendReq_Options_{Options: &api.AppendReq_Options{StreamIdentifier: streamID("s")}}}}, ""},
		{"no stream identifier", []*api.AppendReq{{Content: &api.AppendReq_Options_{Options: &api.AppendReq_Options{ExpectedStreamRevision: &api.AppendReq_Options_Any{Any: empty}}}}}, ""},
		{"empty stream name", []*api.AppendReq{appendOptions("")}, ""},
		{"append to $all", []*api.AppendReq{appendOptions("$all")}, ""},
		{"no event id", []*api.AppendReq{appendOptions("s"), proposed(nil, good, nil)}, ""},
		{"invalid event id", []*api.AppendReq{appendOptions("s"), proposed(stringID("not-a-uuid"), good, nil)}, ""},
		{"nil event id", []*api.AppendReq{appendOptions("s"), proposed(stringID(uuid.Nil.String()), good, nil)}, ""},
		{"no type", []*api.AppendReq{appendOptions("s"), proposed(id, map[string]string{"content-type": "application/json"}, nil)}, "missing-required-metadata-property"},
		{"no content type", []*api.AppendReq{appendOptions("s"), proposed(id, map[string]string{"type": "A"}, nil)}, "missing-required-metadata-property"},
		{"too large", []*api.AppendReq{appendOptions("s"), proposed(id, good, bytes.Repeat([]byte{1}, 101))}, "maximum-append-size-exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, trailer, err := rawAppend(t, c, tt.msgs...)
			assert.Nil(t, resp)
			assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			if tt.exception != "" {
				assert.Equal(t, []string{tt.exception}, trailer.Get("exception"))
			}
		})
	}
	assert.Empty(t, srv.All(), "nothing was written")

	t.Run("structured id and binary content", func(t *testing.T) {
		structured := &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{MostSignificantBits: 1, LeastSignificantBits: 2}}}
		resp, _, err := rawAppend(t, c, appendOptions("s"),
			proposed(structured, map[string]string{"type": "A", "content-type": "text/plain"}, []byte("x")))
		require.NoError(t, err)
		assert.Equal(t, uint64(0), resp.GetSuccess().GetCurrentRevision())
		ev := srv.Events("s")[0]
		assert.Equal(t, "00000000-0000-0001-0000-000000000002", ev.ID.String())
		assert.Equal(t, "application/octet-stream", ev.ContentType)
	})
	t.Run("wrong expected version response", func(t *testing.T) {
		opts := appendOptions("s")
		opts.GetOptions().ExpectedStreamRevision = &api.AppendReq_Options_NoStream{NoStream: empty}
		resp, _, err := rawAppend(t, c, opts, proposed(stringID(uuid.NewString()), good, nil))
		require.NoError(t, err)
		wrong := resp.GetWrongExpectedVersion()
		require.NotNil(t, wrong)
		assert.Equal(t, uint64(0), wrong.GetCurrentRevision())
		assert.NotNil(t, wrong.GetExpectedNoStream())
	})
}

func TestMalformedDeletes(t *testing.T) {
	srv := esdbtest.New(t)
	c := api.NewStreamsClient(rawConn(t, srv))
	ctx := ctxWithTimeout(t)

	_, err := c.Delete(ctx, &api.DeleteReq{})
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = c.Delete(ctx, &api.DeleteReq{Options: &api.DeleteReq_Options{StreamIdentifier: streamID("s")}})
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = c.Tombstone(ctx, &api.TombstoneReq{Options: &api.TombstoneReq_Options{
		ExpectedStreamRevision: &api.TombstoneReq_Options_Any{Any: empty},
	}})
	assert.Equal(t, codes.InvalidArgument, status.Code(err))

	var trailer metadata.MD
	_, err = c.Delete(ctx, &api.DeleteReq{Options: &api.DeleteReq_Options{
		StreamIdentifier:       streamID("never"),
		ExpectedStreamRevision: &api.DeleteReq_Options_Any{Any: empty},
	}}, grpc.Trailer(&trailer))
	assert.Equal(t, codes.FailedPrecondition, status.Code(err))
	assert.Equal(t, []string{"wrong-expected-version"}, trailer.Get("exception"))
	assert.Equal(t, []string{"-2"}, trailer.Get("expected-version"))
	assert.Equal(t, []string{"-1"}, trailer.Get("actual-version"))

	_, err = c.Tombstone(ctx, &api.TombstoneReq{Options: &api.TombstoneReq_Options{
		StreamIdentifier:       streamID("gone"),
		ExpectedStreamRevision: &api.TombstoneReq_Options_Any{Any: empty},
	}})
	require.NoError(t, err)
	_, err = c.Delete(ctx, &api.DeleteReq{Options: &api.DeleteReq_Options{
		StreamIdentifier:       streamID("gone"),
		ExpectedStreamRevision: &api.DeleteReq_Options_Any{Any: empty},
	}}, grpc.Trailer(&trailer))
	assert.Equal(t, codes.FailedPrecondition, status.Code(err))
	assert.Equal(t, []string{"stream-deleted"}, trailer.Get("exception"))
	assert.Equal(t, []string{"gone"}, trailer.Get("stream-name"))
}

func TestUnservedMethods(t *testing.T) {
	srv := esdbtest.New(t)
	conn := rawConn(t, srv)

	_, err := projections.NewProjectionsClient(conn).Create(ctxWithTimeout(t), &projections.CreateReq{})
	assert.Equal(t, codes.Unimplemented, status.Code(err))
}

func TestBadInputThroughClient(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()

	// The server rejects the options before the client sends the event:
	// the client may then see io.EOF on its send instead of the status.
	_, err := c.AppendToStream(ctx, "", esdb.AppendToStreamOptions{}, event("Tested"))
	require.Error(t, err, "empty stream name")

	_, err = c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{}, esdb.EventData{ContentType: esdb.ContentTypeJson})
	require.Error(t, err, "event without a type")
	assert.Contains(t, err.Error(), "type")

	_, err = readStream(t, c, "s", esdb.ReadStreamOptions{}, 0)
	require.Error(t, err, "zero count")
	assert.Contains(t, err.Error(), "InvalidArgument")

	_, err = c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{Filter: &esdb.SubscriptionFilter{Type: esdb.EventFilterType, Regex: "("}})
	require.Error(t, err, "invalid regex")
	assert.Contains(t, err.Error(), "InvalidArgument")

	err = c.CreatePersistentSubscription(ctx, "s", "", esdb.PersistentStreamSubscriptionOptions{})
	require.Error(t, err, "empty group name")

	assert.Empty(t, srv.All())

	// The server still works.
	appendEvents(t, c, "s", esdb.NoStream{}, events(1)...)
}
