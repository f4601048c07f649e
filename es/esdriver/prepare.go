package esdriver

import (
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
)

// PrepareAppend validates an append and returns its events as a store writes
// them: a zero ID replaced by a new random UUID, an empty content type by
// [es.ContentTypeJSON]. The input is not modified. Errors wrap
// [es.ErrInvalidArgument] or, when the total size of data and metadata is over
// maxSize, [es.ErrMaxAppendSizeExceeded]; maxSize <= 0 means [es.MaxAppendSize].
//
// Every store calls it, so that all of them accept and reject the same
// input.
func PrepareAppend(stream string, events []es.EventData, maxSize int) ([]es.EventData, error) {
	out, size, err := prepareEvents(stream, events)
	if err != nil {
		return nil, err
	}
	if maxSize <= 0 {
		maxSize = es.MaxAppendSize
	}
	if size > maxSize {
		return nil, fmt.Errorf("%w: append to stream %q is %d bytes, over the limit of %d", es.ErrMaxAppendSizeExceeded, stream, size, maxSize)
	}
	return out, nil
}

// prepareEvents is PrepareAppend without the size limit: it also returns
// the size of the events' data and metadata.
func prepareEvents(stream string, events []es.EventData) ([]es.EventData, int, error) {
	if err := es.ValidateStreamName(stream); err != nil {
		return nil, 0, err
	}
	out := make([]es.EventData, len(events))
	size := 0
	for i, ev := range events {
		if err := es.ValidateEventType(ev.Type); err != nil {
			return nil, 0, fmt.Errorf("%w (event %d of the append to stream %q)", err, i, stream)
		}
		switch ev.ContentType {
		case "":
			ev.ContentType = es.ContentTypeJSON
		case es.ContentTypeJSON, es.ContentTypeBinary:
		default:
			return nil, 0, fmt.Errorf("%w: event %d of the append to stream %q: content type %q: want %q or %q",
				es.ErrInvalidArgument, i, stream, ev.ContentType, es.ContentTypeJSON, es.ContentTypeBinary)
		}
		if ev.ID == uuid.Nil {
			ev.ID = uuid.New()
		}
		size += len(ev.Data) + len(ev.Metadata)
		out[i] = ev
	}
	return out, size, nil
}

// ParseMetadataAppend returns the metadata that an append of evs to a
// metadata stream sets: that of its last [es.EventTypeMetadata] event, or
// nil if it has none. Like EventStoreDB, a store keeps metadata that does
// not parse as it was written, and treats it as no metadata (the zero
// [es.StreamMetadata]).
func ParseMetadataAppend(evs []es.EventData) *es.StreamMetadata {
	var meta *es.StreamMetadata
	for _, ev := range evs {
		if ev.Type != es.EventTypeMetadata {
			continue
		}
		var m es.StreamMetadata
		if json.Unmarshal(ev.Data, &m) != nil {
			m = es.StreamMetadata{}
		}
		meta = &m
	}
	return meta
}
