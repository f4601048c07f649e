package kurrentdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	streamerrors "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/errors"
	"google.golang.org/grpc/status"
)

var _ es.MultiStreamAppender = (*Store)(nil)

// AppendStreams implements [es.MultiStreamAppender] through KurrentDB's
// multi-stream append (an append session, KurrentDB 25.0 and later):
// every part is written, or none. Against an older server it returns an
// error matching [errors.ErrUnsupported] and writes nothing.
//
// KurrentDB keeps an event's metadata as properties: the metadata of each
// event must be empty or a JSON object whose values are strings; other
// metadata is refused with an error wrapping [es.ErrInvalidArgument] and
// nothing is written. The server stores the properties as a JSON object
// with the record's schema added ("$schema.format", "$schema.name"); the
// Store removes those keys when it reads the event, so the metadata read
// back is equal as JSON (compact, keys sorted), not necessarily byte for
// byte.
//
// KurrentDB reports the position of the last event written: a part's
// Position, which the es contract asks for, is read back from its stream
// at the part's revision.
func (s *Store) AppendStreams(ctx context.Context, parts ...es.StreamAppend) ([]es.AppendResult, error) {
	parts, err := esdriver.PrepareStreamAppends(parts, es.MaxAppendSize)
	if err != nil {
		return nil, err
	}
	reqs := make([]kurrentdb.AppendStreamRequest, len(parts))
	for i, p := range parts {
		data, err := multiEvents(i, p)
		if err != nil {
			return nil, err
		}
		reqs[i] = kurrentdb.AppendStreamRequest{StreamName: p.Stream, ExpectedStreamState: toExpected(p.Expected), Events: slices.Values(data)}
	}
	var res *kurrentdb.MultiStreamAppendResponse
	name := parts[0].Stream
	err = s.core.Unary(ctx, name, func(ctx context.Context, cl *kurrentdb.Client) (err error) {
		res, err = cl.MultiStreamAppend(ctx, slices.Values(reqs))
		return err
	})
	if err != nil {
		return nil, s.mapMultiError(ctx, parts, err)
	}
	if len(res.Responses) != len(parts) {
		return nil, fmt.Errorf("kurrentdb: multi-stream append of %d parts answered with %d results", len(parts), len(res.Responses))
	}
	out := make([]es.AppendResult, len(parts))
	for i, r := range res.Responses {
		if r.Stream != parts[i].Stream || r.StreamRevision < 0 {
			return nil, fmt.Errorf("kurrentdb: multi-stream append: result %d is for stream %q at %d, not %q", i, r.Stream, r.StreamRevision, parts[i].Stream)
		}
		out[i].Revision = uint64(r.StreamRevision)
		ev, err := s.eventAt(ctx, r.Stream, out[i].Revision)
		if err != nil {
			return nil, err
		}
		out[i].Position = ev.Position
	}
	return out, nil
}

// multiEvents converts part i's events, refusing metadata that is not a
// JSON object of strings.
func multiEvents(i int, p es.StreamAppend) ([]kurrentdb.EventData, error) {
	data := make([]kurrentdb.EventData, len(p.Events))
	for j, ev := range p.Events {
		if len(ev.Metadata) > 0 {
			var props map[string]string
			if err := json.Unmarshal(ev.Metadata, &props); err != nil || props == nil {
				return nil, fmt.Errorf("%w: part %d (stream %q), event %d: KurrentDB's multi-stream append takes metadata that is a JSON object of strings", es.ErrInvalidArgument, i, p.Stream, j)
			}
		}
		data[j] = eventData(ev)
	}
	return data, nil
}

// eventAt reads the event at revision rev of stream.
func (s *Store) eventAt(ctx context.Context, stream string, rev uint64) (es.RecordedEvent, error) {
	next, stop := iter.Pull2(s.ReadStream(ctx, stream, es.ReadStreamOptions{From: rev, Limit: 1}))
	defer stop()
	ev, err, ok := next()
	if err != nil {
		return es.RecordedEvent{}, err
	}
	if !ok || ev.Revision != rev {
		return es.RecordedEvent{}, fmt.Errorf("kurrentdb: stream %q: the event at revision %d just written cannot be read", stream, rev)
	}
	return ev, nil
}

// mapMultiError turns the errors of a multi-stream append into es's.
func (s *Store) mapMultiError(ctx context.Context, parts []es.StreamAppend, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("kurrentdb: %w", ctxErr)
	}
	if st, ok := status.FromError(err); ok {
		for _, d := range st.Details() {
			if d, ok := d.(*streamerrors.StreamDeletedErrorDetails); ok {
				// A soft-deleted stream expected to exist, which the
				// client leaves unmapped.
				return esdriver.StreamDeleted(d.GetStream())
			}
		}
	}
	var e *kurrentdb.Error
	if !errors.As(err, &e) {
		return s.core.MapError(ctx, parts[0].Stream, es.Any, err)
	}
	expected := func(stream string) es.ExpectedRevision {
		for _, p := range parts {
			if p.Stream == stream {
				return p.Expected
			}
		}
		return es.Any
	}
	switch e.Code() {
	case kurrentdb.ErrorCodeUnsupportedFeature:
		return fmt.Errorf("kurrentdb: the server cannot append to several streams at once (KurrentDB 25.0 and later can): %w", errors.ErrUnsupported)
	case kurrentdb.ErrorCodeStreamRevisionConflict:
		var c *kurrentdb.StreamRevisionConflictError
		if errors.As(e.Err(), &c) {
			wev := &es.WrongExpectedVersionError{Stream: c.Stream, Expected: expected(c.Stream), Actual: es.NoStream}
			if r, ok := c.ActualRevision.(kurrentdb.StreamRevision); ok {
				wev.Actual = es.Exact(r.Value)
			}
			return wev
		}
	case kurrentdb.ErrorCodeStreamTombstoned:
		var d *kurrentdb.StreamTombstoneError
		if errors.As(e.Err(), &d) {
			return esdriver.StreamDeleted(d.Stream)
		}
		return fmt.Errorf("%w: %v", es.ErrStreamDeleted, err)
	case kurrentdb.ErrorCodeAppendRecordSizeExceeded, kurrentdb.ErrorCodeAppendTransactionSizeExceeded:
		return fmt.Errorf("%w: multi-stream append: %v", es.ErrMaxAppendSizeExceeded, err)
	}
	return s.core.MapError(ctx, parts[0].Stream, es.Any, err)
}

// Metadata keys KurrentDB adds to the events of a multi-stream append: the
// record's schema format and name.
const (
	schemaFormatKey = "$schema.format"
	schemaNameKey   = "$schema.name"
)

// userMetadata returns an event's metadata as it was appended. KurrentDB
// stores the events of a multi-stream append with their properties and
// schema as a JSON object: the schema keys are removed, and what remains
// is returned as compact JSON with keys sorted (empty when nothing
// remains). Other metadata is returned as it is.
func userMetadata(m []byte) []byte {
	if !bytes.Contains(m, []byte(`"$schema.`)) {
		return m
	}
	var props map[string]json.RawMessage
	if err := json.Unmarshal(m, &props); err != nil {
		return m
	}
	_, hasFormat := props[schemaFormatKey]
	_, hasName := props[schemaNameKey]
	if !hasFormat || !hasName {
		return m
	}
	delete(props, schemaFormatKey)
	delete(props, schemaNameKey)
	if len(props) == 0 {
		return []byte{}
	}
	out, err := json.Marshal(props)
	if err != nil {
		return m
	}
	return out
}
