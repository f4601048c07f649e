package esdbtest

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Event is an event to write with [Server.Seed].
type Event struct {
	// ID identifies the event; the zero UUID gets a random one.
	ID uuid.UUID
	// Type is the event type; it must not be empty.
	Type string
	// ContentType is "application/json" (the default when empty) or
	// anything else for binary data, stored as "application/octet-stream".
	ContentType string
	// Data is the payload.
	Data []byte
	// Metadata is the user metadata.
	Metadata []byte
}

// RecordedEvent is an event as the server stores it.
type RecordedEvent struct {
	// ID is the event ID.
	ID uuid.UUID
	// Stream is the name of the stream the event belongs to.
	Stream string
	// Revision is the revision of the event in its stream; 2^63-1 for a
	// tombstone record.
	Revision uint64
	// Position is the position in `$all`, commit and prepare alike.
	Position uint64
	// Type is the event type.
	Type string
	// ContentType is "application/json" or "application/octet-stream".
	ContentType string
	// Created is when the server stored the event.
	Created time.Time
	// Data is the payload.
	Data []byte
	// Metadata is the user metadata.
	Metadata []byte
}

// Seed appends events to a stream, without any expected revision, as a
// client append would: subscriptions see them. It fails on a tombstoned
// stream, an invalid name or an event without a type.
func (s *Server) Seed(stream string, events ...Event) error {
	if stream == "" || stream == allStreamName {
		return fmt.Errorf("esdbtest: seed: invalid stream name %q", stream)
	}
	props := make([]proposal, 0, len(events))
	for i, e := range events {
		if e.Type == "" {
			return fmt.Errorf("esdbtest: seed %s: event %d has no type", stream, i)
		}
		p := proposal{id: e.ID, eventType: e.Type, contentType: contentTypeJSON, data: clone(e.Data), metadata: clone(e.Metadata)}
		if p.id == uuid.Nil {
			p.id = uuid.New()
		}
		if e.ContentType != "" && e.ContentType != contentTypeJSON {
			p.contentType = contentTypeBinary
		}
		props = append(props, p)
	}
	_, err := s.store.append(stream, expectation{kind: expectAny}, props)
	var deleted errStreamDeleted
	var wrong errWrongExpected
	switch {
	case errors.As(err, &deleted):
		return fmt.Errorf("esdbtest: seed %s: stream is deleted", stream)
	case errors.As(err, &wrong):
		return fmt.Errorf("esdbtest: seed %s: event IDs partly match events already written", stream)
	}
	return err
}

// Events returns every event of a stream as stored, in revision order,
// whatever its metadata or deletion hides from reads. It does not include
// the tombstone record; see [Server.All].
func (s *Server) Events(stream string) []RecordedEvent {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	st := s.store.streams[stream]
	if st == nil {
		return nil
	}
	return exportRecords(st.events)
}

// All returns every record of `$all` in position order: events of every
// stream, metadata events, events of deleted streams and tombstones.
func (s *Server) All() []RecordedEvent {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	return exportRecords(s.store.log)
}

// Tombstoned reports whether a stream was tombstoned.
func (s *Server) Tombstoned(stream string) bool {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	st := s.store.streams[stream]
	return st != nil && st.tombstone != nil
}

func exportRecords(recs []*record) []RecordedEvent {
	out := make([]RecordedEvent, len(recs))
	for i, r := range recs {
		out[i] = RecordedEvent{
			ID:          r.id,
			Stream:      r.stream,
			Revision:    r.revision,
			Position:    r.position,
			Type:        r.eventType,
			ContentType: r.contentType,
			Created:     r.created,
			Data:        clone(r.data),
			Metadata:    clone(r.metadata),
		}
	}
	return out
}

func clone(b []byte) []byte {
	return append([]byte{}, b...)
}
