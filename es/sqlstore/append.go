package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
)

// streamState is a row of the streams table. A stream without a row has
// last revision -1 and nothing else.
type streamState struct {
	found      bool // the stream has a row: events, metadata or a tombstone
	last       int64
	tombstoned bool
	meta       es.StreamMetadata
	hasMeta    bool
}

// loadStream reads the state of a stream.
func (s *Store) loadStream(ctx context.Context, q queryer, name string) (streamState, error) {
	st := streamState{last: -1}
	var meta sql.NullString
	found, err := queryRow(ctx, q, s.q.loadStream, []any{name}, &st.last, &st.tombstoned, &meta)
	if err != nil || !found {
		return st, err
	}
	return st, st.setMetadata(name, meta)
}

// driver returns the state as esdriver decides on it.
func (st streamState) driver() esdriver.Stream {
	return esdriver.Stream{Last: st.last, Metadata: st.meta, HasMetadata: st.hasMeta, Tombstoned: st.tombstoned}
}

func (st *streamState) setMetadata(name string, meta sql.NullString) error {
	st.found = true
	if meta.Valid {
		if err := json.Unmarshal([]byte(meta.String), &st.meta); err != nil {
			return fmt.Errorf("metadata of stream %q: %w", name, err)
		}
		st.hasMeta = true
	}
	return nil
}

// write is an append, delete or tombstone in progress, in one transaction.
// It reads what it needs first, and queues its writes, which flush sends
// together.
type write struct {
	s       *Store
	tx      querier
	next    uint64 // the position of the next event written
	now     int64
	pending []stmt
	touched []string // the streams whose state the write changes
}

// begin starts a write to stream name in g: it reads, in one query (or
// from what g read up front for its group), the head of the log, the
// stream's state, and the latest revision of the stream that holds the
// event id (false if none).
func (s *Store) begin(ctx context.Context, g *groupTx, name string, id uuid.UUID) (*write, streamState, sql.NullInt64, error) {
	w := &write{s: s, tx: g, now: s.cfg.now().UnixNano()}
	st, idRev, err := w.load(ctx, g, name, id)
	return w, st, idRev, err
}

// load reads what begin reads, for one more stream of the write; the head
// of the log read first is where the write's positions start. It runs
// before the write queues anything.
func (w *write) load(ctx context.Context, g *groupTx, name string, id uuid.UUID) (streamState, sql.NullInt64, error) {
	st := streamState{last: -1}
	var (
		head        int64
		idRev, last sql.NullInt64
		tombstoned  sql.NullBool
		meta        sql.NullString
	)
	if k, ok := g.known[name]; ok && k.id == id && g.next > 0 {
		delete(g.known, name)
		head, idRev, last, tombstoned, meta = int64(g.next)-1, k.idRev, k.last, k.tombstoned, k.meta
	} else if _, err := queryRow(ctx, g, w.s.q.loadForWrite, []any{name, id}, &head, &idRev, &last, &tombstoned, &meta); err != nil {
		return st, idRev, err
	}
	if w.next == 0 {
		w.next = uint64(head) + 1
	}
	if last.Valid { // the stream has a row
		st.last, st.tombstoned = last.Int64, tombstoned.Bool
		if err := st.setMetadata(name, meta); err != nil {
			return st, idRev, err
		}
	}
	return st, idRev, nil
}

// position returns the position of the next event written.
func (w *write) position() uint64 {
	p := w.next
	w.next++
	return p
}

// head returns the position of the last event written.
func (w *write) head() uint64 { return w.next - 1 }

func (w *write) queue(sql string, args ...any) {
	w.pending = append(w.pending, stmt{SQL: sql, Args: args})
}

// touch records that the write changes the state of stream name.
func (w *write) touch(name string) { w.touched = append(w.touched, name) }

// flush sends the queued writes (the group that the write is part of
// notifies the new head once it has run every write), so that what the
// write reads next sees them.
func (w *write) flush(ctx context.Context) error {
	if len(w.pending) == 0 {
		return nil
	}
	err := w.tx.ExecAll(ctx, w.pending)
	w.pending = nil
	return err
}

// wroteAny reports whether the write changed anything.
func (w *write) wroteAny() bool { return len(w.touched) > 0 }

// insert writes events to a stream from revision first on, and records the
// stream's new last revision. It returns the position of the last one.
func (w *write) insert(stream string, first uint64, evs []es.EventData) uint64 {
	rows := make([]eventRow, len(evs))
	for i, ev := range evs {
		rows[i] = eventRow{
			position: w.position(), stream: stream, revision: first + uint64(i), id: ev.ID,
			typ: ev.Type, contentType: ev.ContentType, data: ev.Data, metadata: ev.Metadata, created: w.now,
		}
	}
	// The stream's row first: events refer to it.
	w.touch(stream)
	w.queue(w.s.q.upsertLast, stream, int64(first)+int64(len(evs))-1)
	w.pending = append(w.pending, w.s.insertEvents(rows)...)
	return rows[len(rows)-1].position
}

