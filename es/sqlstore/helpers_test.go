package sqlstore_test

import (
	"context"
	"iter"
	"testing"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/internal/sqltest"
)

// openSQLitePath opens a store on an existing path, closed at the end of
// the test.
func openSQLitePath(t *testing.T, path string, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	return sqltest.OpenSQLite(t, path, opts...)
}

// subscribe starts a stream subscription with subscribe (a Store's
// SubscribeStream method).
func subscribe(t *testing.T, subscribe func(context.Context, string, es.SubscribeStreamOptions) iter.Seq2[es.Message, error],
	stream string, opts es.SubscribeStreamOptions) *sqltest.Sub {
	t.Helper()
	return sqltest.Subscribe(t, subscribe, stream, opts)
}

// start runs the subscription that seq starts.
func start(t *testing.T, seq func(ctx context.Context) iter.Seq2[es.Message, error]) *sqltest.Sub {
	t.Helper()
	return sqltest.Start(t, seq)
}
