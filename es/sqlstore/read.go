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
)

// fetch runs a query of events and returns them all: callers bound it with
// a LIMIT, and release the connection before they yield the events.
func (s *Store) fetch(ctx context.Context, sql string, args ...any) ([]es.RecordedEvent, error) {
	r, err := s.reader().query(ctx, sql, args...)
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
		if err := es.ValidateStreamName(name); err != nil {
			yield(es.RecordedEvent{}, err)
			return
		}
		if err := s.usable(ctx); err != nil {
			yield(es.RecordedEvent{}, err)
			return
		}
		op := func() string { return fmt.Sprintf("read stream %q", name) }
		backwards := opts.Direction == es.Backwards
		var (
			st    streamState
			first []es.RecordedEvent // the first batch of a forwards read
			err   error
		)
		if backwards {
			st, err = s.loadStream(ctx, s.reader(), name)
		} else {
			size := uint64(batchSize)
			if opts.Limit > 0 {
				size = min(size, opts.Limit)
			}
			st, first, err = s.loadAndFetch(ctx, name, opts.From, size)
		}
		switch {
		case err != nil:
			err = s.opError(ctx, op(), err)
		case st.tombstoned:
			err = es.StreamDeleted(name)
		case st.last < 0 || st.meta.IsDeleted():
			err = es.StreamNotFound(name)
		}
		if err != nil {
			yield(es.RecordedEvent{}, err)
			return
		}
		meta := st.meta
		if _, ok := metadataTarget(name); ok {
			meta = es.StreamMetadata{MaxCount: 1} // metadata streams keep their newest event
		}
		last := uint64(st.last)
		lo := firstRetained(meta, last)
		now := s.cfg.now()

		// [from, to] is the range of revisions still to read, in the
		// direction of the read; empty when from passes to.
		from, to := max(opts.From, lo), last
		if backwards {
			if lo > last {
				return
			}
			from, to = min(opts.From, last), lo
		}
		var n uint64
		for {
			if (!backwards && from > to) || (backwards && from < to) {
				return
			}
			size := uint64(batchSize)
			if opts.Limit > 0 {
				size = min(size, opts.Limit-n)
			}
			var batch []es.RecordedEvent
			if first != nil {
				batch, first = first, nil
			} else if backwards {
				batch, err = s.fetch(ctx, s.q.streamBackward, name, i64(from), i64(to), int64(size))
			} else {
				batch, err = s.fetch(ctx, s.q.streamForwards, name, i64(from), i64(to), int64(size))
			}
			if err != nil {
				yield(es.RecordedEvent{}, s.opError(ctx, op(), err))
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
				if !meta.Retains(ev.Revision, last, ev.Created, now) {
					if backwards {
						return // every older event is cut away too
					}
					continue
				}
				n++
				if !yield(ev, nil) || (opts.Limit > 0 && n == opts.Limit) {
					return
				}
			}
			end := batch[len(batch)-1].Revision
			if backwards {
				if end == 0 {
					return
				}
				from = end - 1
			} else {
				from = max(end+1, lo) // the first batch may start below lo
			}
		}
	}
}

// loadAndFetch reads, in one query, the state of stream name and its first
// size events from revision from on, up to its last revision.
func (s *Store) loadAndFetch(ctx context.Context, name string, from, size uint64) (streamState, []es.RecordedEvent, error) {
	st := streamState{last: -1}
	r, err := s.reader().query(ctx, s.q.loadAndFetch, name, i64(from), int64(size))
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

// firstRetained returns the first revision that $tb and $maxCount keep.
func firstRetained(m es.StreamMetadata, last uint64) uint64 {
	lo := m.TruncateBefore
	if m.MaxCount > 0 && last >= m.MaxCount {
		lo = max(lo, last-m.MaxCount+1)
	}
	return lo
}

// ReadAll implements [es.Store]. A forwards read ends at the head of the log
// as it was when the read started. It reads in batches, one query each, and
// holds no connection while the loop body runs.
func (s *Store) ReadAll(ctx context.Context, opts es.ReadAllOptions) iter.Seq2[es.RecordedEvent, error] {
	return func(yield func(es.RecordedEvent, error) bool) {
		if err := s.usable(ctx); err != nil {
			yield(es.RecordedEvent{}, err)
			return
		}
		const op = "read $all"
		backwards := opts.Direction == es.Backwards
		var from, to uint64 // the next position to read, and the head
		if backwards {
			from = opts.From.Commit // exclusive
		} else {
			h, err := s.queryHead(ctx)
			if err != nil {
				yield(es.RecordedEvent{}, s.opError(ctx, op, err))
				return
			}
			from, to = max(opts.From.Commit, 1), h
			if opts.From == es.End {
				return
			}
		}
		var n uint64
		for {
			if (!backwards && from > to) || (backwards && from <= 1) {
				return
			}
			size := uint64(batchSize)
			if opts.Limit > 0 {
				size = min(size, opts.Limit-n)
			}
			var (
				batch []es.RecordedEvent
				err   error
			)
			if backwards {
				batch, err = s.fetch(ctx, s.q.allBackwards, i64(from), int64(size))
			} else {
				batch, err = s.fetch(ctx, s.q.allForwards, i64(from), i64(to), int64(size))
			}
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
			from = batch[len(batch)-1].Position.Commit
			if !backwards {
				if from == math.MaxInt64 {
					return
				}
				from++
			}
		}
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
