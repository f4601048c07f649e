// Package sqlproj keeps projection checkpoints in a SQL database, SQLite
// or PostgreSQL, through database/sql ([Checkpoints]) or a pgx pool
// ([PgxCheckpoints]), so that a read model in the same database changes in
// the transaction that records how far it got: each batch of events takes
// effect exactly once, whatever crashes.
//
//	db, err := sql.Open("pgx", "postgres://app@db/app") // or "sqlite"
//	cps, err := sqlproj.New(ctx, db, sqlproj.Postgres)
//	runner, err := projection.NewRunner(store, cps, types, projection.Projection[*sql.Tx]{
//		Name:     "order-summaries",
//		Handle:   summaries.Apply, // func(ctx, tx *sql.Tx, b projection.Batch) error
//		Setup:    summaries.Create,
//		Reset:    sqlproj.ResetTables("order_summaries"),
//		Activate: sqlproj.SwitchViews("order_summaries"),
//		Drop:     sqlproj.DropTables("order_summaries"),
//	}, projection.WithSkipPoison(cps))
//	go runner.Run(ctx)
//
// A read model's handler is written once against *sql.Tx and runs on both
// databases: SQLite through modernc.org/sqlite (driver "sqlite", pure Go)
// and PostgreSQL through pgx's database/sql driver (driver "pgx", package
// github.com/jackc/pgx/v5/stdlib). The caller opens the *sql.DB, and
// imports the driver; [New] creates the package's tables in it.
//
// # Transactions
//
// [Checkpoints.Commit] begins a transaction, writes the checkpoint, runs
// the projection's handler on the same *sql.Tx, and commits; any error
// rolls back both the read model's changes and the checkpoint. A crash
// (even SIGKILL in the middle of a batch) leaves the read model and its
// checkpoint as of the last committed batch, and the runner resumes from
// there: nothing is skipped or applied twice. ctx cancels the
// transaction's statements but not its COMMIT: a COMMIT cut off on the
// client could still commit on the server after the runner has reloaded
// the old checkpoint, and the batch would be applied twice.
//
// Commits are also fenced: a [Checkpoints] writes a checkpoint only if the
// row still holds what it last read or wrote there, and fails with
// [ErrConflict] otherwise. If two runners of one projection ever run at
// once (two processes on one SQLite file, a PostgreSQL lease lost with its
// connection) or a COMMIT reported as failed had in fact succeeded, the
// runner that fell behind stops instead of applying events twice.
//
// Handlers should write a batch with multi-row statements (one INSERT …
// VALUES (…), (…), … ON CONFLICT … DO UPDATE per batch, or per few hundred
// rows on SQLite, with [Dialect.Placeholder]), and runners of large
// rebuilds use large batches ([projection.WithBatch]): bench_test.go
// rebuilds 40,000 to 100,000 events a second that way, on PostgreSQL as
// on SQLite, on a busy 2-core machine.
//
// Positions are uint64 in Go and BIGINT (signed) in SQL: positions up to
// 2^63-1 round-trip, larger ones are refused with [ErrPositionRange]
// (EventStoreDB's positions fit). A stored checkpoint that cannot be read
// is an error wrapping [projection.ErrCorruptCheckpoint], never a silent
// restart from the beginning.
//
// The tables are <prefix>checkpoints, <prefix>projection_versions,
// <prefix>dead_letters and <prefix>projection_schema ([WithTablePrefix];
// "eventfold_" by default). The schema table records the version of their
// shape: tables written by a newer version of this package make [New] fail
// with [ErrSchemaVersion].
//
// # SQLite
//
// Open the database with a busy timeout and in WAL mode, so that queries
// read while a batch is written and writers wait for each other instead
// of failing with SQLITE_BUSY:
//
//	db, err := sql.Open("sqlite", "file:app.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate")
//
// Writes of one [Checkpoints] run one at a time. Each of its transactions
// writes first (the checkpoint), which takes SQLite's write lock at once,
// as BEGIN IMMEDIATE does, so writers never deadlock on upgrading a read
// lock; "_txlock=immediate" does the same for the caller's own
// transactions. Several processes may share a SQLite file (a service and
// the replay tool, say): the leases keep each projection version to one of
// them (see Leases), and the busy timeout makes their writes wait for
// each other.
//
// # PostgreSQL
//
// Every statement works under the default READ COMMITTED isolation. Use
// [WithTablePrefix], or a schema in the connection's search_path
// ("…?search_path=reports"), to keep several sets of tables in one
// database. Handlers that write many rows per batch are best written as
// one multi-row upsert; PostgreSQL accepts up to 65535 placeholders in a
// statement. Faster still is COPY, which handlers get through pgx.
//
// # pgx and COPY
//
// [NewPgx] wraps a pgx pool (*pgxpool.Pool, which the caller opens and
// closes) in [PgxCheckpoints]: the store of [Checkpoints] on PostgreSQL,
// with the same tables, queries, fencing, leases, versions and dead
// letters, whose handlers get a native [pgx.Tx]. The two read and write
// the same rows, so either can take over from the other, and the replay
// tool reads both.
//
//	pool, err := pgxpool.New(ctx, "postgres://app@db/app")
//	cps, err := sqlproj.NewPgx(ctx, pool)
//	runner, err := projection.NewRunner(store, cps, types, projection.Projection[pgx.Tx]{
//		Name:     "order-lines",
//		Handle:   lines.Apply, // func(ctx, tx pgx.Tx, b projection.Batch) error
//		Setup:    lines.Create,
//		Reset:    sqlproj.PgxResetTables("order_lines"),
//		Activate: sqlproj.PgxSwitchViews("order_lines"),
//		Drop:     sqlproj.PgxDropTables("order_lines"),
//	}, projection.WithBatch(5000, 100*time.Millisecond))
//
// On a pgx.Tx a handler can write a batch with COPY ([pgx.Tx.CopyFrom]),
// PostgreSQL's fastest way in: bench_test.go rebuilds a read model of one
// row per event through PgxCheckpoints with COPY at 0.8 to 0.9 of the
// speed of a bare loop that COPYs the same rows, where database/sql with
// multi-row upserts reaches about half of it. COPY only inserts, and fails on
// a row that exists: it suits rows that a batch creates (one per event,
// keyed by stream and revision or by event ID), which no batch before
// wrote since the checkpoint commits with the batch, in a rebuild as in a
// live run. A read model that updates rows (a total per stream) keeps its
// multi-row upserts: COPYing a batch into a temporary table and merging it
// with one INSERT … SELECT … ON CONFLICT DO UPDATE was no faster in
// bench_test.go, where the server's work on the conflicting rows
// dominates.
//
// # Leases
//
// [Checkpoints] and [PgxCheckpoints] implement [projection.Leaser], so
// that of several replicas of a service (or a service and the replay tool)
// only one runs a projection version and the others wait in standby. A
// lease is a row of the table <prefix>leases, the same on SQLite and
// PostgreSQL, across processes:
//
//   - Time-to-live: a lease is held until an expiry counted by the
//     database's clock, [DefaultLeaseTTL] (15 s) after its last renewal
//     ([WithLeaseTTL]). Its holder renews it every third of that, in a
//     goroutine (the heartbeat), each renewal bounded by the expiry. The
//     heartbeat renews all the leases of a Checkpoints (the partitions of
//     a replica and its membership) in one statement, each lease still
//     lost on its own. A holder that could not renew it in time (its database was
//     away or stalled) counts it lost: the context that Lease returned
//     ends with [projection.ErrLeaseLost], and the runner stops
//     committing. A standby takes the lease over once it has expired, at
//     its next try ([WithLeasePoll], 1 s); one that is given back (a
//     runner that stops) is free at once.
//   - Fencing token: each takeover increments the lease's token. Every
//     commit of a leased projection checks, in its own transaction, that
//     the token is still its holder's and the lease unexpired, and locks
//     the lease's row until it commits, so that a lease is never taken over
//     in the middle of a commit. A holder cut off from its database fails
//     with an error matching [projection.ErrFenced]; the holder that took
//     over is never the one fenced. On PostgreSQL, the same statement sets
//     the transaction's idle_in_transaction_session_timeout to the
//     time-to-live, so that a holder cut off in the middle of a commit does
//     not keep the row locked.
//   - The transaction of a leased commit ends when the lease is lost: a
//     holder cut off from its database never hangs in a COMMIT. A batch
//     must therefore commit within the time-to-live: choose one longer than
//     your longest batch.
//   - Holders are named ([WithLeaseHolder]; host and process ID by
//     default) and [Checkpoints.LeaseHolder] tells who holds a lease, so
//     that a runner's [projection.Status] names whom it waits for, and a
//     runner that runs in another process shows as
//     [projection.StateElsewhere].
//   - A lease that nobody can be using is taken over at once rather than
//     after its time-to-live: on SQLite, that of a process of this host that
//     is gone (killed, crashed); everywhere, one that this very Checkpoints
//     took without learning it (the answer to its take was lost).
//
// Leases need no connection of their own: the heartbeat and the takes are
// single statements on the pool, the heartbeat one for all the leases.
//
// # Membership
//
// [Checkpoints] and [PgxCheckpoints] also implement
// [projection.Membership], with which the replicas of a service share the
// partitions of a partitioned projection. A member is a lease like the
// others, on the key "<group>/members/<member>": [Checkpoints.Join] takes
// it and its heartbeat renews it, [Checkpoints.Members] lists the
// unexpired ones of a group. A member that leaves gives its lease back
// and is gone at once; one killed without leaving drops out after the
// time-to-live (on SQLite, at once when its process was on this host).
//
// Checkpoints record [projection.Checkpoint].Partitions in the column
// partitions of <prefix>checkpoints (schema version 3): [New] adds the
// column to the tables of earlier versions in place.
//
// # Blue/green
//
// A read model that rebuilds blue/green keeps version n of each table in
// "<table>_v<n>" ([projection.Batch.Table]) and is queried through a view
// "<table>". [SwitchViews] repoints the views in the transaction that
// records the new active version ([Checkpoints.SetActiveVersion]), so
// queries switch atomically from the old version to the new one;
// [DropTables] drops an old version and [ResetTables] empties one for a
// rebuild in place. They fit [projection.Projection]'s Activate, Drop and
// Reset; [PgxSwitchViews], [PgxDropTables] and [PgxResetTables] are the
// same for [PgxCheckpoints].
package sqlproj
