package kurrentdb_test

import (
	"log/slog"
	"os"
	"testing"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/estest"
	"github.com/eventfold/eventfold/es/kurrentdb"
	"github.com/stretchr/testify/require"
)

var quiet = slog.New(slog.DiscardHandler)

func open(t testing.TB, conn string, opts ...kurrentdb.Option) *kurrentdb.Store {
	t.Helper()
	store, err := kurrentdb.Open(conn, append([]kurrentdb.Option{kurrentdb.WithLogger(quiet)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// TestConformance runs the es.Store conformance suite through
// KurrentDB-Client-Go against the esdbtest command reporting KurrentDB
// 25.0 (multi-stream appends served) and EventStoreDB 24.10 (the
// AppendStreams subtests skip as unsupported).
func TestConformance(t *testing.T) {
	for _, version := range []string{"25.0.0", "24.10.0"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, version)
			store := open(t, srv.conn)
			estest.Run(t, func(*testing.T) es.Store { return store })
		})
	}
}

// TestConformanceRealNode runs the suite against a real KurrentDB node.
func TestConformanceRealNode(t *testing.T) {
	conn := os.Getenv("EVENTFOLD_TEST_KURRENTDB")
	if conn == "" {
		t.Skip("EVENTFOLD_TEST_KURRENTDB is not set: no real KurrentDB node to test against (see docs/eventstoredb.md)")
	}
	store := open(t, conn)
	estest.Run(t, func(*testing.T) es.Store { return store })
}
