package esdbtest

import (
	"context"
	"fmt"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Trailer keys and exception names EventStoreDB uses; the client decodes
// them from the trailers of a failed call.
const (
	trailerException        = "exception"
	trailerStreamName       = "stream-name"
	trailerExpectedVersion  = "expected-version"
	trailerActualVersion    = "actual-version"
	trailerMaxAppendSize    = "maximum-append-size"
	trailerRequiredMetadata = "required-metadata-properties"

	exceptionAccessDenied          = "access-denied"
	exceptionStreamDeleted         = "stream-deleted"
	exceptionWrongExpectedVersion  = "wrong-expected-version"
	exceptionMaxAppendSizeExceeded = "maximum-append-size-exceeded"
	exceptionMissingMetadata       = "missing-required-metadata-property"
)

// Legacy version numbers EventStoreDB reports in trailers.
const (
	legacyNoStream     = -1
	legacyAny          = -2
	legacyStreamExists = -4
)

// errStreamDeleted is the store's error for a tombstoned stream (and for an
// append expecting an existing stream on a soft-deleted one).
type errStreamDeleted struct{ stream string }

func (e errStreamDeleted) Error() string {
	return fmt.Sprintf("esdbtest: stream %q is deleted", e.stream)
}

// errWrongExpected is the store's error for a failed expected-revision
// check. current is -1 when the stream has no events.
type errWrongExpected struct {
	stream   string
	expected expectation
	current  int64
}

func (e errWrongExpected) Error() string {
	return fmt.Sprintf("esdbtest: wrong expected version for stream %q: expected %s, actual %d", e.stream, e.expected, e.current)
}

// streamDeletedStatus returns the error for a deleted stream: the client
// needs both the exception and the stream name in the trailers.
func streamDeletedStatus(setTrailer func(metadata.MD), name string) error {
	setTrailer(metadata.Pairs(trailerException, exceptionStreamDeleted, trailerStreamName, name))
	return status.Errorf(codes.FailedPrecondition, "Event stream '%s' is deleted.", name)
}

// wrongExpectedStatus returns the error for a wrong expected version of a
// delete or tombstone (appends answer with a message instead).
func wrongExpectedStatus(setTrailer func(metadata.MD), e errWrongExpected) error {
	setTrailer(metadata.Pairs(
		trailerException, exceptionWrongExpectedVersion,
		trailerStreamName, e.stream,
		trailerExpectedVersion, strconv.FormatInt(e.expected.legacy(), 10),
		trailerActualVersion, strconv.FormatInt(e.current, 10),
	))
	return status.Errorf(codes.FailedPrecondition,
		"Delete failed due to WrongExpectedVersion. Stream: %s, Expected version: %d, Actual version: %d",
		e.stream, e.expected.legacy(), e.current)
}

// maxAppendSizeStatus returns the error for an append over the limit.
func maxAppendSizeStatus(setTrailer func(metadata.MD), limit int) error {
	setTrailer(metadata.Pairs(
		trailerException, exceptionMaxAppendSizeExceeded,
		trailerMaxAppendSize, strconv.Itoa(limit),
	))
	return status.Errorf(codes.InvalidArgument, "Maximum Append Size of %d Exceeded.", limit)
}

// missingMetadataStatus returns the error for a proposed event without a
// type or content type.
func missingMetadataStatus(setTrailer func(metadata.MD), property string) error {
	setTrailer(metadata.Pairs(
		trailerException, exceptionMissingMetadata,
		trailerRequiredMetadata, "type,content-type",
	))
	return status.Errorf(codes.InvalidArgument, "Required Metadata Property '%s' is missing", property)
}

// invalidArgument returns an InvalidArgument status.
func invalidArgument(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// recoverUnary turns a panic in a unary handler into an Internal status, so
// that a bug in the server fails one call instead of the test binary.
func recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, status.Errorf(codes.Internal, "esdbtest: panic in %s: %v", info.FullMethod, r)
		}
	}()
	return handler(ctx, req)
}

// recoverStream is recoverUnary for streaming calls.
func recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = status.Errorf(codes.Internal, "esdbtest: panic in %s: %v", info.FullMethod, r)
		}
	}()
	return handler(srv, ss)
}
