package es

import (
	"fmt"
	"strings"
	"unicode/utf8"
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

// ValidateEventType reports an error wrapping [ErrInvalidArgument] unless
// name is a valid event type: 1 to [MaxNameLength] bytes of UTF-8 without
// NUL characters, as stream names.
func ValidateEventType(name string) error {
	if err := validateName(name); err != nil {
		return fmt.Errorf("%w: event type %s", ErrInvalidArgument, err)
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
