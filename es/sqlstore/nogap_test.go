package sqlstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
)

// TestNoGap races writers, each with a Store (and connections) of its own
// as if in processes of their own, against a subscriber on yet another
// Store. The subscriber must see every event exactly once, at strictly
// increasing positions, in the order of the final ReadAll: a position
// taken by a transaction that commits late is never skipped.
func TestNoGap(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		testNoGap(t, sharedSQLite(t, sqlstore.WithPollInterval(5*time.Millisecond)), 4, 4, 40)
	})
	t.Run("Postgres", func(t *testing.T) {
		testNoGap(t, sharedPostgres(t), 4, 8, 60)
	})
}

// testNoGap runs stores × perStore writers of appends appends each.
func testNoGap(t *testing.T, open func(t *testing.T) *sqlstore.Store, stores, perStore, appends int) {
	reader := open(t)
	writers := make([]*sqlstore.Store, stores)
	for i := range writers {
		writers[i] = open(t)
	}

	// The subscriber runs until it sees the event written after all others.
	type seen struct {
		ids []uuid.UUID
		err error
	}
	result := make(chan seen, 1)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	go func() {
		var (
			got  seen
			last es.Position
		)
		defer func() { result <- got }()
		for msg, err := range reader.SubscribeAll(ctx, es.SubscribeAllOptions{From: es.Start}) {
			if err != nil {
				got.err = err
				return
			}
			if msg.Kind != es.KindEvent {
				continue
			}
			if msg.Position.Compare(last) <= 0 {
				got.err = fmt.Errorf("position %v after %v", msg.Position, last)
				return
			}
			last = msg.Position
			got.ids = append(got.ids, msg.Event.ID)
			if msg.Event.Type == "Done" {
				return
			}
		}
	}()

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written int
	)
	for w := range stores * perStore {
		store := writers[w%stores]
		wg.Go(func() {
			for i := range appends {
				n := 1 + (w+i)%3
				evs := make([]es.EventData, n)
				for j := range evs {
					evs[j] = es.EventData{Type: "Raced", Data: fmt.Appendf(nil, `{"w":%d,"i":%d,"j":%d}`, w, i, j)}
				}
				if _, err := store.Append(ctx, fmt.Sprintf("race-%d", w), es.Any, evs...); !assert.NoError(t, err, "writer %d", w) {
					return
				}
				mu.Lock()
				written += n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())
	_, err := writers[0].Append(ctx, "race-done", es.NoStream, es.EventData{Type: "Done"})
	require.NoError(t, err)
	written++

	var got seen
	select {
	case got = <-result:
	case <-ctx.Done():
		t.Fatal("the subscriber did not see every event in time")
	}
	require.NoError(t, got.err, "the subscriber")

	var all []uuid.UUID
	for ev, err := range reader.ReadAll(t.Context(), es.ReadAllOptions{}) {
		require.NoError(t, err)
		all = append(all, ev.ID)
	}
	require.Len(t, all, written, "ReadAll after the writers")
	for i := range min(len(all), len(got.ids)) {
		require.Equalf(t, all[i], got.ids[i], "event %d of %d: the subscriber saw what ReadAll reads, in order, without gaps", i, len(all))
	}
	require.Lenf(t, got.ids, len(all), "the subscriber saw %d events of %d", len(got.ids), len(all))
}
