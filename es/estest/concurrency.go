package estest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
)

func (s *suite) testConcurrency(t *testing.T) {
	s.run(t, "AnyWriters", s.testAnyWriters)
	s.run(t, "ExactWritersRetry", s.testExactWriters)
	s.run(t, "SubscriberSeesEverything", s.testSubscriberSeesEverything)
}

// testAnyWriters races writers on one stream with es.Any: every append lands,
// revisions have no gap and no duplicate.
func (s *suite) testAnyWriters(t *testing.T, store es.Store) {
	stream := newStream("race")
	type written struct {
		id  uuid.UUID
		rev uint64
	}
	results := make([][]written, s.writers)
	var wg sync.WaitGroup
	for w := range s.writers {
		wg.Go(func() {
			for range s.appends {
				ev := newEvents(1, "Raced")
				res, err := store.Append(t.Context(), stream, es.Any, ev...)
				if !assert.NoErrorf(t, err, "writer %d: Append with Any", w) {
					return
				}
				results[w] = append(results[w], written{ev[0].ID, res.Revision})
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	total := s.writers * s.appends
	evs := readStream(t, store, stream, es.ReadStreamOptions{})
	require.Lenf(t, evs, total, "%d writers × %d appends of one event", s.writers, s.appends)
	revOf := make(map[uuid.UUID]uint64, total)
	for i, ev := range evs {
		require.Equalf(t, uint64(i), ev.Revision, "revisions without gap or duplicate")
		_, dup := revOf[ev.ID]
		require.Falsef(t, dup, "event %v is in the stream twice", ev.ID)
		revOf[ev.ID] = ev.Revision
	}
	requireIncreasing(t, evs)
	for w, ws := range results {
		for i, x := range ws {
			rev, ok := revOf[x.id]
			require.Truef(t, ok, "writer %d: event %v is missing from the stream", w, x.id)
			require.Equalf(t, x.rev, rev, "writer %d: the revision Append reported for event %v", w, x.id)
			if i > 0 {
				require.Greaterf(t, x.rev, ws[i-1].rev, "writer %d: its sequential appends got increasing revisions", w)
			}
		}
	}
}

// testExactWriters races writers that increment a counter with optimistic
// concurrency, retrying on conflict: no update is lost.
func (s *suite) testExactWriters(t *testing.T, store es.Store) {
	stream := newStream("counter")
	type counted struct {
		N uint64 `json:"n"`
	}
	// increment reads the counter and writes its next value, expecting the
	// revision it read.
	increment := func(ctx context.Context) error {
		expected, next := es.NoStream, uint64(1)
		for ev, err := range store.ReadStream(ctx, stream, es.ReadStreamOptions{Direction: es.Backwards, From: es.StreamEnd, Limit: 1}) {
			if errors.Is(err, es.ErrStreamNotFound) {
				break
			}
			if err != nil {
				return err
			}
			var c counted
			if err := json.Unmarshal(ev.Data, &c); err != nil {
				return fmt.Errorf("revision %d: %w", ev.Revision, err)
			}
			expected, next = es.Exact(ev.Revision), c.N+1
		}
		_, err := store.Append(ctx, stream, expected, es.EventData{
			ID: uuid.New(), Type: "Incremented", Data: []byte(`{"n":` + strconv.FormatUint(next, 10) + `}`),
		})
		return err
	}

	var (
		wg        sync.WaitGroup
		conflicts atomic.Int64
	)
	for w := range s.writers {
		wg.Go(func() {
			for done := 0; done < s.appends; {
				err := increment(t.Context())
				if errors.Is(err, es.ErrWrongExpectedVersion) {
					conflicts.Add(1)
					continue
				}
				if !assert.NoErrorf(t, err, "writer %d: increment", w) {
					return
				}
				done++
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d conflicts retried", conflicts.Load())

	total := s.writers * s.appends
	evs := readStream(t, store, stream, es.ReadStreamOptions{})
	require.Lenf(t, evs, total, "%d writers × %d increments", s.writers, s.appends)
	for i, ev := range evs {
		var c counted
		require.NoError(t, json.Unmarshal(ev.Data, &c))
		require.Equalf(t, uint64(i+1), c.N, "event %d holds the counter's value %d: an update was lost", i, c.N)
	}
}

// testSubscriberSeesEverything races writers on several streams while a
// filtered `$all` subscription and a stream subscription watch.
func (s *suite) testSubscriberSeesEverything(t *testing.T, store es.Store) {
	const nStreams = 4
	prefix := newPrefix("race")
	streams := make([]string, nStreams)
	for i := range streams {
		streams[i] = prefix + strconv.Itoa(i)
	}
	before := head(t, store)
	filter := &es.Filter{On: es.FilterStreamName, Prefixes: []string{prefix}, CheckpointInterval: 16}
	allSub := s.subscribeAll(t, store, es.SubscribeAllOptions{From: before, Filter: filter})
	streamSub := s.subscribeStream(t, store, streams[0], es.SubscribeStreamOptions{})

	// Writers append one or two events at a time, so that atomicity shows.
	batches := make([][][]uuid.UUID, s.writers)
	var wg sync.WaitGroup
	for w := range s.writers {
		wg.Go(func() {
			for i := range s.appends {
				evs := newEvents(1+i%2, "Raced")
				stream := streams[(w+i)%nStreams]
				if _, err := store.Append(t.Context(), stream, es.Any, evs...); !assert.NoErrorf(t, err, "writer %d: Append to %s", w, stream) {
					return
				}
				batches[w] = append(batches[w], dataIDs(evs))
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	written := make(map[uuid.UUID]bool)
	for _, bs := range batches {
		for _, b := range bs {
			for _, id := range b {
				written[id] = true
			}
		}
	}

	// The $all subscription sees every event once, in order.
	match, err := esdriver.Matcher(filter)
	require.NoError(t, err)
	check := &checkpointChecker{t: t, match: match, interval: int(filter.CheckpointInterval)}
	for len(check.events) < len(written) {
		check.observe(allSub.message())
	}
	got := check.events
	seen := make(map[uuid.UUID]bool, len(got))
	next := make(map[string]uint64)
	at := make(map[uuid.UUID]es.RecordedEvent, len(got))
	for _, ev := range got {
		require.Falsef(t, seen[ev.ID], "event %s@%d delivered twice", ev.Stream, ev.Revision)
		seen[ev.ID] = true
		require.Truef(t, written[ev.ID], "event %s@%d was not written by the test", ev.Stream, ev.Revision)
		require.Equalf(t, next[ev.Stream], ev.Revision, "the events of %s are delivered in revision order, without gaps", ev.Stream)
		next[ev.Stream]++
		at[ev.ID] = ev
	}
	for w, bs := range batches {
		for _, b := range bs {
			for i := 1; i < len(b); i++ {
				require.Equalf(t, at[b[0]].Stream, at[b[i]].Stream, "writer %d: the events of one append are in one stream", w)
				require.Equalf(t, at[b[0]].Revision+uint64(i), at[b[i]].Revision, "writer %d: the events of one append have consecutive revisions", w)
			}
		}
	}
	all := readAllSince(t, store, before, prefix)
	assert.Equal(t, recordedIDs(all), recordedIDs(got), "the subscription delivers what ReadAll reads, in the same order")

	// The stream subscription sees its stream's events in order.
	want := readStream(t, store, streams[0], es.ReadStreamOptions{})
	var fromSub []es.RecordedEvent
	for len(fromSub) < len(want) {
		msg := streamSub.message()
		require.NotEqual(t, es.KindCheckpoint, msg.Kind, "a stream subscription sends no checkpoints")
		if msg.Kind == es.KindEvent {
			fromSub = append(fromSub, msg.Event)
		}
	}
	assert.Equal(t, recordedIDs(want), recordedIDs(fromSub), "the stream subscription delivers the stream's events in order")
	assert.Equal(t, revisions(want), revisions(fromSub))
}
