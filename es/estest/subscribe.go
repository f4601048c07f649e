package estest

import (
	"context"
	"iter"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
)

// requireEvents checks that the next messages are the events of stream with
// revisions revs, and returns them.
func (sub *subscription) requireEvents(stream string, revs ...uint64) []es.RecordedEvent {
	sub.t.Helper()
	var out []es.RecordedEvent
	for _, rev := range revs {
		msg := sub.message()
		require.Equalf(sub.t, es.KindEvent, msg.Kind, "want event %d of %s, got a %v message", rev, stream, msg.Kind)
		require.Equalf(sub.t, stream, msg.Event.Stream, "want event %d of %s", rev, stream)
		require.Equalf(sub.t, rev, msg.Event.Revision, "want event %d of %s", rev, stream)
		out = append(out, msg.Event)
	}
	return out
}

// requireCaughtUp checks that the next message is KindCaughtUp.
func (sub *subscription) requireCaughtUp() {
	sub.t.Helper()
	msg := sub.message()
	require.Equalf(sub.t, es.KindCaughtUp, msg.Kind, "want a caught-up message, got a %v message (%s@%d)", msg.Kind, msg.Event.Stream, msg.Event.Revision)
}

// requireCanceled checks that stopping the subscription ends it with the
// context's error.
func (sub *subscription) requireCanceled() {
	sub.t.Helper()
	err := sub.stop()
	require.Error(sub.t, err, "a subscription whose context is cancelled ends with the context's error, not silently")
	require.ErrorIs(sub.t, err, context.Canceled)
}

