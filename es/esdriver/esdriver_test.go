package esdriver_test

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
)

func TestPrepareAppend(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		id := uuid.New()
		in := []es.EventData{
			{Type: "A", Data: []byte(`{}`)},
			{ID: id, Type: "B", ContentType: es.ContentTypeBinary, Data: []byte{1}},
		}
		orig := append([]es.EventData(nil), in...)
		out, err := esdriver.PrepareAppend("s", in, 0)
		require.NoError(t, err)
		require.Len(t, out, 2)
		assert.NotEqual(t, uuid.Nil, out[0].ID, "a zero ID is replaced")
		assert.Equal(t, es.ContentTypeJSON, out[0].ContentType, "an empty content type becomes JSON")
		assert.Equal(t, id, out[1].ID, "an ID is kept")
		assert.Equal(t, es.ContentTypeBinary, out[1].ContentType)
		assert.Equal(t, orig, in, "the input is not modified")
	})
	t.Run("UniqueIDs", func(t *testing.T) {
		out, err := esdriver.PrepareAppend("s", make([]es.EventData, 100), 0)
		require.ErrorIs(t, err, es.ErrInvalidArgument, "events without a type")
		assert.Nil(t, out)
		evs := make([]es.EventData, 100)
		for i := range evs {
			evs[i].Type = "T"
		}
		out, err = esdriver.PrepareAppend("s", evs, 0)
		require.NoError(t, err)
		seen := map[uuid.UUID]bool{}
		for _, ev := range out {
			assert.False(t, seen[ev.ID], "generated IDs are unique")
			seen[ev.ID] = true
		}
	})
	t.Run("Empty", func(t *testing.T) {
		out, err := esdriver.PrepareAppend("s", nil, 0)
		require.NoError(t, err)
		assert.Empty(t, out)
	})

	invalid := []struct {
		name   string
		stream string
		events []es.EventData
	}{
		{"StreamName", "", []es.EventData{{Type: "A"}}},
		{"EmptyType", "s", []es.EventData{{Type: "A"}, {Type: ""}}},
		{"LongType", "s", []es.EventData{{Type: strings.Repeat("T", es.MaxNameLength+1)}}},
		{"BadUTF8Type", "s", []es.EventData{{Type: "\xff"}}},
		{"ContentType", "s", []es.EventData{{Type: "A", ContentType: "text/plain"}}},
	}
	for _, c := range invalid {
		t.Run("Invalid/"+c.name, func(t *testing.T) {
			_, err := esdriver.PrepareAppend(c.stream, c.events, 0)
			require.ErrorIs(t, err, es.ErrInvalidArgument)
		})
	}

	t.Run("MaxSize", func(t *testing.T) {
		ev := func(data, meta int) es.EventData {
			return es.EventData{Type: "A", Data: bytes.Repeat([]byte{'d'}, data), Metadata: bytes.Repeat([]byte{'m'}, meta)}
		}
		_, err := esdriver.PrepareAppend("s", []es.EventData{ev(60, 40)}, 100)
		require.NoError(t, err, "exactly the maximum size")
		_, err = esdriver.PrepareAppend("s", []es.EventData{ev(60, 40), ev(0, 1)}, 100)
		require.ErrorIs(t, err, es.ErrMaxAppendSizeExceeded, "data and metadata of all events count")
		assert.NotErrorIs(t, err, es.ErrInvalidArgument)
		_, err = esdriver.PrepareAppend("s", []es.EventData{ev(es.MaxAppendSize, 0)}, 0)
		require.NoError(t, err, "maxSize 0 means MaxAppendSize")
		_, err = esdriver.PrepareAppend("s", []es.EventData{ev(es.MaxAppendSize, 1)}, -1)
		require.ErrorIs(t, err, es.ErrMaxAppendSizeExceeded, "maxSize below 0 means MaxAppendSize")
	})
}

