package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
)

var _ es.MultiStreamAppender = (*Store)(nil)

// AppendStreams implements [es.MultiStreamAppender]: every part is checked
// and written in one transaction, as a write of its own in the store's
// group commit (see [Store.Append]). The transaction reads the states of
// the parts' streams in the order of their names, decides every part with
// the rules of Append, in the order of the parts, and writes only if all
// of them pass; the events take consecutive positions in the order of the
// parts.
//
// Errors are those of Append: an error other than those of package es
// leaves nothing written, except when it happens while committing: then
// the append may have been committed, and retrying it with the same event
// IDs is safe.
func (s *Store) AppendStreams(ctx context.Context, parts ...es.StreamAppend) ([]es.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.closed() {
		return nil, ErrClosed
	}
	prepared, err := esdriver.PrepareStreamAppends(parts, s.cfg.maxAppendSize)
	if err != nil {
		return nil, err
	}
	ps := make([]*appendPart, len(prepared))
	size := 0
	for i, p := range prepared {
		ps[i] = newAppendPart(p)
		size += ps[i].size()
	}
	// The order in which the transaction reads the streams: by name, so
	// that two writes over the same streams visit them alike whatever the
	// order of their parts.
	byName := slices.SortedFunc(slices.Values(ps), func(a, b *appendPart) int { return cmp.Compare(a.Stream, b.Stream) })
	var results []es.AppendResult
	err = s.submit(ctx, &request{size: size, stream: byName[0].Stream, id: byName[0].firstID(), idempotent: true,
		run: func(ctx context.Context, g *groupTx) (uint64, error) {
			var (
				head uint64
				err  error
			)
			results, head, err = s.appendParts(ctx, g, ps, byName)
			return head, err
		}})
	if err != nil {
		return nil, s.opError(ctx, "append to streams "+streamNames(ps), err)
	}
	return results, nil
}

// appendParts is AppendStreams in the transaction g: it reads the state
// of every stream (in the order of byName), decides every part (in the
// order of ps), and, if all pass, writes them (in the order of ps). It
// returns the results and the position of the last event written, 0 if
// none.
func (s *Store) appendParts(ctx context.Context, g *groupTx, ps, byName []*appendPart) ([]es.AppendResult, uint64, error) {
	w := &write{s: s, tx: g, now: s.cfg.now().UnixNano()}
	if len(byName) > 1 {
		names, ids := make([]string, len(byName)), make([]uuid.UUID, len(byName))
		for i, p := range byName {
			names[i], ids[i] = p.Stream, p.firstID()
		}
		if err := s.prefetchStreams(ctx, g, names, ids); err != nil {
			return nil, 0, err
		}
	}
	for _, p := range byName {
		var err error
		if p.st, p.idRev, err = w.load(ctx, g, p.Stream, p.firstID()); err != nil {
			return nil, 0, err
		}
	}
	for _, p := range ps {
		if err := w.decide(ctx, p); err != nil {
			return nil, 0, err
		}
	}
	results := make([]es.AppendResult, len(ps))
	for i, p := range ps {
		// An earlier part changed this part's stream (an append to its
		// metadata stream, or one that recreated the stream it is the
		// metadata of): it continues from the stream's state now.
		if slices.Contains(w.touched, p.Stream) {
			if err := w.flush(ctx); err != nil {
				return nil, 0, err
			}
			st, err := s.loadStream(ctx, g, p.Stream)
			if err != nil {
				return nil, 0, err
			}
			p.st = st
		}
		var err error
		if results[i], err = w.apply(ctx, p); err != nil {
			return nil, 0, err
		}
	}
	if err := w.flush(ctx); err != nil {
		return nil, 0, err
	}
	if !w.wroteAny() {
		return results, 0, nil
	}
	g.wrote(w)
	return results, w.head(), nil
}

// streamNames returns the names of the parts' streams, quoted, for an
// error message.
func streamNames(ps []*appendPart) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = fmt.Sprintf("%q", p.Stream)
	}
	return strings.Join(names, ", ")
}
