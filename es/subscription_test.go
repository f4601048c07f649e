package es_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
)

func TestFilterMatcher(t *testing.T) {
	ev := func(stream, typ string) es.RecordedEvent { return es.RecordedEvent{Stream: stream, Type: typ} }
	cases := []struct {
		name   string
		filter *es.Filter
		match  []es.RecordedEvent
		reject []es.RecordedEvent
	}{
		{"Nil", nil,
			[]es.RecordedEvent{ev("order-1", "OrderPlaced"), ev("$$order-1", "$metadata"), {}}, nil},
		{"EventTypePrefixes", es.EventTypePrefixes("Order", "Invoice"),
			[]es.RecordedEvent{ev("x", "OrderPlaced"), ev("x", "Order"), ev("x", "InvoiceSent")},
			[]es.RecordedEvent{ev("Order-1", "Placed"), ev("x", "order"), ev("x", "PlacedOrder"), ev("x", "")}},
		{"StreamPrefixes", es.StreamPrefixes("order-"),
			[]es.RecordedEvent{ev("order-1", "X"), ev("order-", "X")},
			[]es.RecordedEvent{ev("orders-1", "order-X"), ev("$$order-1", "$metadata"), ev("", "X")}},
		{"EmptyPrefixMatchesAll", es.StreamPrefixes(""),
			[]es.RecordedEvent{ev("a", "X"), ev("", "")}, nil},
		{"RegexIsUnanchored", &es.Filter{On: es.FilterStreamName, Regex: `-\d+$`},
			[]es.RecordedEvent{ev("order-1", "X"), ev("invoice-42", "X")},
			[]es.RecordedEvent{ev("order-x", "X"), ev("order-1-a", "X")}},
		{"RegexOnType", &es.Filter{On: es.FilterEventType, Regex: `Placed|Shipped`},
			[]es.RecordedEvent{ev("x", "OrderPlaced"), ev("x", "ShippedLate")},
			[]es.RecordedEvent{ev("Placed", "Paid")}},
		{"ExcludeSystemEvents", es.ExcludeSystemEvents(),
			[]es.RecordedEvent{ev("order-1", "OrderPlaced"), ev("$$order-1", "A$")},
			[]es.RecordedEvent{ev("order-1", "$streamDeleted"), ev("$$order-1", "$metadata"), ev("x", "")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			match, err := c.filter.Matcher()
			require.NoError(t, err)
			for _, e := range c.match {
				assert.Truef(t, match(e), "%v should match stream %q type %q", c.filter, e.Stream, e.Type)
			}
			for _, e := range c.reject {
				assert.Falsef(t, match(e), "%v should reject stream %q type %q", c.filter, e.Stream, e.Type)
			}
		})
	}

	invalid := []struct {
		name   string
		filter *es.Filter
	}{
		{"NeitherPrefixesNorRegex", &es.Filter{}},
		{"EmptyPrefixList", es.EventTypePrefixes()},
		{"Both", &es.Filter{Prefixes: []string{"a"}, Regex: "b"}},
		{"BadRegex", &es.Filter{On: es.FilterStreamName, Regex: "a("}},
		{"BadTarget", &es.Filter{On: 7, Prefixes: []string{"a"}}},
	}
	for _, c := range invalid {
		t.Run("Invalid/"+c.name, func(t *testing.T) {
			match, err := c.filter.Matcher()
			require.ErrorIs(t, err, es.ErrInvalidArgument)
			assert.Nil(t, match)
		})
	}

	t.Run("CopiesPrefixes", func(t *testing.T) {
		f := es.StreamPrefixes("order-")
		match, err := f.Matcher()
		require.NoError(t, err)
		f.Prefixes[0] = "invoice-"
		assert.True(t, match(ev("order-1", "X")), "changing the filter afterwards does not change the matcher")
		assert.False(t, match(ev("invoice-1", "X")))
	})
}

func TestFilter(t *testing.T) {
	assert.Equal(t, uint32(es.DefaultCheckpointInterval), es.StreamPrefixes("a").Interval())
	assert.Equal(t, uint32(5), (&es.Filter{CheckpointInterval: 5}).Interval())
	assert.Equal(t, `stream name has prefix ["order-"]`, es.StreamPrefixes("order-").String())
	assert.Equal(t, `event type has prefix ["A" "B"]`, es.EventTypePrefixes("A", "B").String())
	assert.Equal(t, `event type matches "^[^\\$].*"`, es.ExcludeSystemEvents().String())
}

func TestKindString(t *testing.T) {
	assert.Equal(t, "event", es.KindEvent.String())
	assert.Equal(t, "caught up", es.KindCaughtUp.String())
	assert.Equal(t, "checkpoint", es.KindCheckpoint.String())
	assert.Equal(t, "Kind(0)", es.Kind(0).String())
}

func TestStreamCursor(t *testing.T) {
	assert.Equal(t, es.FromStreamStart, es.StreamCursor{}, "the zero cursor is FromStreamStart")
	assert.True(t, es.FromStreamStart.IsStart())
	assert.False(t, es.FromStreamStart.IsEnd())
	assert.True(t, es.FromStreamEnd.IsEnd())
	assert.False(t, es.FromStreamEnd.IsStart())
	_, ok := es.FromStreamEnd.Revision()
	assert.False(t, ok)

	c := es.AfterRevision(4)
	rev, ok := c.Revision()
	assert.True(t, ok)
	assert.Equal(t, uint64(4), rev)
	assert.False(t, c.IsStart() || c.IsEnd())
	assert.Equal(t, "after 4", c.String())
	assert.Equal(t, "start", es.FromStreamStart.String())
	assert.Equal(t, "end", es.FromStreamEnd.String())
	assert.NotEqual(t, es.FromStreamStart, es.AfterRevision(0), "after revision 0 is not the start")

	// There is no revision after StreamEnd: as in EventStoreDB, it is the end.
	end := es.AfterRevision(es.StreamEnd)
	assert.Equal(t, es.FromStreamEnd, end, "AfterRevision(StreamEnd) is FromStreamEnd")
	assert.True(t, end.IsEnd())
	_, ok = end.Revision()
	assert.False(t, ok, "AfterRevision(StreamEnd) has no revision to add 1 to")
	rev, ok = es.AfterRevision(es.StreamEnd - 1).Revision()
	assert.True(t, ok)
	assert.Equal(t, es.StreamEnd-1, rev)
}