func TestRetains(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name           string
		m              es.StreamMetadata
		revision, last uint64
		created        time.Time
		want           bool
	}{
		{"Zero", es.StreamMetadata{}, 0, 0, now, true},
		{"TruncateBefore/Before", es.StreamMetadata{TruncateBefore: 3}, 2, 5, now, false},
		{"TruncateBefore/At", es.StreamMetadata{TruncateBefore: 3}, 3, 5, now, true},
		{"MaxCount/Kept", es.StreamMetadata{MaxCount: 2}, 4, 5, now, true},
		{"MaxCount/CutAway", es.StreamMetadata{MaxCount: 2}, 3, 5, now, false},
		{"MaxCount/ShortStream", es.StreamMetadata{MaxCount: 10}, 0, 5, now, true},
		{"MaxCount/Exact", es.StreamMetadata{MaxCount: 6}, 0, 5, now, true},
		{"MaxCount/One", es.StreamMetadata{MaxCount: 1}, 5, 5, now, true},
		{"MaxAge/Young", es.StreamMetadata{MaxAge: time.Minute}, 0, 0, now.Add(-59 * time.Second), true},
		{"MaxAge/Old", es.StreamMetadata{MaxAge: time.Minute}, 0, 0, now.Add(-61 * time.Second), false},
		{"MaxAge/Boundary", es.StreamMetadata{MaxAge: time.Minute}, 0, 0, now.Add(-time.Minute), false},
		{"Deleted", es.StreamMetadata{TruncateBefore: esdriver.DeletedTruncateBefore}, 5, 5, now, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, esdriver.Retains(c.m, c.revision, c.last, c.created, now))
		})
	}
	assert.True(t, esdriver.IsDeleted(es.StreamMetadata{TruncateBefore: esdriver.DeletedTruncateBefore}))
	assert.False(t, esdriver.IsDeleted(es.StreamMetadata{TruncateBefore: math.MaxInt64 - 1}))
	assert.Equal(t, uint64(3), esdriver.FirstRetained(es.StreamMetadata{TruncateBefore: 3}, 5))
	assert.Equal(t, uint64(4), esdriver.FirstRetained(es.StreamMetadata{TruncateBefore: 3, MaxCount: 2}, 5))
	assert.Equal(t, uint64(0), esdriver.FirstRetained(es.StreamMetadata{MaxCount: 10}, 5))
	target, ok := esdriver.MetadataTarget(es.MetadataStream("order-1"))
	assert.True(t, ok)
	assert.Equal(t, "order-1", target)
	_, ok = esdriver.MetadataTarget("$$")
	assert.False(t, ok)
}

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
			match, err := esdriver.Matcher(c.filter)
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
			match, err := esdriver.Matcher(c.filter)
			require.ErrorIs(t, err, es.ErrInvalidArgument)
			assert.Nil(t, match)
		})
	}

	t.Run("CopiesPrefixes", func(t *testing.T) {
		f := es.StreamPrefixes("order-")
		match, err := esdriver.Matcher(f)
		require.NoError(t, err)
		f.Prefixes[0] = "invoice-"
		assert.True(t, match(ev("order-1", "X")), "changing the filter afterwards does not change the matcher")
		assert.False(t, match(ev("invoice-1", "X")))
	})
}

func TestCheckpointInterval(t *testing.T) {
	assert.Equal(t, uint32(es.DefaultCheckpointInterval), esdriver.CheckpointInterval(es.StreamPrefixes("a")))
	assert.Equal(t, uint32(5), esdriver.CheckpointInterval(&es.Filter{CheckpointInterval: 5}))
	assert.Equal(t, uint32(0), esdriver.CheckpointInterval(nil), "unfiltered: no checkpoints")
}

func TestErrors(t *testing.T) {
	t.Run("StreamNotFound", func(t *testing.T) {
		err := esdriver.StreamNotFound("order-1")
		require.ErrorIs(t, err, es.ErrStreamNotFound)
		assert.NotErrorIs(t, err, es.ErrStreamDeleted)
		assert.Contains(t, err.Error(), `"order-1"`)
	})
	t.Run("StreamDeleted", func(t *testing.T) {
		err := esdriver.StreamDeleted("order-1")
		require.ErrorIs(t, err, es.ErrStreamDeleted)
		assert.NotErrorIs(t, err, es.ErrStreamNotFound)
		assert.Contains(t, err.Error(), `"order-1"`)
	})
	t.Run("WrongExpectedVersion", func(t *testing.T) {
		err := esdriver.WrongExpectedVersion("order-1", es.NoStream, 3)
		var wev *es.WrongExpectedVersionError
		require.ErrorAs(t, err, &wev)
		assert.Equal(t, es.Exact(3), wev.Actual)
		require.ErrorAs(t, esdriver.WrongExpectedVersion("order-1", es.Exact(3), -1), &wev)
		assert.Equal(t, es.NoStream, wev.Actual)
	})
}
