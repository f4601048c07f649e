package es

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits every Store enforces, so that data valid in one store is valid in
// all of them.
const (
	// MaxNameLength is the maximum length in bytes of a stream name or an
	// event type.
	MaxNameLength = 1024
	// MaxAppendSize is the default maximum total size in bytes of the data
	// and metadata of the events of one append (EventStoreDB's default).
	MaxAppendSize = 1 << 20
)

// ValidateStreamName reports an error wrapping [ErrInvalidArgument] unless
// name is a valid stream name: 1 to [MaxNameLength] bytes of UTF-8 without
// NUL characters.
func ValidateStreamName(name string) error {
	if err := validateName(name); err != nil {
		return fmt.Errorf("%w: stream name %s", ErrInvalidArgument, err)
	}
	return nil
}

func validateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("is empty")
	case len(name) > MaxNameLength:
		return fmt.Errorf("%.40q… is %d bytes long, over the limit of %d", name, len(name), MaxNameLength)
	case !utf8.ValidString(name):
		return fmt.Errorf("%q is not valid UTF-8", name)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("%q contains a NUL character", name)
	}
	return nil
}

// PrepareAppend validates an append and returns its events as a store writes
// them: a zero ID replaced by a new random UUID, an empty content type by
// [ContentTypeJSON]. The input is not modified. Errors wrap
// [ErrInvalidArgument] or, when the total size of data and metadata is over
// maxSize, [ErrMaxAppendSizeExceeded]; maxSize <= 0 means [MaxAppendSize].
//
// PrepareAppend is for Store implementations: every Store calls it, so that
// all of them accept and reject the same input.
func PrepareAppend(stream string, events []EventData, maxSize int) ([]EventData, error) {
	if err := ValidateStreamName(stream); err != nil {
		return nil, err
	}
	if maxSize <= 0 {
		maxSize = MaxAppendSize
	}
	out := make([]EventData, len(events))
	size := 0
	for i, ev := range events {
		if err := validateName(ev.Type); err != nil {
			return nil, fmt.Errorf("%w: event %d of the append to stream %q: type %s", ErrInvalidArgument, i, stream, err)
		}
		switch ev.ContentType {
		case "":
			ev.ContentType = ContentTypeJSON
		case ContentTypeJSON, ContentTypeBinary:
		default:
			return nil, fmt.Errorf("%w: event %d of the append to stream %q: content type %q: want %q or %q",
				ErrInvalidArgument, i, stream, ev.ContentType, ContentTypeJSON, ContentTypeBinary)
		}
		if ev.ID == uuid.Nil {
			ev.ID = uuid.New()
		}
		size += len(ev.Data) + len(ev.Metadata)
		out[i] = ev
	}
	if size > maxSize {
		return nil, fmt.Errorf("%w: append to stream %q is %d bytes, over the limit of %d", ErrMaxAppendSizeExceeded, stream, size, maxSize)
	}
	return out, nil
}
