package esdbtest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// Groups survive a restart on a data directory and resume after their
// last checkpoint; deleted groups stay deleted.
func TestDataDirKeepsPersistentGroups(t *testing.T) {
	dir := t.TempDir()
	srv, c := startOn(t, dir)
	ctx := t.Context()
	everyAck := settings(func(s *esdb.PersistentSubscriptionSettings) {
		s.CheckpointLowerBound, s.CheckpointUpperBound = 1, 1
	})
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{StartFrom: esdb.Start{}, Settings: everyAck}))
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "gone", esdb.PersistentStreamSubscriptionOptions{StartFrom: esdb.Start{}}))
	require.NoError(t, c.CreatePersistentSubscriptionToAll(ctx, "all", esdb.PersistentAllSubscriptionOptions{StartFrom: esdb.Start{}, Settings: everyAck}))
	updated := settings(func(s *esdb.PersistentSubscriptionSettings) {
		s.CheckpointLowerBound, s.CheckpointUpperBound, s.MaxRetryCount = 1, 1, 3
	})
	require.NoError(t, c.UpdatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{Settings: updated}))
	require.NoError(t, c.DeletePersistentSubscription(ctx, "s", "gone", esdb.DeletePersistentSubscriptionOptions{}))
	appendEvents(t, c, "s", esdb.NoStream{}, events(4)...)

	sub := connectPersistent(t, c, "s", "g", 10)
	first, second := sub.event(t), sub.event(t)
	require.NoError(t, sub.sub.Ack(first.Event, second.Event))
	waitFor(t, func() bool {
		p := groupInfo(t, c, "s", "g").Stats.LastCheckpointedEventRevision
		return p != nil && *p == 1
	})
	sub.close()
	require.NoError(t, c.Close())
	srv.Close()

	srv, c = startOn(t, dir)
	defer srv.Close()
	info := groupInfo(t, c, "s", "g")
	assert.Equal(t, int32(3), info.Settings.MaxRetryCount, "the update is kept")
	_, err := c.GetPersistentSubscriptionInfo(ctx, "s", "gone", esdb.GetPersistentSubscriptionOptions{})
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, errorCode(t, err))
	_, err = c.GetPersistentSubscriptionInfoToAll(ctx, "all", esdb.GetPersistentSubscriptionOptions{})
	require.NoError(t, err)

	again := connectPersistent(t, c, "s", "g", 10)
	assert.Equal(t, "s/2 (0)", name(again.event(t)), "resumes after the checkpoint")
	again.close()
}

func TestDataDirGroupsFileDamage(t *testing.T) {
	dir := t.TempDir()
	srv, c := startOn(t, dir)
	require.NoError(t, c.CreatePersistentSubscription(t.Context(), "s", "g", esdb.PersistentStreamSubscriptionOptions{}))
	require.NoError(t, c.CreatePersistentSubscription(t.Context(), "s", "h", esdb.PersistentStreamSubscriptionOptions{}))
	require.NoError(t, c.Close())
	srv.Close()
	path := filepath.Join(dir, esdbtest.GroupsFile)
	b, err := os.ReadFile(path)
	require.NoError(t, err)

	// A torn last record: the second group is gone, the first is kept.
	require.NoError(t, os.WriteFile(path, b[:len(b)-4], 0o644))
	srv, c = startOn(t, dir)
	groupInfo(t, c, "s", "g")
	_, err = c.GetPersistentSubscriptionInfo(t.Context(), "s", "h", esdb.GetPersistentSubscriptionOptions{})
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, errorCode(t, err))
	require.NoError(t, c.Close())
	srv.Close()

	// Damage before the end: an error naming the file.
	b[20] ^= 0xff
	require.NoError(t, os.WriteFile(path, b, 0o644))
	_, err = esdbtest.Start(esdbtest.WithDataDir(dir))
	var corrupt *esdbtest.CorruptJournalError
	require.ErrorAs(t, err, &corrupt)
	assert.Equal(t, path, corrupt.File)
}
