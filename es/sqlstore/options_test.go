package sqlstore_test

import (
	"context"
	"iter"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
)

func TestInvalidOptions(t *testing.T) {
	cases := []struct {
		name string
		opt  sqlstore.Option
	}{
		{"TablePrefix/Dash", sqlstore.WithTablePrefix("my-prefix")},
		{"TablePrefix/Quote", sqlstore.WithTablePrefix(`x"; DROP TABLE y; --`)},
		{"TablePrefix/Digit", sqlstore.WithTablePrefix("1x")},
		{"TablePrefix/TooLong", sqlstore.WithTablePrefix(strings.Repeat("x", 41))},
		{"MaxAppendSize/Zero", sqlstore.WithMaxAppendSize(0)},
		{"MaxAppendSize/Negative", sqlstore.WithMaxAppendSize(-1)},
		{"Clock/Nil", sqlstore.WithClock(nil)},
		{"PollInterval/Zero", sqlstore.WithPollInterval(0)},
		{"PollInterval/Negative", sqlstore.WithPollInterval(-time.Second)},
		{"Logger/Nil", sqlstore.WithLogger(nil)},
		{"CallTimeout/Zero", sqlstore.WithCallTimeout(0)},
		{"CallTimeout/Negative", sqlstore.WithCallTimeout(-time.Second)},
		{"Schema/SQLite", sqlstore.WithSchema("public")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.db")
			s, err := sqlite.Open(t.Context(), path, c.opt)
			require.ErrorIs(t, err, sqlstore.ErrInvalidOption)
			assert.Nil(t, s)
			assert.NoFileExists(t, path, "an invalid option is rejected before the database is touched")
		})
	}
	t.Run("Joined", func(t *testing.T) {
		_, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "events.db"),
			sqlstore.WithPollInterval(0), sqlstore.WithClock(nil))
		require.ErrorIs(t, err, sqlstore.ErrInvalidOption)
		assert.ErrorContains(t, err, "poll interval")
		assert.ErrorContains(t, err, "WithClock(nil)", "every invalid option is reported")
	})
}

func TestOptions(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	path := filepath.Join(t.TempDir(), "events.db")
	s := openSQLitePath(t, path, sqlstore.WithTablePrefix(""), sqlstore.WithMaxAppendSize(10),
		sqlstore.WithClock(func() time.Time { return at }))
	_, err := s.Append(t.Context(), "opts", es.NoStream, es.EventData{Type: "Small", Data: []byte("0123456789")})
	require.NoError(t, err)
	_, err = s.Append(t.Context(), "opts", es.Any, es.EventData{Type: "Big", Data: []byte("0123456789a")})
	require.ErrorIs(t, err, es.ErrMaxAppendSizeExceeded)
	for ev, err := range s.ReadStream(t.Context(), "opts", es.ReadStreamOptions{}) {
		require.NoError(t, err)
		assert.True(t, at.Equal(ev.Created), "Created comes from the clock, to the nanosecond: %v", ev.Created)
	}

	// A second store with another prefix in the same file is independent.
	other := openSQLitePath(t, path)
	n := 0
	for _, err := range other.ReadAll(t.Context(), es.ReadAllOptions{}) {
		require.NoError(t, err)
		n++
	}
	assert.Zero(t, n, "the default prefix's tables are other tables")
}

func TestClose(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "events.db"))
	require.NoError(t, err)
	_, err = s.Append(t.Context(), "closed", es.NoStream, es.EventData{Type: "BeforeClose"})
	require.NoError(t, err)
	all := start(t, func(ctx context.Context) iter.Seq2[es.Message, error] {
		return s.SubscribeAll(ctx, es.SubscribeAllOptions{})
	})
	for {
		msg, err := all.Receive(t)
		require.NoError(t, err)
		if msg.Kind == es.KindCaughtUp {
			break
		}
	}

	require.NoError(t, s.Close())
	_, err = all.Receive(t)
	require.ErrorIs(t, err, sqlstore.ErrClosed, "a live subscription ends when the store closes")
	require.NoError(t, s.Close(), "Close is idempotent")

	_, err = s.Append(t.Context(), "closed", es.Any, es.EventData{Type: "AfterClose"})
	assert.ErrorIs(t, err, sqlstore.ErrClosed, "Append")
	_, err = s.DeleteStream(t.Context(), "closed", es.Any)
	assert.ErrorIs(t, err, sqlstore.ErrClosed, "DeleteStream")
	_, err = s.TombstoneStream(t.Context(), "closed", es.Any)
	assert.ErrorIs(t, err, sqlstore.ErrClosed, "TombstoneStream")
	for _, err := range s.ReadStream(t.Context(), "closed", es.ReadStreamOptions{}) {
		assert.ErrorIs(t, err, sqlstore.ErrClosed, "ReadStream")
	}
	for _, err := range s.ReadAll(t.Context(), es.ReadAllOptions{}) {
		assert.ErrorIs(t, err, sqlstore.ErrClosed, "ReadAll")
	}
	for _, err := range s.SubscribeStream(t.Context(), "closed", es.SubscribeStreamOptions{}) {
		assert.ErrorIs(t, err, sqlstore.ErrClosed, "SubscribeStream")
	}
}

// TestBadMetadata checks, as es/memstore does, that metadata which does not
// parse is stored, and counts as no metadata, and that events of other types
// in a metadata stream leave the metadata as it is.
func TestBadMetadata(t *testing.T) {
	s := openSQLite(t)
	_, err := s.Append(t.Context(), "order-1", es.NoStream, es.EventData{Type: "A"}, es.EventData{Type: "B"})
	require.NoError(t, err)
	types := func() []string {
		t.Helper()
		var types []string
		for ev, err := range s.ReadStream(t.Context(), "order-1", es.ReadStreamOptions{}) {
			require.NoError(t, err)
			types = append(types, ev.Type)
		}
		return types
	}

	_, err = es.SetStreamMetadata(t.Context(), s, "order-1", es.Any, es.StreamMetadata{MaxCount: 1})
	require.NoError(t, err)
	_, err = s.Append(t.Context(), es.MetadataStream("order-1"), es.Any, es.EventData{Type: "Note", Data: []byte(`not JSON`)})
	require.NoError(t, err)
	assert.Equal(t, []string{"B"}, types(), "$maxCount 1 still applies")

	_, err = s.Append(t.Context(), es.MetadataStream("order-1"), es.Any,
		es.EventData{Type: es.EventTypeMetadata, Data: []byte(`{"$maxCount": "many"}`)})
	require.NoError(t, err, "metadata that does not parse is stored")
	assert.Equal(t, []string{"A", "B"}, types(), "and counts as no metadata")
}
