package esdbtest_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// Concurrent writers with optimistic concurrency never lose or duplicate a
// revision, and a subscription sees every event once, in order.
func TestConcurrentWritersAndSubscriber(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	sub := subscribeStream(t, c, "counter", esdb.Start{})
	require.Equal(t, "caught-up", sub.next(t))

	const writers, perWriter = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for written := 0; written < perWriter; {
				// Read the head, then append expecting it: conflicts retry.
				got, err := readStream(t, c, "counter", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
				var exp esdb.ExpectedRevision = esdb.NoStream{}
				if err == nil && len(got) == 1 {
					exp = esdb.Revision(got[0].EventNumber)
				}
				_, err = c.AppendToStream(t.Context(), "counter", esdb.AppendToStreamOptions{ExpectedRevision: exp}, event("Tick"))
				var esErr *esdb.Error
				switch {
				case err == nil:
					written++
				case assert.ErrorAs(t, err, &esErr) && esErr.Code() == esdb.ErrorCodeWrongExpectedVersion:
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	evs := srv.Events("counter")
	require.Len(t, evs, writers*perWriter)
	for i := range evs {
		assert.Equal(t, fmt.Sprintf("counter/%d", i), sub.next(t))
	}
}
