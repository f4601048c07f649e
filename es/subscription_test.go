package es_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/eventfold/eventfold/es"
)

func TestFilter(t *testing.T) {
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
