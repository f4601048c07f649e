package esdbtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
)

// batchWrite is one append of a BatchAppend call, gathered from the chunks
// that share its correlation ID until the final one.
type batchWrite struct {
	correlation *shared.UUID
	opts        *api.BatchAppendReq_Options
	name        string
	exp         expectation
	deadline    time.Time // zero: none
	events      []proposal
	size        int
	answered    bool // an error was sent: later chunks are dropped
}

// BatchAppend implements Streams.BatchAppend, the bidirectional append the
// Node.js and .NET clients use: many appends share one call, each sent as
// chunks with one correlation ID (options on the first chunk, is_final on
// the last) and answered with one response carrying that ID. Each append
// is checked and written like an Append, atomically once its final chunk
// arrives; its failure is a google.rpc.Status in the response, and the
// call goes on. An append whose deadline passes before its final chunk
// answers Timeout.
func (g *streamsService) BatchAppend(call api.Streams_BatchAppendServer) error {
	ctx := call.Context()
	reqs := make(chan *api.BatchAppendReq)
	recvErr := make(chan error, 1)
	go func() { // ends when Recv fails, at the latest when the call ends
		for {
			req, err := call.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()

	writes := map[uuid.UUID]*batchWrite{}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		resetToEarliest(timer, writes)
		select {
		case req := <-reqs:
			resp, err := g.batchChunk(ctx, writes, req)
			if err != nil {
				return err
			}
			if resp != nil {
				if err := call.Send(resp); err != nil {
					return err
				}
			}
		case <-timer.C:
			if err := sendTimeouts(call, writes); err != nil {
				return err
			}
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return recvError(err)
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// resetToEarliest sets the timer to the earliest deadline of the pending
// appends (an hour when none has one).
func resetToEarliest(timer *time.Timer, writes map[uuid.UUID]*batchWrite) {
	next := time.Hour
	for _, w := range writes {
		if !w.answered && !w.deadline.IsZero() {
			next = min(next, max(time.Until(w.deadline), 0))
		}
	}
	timer.Reset(next)
}

// sendTimeouts answers Timeout to the appends whose deadline passed.
func sendTimeouts(call api.Streams_BatchAppendServer, writes map[uuid.UUID]*batchWrite) error {
	now := time.Now()
	for _, w := range writes {
		if w.answered || w.deadline.IsZero() || w.deadline.After(now) {
			continue
		}
		w.answered, w.events = true, nil
		if err := call.Send(batchError(w, codes.DeadlineExceeded, "Timeout", &shared.Timeout{})); err != nil {
			return err
		}
	}
	return nil
}

// batchChunk takes one chunk: it returns the response to send, if any, or
// an error that ends the call (a chunk without a correlation ID cannot be
// answered). Once an append was answered with an error, its later chunks
// are dropped.
func (g *streamsService) batchChunk(ctx context.Context, writes map[uuid.UUID]*batchWrite, req *api.BatchAppendReq) (*api.BatchAppendResp, error) {
	id, err := parseUUID(req.GetCorrelationId())
	if err != nil {
		return nil, invalidArgument("batch append: correlation id: %s", status.Convert(err).Message())
	}
	var resp *api.BatchAppendResp
	w := writes[id]
	switch {
	case w == nil:
		w = &batchWrite{correlation: req.GetCorrelationId()}
		writes[id] = w
		resp = g.startBatchWrite(ctx, w, req.GetOptions())
		if resp == nil {
			resp = g.addBatchEvents(w, req.GetProposedMessages())
		}
	case !w.answered:
		resp = g.addBatchEvents(w, req.GetProposedMessages())
	}
	if resp != nil {
		w.answered, w.events = true, nil
	}
	if req.GetIsFinal() {
		delete(writes, id)
		if !w.answered {
			w.answered = true
			resp = g.finishBatchWrite(w)
		}
	}
	return resp, nil
}

// startBatchWrite decodes the options of an append's first chunk; it
// returns the error response when they are invalid or the write is denied.
func (g *streamsService) startBatchWrite(ctx context.Context, w *batchWrite, opts *api.BatchAppendReq_Options) *api.BatchAppendResp {
	if opts == nil {
		return batchError(w, codes.InvalidArgument, "the first chunk of an append must carry the options",
			&shared.BadRequest{Message: "the first chunk of an append must carry the options"})
	}
	w.opts = opts
	name, err := streamName(opts.GetStreamIdentifier())
	if err != nil {
		return badRequest(w, err)
	}
	w.name = name
	switch v := opts.GetExpectedStreamPosition().(type) {
	case *api.BatchAppendReq_Options_Any:
		w.exp = expectation{kind: expectAny}
	case *api.BatchAppendReq_Options_NoStream:
		w.exp = expectation{kind: expectNoStream}
	case *api.BatchAppendReq_Options_StreamExists:
		w.exp = expectation{kind: expectExists}
	case *api.BatchAppendReq_Options_StreamPosition:
		w.exp = expectation{kind: expectRevision, revision: v.StreamPosition}
	default:
		return badRequest(w, invalidArgument("expected stream position is missing"))
	}
	switch d := opts.GetDeadlineOption().(type) {
	case *api.BatchAppendReq_Options_Deadline_21_10_0:
		w.deadline = d.Deadline_21_10_0.AsTime()
	case *api.BatchAppendReq_Options_Deadline:
		w.deadline = time.Now().Add(d.Deadline.AsDuration())
	}
	if err := g.srv.authorizeWrite(ctx, name, func(metadata.MD) {}); err != nil {
		return batchError(w, codes.PermissionDenied, "Access Denied", &shared.AccessDenied{})
	}
	return nil
}

// addBatchEvents validates the proposed events of a chunk, as Append does,
// and checks the size of the append so far.
func (g *streamsService) addBatchEvents(w *batchWrite, msgs []*api.BatchAppendReq_ProposedMessage) *api.BatchAppendResp {
	limit := g.srv.cfg.maxAppendSize
	for _, m := range msgs {
		p, err := toProposal(&api.AppendReq_ProposedMessage{
			Id: m.GetId(), Metadata: m.GetMetadata(), CustomMetadata: m.GetCustomMetadata(), Data: m.GetData(),
		}, func(metadata.MD) {})
		if err != nil {
			return badRequest(w, err)
		}
		w.size += p.size()
		if w.size > limit {
			return batchError(w, codes.InvalidArgument, fmt.Sprintf("Maximum Append Size of %d Exceeded.", limit),
				&shared.MaximumAppendSizeExceeded{MaxAppendSize: uint32(limit)})
		}
		w.events = append(w.events, p)
	}
	return nil
}

// finishBatchWrite writes an append whose final chunk arrived.
func (g *streamsService) finishBatchWrite(w *batchWrite) *api.BatchAppendResp {
	if !w.deadline.IsZero() && !time.Now().Before(w.deadline) {
		return batchError(w, codes.DeadlineExceeded, "Timeout", &shared.Timeout{})
	}
	res, err := g.srv.store.append(w.name, w.exp, w.events)
	var deleted errStreamDeleted
	var wrong errWrongExpected
	switch {
	case errors.As(err, &deleted):
		return batchError(w, codes.FailedPrecondition, fmt.Sprintf("Event stream '%s' is deleted.", w.name),
			&shared.StreamDeleted{StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(w.name)}})
	case errors.As(err, &wrong):
		return batchError(w, codes.FailedPrecondition,
			fmt.Sprintf("Append failed due to WrongExpectedVersion. Stream: %s, Expected version: %d, Actual version: %d",
				w.name, wrong.expected.legacy(), wrong.current),
			batchWrongExpected(wrong))
	case err != nil:
		return batchError(w, codes.Unknown, err.Error(), &shared.Unknown{})
	}
	success := &api.BatchAppendResp_Success{}
	if res.current < 0 {
		success.CurrentRevisionOption = &api.BatchAppendResp_Success_NoStream{NoStream: &emptypb.Empty{}}
		success.PositionOption = &api.BatchAppendResp_Success_NoPosition{NoPosition: &emptypb.Empty{}}
	} else {
		success.CurrentRevisionOption = &api.BatchAppendResp_Success_CurrentRevision{CurrentRevision: uint64(res.current)}
		success.PositionOption = &api.BatchAppendResp_Success_Position{Position: &shared.AllStreamPosition{
			CommitPosition: res.position, PreparePosition: res.position,
		}}
	}
	resp := batchResponse(w)
	resp.Result = &api.BatchAppendResp_Success_{Success: success}
	return resp
}

// batchWrongExpected is the detail of a wrong expected version.
func batchWrongExpected(e errWrongExpected) *shared.WrongExpectedVersion {
	w := &shared.WrongExpectedVersion{}
	if e.current < 0 {
		w.CurrentStreamRevisionOption = &shared.WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &emptypb.Empty{}}
	} else {
		w.CurrentStreamRevisionOption = &shared.WrongExpectedVersion_CurrentStreamRevision{CurrentStreamRevision: uint64(e.current)}
	}
	switch e.expected.kind {
	case expectAny:
		w.ExpectedStreamPositionOption = &shared.WrongExpectedVersion_ExpectedAny{ExpectedAny: &emptypb.Empty{}}
	case expectExists:
		w.ExpectedStreamPositionOption = &shared.WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &emptypb.Empty{}}
	case expectNoStream:
		w.ExpectedStreamPositionOption = &shared.WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &emptypb.Empty{}}
	default:
		w.ExpectedStreamPositionOption = &shared.WrongExpectedVersion_ExpectedStreamPosition{ExpectedStreamPosition: e.expected.revision}
	}
	return w
}

