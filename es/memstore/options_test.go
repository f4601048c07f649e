package memstore_test

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
)

// clock is a test clock that is safe for concurrent use.
type clock struct{ now atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.now.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.now.Load()) }
func (c *clock) Advance(d time.Duration) { c.now.Add(int64(d)) }

func TestWithClockStampsCreated(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := newClock(start)
	store := memstore.MustNew(memstore.WithClock(c.Now))
	_, err := store.Append(t.Context(), "s", es.NoStream, es.EventData{Type: "A"})
	require.NoError(t, err)
	for ev, err := range store.ReadStream(t.Context(), "s", es.ReadStreamOptions{}) {
		require.NoError(t, err)
		assert.True(t, start.Equal(ev.Created), "Created comes from the clock: %v", ev.Created)
		assert.Equal(t, time.UTC, ev.Created.Location())
	}
}

// $maxAge cannot be checked by the conformance suite without waiting; the
// clock makes it checkable here.
func TestMaxAge(t *testing.T) {
	c := newClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	store := memstore.MustNew(memstore.WithClock(c.Now))
	ctx := t.Context()
	read := func() []uint64 {
		t.Helper()
		var revs []uint64
		for ev, err := range store.ReadStream(ctx, "s", es.ReadStreamOptions{}) {
			require.NoError(t, err)
			revs = append(revs, ev.Revision)
		}
		return revs
	}

	_, err := store.Append(ctx, "s", es.NoStream, es.EventData{Type: "Old"}, es.EventData{Type: "Old"})
	require.NoError(t, err)
	c.Advance(50 * time.Second)
	_, err = store.Append(ctx, "s", es.Exact(1), es.EventData{Type: "New"})
	require.NoError(t, err)
	_, err = es.SetStreamMetadata(ctx, store, "s", es.NoStream, es.StreamMetadata{MaxAge: time.Minute})
	require.NoError(t, err)

	assert.Equal(t, []uint64{0, 1, 2}, read(), "every event is younger than a minute")
	c.Advance(20 * time.Second)
	assert.Equal(t, []uint64{2}, read(), "the events older than a minute are cut away")
	c.Advance(time.Hour)
	assert.Empty(t, read(), "every event cut away: empty, not not-found")

	// Subscriptions apply it too.
	c.Advance(-time.Hour)
	for msg, err := range store.SubscribeStream(ctx, "s", es.SubscribeStreamOptions{}) {
		require.NoError(t, err)
		if msg.Kind == es.KindCaughtUp {
			break
		}
		assert.Equal(t, uint64(2), msg.Event.Revision, "a subscription delivers only the events $maxAge keeps")
	}
}

func TestWithMaxAppendSize(t *testing.T) {
	store := memstore.MustNew(memstore.WithMaxAppendSize(10))
	_, err := store.Append(t.Context(), "s", es.NoStream, es.EventData{Type: "A", Data: bytes.Repeat([]byte{'x'}, 6), Metadata: []byte("1234")})
	require.NoError(t, err, "exactly the maximum")
	_, err = store.Append(t.Context(), "s", es.Any, es.EventData{Type: "A", Data: bytes.Repeat([]byte{'x'}, 11)})
	require.ErrorIs(t, err, es.ErrMaxAppendSizeExceeded)

	big := memstore.MustNew(memstore.WithMaxAppendSize(2 * es.MaxAppendSize))
	_, err = big.Append(t.Context(), "s", es.NoStream, es.EventData{Type: "A", ContentType: es.ContentTypeBinary, Data: make([]byte, es.MaxAppendSize+1)})
	require.NoError(t, err, "a larger limit accepts more than the default")
}

func TestInvalidOptions(t *testing.T) {
	for name, opt := range map[string]memstore.Option{
		"nil clock":            memstore.WithClock(nil),
		"zero max append size": memstore.WithMaxAppendSize(0),
		"negative append size": memstore.WithMaxAppendSize(-1),
	} {
		t.Run(name, func(t *testing.T) {
			store, err := memstore.New(opt)
			require.ErrorIs(t, err, memstore.ErrInvalidOption)
			assert.Nil(t, store)
			assert.PanicsWithError(t, err.Error(), func() { memstore.MustNew(opt) })
		})
	}

	_, err := memstore.New(memstore.WithClock(nil), memstore.WithMaxAppendSize(0))
	require.ErrorIs(t, err, memstore.ErrInvalidOption)
	assert.ErrorContains(t, err, "nil clock", "every invalid option is reported")
	assert.ErrorContains(t, err, "max append size 0")

	store, err := memstore.New()
	require.NoError(t, err, "no option, no error")
	require.NotNil(t, store)
}
