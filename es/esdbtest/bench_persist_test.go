package esdbtest_test

import (
	"fmt"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// BenchmarkAppendDataDir is BenchmarkAppend on a server that syncs its
// journal before every acknowledgement.
func BenchmarkAppendDataDir(b *testing.B) {
	srv := esdbtest.New(b, esdbtest.WithDataDir(b.TempDir()))
	c := newClient(b, srv)
	ev := event("Tested")
	ev.EventID = [16]byte{}
	for i := 0; b.Loop(); i++ {
		_, err := c.AppendToStream(b.Context(), fmt.Sprintf("s-%d", i%100), esdb.AppendToStreamOptions{}, ev)
		require.NoError(b, err)
	}
}
