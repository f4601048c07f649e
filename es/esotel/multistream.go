package esotel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/eventfold/eventfold/es"
)

// Attribute keys of multi-stream appends.
const (
	// AttrStreams are the streams of a multi-stream append, in the order
	// of its parts.
	AttrStreams = attribute.Key("eventfold.streams")
	// AttrParts is the number of parts of a multi-stream append.
	AttrParts = attribute.Key("eventfold.parts")
)

var _ es.MultiStreamAppender = (*Store)(nil)

// AppendStreams implements [es.MultiStreamAppender] by calling the wrapped
// store's: a span "append_streams {category}" ("append_streams" alone when
// the streams are of several categories), the trace context into every
// part's events, and the append metrics, which count the multi-stream
// append as one append of all its events. If the wrapped store does not
// implement es.MultiStreamAppender, the error matches
// [errors.ErrUnsupported], nothing is written and nothing is recorded.
func (s *Store) AppendStreams(ctx context.Context, parts ...es.StreamAppend) ([]es.AppendResult, error) {
	m, ok := s.s.(es.MultiStreamAppender)
	if !ok {
		return nil, fmt.Errorf("esotel: the wrapped store, a %T, cannot append to several streams at once: %w", s.s, errors.ErrUnsupported)
	}
	ctx, span, recording := s.startOn(ctx, "append_streams", target(parts))
	defer span.End()
	n := 0
	for _, p := range parts {
		n += len(p.Events)
	}
	if recording {
		streams := make([]string, len(parts))
		traced := make([]es.StreamAppend, len(parts))
		for i, p := range parts {
			streams[i] = p.Stream
			traced[i] = p
			traced[i].Events = withTraceContext(span.SpanContext(), p.Events)
		}
		span.SetAttributes(AttrStreams.StringSlice(streams), AttrParts.Int(len(parts)), semconv.DBOperationBatchSize(n))
		parts = traced
	}
	began := time.Now()
	res, err := m.AppendStreams(ctx, parts...)
	s.recordAppend(ctx, span, began, n, err)
	return res, err
}

// target returns the category that the parts' streams share, "" if they
// are of several.
func target(parts []es.StreamAppend) string {
	var t string
	for i, p := range parts {
		if c := category(p.Stream); i == 0 {
			t = c
		} else if c != t {
			return ""
		}
	}
	return t
}
