package postgres

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/sqlstore/internal/backend"
)

// TestWriteSynchronousCommit checks that the store's transactions wait for
// the WAL flush in a pool whose sessions do not, and keep the sessions'
// other settings.
func TestWriteSynchronousCommit(t *testing.T) {
	url := os.Getenv("EVENTFOLD_TEST_POSTGRES")
	if url == "" {
		t.Skip("EVENTFOLD_TEST_POSTGRES is not set")
	}
	for session, want := range map[string]string{"off": "on", "local": "local", "on": "on"} {
		t.Run(session, func(t *testing.T) {
			cfg, err := pgxpool.ParseConfig(url)
			require.NoError(t, err)
			cfg.ConnConfig.RuntimeParams["synchronous_commit"] = session
			pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
			require.NoError(t, err)
			defer pool.Close()
			d := &db{pool: pool, lockKey: lockKey("synchronous_commit_test")}
			defer func() { require.NoError(t, d.Close()) }()

			var got string
			require.NoError(t, d.Write(t.Context(), func(tx backend.Querier) error {
				return scanOne(t.Context(), tx, "SELECT current_setting('synchronous_commit')", &got)
			}))
			assert.Equal(t, want, got, "in the store's transaction")
			require.NoError(t, pool.QueryRow(t.Context(), "SELECT current_setting('synchronous_commit')").Scan(&got))
			assert.Equal(t, session, got, "in the session, after the transaction")
		})
	}
}

func scanOne(ctx context.Context, q backend.Queryer, sql string, dest any) error {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(dest); err != nil {
			return err
		}
	}
	return rows.Err()
}
