package esdriver

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/eventfold/eventfold/es"
)

// CheckpointInterval returns the number of events a subscription filtered
// by f scans between checkpoints: f.CheckpointInterval, or
// [es.DefaultCheckpointInterval] when that is zero. An unfiltered
// subscription (f nil) delivers no checkpoints: 0.
func CheckpointInterval(f *es.Filter) uint32 {
	switch {
	case f == nil:
		return 0
	case f.CheckpointInterval == 0:
		return es.DefaultCheckpointInterval
	}
	return f.CheckpointInterval
}

// Matcher validates f and returns a function that reports whether an event
// passes it, for stores that filter in their own process. Errors wrap
// [es.ErrInvalidArgument]: a filter needs prefixes or a regular expression,
// not both, and the expression must compile. A nil filter matches every
// event.
func Matcher(f *es.Filter) (func(es.RecordedEvent) bool, error) {
	if f == nil {
		return func(es.RecordedEvent) bool { return true }, nil
	}
	if f.On != es.FilterEventType && f.On != es.FilterStreamName {
		return nil, fmt.Errorf("%w: filter target %d", es.ErrInvalidArgument, f.On)
	}
	field := func(e es.RecordedEvent) string { return e.Type }
	if f.On == es.FilterStreamName {
		field = func(e es.RecordedEvent) string { return e.Stream }
	}
	switch {
	case f.Regex != "" && len(f.Prefixes) > 0:
		return nil, fmt.Errorf("%w: filter has both prefixes and a regular expression", es.ErrInvalidArgument)
	case f.Regex != "":
		re, err := regexp.Compile(f.Regex)
		if err != nil {
			return nil, fmt.Errorf("%w: filter: %v", es.ErrInvalidArgument, err)
		}
		return func(e es.RecordedEvent) bool { return re.MatchString(field(e)) }, nil
	case len(f.Prefixes) > 0:
		prefixes := append([]string(nil), f.Prefixes...)
		return func(e es.RecordedEvent) bool {
			s := field(e)
			for _, p := range prefixes {
				if strings.HasPrefix(s, p) {
					return true
				}
			}
			return false
		}, nil
	}
	return nil, fmt.Errorf("%w: filter has neither prefixes nor a regular expression", es.ErrInvalidArgument)
}
