package es

import (
	"context"
	"errors"
)

// Head returns the last event of the global log (`$all`), as the store
// reads it, and false when the log holds no event.
func Head(ctx context.Context, s Store) (RecordedEvent, bool, error) {
	for ev, err := range s.ReadAll(ctx, ReadAllOptions{Direction: Backwards, From: End, Limit: 1}) {
		if err != nil {
			return RecordedEvent{}, false, err
		}
		return ev, true, nil
	}
	return RecordedEvent{}, false, nil
}

// LastEvent returns the last event of stream, and false when the stream
// has none: it does not exist, or every event of it is deleted or hidden
// by its metadata. A tombstoned stream is [ErrStreamDeleted].
func LastEvent(ctx context.Context, s Store, stream string) (RecordedEvent, bool, error) {
	for ev, err := range s.ReadStream(ctx, stream, ReadStreamOptions{Direction: Backwards, From: StreamEnd, Limit: 1}) {
		if errors.Is(err, ErrStreamNotFound) {
			break
		}
		if err != nil {
			return RecordedEvent{}, false, err
		}
		return ev, true, nil
	}
	return RecordedEvent{}, false, nil
}