func (s *suite) testSubscribeStream(t *testing.T) {
	s.run(t, "FromStart", func(t *testing.T, store es.Store) {
		stream := newStream("sub")
		evs := newEvents(3, "Sub")
		appendOK(t, store, stream, es.NoStream, evs...)
		sub := s.subscribeStream(t, store, stream, es.SubscribeStreamOptions{From: es.FromStreamStart})
		got := sub.requireEvents(stream, 0, 1, 2)
		read := readStream(t, store, stream, es.ReadStreamOptions{})
		for i := range got {
			requireSameEvent(t, evs[i], stream, got[i])
			assert.Equal(t, read[i].Position, got[i].Position, "a subscription and a read report the same position")
		}
		sub.requireCaughtUp()
		live := newEvents(2, "Live")
		appendOK(t, store, stream, es.Exact(2), live...)
		got = sub.requireEvents(stream, 3, 4)
		requireSameEvent(t, live[1], stream, got[1])
		sub.requireCanceled()
	})

	s.run(t, "AfterRevision", func(t *testing.T, store es.Store) {
		stream := newStream("sub")
		appendOK(t, store, stream, es.NoStream, newEvents(3, "Sub")...)
		sub := s.subscribeStream(t, store, stream, es.SubscribeStreamOptions{From: es.AfterRevision(0)})
		sub.requireEvents(stream, 1, 2)
		sub.requireCaughtUp()
		appendOK(t, store, stream, es.Exact(2), newEvents(1, "Live")...)
		sub.requireEvents(stream, 3)
	})

	s.run(t, "AfterLastRevision", func(t *testing.T, store es.Store) {
		stream := newStream("sub")
		appendOK(t, store, stream, es.NoStream, newEvents(3, "Sub")...)
		sub := s.subscribeStream(t, store, stream, es.SubscribeStreamOptions{From: es.AfterRevision(2)})
		sub.requireCaughtUp()
		appendOK(t, store, stream, es.Exact(2), newEvents(1, "Live")...)
		sub.requireEvents(stream, 3)
	})

	// es.StreamEnd (2^64-1) has no revision after it: EventStoreDB takes it
	// for the end of the stream, so after it means only new events, never a
	// wrap-around to revision 0.
	s.run(t, "AfterStreamEnd", func(t *testing.T, store es.Store) {
		stream := newStream("sub")
		appendOK(t, store, stream, es.NoStream, newEvents(3, "Sub")...)
		sub := s.subscribeStream(t, store, stream, es.SubscribeStreamOptions{From: es.AfterRevision(es.StreamEnd)})
		sub.requireCaughtUp()
		appendOK(t, store, stream, es.Exact(2), newEvents(2, "Live")...)
		sub.requireEvents(stream, 3, 4)
	})

	s.run(t, "FromEnd", func(t *testing.T, store es.Store) {
		stream := newStream("sub")
		appendOK(t, store, stream, es.NoStream, newEvents(3, "Sub")...)
		sub := s.subscribeStream(t, store, stream, es.SubscribeStreamOptions{From: es.FromStreamEnd})
		sub.requireCaughtUp()
		appendOK(t, store, stream, es.Exact(2), newEvents(2, "Live")...)
		sub.requireEvents(stream, 3, 4)
	})

	for _, from := range []es.StreamCursor{es.FromStreamStart, es.FromStreamEnd} {
		s.run(t, "MissingStream/From"+strings.ToUpper(from.String()[:1])+from.String()[1:], func(t *testing.T, store es.Store) {
			stream := newStream("sub")
			sub := s.subscribeStream(t, store, stream, es.SubscribeStreamOptions{From: from})
			sub.requireCaughtUp()
			evs := newEvents(2, "Created")
			appendOK(t, store, stream, es.NoStream, evs...)
			got := sub.requireEvents(stream, 0, 1)
			requireSameEvent(t, evs[0], stream, got[0])
		})
	}

	s.run(t, "SoftDeletedWhileSubscribed", func(t *testing.T, store es.Store) {
		stream := newStream("sub")
		appendOK(t, store, stream, es.NoStream, newEvents(3, "Sub")...)
		sub := s.subscribeStream(t, store, stream, es.SubscribeStreamOptions{})
		sub.requireEvents(stream, 0, 1, 2)
		sub.requireCaughtUp()
		_, err := store.DeleteStream(t.Context(), stream, es.Exact(2))
		require.NoError(t, err)
		appendOK(t, store, stream, es.NoStream, newEvents(1, "Recreated")...)
		sub.requireEvents(stream, 3)
	})

	s.run(t, "TombstonedWhileSubscribed", func(t *testing.T, store es.Store) {
		stream := newStream("sub")
		appendOK(t, store, stream, es.NoStream, newEvents(2, "Sub")...)
		sub := s.subscribeStream(t, store, stream, es.SubscribeStreamOptions{})
		sub.requireEvents(stream, 0, 1)
		sub.requireCaughtUp()
		res, err := store.TombstoneStream(t.Context(), stream, es.Exact(1))
		require.NoError(t, err)
		msg := sub.message()
		require.Equal(t, es.KindEvent, msg.Kind, "a stream tombstoned while subscribed delivers its tombstone event")
		assert.Equal(t, es.EventTypeStreamDeleted, msg.Event.Type)
		assert.Equal(t, stream, msg.Event.Stream)
		assert.Equal(t, esdriver.TombstoneRevision, msg.Event.Revision)
		assert.Equal(t, res.Position, msg.Event.Position)
		_, err = sub.receive()
		require.ErrorIs(t, err, es.ErrStreamDeleted, "after the tombstone event, the subscription ends with ErrStreamDeleted")
		require.ErrorIs(t, sub.ended(), es.ErrStreamDeleted, "the subscription ends by itself after ErrStreamDeleted")
	})

	s.run(t, "BreakEarly", func(t *testing.T, store es.Store) {
		stream := newStream("sub")
		appendOK(t, store, stream, es.NoStream, newEvents(3, "Sub")...)
		ctx, cancel := context.WithTimeout(t.Context(), s.timeout)
		defer cancel()
		var kinds []es.Kind
		for msg, err := range store.SubscribeStream(ctx, stream, es.SubscribeStreamOptions{}) {
			require.NoError(t, err)
			if kinds = append(kinds, msg.Kind); msg.Kind == es.KindCaughtUp {
				break // the iterator releases what it holds
			}
		}
		assert.Equal(t, []es.Kind{es.KindEvent, es.KindEvent, es.KindEvent, es.KindCaughtUp}, kinds)
		appendOK(t, store, stream, es.Exact(2), newEvents(1, "AfterBreak")...)
	})

	s.run(t, "CancelledContext/WhileLive", func(t *testing.T, store es.Store) {
		stream := newStream("sub")
		appendOK(t, store, stream, es.NoStream, newEvents(1, "Sub")...)
		sub := s.subscribeStream(t, store, stream, es.SubscribeStreamOptions{})
		sub.requireEvents(stream, 0)
		sub.requireCaughtUp()
		sub.requireCanceled()
	})

	s.run(t, "CancelledContext/BeforeSubscribe", func(t *testing.T, store es.Store) {
		stream := newStream("sub")
		appendOK(t, store, stream, es.NoStream, newEvents(1, "Sub")...)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		sub := s.subscribe(t, func(context.Context) iter.Seq2[es.Message, error] {
			return store.SubscribeStream(ctx, stream, es.SubscribeStreamOptions{})
		})
		require.ErrorIs(t, sub.ended(), context.Canceled, "a subscription with a cancelled context ends with the context's error")
	})
}

