package es_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
)

func TestValidateStreamName(t *testing.T) {
	for _, name := range []string{"a", "order-42", "$$order-42", "$all", "Ünïcode ✓", strings.Repeat("x", es.MaxNameLength)} {
		assert.NoErrorf(t, es.ValidateStreamName(name), "%.40q", name)
	}
	for _, name := range []string{"", strings.Repeat("x", es.MaxNameLength+1), "bad\xff", "nul\x00"} {
		assert.ErrorIsf(t, es.ValidateStreamName(name), es.ErrInvalidArgument, "%.40q", name)
	}
}

func TestPrepareAppend(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		id := uuid.New()
		in := []es.EventData{
			{Type: "A", Data: []byte(`{}`)},
			{ID: id, Type: "B", ContentType: es.ContentTypeBinary, Data: []byte{1}},
		}
		orig := append([]es.EventData(nil), in...)
		out, err := es.PrepareAppend("s", in, 0)
		require.NoError(t, err)
		require.Len(t, out, 2)
		assert.NotEqual(t, uuid.Nil, out[0].ID, "a zero ID is replaced")
		assert.Equal(t, es.ContentTypeJSON, out[0].ContentType, "an empty content type becomes JSON")
		assert.Equal(t, id, out[1].ID, "an ID is kept")
		assert.Equal(t, es.ContentTypeBinary, out[1].ContentType)
		assert.Equal(t, orig, in, "the input is not modified")
	})
	t.Run("UniqueIDs", func(t *testing.T) {
		out, err := es.PrepareAppend("s", make([]es.EventData, 100), 0)
		require.ErrorIs(t, err, es.ErrInvalidArgument, "events without a type")
		assert.Nil(t, out)
		evs := make([]es.EventData, 100)
		for i := range evs {
			evs[i].Type = "T"
		}
		out, err = es.PrepareAppend("s", evs, 0)
		require.NoError(t, err)
		seen := map[uuid.UUID]bool{}
		for _, ev := range out {
			assert.False(t, seen[ev.ID], "generated IDs are unique")
			seen[ev.ID] = true
		}
	})
	t.Run("Empty", func(t *testing.T) {
		out, err := es.PrepareAppend("s", nil, 0)
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
			_, err := es.PrepareAppend(c.stream, c.events, 0)
			require.ErrorIs(t, err, es.ErrInvalidArgument)
		})
	}

	t.Run("MaxSize", func(t *testing.T) {
		ev := func(data, meta int) es.EventData {
			return es.EventData{Type: "A", Data: bytes.Repeat([]byte{'d'}, data), Metadata: bytes.Repeat([]byte{'m'}, meta)}
		}
		_, err := es.PrepareAppend("s", []es.EventData{ev(60, 40)}, 100)
		require.NoError(t, err, "exactly the maximum size")
		_, err = es.PrepareAppend("s", []es.EventData{ev(60, 40), ev(0, 1)}, 100)
		require.ErrorIs(t, err, es.ErrMaxAppendSizeExceeded, "data and metadata of all events count")
		assert.NotErrorIs(t, err, es.ErrInvalidArgument)
		_, err = es.PrepareAppend("s", []es.EventData{ev(es.MaxAppendSize, 0)}, 0)
		require.NoError(t, err, "maxSize 0 means MaxAppendSize")
		_, err = es.PrepareAppend("s", []es.EventData{ev(es.MaxAppendSize, 1)}, -1)
		require.ErrorIs(t, err, es.ErrMaxAppendSizeExceeded, "maxSize below 0 means MaxAppendSize")
	})
}
