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

func TestRelay(t *testing.T) {
	broker := errors.New("broker away")
	var got []es.RecordedEvent
	fail := error(nil)
	p := projection.Relay(func(_ context.Context, events ...es.RecordedEvent) error {
		got = append(got, events...)
		return fail
	}, "order", "invoice")
	assert.Equal(t, projection.RelayName, p.Name)
	assert.Equal(t, []string{"order", "invoice"}, p.Categories)

	batch := projection.Batch{Events: []projection.Event{{RecordedEvent: es.RecordedEvent{Stream: "order-1", Type: "Opened"}}}}
	require.NoError(t, p.Handle(t.Context(), projection.NoTx{}, batch))
	assert.Equal(t, "order-1", got[0].Stream, "the events go out as stored")

	fail = broker
	err := p.Handle(t.Context(), projection.NoTx{}, batch)
	require.ErrorIs(t, err, projection.ErrUnavailable, "a publication that fails blames no event")
	require.ErrorIs(t, err, broker)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	fail = context.Canceled
	err = p.Handle(ctx, projection.NoTx{}, batch)
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, projection.ErrUnavailable, "the runner's own stop is not an outage")
}
