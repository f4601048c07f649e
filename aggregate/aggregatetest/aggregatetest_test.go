package aggregatetest_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/aggregate/aggregatetest"
	"github.com/eventfold/eventfold/es"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type Event interface{ isEvent() }

type Switched struct {
	On bool `json:"on"`
}

// Unstorable has a field that JSON does not keep.
type Unstorable struct {
	hidden int
}

func (Switched) isEvent()   {}
func (Unstorable) isEvent() {}

type Lamp struct{ On bool }

var ErrAlreadyOn = errors.New("lamp: already on")

var lamps = aggregate.Definition[Lamp, Event]{
	Category: "lamp",
	Evolve: func(l Lamp, e Event) Lamp {
		if e, ok := e.(Switched); ok {
			l.On = e.On
		}
		return l
	},
}

func turnOn(l Lamp) ([]Event, error) {
	if l.On {
		return nil, fmt.Errorf("%w: since earlier", ErrAlreadyOn)
	}
	return []Event{Switched{On: true}}, nil
}

func types(t *testing.T) *es.Registry {
	r, err := es.NewRegistry(es.Type[Switched]("Switched"), es.Type[Unstorable]("Unstorable"))
	require.NoError(t, err)
	return r
}

func TestScenarios(t *testing.T) {
	spec := aggregatetest.For(lamps, types(t))
	spec.Given().When(turnOn).Then(t, Switched{On: true})
	spec.Given(Switched{On: true}).When(turnOn).ThenError(t, ErrAlreadyOn)
	spec.Given(Switched{On: true}).When(func(Lamp) ([]Event, error) { return nil, nil }).ThenNothing(t)
	spec.Given().When(turnOn).ThenState(t, Lamp{On: true}).Then(t, Switched{On: true})
	events, err := spec.Given().When(turnOn).Events()
	require.NoError(t, err)
	assert.Len(t, events, 1)
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed bool
	msgs   []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func (r *recorder) FailNow() { r.failed = true; panic(r) }
func (r *recorder) Helper()  {}

// fails runs check against a recorder and returns what it reported.
func fails(t *testing.T, check func(testing.TB)) string {
	t.Helper()
	r := &recorder{TB: t}
	func() {
		defer func() {
			if v := recover(); v != nil && v != r {
				panic(v)
			}
		}()
		check(r)
	}()
	require.True(t, r.failed, "the check passed; it should have failed")
	return fmt.Sprint(r.msgs)
}

func TestFailuresAreReported(t *testing.T) {
	spec := aggregatetest.For(lamps, types(t))
	msg := fails(t, func(tb testing.TB) { spec.Given().When(turnOn).Then(tb, Switched{On: false}) })
	assert.Contains(t, msg, "decided events")
	assert.Contains(t, msg, "-  On: (bool) false", "a readable diff")

	msg = fails(t, func(tb testing.TB) { spec.Given(Switched{On: true}).When(turnOn).Then(tb) })
	assert.Contains(t, msg, "lamp: already on")

	msg = fails(t, func(tb testing.TB) { spec.Given().When(turnOn).ThenError(tb, ErrAlreadyOn) })
	assert.Contains(t, msg, "the decider succeeded")

	msg = fails(t, func(tb testing.TB) {
		spec.Given().When(func(Lamp) ([]Event, error) { return []Event{Unstorable{hidden: 1}}, nil }).Then(tb, Unstorable{hidden: 1})
	})
	assert.Contains(t, msg, "does not survive an encode and decode round trip")

	unregistered := aggregatetest.For(lamps, must(es.NewRegistry()))
	msg = fails(t, func(tb testing.TB) { unregistered.Given().When(turnOn).Then(tb, Switched{On: true}) })
	assert.Contains(t, msg, "unknown event type")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func Example() {
	// In a test: spec.Given(past events...).When(decider).Then(t, new events...)
	spec := aggregatetest.For(lamps, nil)
	events, err := spec.Given(Switched{On: true}).When(turnOn).Events()
	fmt.Println(len(events), err)
	// Output: 0 lamp: already on: since earlier
}
