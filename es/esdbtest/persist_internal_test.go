package esdbtest

import (
	"context"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A journal that cannot be written stops the server acknowledging
// anything: the client gets an Internal error naming the journal, not a
// success that is not on disk.
func TestJournalWriteFailureFailsCalls(t *testing.T) {
	srv := New(t, WithDataDir(t.TempDir()))
	cfg, err := esdb.ParseConnectionString(srv.ConnectionString())
	require.NoError(t, err)
	cfg.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(cfg)
	require.NoError(t, err)
	defer c.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ev := esdb.EventData{EventType: "A", ContentType: esdb.ContentTypeJson, Data: []byte(`{}`)}
	_, err = c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{}, ev)
	require.NoError(t, err)

	srv.store.mu.Lock()
	require.NoError(t, srv.store.journal.f.Close()) // the next write fails
	srv.store.mu.Unlock()
	_, err = c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{}, ev)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "journal")
	_, err = c.TombstoneStream(ctx, "s", esdb.TombstoneStreamOptions{})
	require.Error(t, err)
}