func (s *suite) testSubscribeAll(t *testing.T) {
	s.run(t, "FromPositionIsExclusive", func(t *testing.T, store es.Store) {
		stream := newStream("suball")
		appendOK(t, store, stream, es.NoStream, newEvents(3, "SubAll")...)
		evs := readStream(t, store, stream, es.ReadStreamOptions{})
		sub := s.subscribeAll(t, store, es.SubscribeAllOptions{From: evs[0].Position})
		var mine []es.RecordedEvent
		for {
			msg := sub.message()
			require.NotEqual(t, es.KindCheckpoint, msg.Kind, "an unfiltered subscription sends no checkpoints")
			if msg.Kind == es.KindCaughtUp {
				break
			}
			require.Equalf(t, 1, msg.Position.Compare(evs[0].Position), "a $all subscription from %v delivered an event at %v", evs[0].Position, msg.Position)
			if msg.Event.Stream == stream {
				mine = append(mine, msg.Event)
			}
		}
		assert.Equal(t, []uint64{1, 2}, revisions(mine), "a $all subscription from a position starts after it")
		appendOK(t, store, stream, es.Exact(2), newEvents(1, "Live")...)
		assert.Equal(t, uint64(3), sub.event(inStream(stream)).Revision, "the live event")
	})

	s.run(t, "CaughtUpPosition", func(t *testing.T, store es.Store) {
		stream := newStream("suball")
		last := appendOK(t, store, stream, es.NoStream, newEvents(2, "SubAll")...).Position
		sub := s.subscribeAll(t, store, es.SubscribeAllOptions{Filter: &es.Filter{On: es.FilterStreamName, Prefixes: []string{stream + "-none"}}})
		for {
			msg := sub.message()
			if msg.Kind != es.KindCaughtUp {
				continue
			}
			if !msg.Position.IsZero() {
				assert.GreaterOrEqualf(t, msg.Position.Compare(last), 0,
					"a caught-up message's position %v is before the last event %v written before the subscription", msg.Position, last)
			}
			break
		}
	})

	s.run(t, "FromEnd", func(t *testing.T, store es.Store) {
		stream := newStream("suball")
		appendOK(t, store, stream, es.NoStream, newEvents(2, "SubAll")...)
		sub := s.subscribeAll(t, store, es.SubscribeAllOptions{From: es.End})
		assert.Empty(t, sub.caughtUp(inStream(stream)), "a $all subscription from End delivers no event written before")
		appendOK(t, store, stream, es.Exact(1), newEvents(2, "Live")...)
		assert.Equal(t, uint64(2), sub.event(inStream(stream)).Revision, "a $all subscription from End delivers new events")
		assert.Equal(t, uint64(3), sub.event(inStream(stream)).Revision, "a $all subscription from End delivers new events")
	})

	s.run(t, "Order", func(t *testing.T, store es.Store) {
		prefix := newPrefix("suball")
		before := head(t, store)
		appendOK(t, store, prefix+"a", es.NoStream, newEvents(2, "SubAll")...)
		appendOK(t, store, prefix+"b", es.NoStream, newEvents(2, "SubAll")...)
		appendOK(t, store, prefix+"a", es.Exact(1), newEvents(1, "SubAll")...)
		sub := s.subscribeAll(t, store, es.SubscribeAllOptions{From: before})
		history := sub.caughtUp(withPrefix(prefix))
		appendOK(t, store, prefix+"b", es.Exact(1), newEvents(1, "Live")...)
		appendOK(t, store, prefix+"a", es.Exact(2), newEvents(1, "Live")...)
		live := []es.RecordedEvent{sub.event(withPrefix(prefix)), sub.event(withPrefix(prefix))}
		all := append(history, live...)
		requireIncreasing(t, all)
		assert.Equal(t, recordedIDs(readAllSince(t, store, before, prefix)), recordedIDs(all),
			"a $all subscription delivers what ReadAll reads, in the same order")
	})

	s.run(t, "Unfiltered/NoCheckpoints", func(t *testing.T, store es.Store) {
		stream := newStream("suball")
		before := head(t, store)
		appendOK(t, store, stream, es.NoStream, newEvents(10, "SubAll")...)
		sub := s.subscribeAll(t, store, es.SubscribeAllOptions{From: before})
		var n int
		for n < 20 {
			msg := sub.message()
			require.NotEqual(t, es.KindCheckpoint, msg.Kind, "an unfiltered subscription sends no checkpoints")
			if msg.Kind == es.KindEvent && msg.Event.Stream == stream {
				if n++; n == 10 {
					appendOK(t, store, stream, es.Exact(9), newEvents(10, "Live")...)
				}
			}
		}
	})

	t.Run("Filter", s.testFilters)
	t.Run("Checkpoints", s.testCheckpoints)

	s.run(t, "BreakEarly", func(t *testing.T, store es.Store) {
		stream := newStream("suball")
		before := head(t, store)
		appendOK(t, store, stream, es.NoStream, newEvents(3, "SubAll")...)
		ctx, cancel := context.WithTimeout(t.Context(), s.timeout)
		defer cancel()
		n := 0
		for msg, err := range store.SubscribeAll(ctx, es.SubscribeAllOptions{From: before, Filter: es.StreamPrefixes(stream)}) {
			require.NoError(t, err)
			if msg.Kind == es.KindEvent {
				if n++; n == 2 {
					break // the iterator releases what it holds
				}
			}
		}
		require.Equal(t, 2, n)
		appendOK(t, store, stream, es.Exact(2), newEvents(1, "AfterBreak")...)
	})

	s.run(t, "CancelledContext/WhileLive", func(t *testing.T, store es.Store) {
		sub := s.subscribeAll(t, store, es.SubscribeAllOptions{From: es.End})
		sub.caughtUp(func(es.RecordedEvent) bool { return false })
		sub.requireCanceled()
	})

	s.run(t, "CancelledContext/WhileLiveFiltered", func(t *testing.T, store es.Store) {
		sub := s.subscribeAll(t, store, es.SubscribeAllOptions{From: es.End, Filter: es.StreamPrefixes(newPrefix("cancel"))})
		sub.caughtUp(func(es.RecordedEvent) bool { return false })
		sub.requireCanceled()
	})

	s.run(t, "CancelledContext/BeforeSubscribe", func(t *testing.T, store es.Store) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		sub := s.subscribe(t, func(context.Context) iter.Seq2[es.Message, error] {
			return store.SubscribeAll(ctx, es.SubscribeAllOptions{From: es.End})
		})
		require.ErrorIs(t, sub.ended(), context.Canceled, "a subscription with a cancelled context ends with the context's error")
	})
}

