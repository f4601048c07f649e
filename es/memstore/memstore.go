// Package memstore is an in-memory [es.Store] with EventStoreDB's semantics,
// for tests, examples and quick starts. It is the reference implementation
// of the contract: it passes the conformance suite in package es/estest.
// It is also the worked example of a store built on package es/esdriver:
// its storage is a slice and a map, and the kit decides the rest.
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
	"github.com/eventfold/eventfold/es/esdriver"
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
	// hist is the esdriver.Events of the append being decided, kept here
	// so that handing it to esdriver allocates nothing. s.mu guards it.
	hist history
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
	evs, err := esdriver.PrepareAppend(name, events, s.maxAppendSize)
	if err != nil {
		return es.AppendResult{}, err
	}
	var meta *es.StreamMetadata
	if _, ok := esdriver.MetadataTarget(name); ok {
		meta = esdriver.ParseMetadataAppend(evs)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	s.hist = history{s, st}
	d, err := esdriver.DecideAppend(name, st.state(), expected, evs, &s.hist)
	switch {
	case err != nil:
		return es.AppendResult{}, err
	case d.NoStream:
		return es.AppendResult{NoStream: true}, nil
	case !d.Write:
		return s.result(st, d.Revision), nil
	}
	return s.write(name, st, evs, meta, d.Recreate), nil
}

// state returns what esdriver needs to know of st (nil if the stream has
// never been written).
func (st *stream) state() esdriver.Stream {
	if st == nil {
		return esdriver.Stream{Last: -1}
	}
	return esdriver.Stream{Last: st.last(), Metadata: st.meta, HasMetadata: st.hasMeta, Tombstoned: st.tombstoned}
}

// history is the [esdriver.Events] of a stream st (nil if it has never been
// written). s.mu is held.
type history struct {
	s  *Store
	st *stream
}

func (h *history) Find(id uuid.UUID) (uint64, bool, error) {
	if h.st == nil {
		return 0, false, nil
	}
	rev, ok := h.st.ids[id]
	return rev, ok, nil
}

func (h *history) Holds(from uint64, evs []es.EventData) (bool, error) {
	for i, ev := range evs {
		if h.s.log[h.st.events[from+uint64(i)]].ID != ev.ID {
			return false, nil
		}
	}
	return true, nil
}

// write appends evs to the stream name, st (nil if it has never been
// written), recreating it first if it was soft-deleted, and applies meta,
// the metadata that evs set if name is a metadata stream. s.mu is held.
func (s *Store) write(name string, st *stream, evs []es.EventData, meta *es.StreamMetadata, recreate bool) es.AppendResult {
	if recreate {
		s.writeMetadata(name, esdriver.Recreated(st.state()))
	}
	if st == nil {
		st = &stream{ids: make(map[uuid.UUID]uint64, len(evs))}
		s.streams[name] = st
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
		of, _ := esdriver.MetadataTarget(name)
		target := s.streamFor(of)
		target.meta, target.hasMeta = *meta, true
	}
	s.notify()
	return s.result(st, uint64(len(st.events))-1)
}

func (s *Store) result(st *stream, rev uint64) es.AppendResult {
	return es.AppendResult{Revision: rev, Position: s.log[st.events[rev]].Position}
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
		return s.writeMetadata(name, es.StreamMetadata{TruncateBefore: esdriver.DeletedTruncateBefore})
	})
}

// TombstoneStream implements [es.Store].
func (s *Store) TombstoneStream(ctx context.Context, name string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	return s.delete(ctx, name, expected, true, func(*stream) int {
		st := s.streamFor(name)
		st.tombstoned = true
		st.tombstone = s.commit(es.RecordedEvent{
			ID: uuid.New(), Stream: name, Revision: esdriver.TombstoneRevision,
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
	if err := esdriver.DecideDelete(name, st.state(), expected, tombstone); err != nil {
		return es.DeleteResult{}, err
	}
	i := write(st)
	s.notify()
	return es.DeleteResult{Position: s.log[i].Position}, nil
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
			err = esdriver.StreamDeleted(name)
		case st.last() < 0 || esdriver.IsDeleted(st.meta):
			err = esdriver.StreamNotFound(name)
		default:
			revs, meta = st.events, st.meta
			if _, ok := esdriver.MetadataTarget(name); ok {
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
		for rev := range revisions(opts, last, esdriver.FirstRetained(meta, last)) {
			if opts.Limit > 0 && n == opts.Limit {
				return
			}
			if err := ctx.Err(); err != nil {
				yield(es.RecordedEvent{}, err)
				return
			}
			ev := log[revs[rev]]
			if !esdriver.Retains(meta, rev, last, ev.Created, now) {
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

// SubscribeAll implements [es.Store].
func (s *Store) SubscribeAll(ctx context.Context, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	return esdriver.SubscribeAll(ctx, &feed{s: s}, opts)
}

// SubscribeStream implements [es.Store].
func (s *Store) SubscribeStream(ctx context.Context, name string, opts es.SubscribeStreamOptions) iter.Seq2[es.Message, error] {
	return esdriver.SubscribeStream(ctx, &feed{s: s}, name, opts)
}

// pageSize is the number of events a subscription reads at a time.
const pageSize = 256

// feed is the store's log as one subscription reads it. Its pages reuse
// one slice: the subscription loops do not keep a page.
type feed struct {
	s    *Store
	page []es.RecordedEvent
}

var _ esdriver.Log = (*feed)(nil)

func (f *feed) Changed() <-chan struct{} {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	return f.s.changed
}

func (f *feed) Head(context.Context) (es.Position, error) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	n := uint64(len(f.s.log))
	return es.Position{Commit: n, Prepare: n}, nil
}

func (f *feed) ReadAllAfter(_ context.Context, after es.Position) ([]es.RecordedEvent, bool, error) {
	f.s.mu.Lock()
	log := f.s.log
	f.s.mu.Unlock()
	next := int(min(after.Commit, uint64(len(log))))
	f.page = f.page[:0]
	for _, ev := range log[next:min(next+pageSize, len(log))] {
		f.page = append(f.page, copyEvent(ev))
	}
	return f.page, len(f.page) == pageSize, nil
}

func (f *feed) ReadStreamFrom(_ context.Context, name string, from uint64) (esdriver.StreamPage, bool, error) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	st := f.s.streams[name]
	p := esdriver.StreamPage{Stream: st.state()}
	if st == nil {
		return p, false, nil
	}
	f.page = f.page[:0]
	for rev := from; rev < uint64(len(st.events)) && len(f.page) < pageSize; rev++ {
		f.page = append(f.page, copyEvent(f.s.log[st.events[rev]]))
	}
	p.Events = f.page
	if st.tombstoned {
		t := copyEvent(f.s.log[st.tombstone])
		p.Tombstone = &t
	}
	return p, len(p.Events) == pageSize, nil
}

func (f *feed) Now() time.Time { return f.s.now() }

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
