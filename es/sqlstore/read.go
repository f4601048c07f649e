package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
)

// fetch runs a query of events and returns them all: callers bound it with
// a LIMIT, and release the connection before they yield the events.
func (s *Store) fetch(ctx context.Context, sql string, args ...any) ([]es.RecordedEvent, error) {
	r, err := s.reader().Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []es.RecordedEvent
	for r.Next() {
		var (
			ev            es.RecordedEvent
			pos, rev, cre int64
		)
		if err := r.Scan(&pos, &ev.Stream, &rev, &ev.ID, &ev.Type, &ev.ContentType, &ev.Data, &ev.Metadata, &cre); err != nil {
			return nil, err
		}
		out = append(out, placed(ev, pos, rev, cre))
	}
	return out, r.Err()
}

// placed returns ev with the position, revision and creation time (Unix
// nanoseconds) that the columns of an event row hold.
func placed(ev es.RecordedEvent, pos, rev, created int64) es.RecordedEvent {
	ev.Position = es.Position{Commit: uint64(pos), Prepare: uint64(pos)}
	ev.Revision = uint64(rev)
	ev.Created = time.Unix(0, created).UTC()
	return ev
}

// ReadStream implements [es.Store]. It reads the stream in batches, one
// query each, and holds no connection while the loop body runs.
func (s *Store) ReadStream(ctx context.Context, name string, opts es.ReadStreamOptions) iter.Seq2[es.RecordedEvent, error] {
	return func(yield func(es.RecordedEvent, error) bool) {
		rd, err := s.openStream(ctx, name, opts)
		if err != nil {
			yield(es.RecordedEvent{}, err)
			return
		}
		for !rd.done() {
			batch, err := rd.next(ctx, s)
			if err != nil {
				yield(es.RecordedEvent{}, s.opError(ctx, fmt.Sprintf("read stream %q", name), err))
				return
			}
			if len(batch) == 0 || rd.emit(ctx, batch, yield) {
				return
			}
		}
	}
}

// streamRead is a read of one stream under way: the revisions still to
// read, [from, to] in the direction of the read, and what decides which
// events it shows.
type streamRead struct {
	name      string
	backwards bool
	limit, n  uint64 // the most events to yield (0: no limit), and how many were
	meta      es.StreamMetadata
	last, lo  uint64 // the stream's last revision, and the first retained
	now       time.Time
	from, to  uint64
	empty     bool               // nothing to read at all
	first     []es.RecordedEvent // the first batch, read with the stream's state
}

// openStream checks the stream name, reads the stream's state (and, going
// forwards, its first batch, in the same query) and returns the read.
func (s *Store) openStream(ctx context.Context, name string, opts es.ReadStreamOptions) (*streamRead, error) {
	if err := es.ValidateStreamName(name); err != nil {
		return nil, err
	}
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	rd := &streamRead{name: name, backwards: opts.Direction == es.Backwards, limit: opts.Limit}
	var (
		st  streamState
		err error
	)
	if rd.backwards {
		st, err = s.loadStream(ctx, s.reader(), name)
	} else {
		st, rd.first, err = s.loadAndFetch(ctx, name, opts.From, rd.size())
	}
	switch {
	case err != nil:
		return nil, s.opError(ctx, fmt.Sprintf("read stream %q", name), err)
	case st.tombstoned:
		return nil, esdriver.StreamDeleted(name)
	case st.last < 0 || esdriver.IsDeleted(st.meta):
		return nil, esdriver.StreamNotFound(name)
	}
	rd.meta = st.meta
	if _, ok := esdriver.MetadataTarget(name); ok {
		rd.meta = es.StreamMetadata{MaxCount: 1} // metadata streams keep their newest event
	}
	rd.last = uint64(st.last)
	rd.lo = esdriver.FirstRetained(rd.meta, rd.last)
	rd.now = s.cfg.now()
	rd.from, rd.to = max(opts.From, rd.lo), rd.last
	if rd.backwards {
		rd.empty = rd.lo > rd.last
		rd.from, rd.to = min(opts.From, rd.last), rd.lo
	}
	return rd, nil
}

// size is the size of the next batch: a page, or what is left of the limit.
func (rd *streamRead) size() uint64 {
	if rd.limit > 0 {
		return min(uint64(batchSize), rd.limit-rd.n)
	}
	return batchSize
}

// done reports whether no revision is left to read.
func (rd *streamRead) done() bool {
	if rd.backwards {
		return rd.empty || rd.from < rd.to
	}
	return rd.from > rd.to
}

// next reads the next batch.
func (rd *streamRead) next(ctx context.Context, s *Store) ([]es.RecordedEvent, error) {
	if rd.first != nil {
		batch := rd.first
		rd.first = nil
		return batch, nil
	}
	query := s.q.streamForwards
	if rd.backwards {
		query = s.q.streamBackward
	}
	return s.fetch(ctx, query, rd.name, i64(rd.from), i64(rd.to), int64(rd.size()))
}

