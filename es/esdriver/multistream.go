package esdriver

import (
	"fmt"

	"github.com/eventfold/eventfold/es"
)

// PrepareStreamAppends validates a multi-stream append
// ([es.MultiStreamAppender]) and returns its parts as a store writes them,
// each prepared by [PrepareAppend]. Errors wrap [es.ErrInvalidArgument] (no
// parts, a part without events, a stream in two parts, or what PrepareAppend
// refuses) or, when the data and metadata of all parts together are over
// maxSize, [es.ErrMaxAppendSizeExceeded]; maxSize <= 0 means
// [es.MaxAppendSize]. The input is not modified.
func PrepareStreamAppends(parts []es.StreamAppend, maxSize int) ([]es.StreamAppend, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: a multi-stream append needs at least one part", es.ErrInvalidArgument)
	}
	if maxSize <= 0 {
		maxSize = es.MaxAppendSize
	}
	out := make([]es.StreamAppend, len(parts))
	seen := make(map[string]int, len(parts))
	size := 0
	for i, p := range parts {
		if j, dup := seen[p.Stream]; dup {
			return nil, fmt.Errorf("%w: parts %d and %d of a multi-stream append both write to stream %q", es.ErrInvalidArgument, j, i, p.Stream)
		}
		seen[p.Stream] = i
		if len(p.Events) == 0 {
			return nil, fmt.Errorf("%w: part %d of a multi-stream append (stream %q) has no events", es.ErrInvalidArgument, i, p.Stream)
		}
		evs, n, err := prepareEvents(p.Stream, p.Events)
		if err != nil {
			return nil, fmt.Errorf("part %d of a multi-stream append: %w", i, err)
		}
		size += n
		out[i] = es.StreamAppend{Stream: p.Stream, Expected: p.Expected, Events: evs}
	}
	if size > maxSize {
		return nil, fmt.Errorf("%w: multi-stream append of %d parts is %d bytes, over the limit of %d", es.ErrMaxAppendSizeExceeded, len(parts), size, maxSize)
	}
	return out, nil
}
