package es

import (
	"context"
	"errors"
	"fmt"
)

// StreamAppend is one stream's part of a multi-stream append: Events are
// written to Stream if the stream is at the Expected revision.
type StreamAppend struct {
	Stream   string
	Expected ExpectedRevision
	Events   []EventData
}

// MultiStreamAppender is implemented by stores that append to several
// streams in one atomic write: memstore, sqlstore (one transaction) and
// kurrentdb (KurrentDB 25.0 and later). EventStoreDB has no such write, and
// es/eventstoredb does not implement it. Call it through [AppendStreams],
// which reports a store without it as unsupported.
type MultiStreamAppender interface {
	// AppendStreams writes the events of every part, or of none.
	//
	// There is at least one part, every part has at least one event, and no
	// stream appears in two parts; otherwise nothing is written and the
	// error wraps [ErrInvalidArgument]. The events of all parts together
	// are limited as those of one [Store.Append] are
	// ([ErrMaxAppendSizeExceeded]).
	//
	// Each part is decided as Append decides it: its expected revision is
	// checked (a wrong one is a [*WrongExpectedVersionError] naming the
	// part's stream), a soft-deleted stream is recreated, a tombstoned one
	// is [ErrStreamDeleted], and a part whose event IDs the stream already
	// holds is not written again and reports its original result. If any
	// part fails, nothing is written and the first failing part's error is
	// returned.
	//
	// The events written follow each other in `$all` in the order of the
	// parts. The results are in the order of the parts, each as Append
	// reports it: the stream's last revision and the position of the
	// part's last event.
	//
	// A store that implements the method but cannot serve it (a wrapper
	// over a store without it, a KurrentDB server older than 25.0) returns
	// an error matching [errors.ErrUnsupported] and writes nothing.
	AppendStreams(ctx context.Context, parts ...StreamAppend) ([]AppendResult, error)
}

// AppendStreams appends to several streams atomically through store's
// [MultiStreamAppender]. A store without one gets an error matching
// [errors.ErrUnsupported], and nothing is written.
func AppendStreams(ctx context.Context, store Store, parts ...StreamAppend) ([]AppendResult, error) {
	m, ok := store.(MultiStreamAppender)
	if !ok {
		return nil, fmt.Errorf("es: %T cannot append to several streams at once: %w", store, errors.ErrUnsupported)
	}
	return m.AppendStreams(ctx, parts...)
}
