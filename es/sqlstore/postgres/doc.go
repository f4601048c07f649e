// Package postgres opens a [sqlstore.Store] on PostgreSQL through pgx. The
// store itself, its options and its behaviour are those of package
// sqlstore; this package adds the PostgreSQL dialect and its connections,
// and links pgx, not SQLite.
//
//	store, err := postgres.Open(ctx, "postgres://user@host:5432/db?sslmode=disable",
//		sqlstore.WithSchema("orders"))
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//
// # Pools
//
// [Open] and [OpenConfig] create a pool that the Store owns and closes on
// Close, waiting at most [CloseWait] for it. [New] uses a pool of the
// caller's, which Close leaves open: a program that keeps its read models,
// its checkpoints or an outbox in the same database passes one pool to the
// store and to them (database/sql code gets a *sql.DB over the same pool
// from stdlib.OpenDBFromPool), and closes it after the Store with
// [ClosePool]. Size such a pool for both: the store keeps one connection
// for its writes and borrows others while its reads and subscriptions fetch
// a page.
//
// The store's commits wait for the WAL flush even in a pool whose sessions
// set synchronous_commit off, so that a program can let its read side
// commit without waiting while its events stay durable.
//
// # Notifications
//
// Each Store holds one connection of its own, outside the pool, made with
// the pool's configuration, on which it listens for the notifications that
// appends send on commit, so that subscriptions wake at once; it polls when
// none came for the poll interval ([sqlstore.WithPollInterval],
// [sqlstore.DefaultPostgresPollInterval]). Behind a connection pooler in
// transaction mode (PgBouncer), notifications do not arrive and
// subscriptions learn of other processes' appends by polling.
package postgres
