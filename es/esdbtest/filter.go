package esdbtest

import (
	"regexp"
	"strings"

	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
)

// defaultCheckpointWindow is the search window of a filtered subscription
// that asks for none (EventStoreDB's default, and the client's).
const defaultCheckpointWindow = 32

// filter selects `$all` records by event type or stream name, with
// prefixes or an unanchored regular expression.
type filter struct {
	byStream bool
	prefixes []string
	re       *regexp.Regexp
	interval uint64 // checkpoint every interval records scanned
}

// parseFilter decodes the filter option of a read; nil means no filter.
func parseFilter(opts *api.ReadReq_Options) (*filter, error) {
	fo, ok := opts.GetFilterOption().(*api.ReadReq_Options_Filter)
	if !ok {
		return nil, nil
	}
	f := &filter{}
	var expr *api.ReadReq_Options_FilterOptions_Expression
	switch v := fo.Filter.GetFilter().(type) {
	case *api.ReadReq_Options_FilterOptions_StreamIdentifier:
		f.byStream = true
		expr = v.StreamIdentifier
	case *api.ReadReq_Options_FilterOptions_EventType:
		expr = v.EventType
	default:
		return nil, invalidArgument("filter must select by stream identifier or event type")
	}
	if _, err := compileFilter(f, expr.GetRegex(), expr.GetPrefix()); err != nil {
		return nil, err
	}

	window := uint64(defaultCheckpointWindow)
	switch w := fo.Filter.GetWindow().(type) {
	case *api.ReadReq_Options_FilterOptions_Max:
		if w.Max > 0 {
			window = uint64(w.Max)
		}
	case *api.ReadReq_Options_FilterOptions_Count:
	default:
		return nil, invalidArgument("filter window is missing")
	}
	multiplier := uint64(fo.Filter.GetCheckpointIntervalMultiplier())
	if multiplier == 0 {
		multiplier = 1
	}
	f.interval = window * multiplier
	return f, nil
}

// compileFilter completes f with a regex or prefixes: exactly one of them.
func compileFilter(f *filter, regex string, prefixes []string) (*filter, error) {
	if regex == "" && len(prefixes) == 0 {
		return nil, invalidArgument("filter needs a regex or prefixes")
	}
	if regex != "" && len(prefixes) > 0 {
		return nil, invalidArgument("filter takes a regex or prefixes, not both")
	}
	if regex != "" {
		re, err := regexp.Compile(regex)
		if err != nil {
			return nil, invalidArgument("invalid filter regex %q: %v", regex, err)
		}
		f.re = re
	}
	f.prefixes = prefixes
	return f, nil
}

// match reports whether a record passes the filter.
func (f *filter) match(rec *record) bool {
	if f == nil {
		return true
	}
	subject := rec.eventType
	if f.byStream {
		subject = rec.stream
	}
	if f.re != nil {
		return f.re.MatchString(subject)
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	return false
}
