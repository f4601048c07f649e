package es_test

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
)

func TestPositionString(t *testing.T) {
	cases := []struct {
		p    es.Position
		want string
	}{
		{es.Start, "start"},
		{es.End, "end"},
		{es.Position{Commit: 1, Prepare: 1}, "C:1/P:1"},
		{es.Position{Commit: 120, Prepare: 97}, "C:120/P:97"},
		{es.Position{Commit: 0, Prepare: 5}, "C:0/P:5"},
		{es.Position{Commit: math.MaxUint64, Prepare: 0}, "C:18446744073709551615/P:0"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			assert.Equal(t, c.want, c.p.String())
			got, err := es.ParsePosition(c.want)
			require.NoError(t, err)
			assert.Equal(t, c.p, got, "ParsePosition(String())")
			text, err := c.p.MarshalText()
			require.NoError(t, err)
			var back es.Position
			require.NoError(t, back.UnmarshalText(text))
			assert.Equal(t, c.p, back)
		})
	}
}

func TestParsePosition(t *testing.T) {
	t.Run("Zero", func(t *testing.T) {
		p, err := es.ParsePosition("C:0/P:0")
		require.NoError(t, err)
		assert.Equal(t, es.Start, p)
	})
	t.Run("LeadingZeros", func(t *testing.T) {
		p, err := es.ParsePosition("C:007/P:08")
		require.NoError(t, err)
		assert.Equal(t, es.Position{Commit: 7, Prepare: 8}, p)
	})
	for _, in := range []string{"", "START", "C:1", "C:1/", "/P:1", "C:x/P:1", "C:1/P:y", "P:1/C:2", "C:-1/P:1", "C:1/P:2/P:3",
		"C:18446744073709551616/P:0", "C 1/P 2", "c:1/p:2"} {
		t.Run("Invalid/"+in, func(t *testing.T) {
			_, err := es.ParsePosition(in)
			require.ErrorIs(t, err, es.ErrInvalidArgument)
			var p es.Position
			require.ErrorIs(t, p.UnmarshalText([]byte(in)), es.ErrInvalidArgument)
			assert.Equal(t, es.Start, p, "a failed UnmarshalText leaves the value alone")
		})
	}
}

func TestPositionCompare(t *testing.T) {
	ordered := []es.Position{
		es.Start,
		{Commit: 0, Prepare: 1},
		{Commit: 1, Prepare: 0},
		{Commit: 1, Prepare: 1},
		{Commit: 1, Prepare: 2},
		{Commit: 2, Prepare: 0},
		{Commit: 100, Prepare: 99},
		{Commit: math.MaxUint64, Prepare: 0},
		es.End,
	}
	for i, p := range ordered {
		for j, q := range ordered {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			assert.Equalf(t, want, p.Compare(q), "%v.Compare(%v)", p, q)
		}
	}
	assert.True(t, es.Start.IsZero())
	assert.True(t, es.Position{}.IsZero())
	assert.False(t, es.Position{Prepare: 1}.IsZero())
	assert.False(t, es.End.IsZero())
}

func TestPositionJSON(t *testing.T) {
	type checkpoint struct {
		Position es.Position `json:"position"`
	}
	data, err := json.Marshal(checkpoint{es.Position{Commit: 12, Prepare: 10}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"position":"C:12/P:10"}`, string(data))
	var back checkpoint
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, es.Position{Commit: 12, Prepare: 10}, back.Position)
	require.ErrorIs(t, json.Unmarshal([]byte(`{"position":"12"}`), &back), es.ErrInvalidArgument)
}

func TestDirectionString(t *testing.T) {
	assert.Equal(t, "forwards", es.Forwards.String())
	assert.Equal(t, "backwards", es.Backwards.String())
}

func TestRecordedEventIsSystem(t *testing.T) {
	assert.True(t, es.RecordedEvent{Type: es.EventTypeMetadata}.IsSystem())
	assert.True(t, es.RecordedEvent{Type: es.EventTypeStreamDeleted}.IsSystem())
	assert.True(t, es.RecordedEvent{Type: "$anything"}.IsSystem())
	assert.False(t, es.RecordedEvent{Type: "OrderPlaced"}.IsSystem())
	assert.False(t, es.RecordedEvent{Type: "Order$Placed"}.IsSystem())
	assert.False(t, es.RecordedEvent{}.IsSystem())
}

func TestErrors(t *testing.T) {
	t.Run("WrongExpectedVersion", func(t *testing.T) {
		var err error = &es.WrongExpectedVersionError{Stream: "order-1", Expected: es.NoStream, Actual: es.Exact(3)}
		require.ErrorIs(t, err, es.ErrWrongExpectedVersion)
		assert.NotErrorIs(t, err, es.ErrStreamNotFound)
		assert.Equal(t, `es: wrong expected version for stream "order-1": expected no stream, actual 3`, err.Error())
		wrapped := errors.Join(errors.New("saving order"), err)
		var wev *es.WrongExpectedVersionError
		require.ErrorAs(t, wrapped, &wev)
		assert.Equal(t, es.Exact(3), wev.Actual)
	})
}
