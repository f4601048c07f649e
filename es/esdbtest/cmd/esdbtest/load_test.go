package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testDataset = `{"stream":"order-1","type":"OrderPlaced","id":"5f1c2a40-8a8e-4d6a-9a55-0c1e6f3b7a10","data":{"total" : 3},"position":1000,"created":"2020-01-12T18:16:26.2459170Z"}
{"stream":"order-1","type":"OrderPaid","id":"6a2d3b51-9b9f-4e7b-8b66-1d2f7a4c8b21","revision":1,"position":1100}
`

// readOrder reads stream order-1 forwards.
func readOrder(t *testing.T, c *esdb.Client) []*esdb.ResolvedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	rs, err := c.ReadStream(ctx, "order-1", esdb.ReadStreamOptions{}, 100)
	require.NoError(t, err)
	defer rs.Close()
	var out []*esdb.ResolvedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out = append(out, ev)
	}
}

func TestRunLoadsDataset(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "dataset.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(testDataset), 0o644))
	data := filepath.Join(dir, "data")

	conn, log, stop := serve(t, "-load", file, "-data", data)
	events := readOrder(t, connect(t, conn))
	require.Len(t, events, 2)
	first := events[0].OriginalEvent()
	assert.Equal(t, "5f1c2a40-8a8e-4d6a-9a55-0c1e6f3b7a10", first.EventID.String())
	assert.Equal(t, uint64(1000), first.Position.Commit)
	assert.Equal(t, `{"total" : 3}`, string(first.Data))
	assert.Equal(t, int64(1578852986), first.CreatedDate.Unix())
	assert.Equal(t, uint64(1100), events[1].OriginalEvent().Position.Commit)
	stop()
	assert.Contains(t, log.String(), "loaded dataset")
	assert.Contains(t, log.String(), "events=2")

	// Restarted on the same data directory, the dataset is not loaded twice.
	conn, log, stop = serve(t, "-load", file, "-data", data)
	defer stop()
	assert.Contains(t, log.String(), "records=2")
	assert.Contains(t, log.String(), "events=0")
	assert.Len(t, readOrder(t, connect(t, conn)), 2)
}

func TestRunBadDataset(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(testDataset+`{"stream":"x","tpye":"A"}`+"\n"), 0o644))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a run that serves fails the test
	defer cancel()
	err := run(ctx, []string{"-addr", "127.0.0.1:0", "-load", file}, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), file+": line 3: field \"tpye\": unknown field")

	err = run(ctx, []string{"-addr", "127.0.0.1:0", "-load", filepath.Join(dir, "missing.jsonl")}, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing.jsonl")
}
