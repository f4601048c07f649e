package readmodel_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/eventfold/eventfold/example/orders/readmodel"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/redisproj"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// redisCheckpoints returns checkpoints in the Redis of EVENTFOLD_TEST_REDIS
// under a prefix of the test's own, deleted when it ends, or skips.
func redisCheckpoints(t testing.TB) (*redisproj.Checkpoints, *redis.Client) {
	t.Helper()
	u := os.Getenv("EVENTFOLD_TEST_REDIS")
	if u == "" {
		t.Skip("EVENTFOLD_TEST_REDIS is not set: no Redis to test the order details in Redis on")
	}
	opts, err := redis.ParseURL(u)
	require.NoError(t, err)
	opts.ContextTimeoutEnabled = true
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	prefix := "eftest:readmodel:" + uuid.NewString()[:8] + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		keys, err := client.Keys(ctx, prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			client.Unlink(ctx, keys...)
		}
	})
	cps, err := redisproj.New(t.Context(), client, redisproj.WithPrefix(prefix), redisproj.WithLeaseTTL(2*time.Second))
	require.NoError(t, err)
	return cps, client
}

// TestRedisDetailsMatchSQL builds the order details in SQL and in Redis from
// the same log: the query service's Redis read model answers as the SQL one,
// also after a rebuild in place and a blue/green rebuild.
func TestRedisDetailsMatchSQL(t *testing.T) {
	ctx := t.Context()
	store, types := sampleOrders(t)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "orders.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	sqlCps, err := sqlproj.New(ctx, db, sqlproj.SQLite)
	require.NoError(t, err)
	sqlDetails, err := projection.NewPartitioned(store, sqlCps, types, readmodel.Details())
	require.NoError(t, err)
	require.NoError(t, sqlDetails.CatchUp(ctx))

	cps, client := redisCheckpoints(t)
	redisDetails, err := projection.NewPartitioned(store, cps, types, readmodel.RedisDetails())
	require.NoError(t, err)
	q := readmodel.NewRedisQueries(cps, client)
	_, err = q.Order(ctx, "1")
	require.ErrorIs(t, err, readmodel.ErrNotFound, "before the read model was ever built")
	require.NoError(t, redisDetails.CatchUp(ctx))

	same := func(t *testing.T) {
		t.Helper()
		for _, id := range []string{"1", "2", "3"} {
			want, err := readmodel.NewQueries(db).Order(ctx, id)
			require.NoError(t, err)
			got, err := q.Order(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, want, got, "order %s in Redis and in SQL", id)
		}
		_, err := q.Order(ctx, "404")
		require.ErrorIs(t, err, readmodel.ErrNotFound)
	}
	same(t)
	one, err := q.Order(ctx, "1")
	require.NoError(t, err)
	assert.Equal(t, order.StatusShipped, one.Status)
	assert.Len(t, one.Timeline, 3)

	require.NoError(t, redisDetails.Rebuild(ctx, nil))
	same(t)
	from, to, err := redisDetails.RebuildBlueGreen(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, [2]int{1, 2}, [2]int{from, to})
	require.NoError(t, redisDetails.DropVersion(ctx, from))
	same(t)
}

// TestRedisDetailRefusesDamage: a hash that is not what the projection
// writes is an error naming the field, not a wrong answer.
func TestRedisDetailRefusesDamage(t *testing.T) {
	ctx := t.Context()
	store, types := sampleOrders(t)
	cps, client := redisCheckpoints(t)
	r, err := projection.NewPartitioned(store, cps, types, readmodel.RedisDetails())
	require.NoError(t, err)
	require.NoError(t, r.CatchUp(ctx))
	prefix, _, err := cps.ActivePrefix(ctx, readmodel.RedisDetailsName)
	require.NoError(t, err)
	require.NoError(t, client.HSet(ctx, prefix+"order:3", "subtotal", "lots").Err())
	_, err = readmodel.NewRedisQueries(cps, client).Order(ctx, "3")
	require.ErrorContains(t, err, "subtotal")
}