// emit yields the events of batch that the stream's metadata retains, and
// moves the read past the batch. It reports whether the read ends: the
// caller stopped, the limit or the retained events ran out, or ctx ended.
func (rd *streamRead) emit(ctx context.Context, batch []es.RecordedEvent, yield func(es.RecordedEvent, error) bool) (end bool) {
	for _, ev := range batch {
		if err := ctx.Err(); err != nil {
			yield(es.RecordedEvent{}, err)
			return true
		}
		if !esdriver.Retains(rd.meta, ev.Revision, rd.last, ev.Created, rd.now) {
			if rd.backwards {
				return true // every older event is cut away too
			}
			continue
		}
		rd.n++
		if !yield(ev, nil) || (rd.limit > 0 && rd.n == rd.limit) {
			return true
		}
	}
	past := batch[len(batch)-1].Revision
	if rd.backwards {
		if past == 0 {
			return true
		}
		rd.from = past - 1
	} else {
		rd.from = max(past+1, rd.lo) // the first batch may start below lo
	}
	return false
}

// loadAndFetch reads, in one query, the state of stream name and its first
// size events from revision from on, up to its last revision.
func (s *Store) loadAndFetch(ctx context.Context, name string, from, size uint64) (streamState, []es.RecordedEvent, error) {
	st := streamState{last: -1}
	r, err := s.reader().Query(ctx, s.q.loadAndFetch, name, i64(from), int64(size))
	if err != nil {
		return st, nil, err
	}
	defer r.Close()
	var (
		out   []es.RecordedEvent
		meta  sql.NullString
		found bool // the stream has a row
	)
	for r.Next() {
		var (
			ev            es.RecordedEvent
			pos, rev, cre sql.NullInt64
			stream        sql.NullString
			id            uuid.NullUUID
			typ, ct       sql.NullString
		)
		if err := r.Scan(&st.last, &st.tombstoned, &meta, &pos, &stream, &rev, &id, &typ, &ct, &ev.Data, &ev.Metadata, &cre); err != nil {
			return st, nil, err
		}
		found = true
		if !pos.Valid {
			continue // the stream has no events in the range
		}
		ev.Stream, ev.ID, ev.Type, ev.ContentType = stream.String, id.UUID, typ.String, ct.String
		out = append(out, placed(ev, pos.Int64, rev.Int64, cre.Int64))
	}
	if err := r.Err(); err != nil || !found {
		return st, nil, err
	}
	return st, out, st.setMetadata(name, meta) // it records that the stream has a row
}

// ReadAll implements [es.Store]. A forwards read ends at the head of the log
// as it was when the read started. It reads in batches, one query each, and
// holds no connection while the loop body runs.
func (s *Store) ReadAll(ctx context.Context, opts es.ReadAllOptions) iter.Seq2[es.RecordedEvent, error] {
	return func(yield func(es.RecordedEvent, error) bool) {
		const op = "read $all"
		if err := s.usable(ctx); err != nil {
			yield(es.RecordedEvent{}, err)
			return
		}
		rd, err := s.openAll(ctx, opts)
		if err != nil {
			yield(es.RecordedEvent{}, s.opError(ctx, op, err))
			return
		}
		var n uint64 // events yielded
		for !rd.done() {
			size := uint64(batchSize)
			if opts.Limit > 0 {
				size = min(size, opts.Limit-n)
			}
			batch, err := rd.next(ctx, s, size)
			if err != nil {
				yield(es.RecordedEvent{}, s.opError(ctx, op, err))
				return
			}
			if len(batch) == 0 {
				return
			}
			for _, ev := range batch {
				if err := ctx.Err(); err != nil {
					yield(es.RecordedEvent{}, err)
					return
				}
				n++
				if !yield(ev, nil) || (opts.Limit > 0 && n == opts.Limit) {
					return
				}
			}
			rd.past(batch[len(batch)-1].Position.Commit)
		}
	}
}

// allRead is a read of `$all` under way: the next position to read and,
// going forwards, the head of the log when the read started.
type allRead struct {
	backwards bool
	from, to  uint64
	over      bool // nothing more to read
}

// openAll starts a read of `$all`: forwards, it reads the head of the log.
func (s *Store) openAll(ctx context.Context, opts es.ReadAllOptions) (*allRead, error) {
	rd := &allRead{backwards: opts.Direction == es.Backwards}
	if rd.backwards {
		rd.from = opts.From.Commit // exclusive
		return rd, nil
	}
	h, err := s.queryHead(ctx)
	if err != nil {
		return nil, err
	}
	rd.from, rd.to, rd.over = max(opts.From.Commit, 1), h, opts.From == es.End
	return rd, nil
}

func (rd *allRead) done() bool {
	if rd.backwards {
		return rd.from <= 1
	}
	return rd.over || rd.from > rd.to
}

func (rd *allRead) next(ctx context.Context, s *Store, size uint64) ([]es.RecordedEvent, error) {
	if rd.backwards {
		return s.fetch(ctx, s.q.allBackwards, i64(rd.from), int64(size))
	}
	return s.fetch(ctx, s.q.allForwards, i64(rd.from), i64(rd.to), int64(size))
}

// past moves the read past the position commit.
func (rd *allRead) past(commit uint64) {
	rd.from = commit
	if !rd.backwards {
		if commit == math.MaxInt64 {
			rd.over = true
			return
		}
		rd.from++
	}
}

// usable returns the error an operation reports before it starts: that of
// ctx, or ErrClosed.
func (s *Store) usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed() {
		return ErrClosed
	}
	return nil
}
