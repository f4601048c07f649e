// Package aggregatetest tests deciders in the given / when / then style:
// given past events, when a command is decided, then these events (or this
// error) follow.
//
//	spec := aggregatetest.For(orders.Aggregate, types)
//
//	func TestConfirm(t *testing.T) {
//		spec.Given(orders.Placed{…}).
//			When(orders.Confirm(cmd)).
//			Then(t, orders.Confirmed{…})
//	}
//
// Failures show a readable diff of the expected and actual events. With a
// registry, every event of a scenario also goes through an encode and decode
// round trip, which catches unregistered types and fields that do not
// survive storage.
package aggregatetest

import (
	"errors"
	"testing"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Spec holds what the scenarios of one aggregate share.
type Spec[S, E any] struct {
	def   aggregate.Definition[S, E]
	types *es.Registry
}

// For returns a Spec for the aggregate def. types may be nil; when it is not,
// every given and decided event must survive an encode and decode round trip
// through it unchanged.
func For[S, E any](def aggregate.Definition[S, E], types *es.Registry) *Spec[S, E] {
	return &Spec[S, E]{def: def, types: types}
}

// Given starts a scenario from the state after events.
func (s *Spec[S, E]) Given(events ...E) *Scenario[S, E] {
	return &Scenario[S, E]{spec: s, given: events}
}

// Scenario is a state given by past events.
type Scenario[S, E any] struct {
	spec  *Spec[S, E]
	given []E
}

// When decides a command against the scenario's state.
func (sc *Scenario[S, E]) When(decide aggregate.Decider[S, E]) *Outcome[S, E] {
	state := sc.spec.def.Fold(sc.given...)
	events, err := decide(state)
	return &Outcome[S, E]{scenario: sc, state: state, events: events, err: err}
}

// Outcome is what a decider returned.
type Outcome[S, E any] struct {
	scenario *Scenario[S, E]
	state    S
	events   []E
	err      error
}

// Then asserts that the decider succeeded with exactly the events want, in
// order. It returns o, so that ThenState can follow.
func (o *Outcome[S, E]) Then(t testing.TB, want ...E) *Outcome[S, E] {
	t.Helper()
	require.NoError(t, o.err, "the decider failed (given %d events)", len(o.scenario.given))
	if len(want) == 0 {
		want = nil
	}
	got := o.events
	if len(got) == 0 {
		got = nil
	}
	require.Equal(t, want, got, "decided events (given %d events)", len(o.scenario.given))
	o.roundTrip(t)
	return o
}

// ThenNothing asserts that the decider succeeded without events.
func (o *Outcome[S, E]) ThenNothing(t testing.TB) {
	t.Helper()
	o.Then(t)
}

// ThenError asserts that the decider failed with an error matching target
// ([errors.Is]) and decided no events.
func (o *Outcome[S, E]) ThenError(t testing.TB, target error) {
	t.Helper()
	require.Error(t, o.err, "the decider succeeded with %d events; want an error matching %v", len(o.events), target)
	require.True(t, errors.Is(o.err, target), "the decider failed with %q; want an error matching %q", o.err, target)
	assert.Empty(t, o.events, "a failing decider returned events")
	o.roundTrip(t)
}

// ThenState asserts that the state after the decided events equals want.
// It returns o, so that Then can follow.
func (o *Outcome[S, E]) ThenState(t testing.TB, want S) *Outcome[S, E] {
	t.Helper()
	require.NoError(t, o.err, "the decider failed (given %d events)", len(o.scenario.given))
	require.Equal(t, want, o.scenario.spec.def.FoldFrom(o.state, o.events...), "state after the decided events")
	o.roundTrip(t)
	return o
}

// Events returns what the decider returned, for assertions of your own.
func (o *Outcome[S, E]) Events() ([]E, error) { return o.events, o.err }

// roundTrip checks that every event of the scenario survives storage.
func (o *Outcome[S, E]) roundTrip(t testing.TB) {
	t.Helper()
	types := o.scenario.spec.types
	if types == nil {
		return
	}
	for _, e := range append(append([]E(nil), o.scenario.given...), o.events...) {
		data, err := types.Encode(t.Context(), e)
		require.NoError(t, err, "encode %T", e)
		back, err := types.Decode(es.RecordedEvent{Stream: "aggregatetest", Type: data.Type, ContentType: data.ContentType, Data: data.Data})
		require.NoError(t, err, "decode %T", e)
		require.Equal(t, any(e), back, "%T does not survive an encode and decode round trip", e)
	}
}
