package es

import (
	"fmt"
	"strconv"
	"strings"
)

// ExpectedRevision is the state a stream must be in for an append or delete
// to proceed: [Any], [NoStream], [StreamExists] or [Exact] revision n.
// The zero value is Any.
//
// [WrongExpectedVersionError] also uses it to report a stream's actual state,
// which is either NoStream or Exact.
type ExpectedRevision struct {
	kind     expectKind
	revision uint64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectStreamExists
	expectExact
)

// The expected revisions that are not a number.
var (
	// Any skips the check: the append proceeds whatever the stream's state.
	Any = ExpectedRevision{kind: expectAny}
	// NoStream requires that the stream does not exist: it never had
	// events, or it was soft-deleted (an append then recreates it).
	NoStream = ExpectedRevision{kind: expectNoStream}
	// StreamExists requires that the stream exists and is not deleted.
	StreamExists = ExpectedRevision{kind: expectStreamExists}
)

// Exact requires that the stream's last revision is revision.
func Exact(revision uint64) ExpectedRevision {
	return ExpectedRevision{kind: expectExact, revision: revision}
}

// IsAny reports whether r is [Any].
func (r ExpectedRevision) IsAny() bool { return r.kind == expectAny }

// IsNoStream reports whether r is [NoStream].
func (r ExpectedRevision) IsNoStream() bool { return r.kind == expectNoStream }

// IsStreamExists reports whether r is [StreamExists].
func (r ExpectedRevision) IsStreamExists() bool { return r.kind == expectStreamExists }

// Revision returns the revision of an [Exact] expected revision, and false
// for the others.
func (r ExpectedRevision) Revision() (uint64, bool) {
	return r.revision, r.kind == expectExact
}

// String returns "any", "no stream", "stream exists" or the revision number.
func (r ExpectedRevision) String() string {
	switch r.kind {
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	case expectExact:
		return strconv.FormatUint(r.revision, 10)
	}
	return "any"
}

// MarshalText implements [encoding.TextMarshaler] with the format of
// [ParseExpectedRevision].
func (r ExpectedRevision) MarshalText() ([]byte, error) {
	return []byte(strings.ReplaceAll(r.String(), " ", "_")), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler]; see
// [ParseExpectedRevision].
func (r *ExpectedRevision) UnmarshalText(text []byte) error {
	v, err := ParseExpectedRevision(string(text))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// ParseExpectedRevision parses "any", "no_stream", "stream_exists" (spaces
// or hyphens instead of underscores are accepted too) or a revision number
// such as "42", for expected revisions that come from outside the program
// (HTTP headers, command-line flags). A negative number is an error wrapping
// [ErrInvalidArgument].
func ParseExpectedRevision(s string) (ExpectedRevision, error) {
	switch strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToLower(strings.TrimSpace(s))) {
	case "any":
		return Any, nil
	case "no_stream":
		return NoStream, nil
	case "stream_exists":
		return StreamExists, nil
	}
	num := strings.TrimSpace(s)
	n, err := strconv.ParseInt(num, 10, 64)
	if err == nil && n < 0 {
		return ExpectedRevision{}, fmt.Errorf("%w: negative expected revision %d", ErrInvalidArgument, n)
	}
	u, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return ExpectedRevision{}, fmt.Errorf("%w: expected revision %q: want any, no_stream, stream_exists or a revision number", ErrInvalidArgument, s)
	}
	return Exact(u), nil
}
