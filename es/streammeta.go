package es

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Names the store itself uses in the log.
const (
	// EventTypeMetadata is the type of the events of metadata streams.
	EventTypeMetadata = "$metadata"
	// EventTypeStreamDeleted is the type of a tombstone record.
	EventTypeStreamDeleted = "$streamDeleted"
)

// MetadataStream returns the name of stream's metadata stream.
// Its events are of type [EventTypeMetadata].
func MetadataStream(stream string) string { return "$$" + stream }

// StreamMetadata is a stream's metadata, stored as the last `$metadata` event
// of its metadata stream and enforced by every read of the stream. The zero
// value sets nothing.
type StreamMetadata struct {
	// MaxCount keeps only the newest MaxCount events (`$maxCount`);
	// 0 keeps all.
	MaxCount uint64
	// MaxAge keeps only events younger than MaxAge, in whole seconds
	// (`$maxAge`); 0 keeps all.
	MaxAge time.Duration
	// TruncateBefore hides the events before this revision (`$tb`).
	// A soft delete sets it to 2^63-1.
	TruncateBefore uint64
	// Custom holds every other key, such as `$acl` or an application's own,
	// kept as they were.
	Custom map[string]json.RawMessage
}

const (
	keyMaxCount       = "$maxCount"
	keyMaxAge         = "$maxAge"
	keyTruncateBefore = "$tb"
)

// MarshalJSON encodes the metadata as EventStoreDB does.
func (m StreamMetadata) MarshalJSON() ([]byte, error) {
	obj := make(map[string]any, len(m.Custom)+3)
	for k, v := range m.Custom {
		obj[k] = v
	}
	if m.MaxCount > 0 {
		obj[keyMaxCount] = m.MaxCount
	}
	if m.MaxAge > 0 {
		obj[keyMaxAge] = uint64(m.MaxAge / time.Second)
	}
	if m.TruncateBefore > 0 {
		obj[keyTruncateBefore] = m.TruncateBefore
	}
	return json.Marshal(obj)
}

// UnmarshalJSON decodes metadata written by any EventStoreDB client.
func (m *StreamMetadata) UnmarshalJSON(data []byte) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("es: stream metadata: %w", err)
	}
	if obj == nil {
		return errors.New("es: stream metadata: not a JSON object")
	}
	var out StreamMetadata
	for k, v := range obj {
		var dst *uint64
		switch k {
		case keyMaxCount:
			dst = &out.MaxCount
		case keyTruncateBefore:
			dst = &out.TruncateBefore
		case keyMaxAge:
			var secs uint64
			if err := json.Unmarshal(v, &secs); err != nil {
				return fmt.Errorf("es: stream metadata: %s: %w", k, err)
			}
			if secs > uint64(math.MaxInt64/time.Second) {
				return fmt.Errorf("es: stream metadata: %s: %d seconds is too long", k, secs)
			}
			out.MaxAge = time.Duration(secs) * time.Second
			continue
		default:
			if out.Custom == nil {
				out.Custom = make(map[string]json.RawMessage)
			}
			out.Custom[k] = v
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return fmt.Errorf("es: stream metadata: %s: %w", k, err)
		}
	}
	*m = out
	return nil
}

// SetStreamMetadata replaces the metadata of stream by appending it to the
// stream's metadata stream; expected applies to the metadata stream.
func SetStreamMetadata(ctx context.Context, s Store, stream string, expected ExpectedRevision, m StreamMetadata) (AppendResult, error) {
	if err := ValidateStreamName(stream); err != nil {
		return AppendResult{}, err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return AppendResult{}, err
	}
	return s.Append(ctx, MetadataStream(stream), expected, EventData{Type: EventTypeMetadata, ContentType: ContentTypeJSON, Data: data})
}

// GetStreamMetadata returns the metadata of stream and the expected
// revision that a conditional [SetStreamMetadata] passes to replace it:
// [Exact] of the metadata event's revision, or [NoStream] for a stream
// without metadata (which has the zero StreamMetadata).
//
//	m, rev, err := es.GetStreamMetadata(ctx, store, "order-1")
//	m.MaxCount = 10
//	_, err = es.SetStreamMetadata(ctx, store, "order-1", rev, m) // fails if another wrote meanwhile
func GetStreamMetadata(ctx context.Context, s Store, stream string) (StreamMetadata, ExpectedRevision, error) {
	if err := ValidateStreamName(stream); err != nil {
		return StreamMetadata{}, NoStream, err
	}
	ev, ok, err := LastEvent(ctx, s, MetadataStream(stream))
	if err != nil || !ok {
		return StreamMetadata{}, NoStream, err
	}
	var m StreamMetadata
	if err := json.Unmarshal(ev.Data, &m); err != nil {
		return StreamMetadata{}, NoStream, fmt.Errorf("es: metadata of stream %q at revision %d: %w", stream, ev.Revision, err)
	}
	return m, Exact(ev.Revision), nil
}
