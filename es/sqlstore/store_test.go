package sqlstore_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/estest"
	"github.com/eventfold/eventfold/es/sqlstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openSQLite opens a store in a new file, closed at the end of the test.
func openSQLite(t testing.TB, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "events.db"), opts...)
	require.NoError(t, err, "OpenSQLite")
	t.Cleanup(func() { require.NoError(t, s.Close(), "Close") })
	return s
}

func TestSQLiteConformance(t *testing.T) {
	estest.Run(t, func(t *testing.T) es.Store { return openSQLite(t) })
}

var _ = os.Getenv
