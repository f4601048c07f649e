package esdbtest

import (
	"context"
	"errors"
	"strconv"

	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// softDelete hides a stream behind `$tb` = 2^63-1. It is never idempotent.
// A stream without events cannot be deleted, unless its metadata was
// written: then it exists at "no stream", and a delete expecting no stream
// (or any) succeeds, as on EventStoreDB.
func (s *store) softDelete(name string, exp expectation) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	softDeleted, err := s.checkDeletedLocked(name, exp)
	if err != nil {
		return 0, err
	}
	current := s.streams[name].last()
	if err := checkDeleteExpectation(name, exp, current, softDeleted); err != nil {
		return 0, err
	}
	metaOnly := current < 0 && s.hasMetaLocked(name) && (exp.kind == expectNoStream || exp.kind == expectAny)
	if current < 0 && !metaOnly {
		return 0, errWrongExpected{stream: name, expected: exp, current: current}
	}
	rec := s.writeLocked(metaStreamPrefix+name, proposal{
		id:          uuid.New(),
		eventType:   metadataEventType,
		contentType: contentTypeJSON,
		data:        []byte(`{"$tb":` + strconv.FormatUint(deletedTruncateBefore, 10) + `}`),
		metadata:    []byte{},
	})
	s.notifyLocked()
	return rec.position, nil
}

// tombstone deletes a stream for good by writing its `$streamDeleted`
// record. It succeeds on a stream that never existed.
func (s *store) tombstone(name string, exp expectation) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	softDeleted, err := s.checkDeletedLocked(name, exp)
	if err != nil {
		return 0, err
	}
	if err := checkDeleteExpectation(name, exp, s.streams[name].last(), softDeleted); err != nil {
		return 0, err
	}
	rec := s.writeTombstoneLocked(name)
	s.notifyLocked()
	return rec.position, nil
}

// checkDeleteExpectation compares a delete's expected revision with the
// stream's current one.
func checkDeleteExpectation(name string, exp expectation, current int64, softDeleted bool) error {
	ok := true
	switch exp.kind {
	case expectNoStream:
		ok = current < 0 || softDeleted
	case expectExists:
		ok = current >= 0
	case expectRevision:
		ok = current >= 0 && uint64(current) == exp.revision
	}
	if !ok {
		return errWrongExpected{stream: name, expected: exp, current: current}
	}
	return nil
}

// Delete implements the Streams.Delete call (soft delete).
func (g *streamsService) Delete(ctx context.Context, req *api.DeleteReq) (*api.DeleteResp, error) {
	opts := req.GetOptions()
	if opts == nil {
		return nil, invalidArgument("delete options are missing")
	}
	name, err := streamName(opts.GetStreamIdentifier())
	if err != nil {
		return nil, err
	}
	var exp expectation
	switch v := opts.GetExpectedStreamRevision().(type) {
	case *api.DeleteReq_Options_Any:
		exp = expectation{kind: expectAny}
	case *api.DeleteReq_Options_NoStream:
		exp = expectation{kind: expectNoStream}
	case *api.DeleteReq_Options_StreamExists:
		exp = expectation{kind: expectExists}
	case *api.DeleteReq_Options_Revision:
		exp = expectation{kind: expectRevision, revision: v.Revision}
	default:
		return nil, invalidArgument("expected stream revision is missing")
	}
	if err := g.srv.authorizeWrite(ctx, name, trailerSetter(ctx)); err != nil {
		return nil, err
	}
	pos, err := g.srv.store.softDelete(name, exp)
	if err != nil {
		return nil, deleteError(ctx, name, err)
	}
	return &api.DeleteResp{PositionOption: &api.DeleteResp_Position_{Position: &api.DeleteResp_Position{
		CommitPosition: pos, PreparePosition: pos,
	}}}, nil
}

// Tombstone implements the Streams.Tombstone call (hard delete).
func (g *streamsService) Tombstone(ctx context.Context, req *api.TombstoneReq) (*api.TombstoneResp, error) {
	opts := req.GetOptions()
	if opts == nil {
		return nil, invalidArgument("tombstone options are missing")
	}
	name, err := streamName(opts.GetStreamIdentifier())
	if err != nil {
		return nil, err
	}
	var exp expectation
	switch v := opts.GetExpectedStreamRevision().(type) {
	case *api.TombstoneReq_Options_Any:
		exp = expectation{kind: expectAny}
	case *api.TombstoneReq_Options_NoStream:
		exp = expectation{kind: expectNoStream}
	case *api.TombstoneReq_Options_StreamExists:
		exp = expectation{kind: expectExists}
	case *api.TombstoneReq_Options_Revision:
		exp = expectation{kind: expectRevision, revision: v.Revision}
	default:
		return nil, invalidArgument("expected stream revision is missing")
	}
	if err := g.srv.authorizeWrite(ctx, name, trailerSetter(ctx)); err != nil {
		return nil, err
	}
	pos, err := g.srv.store.tombstone(name, exp)
	if err != nil {
		return nil, deleteError(ctx, name, err)
	}
	return &api.TombstoneResp{PositionOption: &api.TombstoneResp_Position_{Position: &api.TombstoneResp_Position{
		CommitPosition: pos, PreparePosition: pos,
	}}}, nil
}

// deleteError converts a store error of a delete into the call's status.
func deleteError(ctx context.Context, name string, err error) error {
	setTrailer := func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) }
	var deleted errStreamDeleted
	var wrong errWrongExpected
	switch {
	case errors.As(err, &deleted):
		return streamDeletedStatus(setTrailer, name)
	case errors.As(err, &wrong):
		return wrongExpectedStatus(setTrailer, wrong)
	default:
		return status.Error(codes.Internal, err.Error())
	}
}