func (s *suite) testFilters(t *testing.T) {
	// testFilter writes events with write, subscribes from before them with
	// filter, and checks that it delivers exactly the events want keeps:
	// first the history, then one live event that write2 appends.
	testFilter := func(t *testing.T, store es.Store, prefix string, filter *es.Filter, write, write2 func(), want func(es.RecordedEvent) bool) {
		t.Helper()
		before := head(t, store)
		write()
		var wantHistory []uuid.UUID
		for _, ev := range readAllSince(t, store, before, prefix) {
			if want(ev) {
				wantHistory = append(wantHistory, ev.ID)
			}
		}
		require.NotEmpty(t, wantHistory, "the test writes events that match")
		match, err := esdriver.Matcher(filter)
		require.NoError(t, err)

		sub := s.subscribeAll(t, store, es.SubscribeAllOptions{From: before, Filter: filter})
		mine := func(ev es.RecordedEvent) bool {
			assert.Truef(t, match(ev), "the subscription filtered on %v delivered %s@%d of type %q", filter, ev.Stream, ev.Revision, ev.Type)
			return strings.HasPrefix(ev.Stream, prefix)
		}
		history := sub.caughtUp(mine)
		assert.Equal(t, wantHistory, recordedIDs(history), "the events that pass the filter, in order")

		before = head(t, store)
		write2()
		var wantLive []uuid.UUID
		for _, ev := range readAllSince(t, store, before, prefix) {
			if want(ev) && ev.Position.Compare(before) > 0 {
				wantLive = append(wantLive, ev.ID)
			}
		}
		require.Len(t, wantLive, 1, "the test writes one live event that matches")
		assert.Equal(t, wantLive[0], sub.event(mine).ID, "the live event that passes the filter")
	}

	s.run(t, "EventTypePrefix", func(t *testing.T, store es.Store) {
		prefix := newPrefix("filter")
		stream := prefix + "s"
		in, out := prefix+"In", prefix+"Out"
		typed := func(types ...string) []es.EventData {
			evs := newEvents(len(types), "")
			for i, typ := range types {
				evs[i].Type = typ
			}
			return evs
		}
		testFilter(t, store, prefix, es.EventTypePrefixes(in, prefix+"Also"),
			func() { appendOK(t, store, stream, es.NoStream, typed(in+"1", out, prefix+"Also", in+"2", out)...) },
			func() { appendOK(t, store, stream, es.Any, typed(out, in+"3", out)...) },
			func(ev es.RecordedEvent) bool {
				return strings.HasPrefix(ev.Type, in) || strings.HasPrefix(ev.Type, prefix+"Also")
			})
	})

	s.run(t, "StreamPrefix", func(t *testing.T, store es.Store) {
		prefix := newPrefix("filter")
		a, b, c := prefix+"a", prefix+"b", prefix+"c"
		testFilter(t, store, prefix, es.StreamPrefixes(a, b),
			func() {
				appendOK(t, store, a, es.NoStream, newEvents(2, "Filter")...)
				appendOK(t, store, c, es.NoStream, newEvents(2, "Filter")...)
				appendOK(t, store, b, es.NoStream, newEvents(1, "Filter")...)
				appendOK(t, store, c, es.Any, newEvents(1, "Filter")...)
				appendOK(t, store, a, es.Any, newEvents(1, "Filter")...)
			},
			func() {
				appendOK(t, store, c, es.Any, newEvents(1, "Filter")...)
				appendOK(t, store, b, es.Any, newEvents(1, "Filter")...)
			},
			func(ev es.RecordedEvent) bool { return ev.Stream == a || ev.Stream == b })
	})

	s.run(t, "Regex/StreamName", func(t *testing.T, store es.Store) {
		id := uuid.NewString()
		prefix := "estest-regex-" + id + "-"
		a, b, c := prefix+"a", prefix+"b", prefix+"c"
		testFilter(t, store, prefix, &es.Filter{On: es.FilterStreamName, Regex: regexp.QuoteMeta(id) + "-[ac]$"},
			func() {
				appendOK(t, store, a, es.NoStream, newEvents(1, "Filter")...)
				appendOK(t, store, b, es.NoStream, newEvents(2, "Filter")...)
				appendOK(t, store, c, es.NoStream, newEvents(1, "Filter")...)
			},
			func() {
				appendOK(t, store, b, es.Any, newEvents(1, "Filter")...)
				appendOK(t, store, c, es.Any, newEvents(1, "Filter")...)
			},
			func(ev es.RecordedEvent) bool { return ev.Stream == a || ev.Stream == c })
	})

	s.run(t, "Regex/EventType", func(t *testing.T, store es.Store) {
		prefix := newPrefix("filter")
		stream := prefix + "s"
		typed := func(types ...string) []es.EventData {
			evs := newEvents(len(types), "")
			for i, typ := range types {
				evs[i].Type = prefix + typ
			}
			return evs
		}
		testFilter(t, store, prefix, &es.Filter{On: es.FilterEventType, Regex: "^" + regexp.QuoteMeta(prefix) + "(Placed|Shipped)$"},
			func() { appendOK(t, store, stream, es.NoStream, typed("Placed", "Paid", "Shipped", "PlacedNot")...) },
			func() { appendOK(t, store, stream, es.Any, typed("Paid", "Shipped")...) },
			func(ev es.RecordedEvent) bool {
				return ev.Type == prefix+"Placed" || ev.Type == prefix+"Shipped"
			})
	})

	s.run(t, "ExcludeSystemEvents", func(t *testing.T, store es.Store) {
		prefix := newPrefix("filter")
		s1, s2, s3 := prefix+"a", prefix+"b", prefix+"c"
		testFilter(t, store, prefix, es.ExcludeSystemEvents(),
			func() {
				appendOK(t, store, s1, es.NoStream, newEvents(2, "User")...)
				_, err := es.SetStreamMetadata(t.Context(), store, s1, es.Any, es.StreamMetadata{MaxCount: 10})
				require.NoError(t, err)
				appendOK(t, store, s2, es.NoStream, newEvents(1, "User")...)
				_, err = store.DeleteStream(t.Context(), s2, es.Any)
				require.NoError(t, err)
				appendOK(t, store, s3, es.NoStream, newEvents(1, "User")...)
				_, err = store.TombstoneStream(t.Context(), s3, es.Any)
				require.NoError(t, err)
			},
			func() {
				_, err := es.SetStreamMetadata(t.Context(), store, s1, es.Any, es.StreamMetadata{MaxCount: 20})
				require.NoError(t, err)
				appendOK(t, store, s1, es.Any, newEvents(1, "User")...)
			},
			func(ev es.RecordedEvent) bool { return !ev.IsSystem() })
	})

	invalid := []struct {
		name   string
		filter *es.Filter
	}{
		{"Empty", &es.Filter{On: es.FilterStreamName}},
		{"PrefixesAndRegex", &es.Filter{On: es.FilterEventType, Prefixes: []string{"a"}, Regex: "b"}},
		{"BadRegex", &es.Filter{On: es.FilterStreamName, Regex: "(unclosed"}},
		{"BadTarget", &es.Filter{On: es.FilterTarget(99), Prefixes: []string{"a"}}},
	}
	for _, c := range invalid {
		s.run(t, "Invalid/"+c.name, func(t *testing.T, store es.Store) {
			sub := s.subscribeAll(t, store, es.SubscribeAllOptions{From: es.End, Filter: c.filter})
			msg, err := sub.receive()
			require.ErrorIsf(t, err, es.ErrInvalidArgument, "the first value of a subscription with filter %+v, got a %v message", c.filter, msg.Kind)
			require.ErrorIs(t, sub.ended(), es.ErrInvalidArgument)
		})
	}
}