// batchResponse starts the response to an append: its correlation ID, and
// its stream and expected position when the options were read.
func batchResponse(w *batchWrite) *api.BatchAppendResp {
	resp := &api.BatchAppendResp{CorrelationId: w.correlation}
	if w.opts == nil {
		return resp
	}
	resp.StreamIdentifier = w.opts.GetStreamIdentifier()
	switch v := w.opts.GetExpectedStreamPosition().(type) {
	case *api.BatchAppendReq_Options_Any:
		resp.ExpectedStreamPosition = &api.BatchAppendResp_Any{Any: v.Any}
	case *api.BatchAppendReq_Options_NoStream:
		resp.ExpectedStreamPosition = &api.BatchAppendResp_NoStream{NoStream: v.NoStream}
	case *api.BatchAppendReq_Options_StreamExists:
		resp.ExpectedStreamPosition = &api.BatchAppendResp_StreamExists{StreamExists: v.StreamExists}
	case *api.BatchAppendReq_Options_StreamPosition:
		resp.ExpectedStreamPosition = &api.BatchAppendResp_StreamPosition{StreamPosition: v.StreamPosition}
	}
	return resp
}

// batchError is the response that fails an append, with the detail
// message the clients unpack (event_store.client.WrongExpectedVersion, …).
func batchError(w *batchWrite, code codes.Code, message string, detail proto.Message) *api.BatchAppendResp {
	resp := batchResponse(w)
	st := &rpcstatus.Status{Code: int32(code), Message: message}
	// EventStoreDB's status.proto has one detail where google.rpc.Status
	// has a list: a list of one is the same on the wire.
	if packed, err := anypb.New(detail); err == nil {
		st.Details = []*anypb.Any{packed}
	}
	resp.Result = &api.BatchAppendResp_Error{Error: st}
	return resp
}

// badRequest is the response to an invalid append, from the status
// Append would have failed with.
func badRequest(w *batchWrite, err error) *api.BatchAppendResp {
	st := status.Convert(err)
	return batchError(w, st.Code(), st.Message(), &shared.BadRequest{Message: st.Message()})
}
