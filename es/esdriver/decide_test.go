package esdriver_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
)

// failing is an esdriver.Events whose calls fail.
type failing struct{}

var errStorage = errors.New("storage failed")

func (failing) Find(uuid.UUID) (uint64, bool, error)       { return 0, false, errStorage }
func (failing) Holds(uint64, []es.EventData) (bool, error) { return false, errStorage }

func TestDecideAppend(t *testing.T) {
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	two := eventIDs{a, b} // a stream of two events
	evs := func(ids ...uuid.UUID) []es.EventData {
		out := make([]es.EventData, len(ids))
		for i, id := range ids {
			out[i] = es.EventData{ID: id, Type: "E"}
		}
		return out
	}
	none := esdriver.Stream{Last: -1}
	exists := esdriver.Stream{Last: 1}
	deleted := esdriver.Stream{Last: 1, Metadata: es.StreamMetadata{TruncateBefore: esdriver.DeletedTruncateBefore}, HasMetadata: true}
	metaOnly := esdriver.Stream{Last: -1, HasMetadata: true}
	cases := []struct {
		name     string
		st       esdriver.Stream
		events   esdriver.Events
		expected es.ExpectedRevision
		evs      []es.EventData
		want     esdriver.Decision
		err      error
	}{
		{"NoStream/New", none, eventIDs{}, es.NoStream, evs(c), esdriver.Decision{Write: true}, nil},
		{"NoStream/Exists", exists, two, es.NoStream, evs(c), esdriver.Decision{}, es.ErrWrongExpectedVersion},
		{"NoStream/Repeat", exists, two, es.NoStream, evs(a, b), esdriver.Decision{Revision: 1}, nil},
		{"NoStream/RepeatPart", exists, two, es.NoStream, evs(a), esdriver.Decision{Revision: 0}, nil},
		{"NoStream/RepeatTooLong", exists, two, es.NoStream, evs(a, b, c), esdriver.Decision{}, es.ErrWrongExpectedVersion},
		{"NoStream/Recreate", deleted, two, es.NoStream, evs(c), esdriver.Decision{Write: true, Recreate: true}, nil},
		{"Exact/Match", exists, two, es.Exact(1), evs(c), esdriver.Decision{Write: true}, nil},
		{"Exact/Ahead", exists, two, es.Exact(2), evs(c), esdriver.Decision{}, es.ErrWrongExpectedVersion},
		{"Exact/Repeat", exists, two, es.Exact(0), evs(b), esdriver.Decision{Revision: 1}, nil},
		{"Exact/Behind", exists, two, es.Exact(0), evs(c), esdriver.Decision{}, es.ErrWrongExpectedVersion},
		{"Exact/RecreateNeedsNoStream", deleted, two, es.Exact(0), evs(c), esdriver.Decision{}, es.ErrWrongExpectedVersion},
		{"Exact/Deleted", deleted, two, es.Exact(1), evs(c), esdriver.Decision{Write: true, Recreate: true}, nil},
		{"Any/New", none, eventIDs{}, es.Any, evs(c), esdriver.Decision{Write: true}, nil},
		{"Any/Repeat", exists, two, es.Any, evs(a, b), esdriver.Decision{Revision: 1}, nil},
		{"Any/RepeatOtherOrder", exists, two, es.Any, evs(b, a), esdriver.Decision{}, es.ErrWrongExpectedVersion},
		{"Any/RepeatTooLong", exists, two, es.Any, evs(b, c), esdriver.Decision{}, es.ErrWrongExpectedVersion},
		{"Any/Empty", exists, two, es.Any, nil, esdriver.Decision{Revision: 1}, nil},
		{"Any/EmptyNoStream", none, eventIDs{}, es.Any, nil, esdriver.Decision{NoStream: true}, nil},
		{"StreamExists/Missing", none, eventIDs{}, es.StreamExists, evs(c), esdriver.Decision{}, es.ErrWrongExpectedVersion},
		{"StreamExists/MetadataOnly", metaOnly, eventIDs{}, es.StreamExists, evs(c), esdriver.Decision{Write: true}, nil},
		{"StreamExists/Deleted", deleted, two, es.StreamExists, evs(c), esdriver.Decision{}, es.ErrStreamDeleted},
		{"StreamExists/Repeat", exists, two, es.StreamExists, evs(a), esdriver.Decision{Revision: 0}, nil},
		{"Tombstoned", esdriver.Stream{Last: 1, Tombstoned: true}, two, es.Any, evs(c), esdriver.Decision{}, es.ErrStreamDeleted},
		{"StorageError/Find", exists, failing{}, es.Any, evs(c), esdriver.Decision{}, errStorage},
		{"StorageError/Holds", exists, failing{}, es.Exact(0), evs(c), esdriver.Decision{Revision: 1}, errStorage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := esdriver.DecideAppend("s", c.st, c.expected, c.evs, c.events)
			if c.err != nil {
				require.ErrorIs(t, err, c.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, d)
		})
	}
}

func TestDecideDelete(t *testing.T) {
	none := esdriver.Stream{Last: -1}
	exists := esdriver.Stream{Last: 1}
	deleted := esdriver.Stream{Last: 1, Metadata: es.StreamMetadata{TruncateBefore: esdriver.DeletedTruncateBefore}}
	cases := []struct {
		name      string
		st        esdriver.Stream
		expected  es.ExpectedRevision
		tombstone bool
		err       error
	}{
		{"Delete/Any", exists, es.Any, false, nil},
		{"Delete/Exact", exists, es.Exact(1), false, nil},
		{"Delete/Wrong", exists, es.Exact(0), false, es.ErrWrongExpectedVersion},
		{"Delete/Missing", none, es.Any, false, es.ErrWrongExpectedVersion},
		{"Delete/StreamExistsDeleted", deleted, es.StreamExists, false, es.ErrStreamDeleted},
		{"Tombstone/Missing", none, es.Any, true, nil},
		{"Tombstone/MissingNoStream", none, es.NoStream, true, nil},
		{"Tombstone/MissingStreamExists", none, es.StreamExists, true, es.ErrWrongExpectedVersion},
		{"Tombstone/Twice", esdriver.Stream{Last: -1, Tombstoned: true}, es.Any, true, es.ErrStreamDeleted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := esdriver.DecideDelete("s", c.st, c.expected, c.tombstone)
			if c.err == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, c.err)
		})
	}
}

func TestRecreated(t *testing.T) {
	st := esdriver.Stream{Last: 4, Metadata: es.StreamMetadata{MaxCount: 3, TruncateBefore: esdriver.DeletedTruncateBefore}}
	assert.Equal(t, es.StreamMetadata{MaxCount: 3, TruncateBefore: 5}, esdriver.Recreated(st))
}
