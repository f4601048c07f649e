package esdbtest

import (
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Names and values EventStoreDB gives special meaning.
const (
	metadataEventType  = "$metadata"
	tombstoneEventType = "$streamDeleted"
	contentTypeJSON    = "application/json"
	contentTypeBinary  = "application/octet-stream"
	metaStreamPrefix   = "$$"
	allStreamName      = "$all"

	// tombstoneRevision is the revision of a `$streamDeleted` record, and
	// deletedTruncateBefore the `$tb` a soft delete writes: both 2^63-1.
	tombstoneRevision     = uint64(math.MaxInt64)
	deletedTruncateBefore = uint64(math.MaxInt64)

	// firstPosition is the position of the first record in the log, and
	// recordOverhead what every record adds to the byte counter on top of
	// its payload: positions then look like the byte offsets of a real log.
	firstPosition  = 128
	recordOverhead = 96
)

// record is one entry of the global log. Records never change once written.
type record struct {
	id          uuid.UUID
	stream      string
	revision    uint64
	position    uint64
	eventType   string
	contentType string
	created     time.Time
	data        []byte
	metadata    []byte
}

// stream is the per-stream index into the log.
type stream struct {
	name      string
	events    []*record // events[i].revision == i
	ids       map[uuid.UUID]uint64
	tombstone *record
	meta      streamMeta // parsed newest event, for metadata streams only
}

// last returns the last revision of the stream, -1 when it has no events.
func (st *stream) last() int64 {
	if st == nil {
		return -1
	}
	return int64(len(st.events)) - 1
}

// proposal is an event waiting to be written.
type proposal struct {
	id          uuid.UUID
	eventType   string
	contentType string
	data        []byte
	metadata    []byte
}

// size is what a proposal counts against the maximum append size: its
// data, metadata and type.
func (p proposal) size() int {
	return len(p.data) + len(p.metadata) + len(p.eventType)
}

// store is the in-memory log shared by every service of a [Server].
// Every field is guarded by mu.
type store struct {
	mu      sync.Mutex
	log     []*record
	streams map[string]*stream
	nextPos uint64
	changed chan struct{} // closed and replaced after every write
	now     func() time.Time
	journal *journal // with WithDataDir; nil in memory
}

func newStore(now func() time.Time) *store {
	return &store{
		streams: make(map[string]*stream),
		nextPos: firstPosition,
		changed: make(chan struct{}),
		now:     now,
	}
}

// notifyLocked commits the writes to the journal, if any, and wakes every
// subscription waiting for a write. It is called once per write, before
// the write is acknowledged.
func (s *store) notifyLocked() {
	s.journal.commit()
	close(s.changed)
	s.changed = make(chan struct{})
}

// streamLocked returns the stream, creating its index entry if needed.
func (s *store) streamLocked(name string) *stream {
	st := s.streams[name]
	if st == nil {
		st = &stream{name: name, ids: make(map[uuid.UUID]uint64)}
		s.streams[name] = st
	}
	return st
}

// writeLocked appends one event to a stream and to the log.
func (s *store) writeLocked(name string, p proposal) *record {
	st := s.streamLocked(name)
	rec := &record{
		id:          p.id,
		stream:      name,
		revision:    uint64(len(st.events)),
		position:    s.nextPos,
		eventType:   p.eventType,
		contentType: p.contentType,
		created:     s.now(),
		data:        p.data,
		metadata:    p.metadata,
	}
	s.nextPos += uint64(recordOverhead + len(name) + p.size())
	s.indexLocked(st, rec)
	s.log = append(s.log, rec)
	s.journal.add(rec)
	return rec
}

// indexLocked adds an event to its stream's index.
func (s *store) indexLocked(st *stream, rec *record) {
	st.events = append(st.events, rec)
	if _, dup := st.ids[rec.id]; !dup {
		st.ids[rec.id] = rec.revision
	}
	if strings.HasPrefix(st.name, metaStreamPrefix) && rec.eventType == metadataEventType {
		st.meta = parseStreamMeta(rec.data)
	}
}

// writeTombstoneLocked writes the `$streamDeleted` record of a stream.
func (s *store) writeTombstoneLocked(name string) *record {
	st := s.streamLocked(name)
	rec := &record{
		id:          uuid.New(),
		stream:      name,
		revision:    tombstoneRevision,
		position:    s.nextPos,
		eventType:   tombstoneEventType,
		contentType: contentTypeBinary,
		created:     s.now(),
		data:        []byte{},
		metadata:    []byte{},
	}
	s.nextPos += uint64(recordOverhead + len(name) + len(tombstoneEventType))
	st.tombstone = rec
	s.log = append(s.log, rec)
	s.journal.add(rec)
	return rec
}

// metaLocked returns the metadata in force for a stream: the newest
// `$metadata` event of `$$<stream>`; metadata streams keep only their newest
// event.
func (s *store) metaLocked(name string) streamMeta {
	if strings.HasPrefix(name, metaStreamPrefix) {
		one := uint64(1)
		return streamMeta{maxCount: &one}
	}
	if ms := s.streams[metaStreamPrefix+name]; ms != nil {
		return ms.meta
	}
	return streamMeta{}
}

// hasMetaLocked reports whether metadata was ever written for a stream.
func (s *store) hasMetaLocked(name string) bool {
	return s.streams[metaStreamPrefix+name].last() >= 0
}

// softDeletedLocked reports whether a stream is soft-deleted: its `$tb` is
// 2^63-1.
func (s *store) softDeletedLocked(name string) bool {
	m := s.metaLocked(name)
	return m.tb != nil && *m.tb == deletedTruncateBefore
}

// firstVisibleLocked returns the lowest revision of a stream that reads may
// return under its metadata ($tb and $maxCount; $maxAge is applied per
// event by visibleLocked), at most the number of events.
func (s *store) firstVisibleLocked(st *stream, m streamMeta) uint64 {
	first := uint64(0)
	if m.tb != nil {
		first = *m.tb
	}
	n := uint64(len(st.events))
	if m.maxCount != nil && *m.maxCount < n && n-*m.maxCount > first {
		first = n - *m.maxCount
	}
	return min(first, n) // n: nothing is visible
}

// visibleLocked reports whether a stream event passes the $maxAge limit.
func (s *store) visibleLocked(rec *record, m streamMeta, now time.Time) bool {
	if m.maxAge == nil {
		return true
	}
	return !rec.created.Before(now.Add(-*m.maxAge))
}

// indexAfterLocked returns the index of the first log record whose position
// is greater than pos.
func (s *store) indexAfterLocked(pos uint64) int {
	return sort.Search(len(s.log), func(i int) bool { return s.log[i].position > pos })
}

// indexFromLocked returns the index of the first log record whose position
// is at least pos.
func (s *store) indexFromLocked(pos uint64) int {
	return sort.Search(len(s.log), func(i int) bool { return s.log[i].position >= pos })
}

// headLocked returns the position of the newest record, 0 for an empty log.
func (s *store) headLocked() uint64 {
	if len(s.log) == 0 {
		return 0
	}
	return s.log[len(s.log)-1].position
}
