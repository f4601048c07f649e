package esdbtest_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// acceptable reports whether a status is one EventStoreDB could answer a
// malformed or odd request with: never Internal or Unknown, which would
// mean a server bug.
func acceptable(err error) bool {
	switch status.Code(err) {
	case codes.OK, codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound,
		codes.DeadlineExceeded, codes.Canceled:
		return true
	default:
		return false
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzReadRequest(f *testing.F) {
	f.Add([]byte{})
	f.Add(mustMarshal(f, validRead()))
	sub := validRead()
	sub.Options.CountOption = &api.ReadReq_Options_Subscription{Subscription: &api.ReadReq_Options_SubscriptionOptions{}}
	f.Add(mustMarshal(f, sub))
	all := validRead()
	all.Options.StreamOption = &api.ReadReq_Options_All{All: &api.ReadReq_Options_AllOptions{AllOption: &api.ReadReq_Options_AllOptions_End{End: empty}}}
	all.Options.ReadDirection = api.ReadReq_Options_Backwards
	f.Add(mustMarshal(f, all))

	srv := esdbtest.New(f)
	if err := srv.Seed("s", esdbtest.Event{Type: "A"}, esdbtest.Event{Type: "B"}); err != nil {
		f.Fatal(err)
	}
	c := api.NewStreamsClient(rawConn(f, srv))

	f.Fuzz(func(t *testing.T, data []byte) {
		var req api.ReadReq
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		rc, err := c.Read(ctx, &req)
		if err != nil {
			if !acceptable(err) {
				t.Fatalf("read %v: %v", &req, err)
			}
			return
		}
		for {
			_, err := rc.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				if !acceptable(err) {
					t.Fatalf("read %v: %v", &req, err)
				}
				return
			}
		}
	})
}

func FuzzAppendRequest(f *testing.F) {
	id := stringID(uuid.NewString())
	good := map[string]string{"type": "A", "content-type": "application/json"}
	f.Add([]byte{}, []byte{})
	f.Add(mustMarshal(f, appendOptions("s")), mustMarshal(f, proposed(id, good, []byte(`{}`))))
	f.Add(mustMarshal(f, proposed(id, good, nil)), mustMarshal(f, appendOptions("s")))

	srv := esdbtest.New(f)
	c := api.NewStreamsClient(rawConn(f, srv))

	f.Fuzz(func(t *testing.T, first, second []byte) {
		var a, b api.AppendReq
		if proto.Unmarshal(first, &a) != nil || proto.Unmarshal(second, &b) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		call, err := c.Append(ctx)
		if err != nil {
			if !acceptable(err) {
				t.Fatalf("append: %v", err)
			}
			return
		}
		_ = call.Send(&a)
		_ = call.Send(&b)
		if _, err := call.CloseAndRecv(); !acceptable(err) {
			t.Fatalf("append %v, %v: %v", &a, &b, err)
		}
	})
}