// checkpointInterval is the CheckpointInterval of the checkpoint tests.
const checkpointInterval = 3

// checkpointChecker checks the messages of a filtered `$all` subscription.
// Its assertions hold on a busy store, where the subscription scans more
// events than the test's own.
type checkpointChecker struct {
	t           *testing.T
	match       func(es.RecordedEvent) bool
	interval    int                // the filter's checkpoint interval
	events      []es.RecordedEvent // delivered events
	checkpoints []es.Position
	run         int     // events delivered since the last checkpoint
	prev        es.Kind // kind of the previous message
}

func (c *checkpointChecker) observe(msg es.Message) {
	c.t.Helper()
	defer func() { c.prev = msg.Kind }()
	switch msg.Kind {
	case es.KindEvent:
		ev := msg.Event
		require.Truef(c.t, c.match(ev), "a filtered subscription delivered %s@%d of type %q", ev.Stream, ev.Revision, ev.Type)
		if n := len(c.events); n > 0 {
			require.Equalf(c.t, 1, ev.Position.Compare(c.events[n-1].Position), "events are delivered in increasing position order: %v then %v", c.events[n-1].Position, ev.Position)
		}
		if n := len(c.checkpoints); n > 0 {
			require.Equalf(c.t, 1, ev.Position.Compare(c.checkpoints[n-1]),
				"event %s@%d at %v is delivered after checkpoint %v: a consumer resuming from that checkpoint would miss it",
				ev.Stream, ev.Revision, ev.Position, c.checkpoints[n-1])
		}
		c.run++
		require.LessOrEqualf(c.t, c.run, c.interval,
			"%d events delivered without a checkpoint: a checkpoint is due every %d events scanned", c.run, c.interval)
		c.events = append(c.events, ev)
	case es.KindCheckpoint:
		if n := len(c.checkpoints); n > 0 {
			require.GreaterOrEqualf(c.t, msg.Position.Compare(c.checkpoints[n-1]), 0, "checkpoints never go backwards: %v then %v", c.checkpoints[n-1], msg.Position)
		}
		if n := len(c.events); n > 0 {
			require.GreaterOrEqualf(c.t, msg.Position.Compare(c.events[n-1].Position), 0,
				"checkpoint %v is before the event delivered before it at %v", msg.Position, c.events[n-1].Position)
		}
		c.run = 0
		c.checkpoints = append(c.checkpoints, msg.Position)
	case es.KindCaughtUp:
		require.Equal(c.t, es.KindCheckpoint, c.prev, "a filtered subscription sends a checkpoint just before caught-up")
	}
}