// writeMetadata appends m to the metadata stream of name and makes it the
// metadata of name. It returns the position of the metadata event.
func (w *write) writeMetadata(ctx context.Context, name string, m es.StreamMetadata) (uint64, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	// An earlier part of a multi-stream append may have queued events of
	// the metadata stream: the state read must include them.
	if err := w.flush(ctx); err != nil {
		return 0, err
	}
	ms, err := w.s.loadStream(ctx, w.tx, es.MetadataStream(name))
	if err != nil {
		return 0, err
	}
	pos := w.insert(es.MetadataStream(name), uint64(ms.last+1), []es.EventData{{
		ID: uuid.New(), Type: es.EventTypeMetadata, ContentType: es.ContentTypeJSON, Data: data,
	}})
	w.setMetadata(name, data)
	return pos, nil
}

func (w *write) setMetadata(name string, data []byte) {
	w.touch(name)
	w.queue(w.s.q.upsertMeta, name, string(data))
}

// holds reports whether the stream holds the IDs of evs, in order, from
// revision from on.
func (w *write) holds(ctx context.Context, name string, st streamState, from uint64, evs []es.EventData) (bool, error) {
	if st.last < 0 || from+uint64(len(evs)) > uint64(st.last)+1 {
		return false, nil
	}
	r, err := w.tx.Query(ctx, w.s.q.idsFrom, name, i64(from), i64(from+uint64(len(evs))))
	if err != nil {
		return false, err
	}
	defer r.Close()
	i := 0
	for r.Next() {
		var id uuid.UUID
		if err := r.Scan(&id); err != nil {
			return false, err
		}
		if i >= len(evs) || id != evs[i].ID {
			return false, nil
		}
		i++
	}
	return i == len(evs), r.Err()
}

// result returns the result of an append whose last event is at revision
// rev of the stream.
func (w *write) result(ctx context.Context, name string, rev uint64) (es.AppendResult, error) {
	var pos int64
	found, err := queryRow(ctx, w.tx, w.s.q.positionAt, []any{name, i64(rev)}, &pos)
	if err == nil && !found {
		err = fmt.Errorf("event %d of stream %q is missing", rev, name)
	}
	if err != nil {
		return es.AppendResult{}, err
	}
	return es.AppendResult{Revision: rev, Position: es.Position{Commit: uint64(pos), Prepare: uint64(pos)}}, nil
}

// Append implements [es.Store]. It checks the expected revision and writes
// the events in one transaction, serialised with every other write to the
// store's tables, exactly as the reference store es/memstore does.
// Concurrent appends share transactions (see "Group commit" in the package
// documentation); each keeps its own check, result and error. If ctx ends
// before the store's writer took the append, nothing is written.
//
// An error other than those of package es (a lost connection, a full disk)
// leaves nothing written, except when it happens while committing: then
// the append may have been committed, and retrying it with the same event
// IDs is safe, since re-appending IDs is idempotent.
func (s *Store) Append(ctx context.Context, name string, expected es.ExpectedRevision, events ...es.EventData) (es.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return es.AppendResult{}, err
	}
	if s.closed() {
		return es.AppendResult{}, ErrClosed
	}
	evs, err := esdriver.PrepareAppend(name, events, s.cfg.maxAppendSize)
	if err != nil {
		return es.AppendResult{}, err
	}
	p := newAppendPart(es.StreamAppend{Stream: name, Expected: expected, Events: evs})
	var res es.AppendResult
	err = s.submit(ctx, &request{size: p.size(), stream: name, id: p.firstID(), idempotent: true, run: func(ctx context.Context, g *groupTx) (uint64, error) {
		w, st, idRev, err := s.begin(ctx, g, name, p.firstID())
		if err != nil {
			return 0, err
		}
		p.st, p.idRev = st, idRev
		if err := w.decide(ctx, p); err != nil {
			return 0, err
		}
		if res, err = w.apply(ctx, p); err != nil || !w.wroteAny() {
			return 0, err
		}
		if err := w.flush(ctx); err != nil {
			return 0, err
		}
		g.wrote(w)
		return w.head(), nil
	}})
	if err != nil {
		return es.AppendResult{}, s.opError(ctx, fmt.Sprintf("append to stream %q", name), err)
	}
	return res, nil
}

// appendPart is the append to one stream, of Append or of a part of
// AppendStreams, as the write transaction decides and writes it.
type appendPart struct {
	es.StreamAppend
	// meta is the metadata that an append to a metadata stream sets, in
	// JSON; nil if none.
	meta []byte
	// st and idRev are the stream's state, and the revision at which it
	// holds the first event's ID, as the transaction read them.
	st    streamState
	idRev sql.NullInt64
	d     esdriver.Decision
}

// newAppendPart returns the append of a's events, prepared by esdriver.
func newAppendPart(a es.StreamAppend) *appendPart {
	p := &appendPart{StreamAppend: a}
	if _, ok := esdriver.MetadataTarget(a.Stream); ok {
		if m := esdriver.ParseMetadataAppend(a.Events); m != nil {
			p.meta, _ = json.Marshal(m) // a StreamMetadata always encodes
		}
	}
	return p
}

