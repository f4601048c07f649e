package esdbtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/google/uuid"
)

// The journal of a server started with [WithDataDir] is one append-only
// file: a magic header, then one frame per log record, in log order:
//
//	length    uint32, little endian: the length of the payload
//	headerCRC uint32: CRC-32C of the 4 length bytes
//	dataCRC   uint32: CRC-32C of the payload
//	payload   kind byte (1 event, 2 tombstone), the event ID (16 bytes),
//	          then uvarint revision and position, varint created time
//	          (Unix nanoseconds), and stream, type, content type, data
//	          and metadata, each a uvarint length and its bytes.
//
// The header's own checksum tells a torn tail (a crash while the last frame
// was written: dropped at load) from a damaged length in the middle of the
// file (an error, never a silent truncation of good records).
const (
	journalMagic     = "EFJRNL01"
	frameHeaderSize  = 12
	maxFramePayload  = 1 << 30
	frameKindEvent   = 1
	frameKindDeleted = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTornFrame reports a last frame cut short by a crash.
var errTornFrame = errors.New("torn frame")

// CorruptJournalError reports a journal that cannot be loaded: damage
// other than a torn last record, at byte Offset of File.
type CorruptJournalError struct {
	File   string
	Offset int64
	Reason string
}

func (e *CorruptJournalError) Error() string {
	return fmt.Sprintf("esdbtest: journal %s is corrupt at offset %d: %s", e.File, e.Offset, e.Reason)
}

// appendFrame appends the frame of rec to buf.
func appendFrame(buf []byte, rec *record) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, frameHeaderSize)...)
	kind := byte(frameKindEvent)
	if rec.revision == tombstoneRevision && rec.eventType == tombstoneEventType {
		kind = frameKindDeleted
	}
	buf = append(buf, kind)
	buf = append(buf, rec.id[:]...)
	buf = binary.AppendUvarint(buf, rec.revision)
	buf = binary.AppendUvarint(buf, rec.position)
	buf = binary.AppendVarint(buf, rec.created.UnixNano())
	for _, b := range [][]byte{[]byte(rec.stream), []byte(rec.eventType), []byte(rec.contentType), rec.data, rec.metadata} {
		buf = binary.AppendUvarint(buf, uint64(len(b)))
		buf = append(buf, b...)
	}
	payload := buf[start+frameHeaderSize:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start:start+4], castagnoli))
	binary.LittleEndian.PutUint32(buf[start+8:], crc32.Checksum(payload, castagnoli))
	return buf
}

// readFrame decodes the frame at the start of b and returns its record and
// its size. A frame that ends the file before it is complete, or whose
// checksum fails while nothing follows it, is errTornFrame; any other
// damage is an error saying what is wrong.
func readFrame(b []byte) (*record, int, error) {
	if len(b) < frameHeaderSize {
		return nil, 0, errTornFrame
	}
	if binary.LittleEndian.Uint32(b[4:]) != crc32.Checksum(b[:4], castagnoli) {
		if allZero(b) {
			return nil, 0, errTornFrame // space the file system allocated but never wrote
		}
		return nil, 0, errors.New("frame header checksum mismatch")
	}
	n := binary.LittleEndian.Uint32(b)
	if n > maxFramePayload {
		return nil, 0, fmt.Errorf("frame length %d is too large", n)
	}
	size := frameHeaderSize + int(n)
	if len(b) < size {
		return nil, 0, errTornFrame
	}
	payload := b[frameHeaderSize:size]
	if binary.LittleEndian.Uint32(b[8:]) != crc32.Checksum(payload, castagnoli) {
		if len(b) == size || allZero(b[size:]) {
			return nil, 0, errTornFrame
		}
		return nil, 0, errors.New("frame checksum mismatch")
	}
	rec, err := decodePayload(payload)
	if err != nil {
		return nil, 0, err
	}
	return rec, size, nil
}

func allZero(b []byte) bool {
	return len(bytes.Trim(b, "\x00")) == 0
}

// payloadReader reads the fields of a frame's payload; the first failure
// sticks.
type payloadReader struct {
	b   []byte
	err error
}

func (r *payloadReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad varint in frame")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *payloadReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errors.New("bad varint in frame")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *payloadReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errors.New("field longer than its frame")
		return nil
	}
	out := bytes.Clone(r.b[:n])
	if out == nil {
		out = []byte{}
	}
	r.b = r.b[n:]
	return out
}

// decodePayload decodes a payload whose checksum matched.
func decodePayload(p []byte) (*record, error) {
	if len(p) < 1+16 {
		return nil, errors.New("frame too short")
	}
	kind := p[0]
	if kind != frameKindEvent && kind != frameKindDeleted {
		return nil, fmt.Errorf("unknown frame kind %d", kind)
	}
	rec := &record{id: uuid.UUID(p[1:17])}
	r := &payloadReader{b: p[17:]}
	rec.revision = r.uvarint()
	rec.position = r.uvarint()
	rec.created = time.Unix(0, r.varint())
	rec.stream = string(r.bytes())
	rec.eventType = string(r.bytes())
	rec.contentType = string(r.bytes())
	rec.data = r.bytes()
	rec.metadata = r.bytes()
	switch {
	case r.err != nil:
		return nil, r.err
	case len(r.b) != 0:
		return nil, errors.New("trailing bytes in frame")
	case rec.stream == "":
		return nil, errors.New("empty stream name in frame")
	case (kind == frameKindDeleted) != (rec.revision == tombstoneRevision && rec.eventType == tombstoneEventType):
		return nil, errors.New("tombstone frame does not match its record")
	}
	return rec, nil
}
