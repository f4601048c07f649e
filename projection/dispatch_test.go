package projection_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/projection"
)

type credited struct{ N int }
type debited struct{ N int }
type noted struct{ Text string }

func TestDispatch(t *testing.T) {
	var got []string
	handle := projection.Dispatch(
		projection.On(func(_ context.Context, _ projection.NoTx, ev projection.Typed[credited]) error {
			got = append(got, "credited "+ev.Stream)
			assert.Equal(t, 3, ev.Version)
			return nil
		}),
		projection.On(func(_ context.Context, _ projection.NoTx, ev projection.Typed[debited]) error {
			if ev.Payload.N < 0 {
				return errors.New("negative")
			}
			got = append(got, "debited "+ev.Stream)
			return nil
		}),
	)
	event := func(stream string, payload any) projection.Event {
		return projection.Event{RecordedEvent: es.RecordedEvent{Stream: stream}, Payload: payload}
	}
	batch := projection.Batch{Projection: "p", Version: 3, Events: []projection.Event{
		event("a", credited{1}), event("b", noted{"ignored"}), event("c", debited{2}), event("d", credited{3}),
	}}
	require.NoError(t, handle(t.Context(), projection.NoTx{}, batch))
	assert.Equal(t, []string{"credited a", "debited c", "credited d"}, got, "in order, other types left alone")

	batch.Events = []projection.Event{event("e", debited{-1})}
	require.EqualError(t, handle(t.Context(), projection.NoTx{}, batch), "negative", "the handler's error as is")

	batch.Events = []projection.Event{{RecordedEvent: es.RecordedEvent{Stream: "f"}}}
	require.ErrorIs(t, handle(t.Context(), projection.NoTx{}, batch), projection.ErrInvalidProjection, "no registry, no payload")

	assert.PanicsWithValue(t, "projection: Dispatch: two handlers of projection_test.credited", func() {
		projection.Dispatch(
			projection.On(func(context.Context, projection.NoTx, projection.Typed[credited]) error { return nil }),
			projection.On(func(context.Context, projection.NoTx, projection.Typed[credited]) error { return nil }),
		)
	})
}
