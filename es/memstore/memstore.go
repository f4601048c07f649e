// Package memstore is an in-memory [es.Store] with EventStoreDB's semantics,
// for tests, examples and quick starts. It is the reference implementation
// of the contract: it passes the conformance suite in package es/estest.
//
//	store := memstore.MustNew()
//	_, err := store.Append(ctx, "order-1", es.NoStream, es.EventData{Type: "OrderPlaced", Data: []byte(`{}`)})
//
// # Guarantees
//
// A Store is safe for concurrent use. Appends are atomic and serialised: the
// events of one append get consecutive positions in `$all`, and a subscriber
// sees every event exactly once, in commit order. Reads and subscriptions
// never hold the store's lock while they yield, so a slow consumer does not
// block writers.
//
// Everything lives in memory and is lost when the Store is garbage
// collected. Events are copied on the way in and on the way out, so callers
// may reuse or modify their byte slices.
package memstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/google/uuid"
)

// Store is an in-memory event store. Use [New] or [MustNew] to create one.
type Store struct {
	now           func() time.Time
	maxAppendSize int

	mu      sync.Mutex
	log     []es.RecordedEvent // $all; the event at index i has position i+1
	streams map[string]*stream
	changed chan struct{} // closed and replaced on every commit
}

var _ es.Store = (*Store)(nil)

// stream is the state of one stream. Its events are indices into the log,
// by revision; the tombstone record is not among them.
type stream struct {
	events     []int
	ids        map[uuid.UUID]uint64
	meta       es.StreamMetadata
	hasMeta    bool
	tombstoned bool
	tombstone  int // index of the tombstone record when tombstoned
}

func (st *stream) last() int64 {
	if st == nil {
		return -1
	}
	return int64(len(st.events)) - 1
}

// ErrInvalidOption is wrapped by the errors of [New] for options it
// cannot use.
var ErrInvalidOption = errors.New("memstore: invalid option")

// Option configures a Store. Options are checked by [New], which reports
// every invalid one together.
type Option func(*config) error

// config is the configuration of a Store.
type config struct {
	now           func() time.Time
	maxAppendSize int
}

// WithClock sets the clock that stamps events' Created time and enforces
// `$maxAge`; time.Now by default. A nil clock is an error.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		c.now = now
		return nil
	}
}

// WithMaxAppendSize sets the maximum total size in bytes of the data and
// metadata of one append (at least 1); [es.MaxAppendSize] by default.
func WithMaxAppendSize(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: max append size %d < 1", ErrInvalidOption, n)
		}
		c.maxAppendSize = n
		return nil
	}
}

