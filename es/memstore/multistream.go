package memstore

import (
	"context"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
)

// AppendStreams implements [es.MultiStreamAppender]: every part is decided
// under the store's lock before any is written.
func (s *Store) AppendStreams(ctx context.Context, parts ...es.StreamAppend) ([]es.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	parts, err := esdriver.PrepareStreamAppends(parts, s.maxAppendSize)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	decisions := make([]esdriver.Decision, len(parts))
	for i, p := range parts {
		st := s.streams[p.Stream]
		s.hist = history{s, st}
		if decisions[i], err = esdriver.DecideAppend(p.Stream, st.state(), p.Expected, p.Events, &s.hist); err != nil {
			return nil, err
		}
	}
	results := make([]es.AppendResult, len(parts))
	for i, p := range parts {
		st, d := s.streams[p.Stream], decisions[i]
		if !d.Write {
			results[i] = s.result(st, d.Revision)
			continue
		}
		var meta *es.StreamMetadata
		if _, ok := esdriver.MetadataTarget(p.Stream); ok {
			meta = esdriver.ParseMetadataAppend(p.Events)
		}
		results[i] = s.write(p.Stream, st, p.Events, meta, d.Recreate)
	}
	return results, nil
}