// lastCheckpoint returns the position of the newest checkpoint.
func (c *checkpointChecker) lastCheckpoint() es.Position {
	c.t.Helper()
	require.NotEmpty(c.t, c.checkpoints, "no checkpoint yet")
	return c.checkpoints[len(c.checkpoints)-1]
}

func (s *suite) testCheckpoints(t *testing.T) {
	// setUp writes 17 events to two streams of which a filter keeps one, and
	// subscribes with that filter from before them, up to caught-up.
	type fixture struct {
		in, out string
		filter  *es.Filter
		before  es.Position
		history []es.RecordedEvent // the test's events before the subscription
		sub     *subscription
		check   *checkpointChecker
	}
	setUp := func(t *testing.T, store es.Store) *fixture {
		t.Helper()
		prefix := newPrefix("checkpoint")
		f := &fixture{in: prefix + "in", out: prefix + "out", before: head(t, store)}
		f.filter = &es.Filter{On: es.FilterStreamName, Prefixes: []string{f.in}, CheckpointInterval: checkpointInterval}
		appendOK(t, store, f.in, es.NoStream, newEvents(4, "In")...)
		appendOK(t, store, f.out, es.NoStream, newEvents(9, "Out")...)
		appendOK(t, store, f.in, es.Exact(3), newEvents(4, "In")...)
		f.history = readAllSince(t, store, f.before, prefix)
		require.Len(t, f.history, 17)

		match, err := esdriver.Matcher(f.filter)
		require.NoError(t, err)
		f.check = &checkpointChecker{t: t, match: match, interval: checkpointInterval}
		f.sub = s.subscribeAll(t, store, es.SubscribeAllOptions{From: f.before, Filter: f.filter})
		for {
			msg := f.sub.message()
			f.check.observe(msg)
			if msg.Kind == es.KindCaughtUp {
				break
			}
		}
		return f
	}
	// eventsAfter returns the IDs of the events of evs after p.
	eventsAfter := func(evs []es.RecordedEvent, p es.Position) []uuid.UUID {
		var ids []uuid.UUID
		for _, ev := range evs {
			if ev.Position.Compare(p) > 0 {
				ids = append(ids, ev.ID)
			}
		}
		return ids
	}

	s.run(t, "History", func(t *testing.T, store es.Store) {
		f := setUp(t, store)
		var wantIn []uuid.UUID
		for _, ev := range f.history {
			if ev.Stream == f.in {
				wantIn = append(wantIn, ev.ID)
			}
		}
		assert.Equal(t, wantIn, recordedIDs(f.check.events), "the events that pass the filter")
		assert.GreaterOrEqualf(t, len(f.check.checkpoints), len(f.history)/checkpointInterval,
			"checkpoints before caught-up, after scanning at least %d events with a checkpoint interval of %d", len(f.history), checkpointInterval)
		last := f.history[len(f.history)-1].Position
		assert.GreaterOrEqualf(t, f.check.lastCheckpoint().Compare(last), 0,
			"the checkpoint before caught-up (%v) covers the history, whose last event of the test is at %v", f.check.lastCheckpoint(), last)
	})

	s.run(t, "Live", func(t *testing.T, store es.Store) {
		f := setUp(t, store)
		// 2×interval events that do not match: a checkpoint must come after
		// the first interval of them.
		appendOK(t, store, f.out, es.Exact(8), newEvents(2*checkpointInterval, "Out")...)
		outs := readStream(t, store, f.out, es.ReadStreamOptions{From: 9})
		require.Len(t, outs, 2*checkpointInterval)
		mark := outs[checkpointInterval-1].Position
		for {
			msg := f.sub.message()
			f.check.observe(msg)
			if msg.Kind == es.KindCheckpoint && msg.Position.Compare(mark) > 0 {
				break
			}
		}
		ev := newEvents(1, "In")
		appendOK(t, store, f.in, es.Exact(7), ev...)
		for {
			msg := f.sub.message()
			f.check.observe(msg)
			if msg.Kind == es.KindEvent {
				assert.Equal(t, ev[0].ID, msg.Event.ID, "the live event that passes the filter")
				break
			}
		}
	})

	s.run(t, "Resume", func(t *testing.T, store es.Store) {
		f := setUp(t, store)
		require.GreaterOrEqual(t, len(f.check.checkpoints), 2)
		live := newEvents(2, "In")
		appendOK(t, store, f.in, es.Exact(7), live...)
		for f.check.events[len(f.check.events)-1].ID != live[1].ID {
			f.check.observe(f.sub.message())
		}
		require.ErrorIs(t, f.sub.stop(), context.Canceled)

		// Resume from every checkpoint of the history: nothing is missed.
		for _, cp := range f.check.checkpoints {
			want := eventsAfter(f.check.events, cp)
			if len(want) == 0 {
				continue
			}
			match, err := esdriver.Matcher(f.filter)
			require.NoError(t, err)
			check := &checkpointChecker{t: t, match: match, interval: checkpointInterval}
			sub := s.subscribeAll(t, store, es.SubscribeAllOptions{From: cp, Filter: f.filter})
			for len(check.events) < len(want) {
				check.observe(sub.message())
			}
			assert.Equalf(t, want, recordedIDs(check.events), "a subscription resumed from checkpoint %v", cp)
			require.ErrorIs(t, sub.stop(), context.Canceled)
		}
	})
}
