package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esotel"
	"github.com/eventfold/eventfold/es/sqlstore"
)

// TestScavengeHorizon checks that the service bounds scavenging by the
// lowest checkpoint of its runners, and that a scavenge at that horizon
// deletes the relay's old checkpoints, not an order event.
func TestScavengeHorizon(t *testing.T) {
	a := openTestApp(t, infra{data: filepath.Join(t.TempDir(), "orders.db")}, slog.New(slog.DiscardHandler))
	h, err := a.scavengeHorizon(t.Context())
	require.NoError(t, err)
	assert.Equal(t, es.Start, h, "no service runs: nothing may go")

	srv, svc := startServiceOn(t, a, serviceConfig{autoConfirm: true})
	var last es.Position
	for i := range 10 {
		res := call(t, srv, "POST", "/orders", fmt.Sprintf(`{"orderId":"s%d","customerId":"c","items":[{"productId":"keyboard","quantity":1,"unitPrice":100}]}`, i))
		require.Equal(t, 201, res.status, res.body)
		require.NoError(t, last.UnmarshalText([]byte(res.header.Get(PositionHeader))))
	}
	require.NoError(t, svc.relay.WaitFor(t.Context(), last))
	for _, r := range a.runners {
		require.NoError(t, r.WaitFor(t.Context(), last))
	}

	h, err = a.scavengeHorizon(t.Context())
	require.NoError(t, err)
	low := es.End
	for _, r := range svc.runners() {
		st, err := r.Status(t.Context())
		require.NoError(t, err)
		if st.Checkpoint.Compare(low) < 0 {
			low = st.Checkpoint
		}
	}
	assert.Equal(t, low, h, "the lowest checkpoint of the relay and the read models")
	assert.Positive(t, h.Commit)

	count := func() (orders, checkpoints int) {
		for ev, err := range a.store.ReadAll(context.WithoutCancel(t.Context()), es.ReadAllOptions{}) {
			require.NoError(t, err)
			switch {
			case strings.HasPrefix(ev.Stream, "order-"):
				orders++
			case strings.HasPrefix(ev.Stream, "eventfold.checkpoint-"):
				checkpoints++
			}
		}
		return orders, checkpoints
	}
	orders, before := count()
	res, err := a.store.(*esotel.Store).Unwrap().(*sqlstore.Store).Scavenge(t.Context(), h)
	require.NoError(t, err)
	after, checkpoints := count()
	assert.Equal(t, orders, after, "no order event is deleted")
	assert.Less(t, checkpoints, before, "the relay's old checkpoints are deleted (%d deleted)", res.Deleted)
}