// size returns the bytes of event data and metadata the append adds.
func (p *appendPart) size() int {
	n := 0
	for _, ev := range p.Events {
		n += len(ev.Data) + len(ev.Metadata)
	}
	return n
}

// firstID returns the ID of the first event, the one whose revision the
// write reads with the stream's state; uuid.Nil if there are no events.
func (p *appendPart) firstID() uuid.UUID {
	if len(p.Events) == 0 {
		return uuid.Nil
	}
	return p.Events[0].ID
}

// decide is the check of an append in the transaction: esdriver decides,
// as for every store, on the state that p holds. It writes nothing.
func (w *write) decide(ctx context.Context, p *appendPart) error {
	d, err := esdriver.DecideAppend(p.Stream, p.st.driver(), p.Expected, p.Events,
		history{ctx: ctx, w: w, name: p.Stream, st: p.st, idRev: p.idRev})
	p.d = d
	return err
}

// apply carries out what decide decided: the write queues the events, or
// the result of the append that wrote them first is read.
func (w *write) apply(ctx context.Context, p *appendPart) (es.AppendResult, error) {
	switch {
	case p.d.NoStream:
		return es.AppendResult{NoStream: true}, nil
	case !p.d.Write:
		return w.result(ctx, p.Stream, p.d.Revision)
	}
	if p.d.Recreate {
		if _, err := w.writeMetadata(ctx, p.Stream, esdriver.Recreated(p.st.driver())); err != nil {
			return es.AppendResult{}, err
		}
	}
	last := p.st.last
	pos := w.insert(p.Stream, uint64(last+1), p.Events)
	if p.meta != nil {
		of, _ := esdriver.MetadataTarget(p.Stream)
		w.setMetadata(of, p.meta)
	}
	return es.AppendResult{
		Revision: uint64(last) + uint64(len(p.Events)),
		Position: es.Position{Commit: pos, Prepare: pos},
	}, nil
}

// history is the [esdriver.Events] of an append's stream, in its
// transaction: the revision of its first event's ID was read with the
// stream's state.
type history struct {
	ctx   context.Context
	w     *write
	name  string
	st    streamState
	idRev sql.NullInt64
}

func (h history) Find(uuid.UUID) (uint64, bool, error) {
	return uint64(h.idRev.Int64), h.idRev.Valid, nil
}

func (h history) Holds(from uint64, evs []es.EventData) (bool, error) {
	return h.w.holds(h.ctx, h.name, h.st, from, evs)
}

// DeleteStream implements [es.Store]: it writes `$metadata` with `$tb` set
// to [esdriver.DeletedTruncateBefore] to the stream's metadata stream.
func (s *Store) DeleteStream(ctx context.Context, name string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	return s.delete(ctx, name, expected, false)
}

// TombstoneStream implements [es.Store]: it writes a `$streamDeleted` record
// at revision [esdriver.TombstoneRevision] to the stream.
func (s *Store) TombstoneStream(ctx context.Context, name string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	return s.delete(ctx, name, expected, true)
}

func (s *Store) delete(ctx context.Context, name string, expected es.ExpectedRevision, tombstone bool) (es.DeleteResult, error) {
	if err := ctx.Err(); err != nil {
		return es.DeleteResult{}, err
	}
	if s.closed() {
		return es.DeleteResult{}, ErrClosed
	}
	if err := es.ValidateStreamName(name); err != nil {
		return es.DeleteResult{}, err
	}
	var pos uint64
	err := s.submit(ctx, &request{stream: name, run: func(ctx context.Context, g *groupTx) (uint64, error) {
		w, st, _, err := s.begin(ctx, g, name, uuid.Nil)
		if err != nil {
			return 0, err
		}
		if err := esdriver.DecideDelete(name, st.driver(), expected, tombstone); err != nil {
			return 0, err
		}
		if tombstone {
			pos = w.position()
			w.touch(name)
			w.queue(s.q.upsertTombstone, name)
			w.pending = append(w.pending, s.insertEvents([]eventRow{{
				position: pos, stream: name, revision: esdriver.TombstoneRevision, id: uuid.New(),
				typ: es.EventTypeStreamDeleted, contentType: es.ContentTypeBinary, created: w.now,
			}})...)
		} else if pos, err = w.writeMetadata(ctx, name, es.StreamMetadata{TruncateBefore: esdriver.DeletedTruncateBefore}); err != nil {
			return 0, err
		}
		if err := w.flush(ctx); err != nil {
			return 0, err
		}
		g.wrote(w)
		return pos, nil
	}})
	if err != nil {
		op := "delete"
		if tombstone {
			op = "tombstone"
		}
		return es.DeleteResult{}, s.opError(ctx, fmt.Sprintf("%s stream %q", op, name), err)
	}
	return es.DeleteResult{Position: es.Position{Commit: pos, Prepare: pos}}, nil
}
