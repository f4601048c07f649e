package esdbcore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Class is what a client error means, as a Driver's Classify tells it.
type Class uint8

// Classes of client errors.
const (
	// ClassOther: a client error of no other class.
	ClassOther Class = iota
	// ClassForeign: not an error of the client's type.
	ClassForeign
	// ClassConnectionLost: the client's connection is gone, or its
	// connection handling gave up; the client must be replaced.
	ClassConnectionLost
	ClassWrongExpectedVersion
	ClassStreamDeleted
	ClassNotFound
	ClassDeadlineExceeded
	ClassNotLeader
	ClassAborted
)

// maxProbeRevision is the revision LastRevision expects: no stream
// reaches it.
const maxProbeRevision = math.MaxInt64 - 1

// connectionLost reports whether a client error means its connection is
// gone (or its connection handling gave up): the client must be replaced.
func (s *Core[C]) connectionLost(err error) bool {
	if s.d.Classify(err) == ClassConnectionLost || status.Code(err) == codes.Unavailable {
		return true
	}
	return strings.Contains(err.Error(), "maximum discovery attempt count reached")
}

// TransientClientError reports whether a client error is a failure to reach
// the server, or to get its answer in time, that may pass.
func (s *Core[C]) TransientClientError(err error) bool {
	if s.connectionLost(err) {
		return true
	}
	switch s.d.Classify(err) {
	case ClassDeadlineExceeded, ClassNotLeader, ClassAborted:
		return true
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

// Transient reports whether a subscription that failed with err should be
// resumed.
func (s *Core[C]) Transient(err error) bool {
	if errors.Is(err, es.ErrUnavailable) {
		return true
	}
	switch s.d.Classify(err) {
	case ClassConnectionLost, ClassAborted, ClassNotLeader:
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted, codes.Internal:
		return true
	}
	return false
}

// wrongVersionText is the clients' message for a wrong expected version.
var wrongVersionText = regexp.MustCompile(`but got '([^']*)'`)

// MapError turns a client's errors into es's.
func (s *Core[C]) MapError(ctx context.Context, stream string, expected es.ExpectedRevision, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", s.d.Name, ctxErr)
	}
	if errors.Is(err, es.ErrUnavailable) || errors.Is(err, s.closed) {
		return err // the adapter's own, already described
	}
	switch s.d.Classify(err) {
	case ClassForeign:
		return fmt.Errorf("%s: stream %q: %w", s.d.Name, stream, err)
	case ClassWrongExpectedVersion:
		wev := &es.WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: es.NoStream}
		if m := wrongVersionText.FindStringSubmatch(err.Error()); m != nil && m[1] != "no_stream" {
			if n, perr := strconv.ParseUint(m[1], 10, 64); perr == nil {
				wev.Actual = es.Exact(n)
			}
		}
		return wev
	case ClassStreamDeleted:
		return esdriver.StreamDeleted(stream)
	case ClassNotFound:
		return esdriver.StreamNotFound(stream)
	}
	switch status.Code(err) {
	case codes.FailedPrecondition:
		// A wrong expected version on delete, which the clients leave
		// unmapped: find the actual revision ourselves.
		wev := &es.WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: es.NoStream}
		if last, ok := s.LastRevision(ctx, stream); ok {
			wev.Actual = es.Exact(last)
		}
		return wev
	case codes.ResourceExhausted:
		return fmt.Errorf("%w: stream %q: %v", es.ErrMaxAppendSizeExceeded, stream, err)
	case codes.InvalidArgument:
		return fmt.Errorf("%w: stream %q: %v", es.ErrInvalidArgument, stream, err)
	}
	if s.TransientClientError(err) {
		return fmt.Errorf("%w: stream %q: %w", es.ErrUnavailable, stream, err)
	}
	return fmt.Errorf("%s: stream %q: %w", s.d.Name, stream, err)
}

// LastRevision returns the last revision of a stream, soft-deleted or not.
func (s *Core[C]) LastRevision(ctx context.Context, stream string) (uint64, bool) {
	err := s.Unary(ctx, stream, func(ctx context.Context, cl C) error {
		// An empty append at a revision no stream reaches: the server
		// refuses it with a wrong expected version that reports the
		// stream's actual revision, writing nothing.
		_, err := s.d.Ops.Append(ctx, cl, stream, es.Exact(maxProbeRevision), nil)
		return err
	})
	if err == nil {
		return 0, false
	}
	var wev *es.WrongExpectedVersionError
	if errors.As(s.MapError(ctx, stream, es.Any, err), &wev) {
		return wev.Actual.Revision()
	}
	return 0, false
}
