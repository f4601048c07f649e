package es_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
)

func TestParseExpectedRevision(t *testing.T) {
	valid := []struct {
		in   string
		want es.ExpectedRevision
	}{
		{"any", es.Any},
		{"ANY", es.Any},
		{" any ", es.Any},
		{"no_stream", es.NoStream},
		{"no stream", es.NoStream},
		{"no-stream", es.NoStream},
		{"No_Stream", es.NoStream},
		{"stream_exists", es.StreamExists},
		{"stream exists", es.StreamExists},
		{"stream-exists", es.StreamExists},
		{"0", es.Exact(0)},
		{"42", es.Exact(42)},
		{"18446744073709551615", es.Exact(1<<64 - 1)},
	}
	for _, c := range valid {
		t.Run(c.in, func(t *testing.T) {
			got, err := es.ParseExpectedRevision(c.in)
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}

	invalid := []string{"", "-1", "-42", "-9223372036854775808", "-99999999999999999999", "18446744073709551616", "1.5", "abc", "nostream", "0x10", "+-1"}
	for _, in := range invalid {
		t.Run("Invalid/"+in, func(t *testing.T) {
			_, err := es.ParseExpectedRevision(in)
			require.ErrorIs(t, err, es.ErrInvalidArgument)
		})
	}
	t.Run("NegativeSaysSo", func(t *testing.T) {
		_, err := es.ParseExpectedRevision("-3")
		require.ErrorIs(t, err, es.ErrInvalidArgument)
		assert.Contains(t, err.Error(), "negative")
	})
}

func TestExpectedRevision(t *testing.T) {
	cases := []struct {
		r                           es.ExpectedRevision
		str, text                   string
		isAny, isNoStream, isExists bool
		revision                    uint64
		isExact                     bool
	}{
		{es.Any, "any", "any", true, false, false, 0, false},
		{es.NoStream, "no stream", "no_stream", false, true, false, 0, false},
		{es.StreamExists, "stream exists", "stream_exists", false, false, true, 0, false},
		{es.Exact(0), "0", "0", false, false, false, 0, true},
		{es.Exact(7), "7", "7", false, false, false, 7, true},
	}
	for _, c := range cases {
		t.Run(c.str, func(t *testing.T) {
			assert.Equal(t, c.str, c.r.String())
			text, err := c.r.MarshalText()
			require.NoError(t, err)
			assert.Equal(t, c.text, string(text))
			var back es.ExpectedRevision
			require.NoError(t, back.UnmarshalText(text))
			assert.Equal(t, c.r, back)
			assert.Equal(t, c.isAny, c.r.IsAny())
			assert.Equal(t, c.isNoStream, c.r.IsNoStream())
			assert.Equal(t, c.isExists, c.r.IsStreamExists())
			rev, ok := c.r.Revision()
			assert.Equal(t, c.isExact, ok)
			if ok {
				assert.Equal(t, c.revision, rev)
			}
		})
	}
	t.Run("ZeroIsAny", func(t *testing.T) {
		assert.Equal(t, es.Any, es.ExpectedRevision{})
	})
	t.Run("JSON", func(t *testing.T) {
		in := map[string]es.ExpectedRevision{"a": es.Any, "b": es.NoStream, "c": es.StreamExists, "d": es.Exact(3)}
		data, err := json.Marshal(in)
		require.NoError(t, err)
		assert.JSONEq(t, `{"a":"any","b":"no_stream","c":"stream_exists","d":"3"}`, string(data))
		var out map[string]es.ExpectedRevision
		require.NoError(t, json.Unmarshal(data, &out))
		assert.Equal(t, in, out)
	})
	t.Run("UnmarshalTextError", func(t *testing.T) {
		r := es.Exact(5)
		require.ErrorIs(t, r.UnmarshalText([]byte("-1")), es.ErrInvalidArgument)
		assert.Equal(t, es.Exact(5), r, "a failed UnmarshalText leaves the value alone")
	})
}
