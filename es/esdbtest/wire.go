package esdbtest

import (
	"encoding/binary"
	"strconv"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// Reads and subscriptions send their events in wire form written straight
// from the records: building a ReadResp per event and marshalling it costs
// about 40 allocations per event (the message tree, a map of three entries
// that protobuf marshals by reflection, the codec's buffers), paid by every
// in-process benchmark of a client reading from this server. The encoding
// below writes the same fields; TestReadEventWire checks that it decodes to
// the message the server used to build, for every kind of read event.

// encoded is a message already in protobuf wire form. The server's codec
// sends it as it is; it must not change once sent.
type encoded struct {
	b    mem.SliceBuffer
	data [1]mem.Buffer // &b: the codec's answer, in the same allocation
}

// newEncoded returns b as a message to send.
func newEncoded(b []byte) *encoded {
	e := &encoded{b: b}
	e.data[0] = &e.b
	return e
}

// serverCodec is the standard protobuf codec, passing encoded messages
// through.
type serverCodec struct{ encoding.CodecV2 }

// newServerCodec returns the server's codec.
func newServerCodec() serverCodec {
	return serverCodec{encoding.GetCodecV2(grpcproto.Name)}
}

// Marshal implements [encoding.CodecV2].
func (c serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(*encoded); ok {
		return e.data[:], nil
	}
	return c.CodecV2.Marshal(v)
}

// Field numbers of the messages a read event is made of (streams.proto and
// shared.proto).
const (
	fieldReadRespEvent = 1 // ReadResp.event (oneof content)

	fieldReadEventEvent          = 1
	fieldReadEventLink           = 2
	fieldReadEventCommitPosition = 3 // oneof position
	fieldReadEventNoPosition     = 4 // oneof position

	fieldRecordedID              = 1
	fieldRecordedStream          = 2
	fieldRecordedRevision        = 3
	fieldRecordedPreparePosition = 4
	fieldRecordedCommitPosition  = 5
	fieldRecordedMetadata        = 6
	fieldRecordedCustomMetadata  = 7
	fieldRecordedData            = 8

	fieldUUIDStructured      = 1 // oneof value
	fieldUUIDString          = 2 // oneof value
	fieldStructuredMost      = 1
	fieldStructuredLeast     = 2
	fieldStreamIdentifierKey = 3 // StreamIdentifier.stream_name
	fieldMapKey              = 1
	fieldMapValue            = 2
)

// encodeReadEvent returns the wire form of the ReadResp carrying a read
// event: event (nil for a link whose target is gone: the link comes back
// alone), the link it was reached through (nil unless a link was resolved),
// and, for `$all` reads only, the read event's own position (the client's
// ResolvedEvent.Commit). Every recorded event carries its position.
func encodeReadEvent(event, link *record, p readPlan) *encoded {
	var eventSize, linkSize int
	inner := 0
	if event != nil {
		eventSize = recordedSize(event, p.stringIDs)
		inner += protowire.SizeTag(fieldReadEventEvent) + protowire.SizeBytes(eventSize)
	}
	if link != nil {
		linkSize = recordedSize(link, p.stringIDs)
		inner += protowire.SizeTag(fieldReadEventLink) + protowire.SizeBytes(linkSize)
	}
	// The position is a oneof: sent even when it is zero or empty.
	var position uint64
	if p.positions {
		// The read event's position is its own record's: the link's when
		// a link was resolved.
		position = readEventRecord(event, link).position
		inner += protowire.SizeTag(fieldReadEventCommitPosition) + protowire.SizeVarint(position)
	} else {
		inner += protowire.SizeTag(fieldReadEventNoPosition) + protowire.SizeBytes(0)
	}

	b := make([]byte, 0, protowire.SizeTag(fieldReadRespEvent)+protowire.SizeBytes(inner))
	b = protowire.AppendTag(b, fieldReadRespEvent, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	if event != nil {
		b = protowire.AppendTag(b, fieldReadEventEvent, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(eventSize))
		b = appendRecorded(b, event, p.stringIDs)
	}
	if link != nil {
		b = protowire.AppendTag(b, fieldReadEventLink, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(linkSize))
		b = appendRecorded(b, link, p.stringIDs)
	}
	if p.positions {
		b = protowire.AppendTag(b, fieldReadEventCommitPosition, protowire.VarintType)
		b = protowire.AppendVarint(b, position)
	} else {
		b = protowire.AppendTag(b, fieldReadEventNoPosition, protowire.BytesType)
		b = protowire.AppendVarint(b, 0)
	}
	return newEncoded(b)
}

// readEventRecord returns the record a read event stands for: the link when
// a link was resolved, the event otherwise.
func readEventRecord(event, link *record) *record {
	if link != nil {
		return link
	}
	return event
}

// createdText writes a record's created time as EventStoreDB sends it, in
// ticks, to buf.
func createdText(buf *[20]byte, rec *record) []byte {
	return strconv.AppendInt(buf[:0], ticks(rec.created), 10)
}

// sizeUint is the size of a varint field, 0 when proto3 leaves it out.
func sizeUint(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

// sizeBytesField is the size of a bytes or string field, 0 when proto3
// leaves it out.
func sizeBytesField(num protowire.Number, n int) int {
	if n == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

// appendUint appends a varint field unless it is zero.
func appendUint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendBytesField appends a bytes field unless it is empty.
func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// appendStringField appends a string field unless it is empty.
func appendStringField(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

// uuidBits returns the structured wire form of an ID.
func uuidBits(rec *record) (most, least uint64) {
	return binary.BigEndian.Uint64(rec.id[:8]), binary.BigEndian.Uint64(rec.id[8:])
}

// uuidSize is the size of a record's ID as a shared.UUID message.
func uuidSize(rec *record, stringIDs bool) int {
	if stringIDs {
		return protowire.SizeTag(fieldUUIDString) + protowire.SizeBytes(len(rec.id.String()))
	}
	most, least := uuidBits(rec)
	structured := sizeUint(fieldStructuredMost, most) + sizeUint(fieldStructuredLeast, least)
	return protowire.SizeTag(fieldUUIDStructured) + protowire.SizeBytes(structured)
}

// metadataEntrySize is the size of one map entry of the metadata field.
func metadataEntrySize(key string, value int) int {
	return sizeBytesField(fieldMapKey, len(key)) + sizeBytesField(fieldMapValue, value)
}

// recordedSize is the size of a record as a RecordedEvent message.
func recordedSize(rec *record, stringIDs bool) int {
	var buf [20]byte
	streamIdentifier := sizeBytesField(fieldStreamIdentifierKey, len(rec.stream))
	n := protowire.SizeTag(fieldRecordedID) + protowire.SizeBytes(uuidSize(rec, stringIDs)) +
		protowire.SizeTag(fieldRecordedStream) + protowire.SizeBytes(streamIdentifier) +
		sizeUint(fieldRecordedRevision, rec.revision) +
		sizeUint(fieldRecordedPreparePosition, rec.position) +
		sizeUint(fieldRecordedCommitPosition, rec.position) +
		sizeBytesField(fieldRecordedCustomMetadata, len(rec.metadata)) +
		sizeBytesField(fieldRecordedData, len(rec.data))
	for _, entry := range [...]int{
		metadataEntrySize("type", len(rec.eventType)),
		metadataEntrySize("content-type", len(rec.contentType)),
		metadataEntrySize("created", len(createdText(&buf, rec))),
	} {
		n += protowire.SizeTag(fieldRecordedMetadata) + protowire.SizeBytes(entry)
	}
	return n
}

// appendMetadataEntry appends one entry of the metadata map.
func appendMetadataEntry[V ~string | ~[]byte](b []byte, key string, value V) []byte {
	b = protowire.AppendTag(b, fieldRecordedMetadata, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(metadataEntrySize(key, len(value))))
	b = appendStringField(b, fieldMapKey, key)
	if len(value) == 0 {
		return b
	}
	b = protowire.AppendTag(b, fieldMapValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(value)))
	return append(b, value...)
}

// appendRecorded appends a record as a RecordedEvent message, without its
// tag and length.
func appendRecorded(b []byte, rec *record, stringIDs bool) []byte {
	b = protowire.AppendTag(b, fieldRecordedID, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(uuidSize(rec, stringIDs)))
	if stringIDs {
		b = protowire.AppendTag(b, fieldUUIDString, protowire.BytesType)
		b = protowire.AppendString(b, rec.id.String())
	} else {
		most, least := uuidBits(rec)
		b = protowire.AppendTag(b, fieldUUIDStructured, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeUint(fieldStructuredMost, most)+sizeUint(fieldStructuredLeast, least)))
		b = appendUint(b, fieldStructuredMost, most)
		b = appendUint(b, fieldStructuredLeast, least)
	}

	b = protowire.AppendTag(b, fieldRecordedStream, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizeBytesField(fieldStreamIdentifierKey, len(rec.stream))))
	b = appendStringField(b, fieldStreamIdentifierKey, rec.stream)

	b = appendUint(b, fieldRecordedRevision, rec.revision)
	b = appendUint(b, fieldRecordedPreparePosition, rec.position)
	b = appendUint(b, fieldRecordedCommitPosition, rec.position)

	var buf [20]byte
	b = appendMetadataEntry(b, "type", rec.eventType)
	b = appendMetadataEntry(b, "content-type", rec.contentType)
	b = appendMetadataEntry(b, "created", createdText(&buf, rec))

	b = appendBytesField(b, fieldRecordedCustomMetadata, rec.metadata)
	return appendBytesField(b, fieldRecordedData, rec.data)
}
