package estest

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
)

func (s *suite) testValidation(t *testing.T) {
	names := []struct{ name, stream string }{
		{"Empty", ""},
		{"TooLong", newStream("long") + strings.Repeat("x", es.MaxNameLength)},
		{"InvalidUTF8", newStream("utf8") + "\xff\xfe"},
		{"NUL", newStream("nul") + "\x00"},
	}
	for _, n := range names {
		t.Run("StreamName/"+n.name, func(t *testing.T) {
			s.run(t, "Append", func(t *testing.T, store es.Store) {
				_, err := store.Append(t.Context(), n.stream, es.Any, newEvents(1, "Invalid")...)
				require.ErrorIs(t, err, es.ErrInvalidArgument)
			})
			s.run(t, "ReadStream", func(t *testing.T, store es.Store) {
				require.ErrorIs(t, readStreamErr(t, store, n.stream, es.ReadStreamOptions{}), es.ErrInvalidArgument)
			})
			s.run(t, "SubscribeStream", func(t *testing.T, store es.Store) {
				ctx, cancel := context.WithTimeout(t.Context(), s.timeout)
				defer cancel()
				for msg, err := range store.SubscribeStream(ctx, n.stream, es.SubscribeStreamOptions{}) {
					require.ErrorIsf(t, err, es.ErrInvalidArgument, "the first value of a subscription to an invalid stream name: %+v", msg)
					break
				}
			})
			s.run(t, "DeleteStream", func(t *testing.T, store es.Store) {
				_, err := store.DeleteStream(t.Context(), n.stream, es.Any)
				require.ErrorIs(t, err, es.ErrInvalidArgument)
			})
			s.run(t, "TombstoneStream", func(t *testing.T, store es.Store) {
				_, err := store.TombstoneStream(t.Context(), n.stream, es.Any)
				require.ErrorIs(t, err, es.ErrInvalidArgument)
			})
		})
	}

	s.run(t, "StreamName/MaxLength", func(t *testing.T, store es.Store) {
		stream := newStream("long")
		stream += strings.Repeat("x", es.MaxNameLength-len(stream))
		require.Len(t, stream, es.MaxNameLength)
		ev := newEvents(1, "Long")
		appendOK(t, store, stream, es.NoStream, ev...)
		got := readStream(t, store, stream, es.ReadStreamOptions{})
		require.Len(t, got, 1, "a stream name of MaxNameLength bytes is valid")
		assert.Equal(t, stream, got[0].Stream)
	})

	invalidEvents := []struct {
		name   string
		events func() []es.EventData
		want   error
	}{
		{"EventType/Empty", func() []es.EventData {
			evs := newEvents(3, "Valid")
			evs[1].Type = ""
			return evs
		}, es.ErrInvalidArgument},
		{"EventType/TooLong", func() []es.EventData {
			evs := newEvents(2, "Valid")
			evs[1].Type = strings.Repeat("T", es.MaxNameLength+1)
			return evs
		}, es.ErrInvalidArgument},
		{"ContentType/Unknown", func() []es.EventData {
			evs := newEvents(2, "Valid")
			evs[1].ContentType = "text/plain"
			return evs
		}, es.ErrInvalidArgument},
		{"MaxAppendSize/OneEvent", func() []es.EventData {
			evs := newEvents(1, "Big")
			evs[0].ContentType, evs[0].Data, evs[0].Metadata = es.ContentTypeBinary, bytes.Repeat([]byte{'x'}, es.MaxAppendSize+1), nil
			return evs
		}, es.ErrMaxAppendSizeExceeded},
		{"MaxAppendSize/Total", func() []es.EventData {
			evs := newEvents(3, "Big")
			for i := range evs {
				evs[i].ContentType, evs[i].Data, evs[i].Metadata = es.ContentTypeBinary, bytes.Repeat([]byte{'x'}, es.MaxAppendSize/3), []byte{'y'}
			}
			evs[2].Metadata = bytes.Repeat([]byte{'y'}, 10)
			return evs
		}, es.ErrMaxAppendSizeExceeded},
	}
	for _, c := range invalidEvents {
		s.run(t, c.name, func(t *testing.T, store es.Store) {
			stream := newStream("invalid")
			_, err := store.Append(t.Context(), stream, es.NoStream, c.events()...)
			require.ErrorIs(t, err, c.want)
			require.ErrorIs(t, readStreamErr(t, store, stream, es.ReadStreamOptions{}), es.ErrStreamNotFound,
				"a rejected append writes nothing, not even its valid events")

			// On an existing stream too.
			appendOK(t, store, stream, es.NoStream, newEvents(1, "First")...)
			_, err = store.Append(t.Context(), stream, es.Any, c.events()...)
			require.ErrorIs(t, err, c.want)
			assert.Len(t, readStream(t, store, stream, es.ReadStreamOptions{}), 1, "a rejected append writes nothing")
		})
	}
}
