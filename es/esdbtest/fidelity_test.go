package esdbtest_test

import (
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/persistent"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// legacyUpdate sends an Update the way the Node.js clients do: the stream
// in the deprecated stream_identifier field and the start in the
// deprecated settings.revision.
func legacyUpdate(t *testing.T, srv *esdbtest.Server, stream, group string, revision uint64) {
	t.Helper()
	opts := &persistent.UpdateReq_Options{
		//lint:ignore SA1019 the deprecated fields are what this test sends
		StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(stream)},
		GroupName:        group,
		Settings: &persistent.UpdateReq_Settings{
			//lint:ignore SA1019 the deprecated fields are what this test sends
			Revision:      revision,
			MaxRetryCount: 10, MinCheckpointCount: 10, MaxCheckpointCount: 1000,
			LiveBufferSize: 500, ReadBatchSize: 20, HistoryBufferSize: 500,
			NamedConsumerStrategy: persistent.UpdateReq_RoundRobin,
			MessageTimeout:        &persistent.UpdateReq_Settings_MessageTimeoutMs{MessageTimeoutMs: 30000},
			CheckpointAfter:       &persistent.UpdateReq_Settings_CheckpointAfterMs{CheckpointAfterMs: 2000},
		},
	}
	_, err := persistent.NewPersistentSubscriptionsClient(rawConn(t, srv)).Update(ctxWithTimeout(t), &persistent.UpdateReq{Options: opts})
	require.NoError(t, err)
}

func TestPersistentUpdateThroughDeprecatedFields(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ctx := t.Context()
	appendEvents(t, c, "s", esdb.NoStream{}, events(5)...)
	require.NoError(t, c.CreatePersistentSubscription(ctx, "s", "g", esdb.PersistentStreamSubscriptionOptions{StartFrom: esdb.Start{}}))

	legacyUpdate(t, srv, "s", "g", ^uint64(0))
	assert.Equal(t, esdb.End{}, groupInfo(t, c, "s", "g").Settings.StartFrom, "2^64-1 is the end")

	legacyUpdate(t, srv, "s", "g", 3)
	assert.Equal(t, esdb.Revision(3), groupInfo(t, c, "s", "g").Settings.StartFrom)
	sub := connectPersistent(t, c, "s", "g", 10)
	assert.Equal(t, "s/3 (0)", name(sub.event(t)), "the group starts at the new revision")
	assert.Equal(t, "s/4 (0)", name(sub.event(t)))
}