// New returns an empty Store configured by opts. The errors of invalid
// options are reported together, each wrapping [ErrInvalidOption]; without
// options New cannot fail.
func New(opts ...Option) (*Store, error) {
	cfg := config{now: time.Now, maxAppendSize: es.MaxAppendSize}
	var errs []error
	for _, opt := range opts {
		errs = append(errs, opt(&cfg))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Store{
		now:           cfg.now,
		maxAppendSize: cfg.maxAppendSize,
		streams:       make(map[string]*stream),
		changed:       make(chan struct{}),
	}, nil
}

// MustNew is like [New] but panics if an option is invalid. It is meant for
// tests, examples and options known to be valid, like
// [regexp.MustCompile]: MustNew() never panics.
func MustNew(opts ...Option) *Store {
	s, err := New(opts...)
	if err != nil {
		panic(err)
	}
	return s
}

// Append implements [es.Store].
func (s *Store) Append(ctx context.Context, name string, expected es.ExpectedRevision, events ...es.EventData) (es.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return es.AppendResult{}, err
	}
	evs, err := es.PrepareAppend(name, events, s.maxAppendSize)
	if err != nil {
		return es.AppendResult{}, err
	}
	var meta *es.StreamMetadata
	if _, ok := metadataTarget(name); ok {
		meta = parseMetadataAppend(evs)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	if res, done, err := s.decide(name, st, expected, evs); done {
		return res, err
	}
	return s.write(name, st, evs, meta), nil
}

// decide applies the expected revision and the idempotency of event IDs
// to an append of evs to the stream st (nil if it has never been written).
// done reports that the append ends there, with res and err: a conflict, a
// repeat of an append already made, or an append of no events; otherwise
// the events are to be written. s.mu is held.
func (s *Store) decide(name string, st *stream, expected es.ExpectedRevision, evs []es.EventData) (res es.AppendResult, done bool, err error) {
	if st != nil && st.tombstoned {
		return es.AppendResult{}, true, es.StreamDeleted(name)
	}
	last := st.last()
	if res, done, err := s.expect(name, st, expected, evs, last); done {
		return res, true, err
	}
	switch {
	case len(evs) > 0:
		return es.AppendResult{}, false, nil
	case last < 0:
		return es.AppendResult{NoStream: true}, true, nil
	}
	return s.result(st, uint64(last)), true, nil
}

// expect checks expected against the stream st, whose last revision is
// last (-1 for none), and recognises a repeat of an append already made
// (the same event IDs at the place they would take). done reports a
// conflict or a repeat, answered with res and err.
func (s *Store) expect(name string, st *stream, expected es.ExpectedRevision, evs []es.EventData, last int64) (res es.AppendResult, done bool, err error) {
	deleted := st != nil && st.meta.IsDeleted()
	wrong := func() (es.AppendResult, bool, error) {
		return es.AppendResult{}, true, s.wrongVersion(name, expected, last)
	}
	if expected.IsStreamExists() {
		if deleted {
			return es.AppendResult{}, true, es.StreamDeleted(name)
		}
		if last < 0 && (st == nil || !st.hasMeta) {
			return wrong()
		}
	}
	if len(evs) > 0 && (expected.IsAny() || expected.IsStreamExists()) && st != nil {
		if rev, ok := st.ids[evs[0].ID]; ok {
			if s.holds(st, rev, evs) {
				return s.result(st, rev+uint64(len(evs))-1), true, nil
			}
			return wrong()
		}
	}
	want, ok := wantRevision(expected)
	switch {
	case !ok || want == last:
		return es.AppendResult{}, false, nil
	case want > last:
		return wrong()
	case len(evs) > 0 && s.holds(st, uint64(want+1), evs):
		return s.result(st, uint64(want)+uint64(len(evs))), true, nil
	case expected.IsNoStream() && deleted:
		return es.AppendResult{}, false, nil // recreating a soft-deleted stream
	}
	return wrong()
}

// write appends evs to the stream name, st (nil if it has never been
// written), recreating it if it was soft-deleted, and applies meta, the
// metadata that evs set if name is a metadata stream. s.mu is held.
func (s *Store) write(name string, st *stream, evs []es.EventData, meta *es.StreamMetadata) es.AppendResult {
	last := st.last()
	deleted := st != nil && st.meta.IsDeleted()
	if st == nil {
		st = &stream{ids: make(map[uuid.UUID]uint64, len(evs))}
		s.streams[name] = st
	}
	if deleted {
		// Recreating a soft-deleted stream: the old events stay hidden.
		m := st.meta
		m.TruncateBefore = uint64(last + 1)
		s.writeMetadata(name, m)
	}
	for _, ev := range evs {
		rev := uint64(len(st.events))
		i := s.commit(es.RecordedEvent{
			ID: ev.ID, Stream: name, Revision: rev, Type: ev.Type, ContentType: ev.ContentType,
			Data: clone(ev.Data), Metadata: clone(ev.Metadata),
		})
		st.events = append(st.events, i)
		st.ids[ev.ID] = rev
	}
	if meta != nil {
		target := s.streamFor(name[len(es.MetadataStreamPrefix):])
		target.meta, target.hasMeta = *meta, true
	}
	s.notify()
	return s.result(st, uint64(len(st.events))-1)
}

// wantRevision returns the last revision that NoStream (-1) or Exact(n) expects.
func wantRevision(expected es.ExpectedRevision) (int64, bool) {
	if expected.IsNoStream() {
		return -1, true
	}
	if rev, ok := expected.Revision(); ok {
		return int64(min(rev, 1<<63-1)), true
	}
	return 0, false
}

// holds reports whether st holds the IDs of evs, in order, from revision from.
func (s *Store) holds(st *stream, from uint64, evs []es.EventData) bool {
	if st == nil || from+uint64(len(evs)) > uint64(len(st.events)) {
		return false
	}
	for i, ev := range evs {
		if s.log[st.events[from+uint64(i)]].ID != ev.ID {
			return false
		}
	}
	return true
}

func (s *Store) result(st *stream, rev uint64) es.AppendResult {
	return es.AppendResult{Revision: rev, Position: s.log[st.events[rev]].Position}
}

func (s *Store) wrongVersion(name string, expected es.ExpectedRevision, last int64) error {
	actual := es.NoStream
	if last >= 0 {
		actual = es.Exact(uint64(last))
	}
	return &es.WrongExpectedVersionError{Stream: name, Expected: expected, Actual: actual}
}

// metadataTarget returns the stream whose metadata stream is name.
func metadataTarget(name string) (string, bool) {
	if len(name) > len(es.MetadataStreamPrefix) && name[:len(es.MetadataStreamPrefix)] == es.MetadataStreamPrefix {
		return name[len(es.MetadataStreamPrefix):], true
	}
	return "", false
}

// parseMetadataAppend returns the metadata an append to a metadata stream
// sets: that of its last $metadata event. Like EventStoreDB, it stores
// metadata that does not parse, and treats it as no metadata.
func parseMetadataAppend(evs []es.EventData) *es.StreamMetadata {
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

func (s *Store) streamFor(name string) *stream {
	st := s.streams[name]
	if st == nil {
		st = &stream{ids: make(map[uuid.UUID]uint64)}
		s.streams[name] = st
	}
	return st
}

// writeMetadata appends m to the metadata stream of name. s.mu is held.
func (s *Store) writeMetadata(name string, m es.StreamMetadata) int {
	data, _ := json.Marshal(m) // a StreamMetadata always encodes
	ms := s.streamFor(es.MetadataStream(name))
	id := uuid.New()
	rev := uint64(len(ms.events))
	i := s.commit(es.RecordedEvent{
		ID: id, Stream: es.MetadataStream(name), Revision: rev,
		Type: es.EventTypeMetadata, ContentType: es.ContentTypeJSON, Data: data,
	})
	ms.events = append(ms.events, i)
	ms.ids[id] = rev
	st := s.streamFor(name)
	st.meta, st.hasMeta = m, true
	return i
}

// commit adds ev to the log, stamping its position and time. s.mu is held.
func (s *Store) commit(ev es.RecordedEvent) int {
	i := len(s.log)
	ev.Position = es.Position{Commit: uint64(i + 1), Prepare: uint64(i + 1)}
	ev.Created = s.now().UTC()
	s.log = append(s.log, ev)
	return i
}

// notify wakes every subscription waiting for new events. s.mu is held.
func (s *Store) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// DeleteStream implements [es.Store].
func (s *Store) DeleteStream(ctx context.Context, name string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	return s.delete(ctx, name, expected, false, func(*stream) int {
		return s.writeMetadata(name, es.StreamMetadata{TruncateBefore: es.DeletedTruncateBefore})
	})
}

// TombstoneStream implements [es.Store].
func (s *Store) TombstoneStream(ctx context.Context, name string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	return s.delete(ctx, name, expected, true, func(*stream) int {
		st := s.streamFor(name)
		st.tombstoned = true
		st.tombstone = s.commit(es.RecordedEvent{
			ID: uuid.New(), Stream: name, Revision: es.TombstoneRevision,
			Type: es.EventTypeStreamDeleted, ContentType: es.ContentTypeBinary,
		})
		return st.tombstone
	})
}

// delete checks a delete or tombstone of name and, if it may proceed, runs
// write under the lock; write returns the index of the record it wrote.
func (s *Store) delete(ctx context.Context, name string, expected es.ExpectedRevision, tombstone bool, write func(*stream) int) (es.DeleteResult, error) {
	if err := ctx.Err(); err != nil {
		return es.DeleteResult{}, err
	}
	if err := es.ValidateStreamName(name); err != nil {
		return es.DeleteResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	if err := s.checkDelete(name, st, expected, tombstone); err != nil {
		return es.DeleteResult{}, err
	}
	i := write(st)
	s.notify()
	return es.DeleteResult{Position: s.log[i].Position}, nil
}

// checkDelete applies the expected-revision check of deletes. s.mu is held.
func (s *Store) checkDelete(name string, st *stream, expected es.ExpectedRevision, tombstone bool) error {
	if st != nil && st.tombstoned {
		return es.StreamDeleted(name)
	}
	last := st.last()
	if last < 0 && !tombstone {
		return s.wrongVersion(name, expected, last)
	}
	deleted := st != nil && st.meta.IsDeleted()
	if expected.IsStreamExists() {
		if deleted {
			return es.StreamDeleted(name)
		}
		if last < 0 {
			return s.wrongVersion(name, expected, last)
		}
	}
	if want, ok := wantRevision(expected); ok && want != last {
		return s.wrongVersion(name, expected, last)
	}
	return nil
}

// ReadStream implements [es.Store].
func (s *Store) ReadStream(ctx context.Context, name string, opts es.ReadStreamOptions) iter.Seq2[es.RecordedEvent, error] {
	return func(yield func(es.RecordedEvent, error) bool) {
		if err := es.ValidateStreamName(name); err != nil {
			yield(es.RecordedEvent{}, err)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(es.RecordedEvent{}, err)
			return
		}
		s.mu.Lock()
		st := s.streams[name]
		var (
			revs []int
			meta es.StreamMetadata
			err  error
		)
		switch {
		case st != nil && st.tombstoned:
			err = es.StreamDeleted(name)
		case st.last() < 0 || st.meta.IsDeleted():
			err = es.StreamNotFound(name)
		default:
			revs, meta = st.events, st.meta
			if _, ok := metadataTarget(name); ok {
				meta = es.StreamMetadata{MaxCount: 1} // metadata streams keep their newest event
			}
		}
		log := s.log
		s.mu.Unlock()
		if err != nil {
			yield(es.RecordedEvent{}, err)
			return
		}

		last := uint64(len(revs) - 1)
		now := s.now()
		var n uint64
		for rev := range revisions(opts, last, firstRetained(meta, last)) {
			if opts.Limit > 0 && n == opts.Limit {
				return
			}
			if err := ctx.Err(); err != nil {
				yield(es.RecordedEvent{}, err)
				return
			}
			ev := log[revs[rev]]
			if !meta.Retains(rev, last, ev.Created, now) {
				if opts.Direction == es.Backwards {
					return // every older event is cut away too
				}
				continue
			}
			n++
			if !yield(copyEvent(ev), nil) {
				return
			}
		}
	}
}

// firstRetained returns the first revision that $tb and $maxCount keep.
func firstRetained(m es.StreamMetadata, last uint64) uint64 {
	lo := m.TruncateBefore
	if m.MaxCount > 0 && last >= m.MaxCount {
		lo = max(lo, last-m.MaxCount+1)
	}
	return lo
}

// revisions yields the revisions from lo to last that a stream read visits,
// in order.
func revisions(opts es.ReadStreamOptions, last, lo uint64) iter.Seq[uint64] {
	return func(yield func(uint64) bool) {
		if opts.Direction == es.Backwards {
			for rev := int64(min(opts.From, last)); rev >= int64(min(lo, last+1)); rev-- {
				if !yield(uint64(rev)) {
					return
				}
			}
			return
		}
		for rev := max(opts.From, lo); rev <= last; rev++ {
			if !yield(rev) {
				return
			}
		}
	}
}

// ReadAll implements [es.Store].
func (s *Store) ReadAll(ctx context.Context, opts es.ReadAllOptions) iter.Seq2[es.RecordedEvent, error] {
	return func(yield func(es.RecordedEvent, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(es.RecordedEvent{}, err)
			return
		}
		s.mu.Lock()
		log := s.log
		s.mu.Unlock()
		var n uint64
		emit := func(ev es.RecordedEvent) bool {
			if opts.Limit > 0 && n == opts.Limit {
				return false
			}
			if err := ctx.Err(); err != nil {
				yield(es.RecordedEvent{}, err)
				return false
			}
			n++
			return yield(copyEvent(ev), nil)
		}
		if opts.Direction == es.Backwards {
			// Backwards reads are exclusive: they start before From.
			for i := indexAt(opts.From, len(log)) - 1; i >= 0; i-- {
				if !emit(log[i]) {
					return
				}
			}
			return
		}
		for i := indexAt(opts.From, len(log)); i < len(log); i++ {
			if !emit(log[i]) {
				return
			}
		}
	}
}

// indexAt returns the index of the first event at or after p.
func indexAt(p es.Position, n int) int {
	if p == es.End {
		return n
	}
	if p.Commit == 0 {
		return 0
	}
	return int(min(p.Commit-1, uint64(n)))
}

// indexAfter returns the index of the first event after p.
func indexAfter(p es.Position, n int) int {
	if p == es.End {
		return n
	}
	return int(min(p.Commit, uint64(n)))
}

// SubscribeAll implements [es.Store].
func (s *Store) SubscribeAll(ctx context.Context, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		match, err := opts.Filter.Matcher()
		if err != nil {
			yield(es.Message{}, err)
			return
		}
		var interval uint64
		if opts.Filter != nil {
			interval = uint64(opts.Filter.Interval())
		}
		s.mu.Lock()
		next := indexAfter(opts.From, len(s.log))
		checkpoint := opts.From
		if opts.From == es.End {
			checkpoint = es.Position{Commit: uint64(next), Prepare: uint64(next)}
		}
		s.mu.Unlock()

		var scanned uint64
		caughtUp := false
		for {
			if err := ctx.Err(); err != nil {
				yield(es.Message{}, err)
				return
			}
			s.mu.Lock()
			batch := s.log[min(next, len(s.log)):min(next+256, len(s.log))]
			changed := s.changed
			s.mu.Unlock()

			if len(batch) == 0 {
				if !caughtUp {
					caughtUp = true
					if interval > 0 && !yield(es.Message{Kind: es.KindCheckpoint, Position: checkpoint}, nil) {
						return
					}
					if !yield(es.Message{Kind: es.KindCaughtUp}, nil) {
						return
					}
				}
				select {
				case <-ctx.Done():
					yield(es.Message{}, ctx.Err())
					return
				case <-changed:
				}
				continue
			}
			for _, ev := range batch {
				next++
				scanned++
				checkpoint = ev.Position
				if match(ev) && !yield(es.Message{Kind: es.KindEvent, Event: copyEvent(ev), Position: ev.Position}, nil) {
					return
				}
				if interval > 0 && scanned%interval == 0 && !yield(es.Message{Kind: es.KindCheckpoint, Position: ev.Position}, nil) {
					return
				}
			}
		}
	}
}

// SubscribeStream implements [es.Store].
func (s *Store) SubscribeStream(ctx context.Context, name string, opts es.SubscribeStreamOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		if err := es.ValidateStreamName(name); err != nil {
			yield(es.Message{}, err)
			return
		}
		s.mu.Lock()
		st := s.streams[name]
		tombstoned := st != nil && st.tombstoned
		next := uint64(0)
		if rev, ok := opts.From.Revision(); ok {
			next = rev + 1
		} else if opts.From.IsEnd() {
			next = uint64(st.last() + 1)
		}
		s.mu.Unlock()
		if tombstoned {
			yield(es.Message{}, es.StreamDeleted(name))
			return
		}

		caughtUp := false
		for {
			if err := ctx.Err(); err != nil {
				yield(es.Message{}, err)
				return
			}
			s.mu.Lock()
			var (
				batch []es.RecordedEvent
				meta  es.StreamMetadata
				last  int64
				tomb  *es.RecordedEvent
			)
			if st := s.streams[name]; st != nil {
				last, meta = st.last(), st.meta
				for rev := next; rev < uint64(len(st.events)) && len(batch) < 256; rev++ {
					batch = append(batch, s.log[st.events[rev]])
				}
				if st.tombstoned && next+uint64(len(batch)) == uint64(len(st.events)) {
					tomb = &s.log[st.tombstone]
				}
			}
			changed := s.changed
			s.mu.Unlock()

			now := s.now()
			for _, ev := range batch {
				next = ev.Revision + 1
				if meta.Retains(ev.Revision, uint64(last), ev.Created, now) &&
					!yield(es.Message{Kind: es.KindEvent, Event: copyEvent(ev), Position: ev.Position}, nil) {
					return
				}
			}
			if tomb != nil {
				if yield(es.Message{Kind: es.KindEvent, Event: copyEvent(*tomb), Position: tomb.Position}, nil) {
					yield(es.Message{}, es.StreamDeleted(name))
				}
				return
			}
			if len(batch) > 0 {
				continue
			}
			if !caughtUp {
				caughtUp = true
				if !yield(es.Message{Kind: es.KindCaughtUp}, nil) {
					return
				}
			}
			select {
			case <-ctx.Done():
				yield(es.Message{}, ctx.Err())
				return
			case <-changed:
			}
		}
	}
}

func copyEvent(ev es.RecordedEvent) es.RecordedEvent {
	ev.Data, ev.Metadata = clone(ev.Data), clone(ev.Metadata)
	return ev
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return slices.Clone(b)
}
