// Package sqlstore is an [es.Store] on SQL: SQLite, embedded in the program
// through the pure-Go driver modernc.org/sqlite (no cgo), and PostgreSQL
// through pgx. It has the semantics of the reference store, es/memstore,
// and passes the conformance suite in es/estest.
//
// This package holds the store: its [Store], [Option]s, errors, reads,
// appends, group commit, subscriptions and scavenging. The databases are
// separate imports, as database/sql drivers are, so that a program links
// only the driver it uses: package [github.com/eventfold/eventfold/es/sqlstore/sqlite]
// opens a Store on SQLite, package [github.com/eventfold/eventfold/es/sqlstore/postgres]
// one on PostgreSQL.
//
//	store, err := sqlite.Open(ctx, "events.db")
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//	_, err = store.Append(ctx, "order-1", es.NoStream, es.EventData{Type: "OrderPlaced", Data: []byte(`{}`)})
//
// A [Store] is safe for concurrent use, and several Stores, in one process
// or many, may share one database. Options ([Option]) set the tables' names
// ([WithTablePrefix], [WithSchema]), the maximum append size, the clock, the
// poll interval, the call timeout ([WithCallTimeout]), the logger and
// background scavenging ([WithScavenge]); constructors reject invalid ones
// with an error wrapping [ErrInvalidOption]. Errors about streams and
// events are those of package es ([es.ErrWrongExpectedVersion], …); a
// failure of the database is reported with the operation and the driver's
// error ("sqlstore: append to stream "x": database is locked …"), and
// leaves nothing of the failed write behind, unless its error says that the
// outcome is unknown (see Deadlines and outages).
//
// # Deadlines and outages
//
// Every call into the database has a deadline: the caller's, or the call
// timeout ([WithCallTimeout], [DefaultCallTimeout] 5 s) when the caller's
// context has none sooner. The timeout bounds each write as its caller
// waits for it (in line behind other writes, then its group's transaction
// from BEGIN to COMMIT), each query of a read or a subscription (a long
// read is bounded page by page, not as a whole), each transaction of a
// scavenge, the poll and the listening connection, and each step of
// opening the store. A PostgreSQL connection that stalls (bytes vanish, no
// reset) thus fails the calls on it within the timeout instead of the
// minutes TCP takes.
//
// A call that the timeout ends, and a failure to reach the database (a
// connection refused, reset or lost, a PostgreSQL connect error, a server
// shutting down or starting up, too many connections, driver.ErrBadConn),
// returns an error wrapping [es.ErrUnavailable]: retrying may succeed, and a
// service can answer 503. A call that the caller's context ends returns the
// context's error. SQL errors, a failed authentication, SQLITE_BUSY (another
// process held the file's write lock past the busy timeout: the database
// answered) and a full disk are not unavailability.
//
// A write whose COMMIT was sent and not answered, or that the writer had
// taken when its call timeout passed, may have been committed: its error
// says that the outcome is unknown (and wraps es.ErrUnavailable). Retrying
// it with the same event IDs is safe, since appending the same IDs again is
// idempotent. When a group of writes fails because its connection was lost
// (a server restart, a terminated backend, a reset), the writer runs it once
// more, on a new connection (the pool's idle connections, most likely lost
// too, are dropped), so that the callers get a definite answer: all of it if
// its COMMIT was not sent; if the outcome of the COMMIT is unknown, its
// appends only, which report their first result if they were committed,
// while its deletes and tombstones fail with the unknown outcome. If that
// fails too, every write of the group fails with the error. A subscription that waits for new events
// holds no connection and makes no call: an outage only delays it, and it
// goes on when the database is back; one that fetches during an outage ends
// with the error, for its consumer to resubscribe.
//
// # SQLite
//
// sqlite.Open opens one file, created if needed, or a SQLite URI
// ("file:events.db?mode=ro" opens it read-only: reads work, writes fail).
// The database is put in WAL mode, with foreign keys on and synchronous=FULL
// (SQLite's default in WAL mode: a committed append survives a power cut).
// Each Store has one writer connection, whose transactions begin IMMEDIATE,
// and a pool of up to 8 read-only connections for reads and subscriptions. Appends
// of one Store queue for the writer; appends of several processes queue for
// SQLite's write lock, each waiting up to the busy timeout (5 s unless the
// URI sets busy_timeout) before failing with SQLITE_BUSY. A full disk fails
// the append with SQLITE_FULL and rolls it back. ":memory:" would give every
// connection a database of its own; "file:/name?vfs=memdb" keeps one
// database in memory for as long as the Store is open.
//
// # PostgreSQL
//
// postgres.Open and postgres.OpenConfig connect with a pgx connection
// string or pool configuration and own their pool; postgres.New uses a pool
// of the caller's, which Close leaves open, so that the store, the read
// models and the rest of a program can share one pool. The store's commits
// wait for the WAL flush even if the pool's sessions set synchronous_commit
// off. Each Store also holds one connection of its own, outside the pool,
// on which it listens for notifications, made with the pool's configuration. Behind a
// connection pooler in transaction mode (PgBouncer), notifications do not
// arrive and subscriptions learn of other processes' appends by polling.
// [WithSchema] puts the tables in a schema of their own (created if needed),
// which is how tests isolate their runs.
//
// # Subscriptions and ordering
//
// Positions in `$all` are a bigint column assigned in the append's
// transaction as the largest position so far plus one, and every append,
// delete and tombstone is serialised with the others: on SQLite by the
// database's single write lock (BEGIN IMMEDIATE), on PostgreSQL by a
// transaction-scoped advisory lock (pg_advisory_xact_lock, keyed on the
// events table's name) taken before anything is read. A transaction
// therefore takes its positions only after the previous writer committed,
// and commits before the next one starts, so positions become visible in
// increasing order: a reader that has seen position p has already seen every
// position below p, and a subscription that resumes after p cannot skip an
// event committed later with a smaller position, the classic trap of
// sequences whose transactions commit out of order.
//
// # Group commit
//
// Serialised writes would commit one at a time, each paying its own lock,
// round trips and flush to disk. Instead, every write of a Store goes to
// one writer goroutine, which takes a write as soon as it comes (an idle
// store adds no latency) and, while it commits, lets the next writes queue:
// the next transaction takes every write that is ready, up to 256 writes
// and 4 MiB of events. Each write in such a group keeps its own
// expected-revision check, idempotency by event ID, result and error, and
// sees the writes before it in the group; one whose check fails writes
// nothing and leaves the others be. If the database fails the group's
// transaction, its writes are run again one by one, so that one failing
// write never fails the others. On PostgreSQL a group reads the states of
// its streams in one query, so that it costs about two round trips and one
// WAL flush whatever its size. Positions stay in commit order: a group is
// one transaction under the store's write lock. On PostgreSQL the writer
// keeps one connection of the pool between its groups, so that it never
// queues for a connection behind the store's reads: size the pool
// (pool_max_conns) for the concurrent reads and subscriptions plus one. A caller whose context
// ends before the writer took its write gets the context's error and
// nothing is written; if it ends later, the write may still be committed
// (retrying with the same event IDs is safe). Throughput therefore grows
// with the number of concurrent writers, and several events in one append
// remain the cheapest way to write them.
//
// A multi-stream append ([Store.AppendStreams], [es.AppendStreams]) is one
// write of the group: it reads the states of its streams in the order of
// their names (in one query on PostgreSQL), decides every part as an
// Append is decided, and writes all parts, with consecutive positions in
// the order of the parts, or none. The write lock that serialises every
// write also rules out deadlocks between multi-stream appends whose parts
// come in different orders.
//
// Reads and subscriptions fetch events in batches of a few hundred rows,
// by keyset on the position or revision, and hold no connection, lock or
// transaction while the loop body runs. A subscription that has caught up
// waits for a signal: an append through the same Store wakes it at once;
// on PostgreSQL, the append's transaction sends a notification (pg_notify)
// that the Store's listening connection receives and hands to all its
// subscriptions; on SQLite, and on PostgreSQL when no notification came, the
// Store polls the head of the log every poll interval ([WithPollInterval]),
// so that the appends of other processes, a lost notification or a broken
// listening connection only delay a subscription. The listening connection
// is re-established with backoff. Each Store runs one background goroutine
// for this, which Close stops; subscriptions still running then end with
// [ErrClosed].
//
// # Retention
//
// Events that stream metadata cuts away stay in the events table, and in
// `$all`, until they are scavenged, as in EventStoreDB: a checkpoint stream
// with `$maxCount` 1 that gets an event per batch grows for ever otherwise.
// [Store.Scavenge] deletes the events that no read of their stream can
// return any more: those before `$tb`, beyond `$maxCount`, older than
// `$maxAge` (by the store's clock, [WithClock]), those of a soft-deleted
// stream, all but the newest event of a metadata stream, and the events of
// a tombstoned stream. It keeps the last event of every stream that is not
// tombstoned (the stream's last revision is in the streams table, but an
// empty append reports the last event's position) and the `$streamDeleted`
// record. And it deletes only events at positions strictly below a horizon
// that the caller gives: the lowest checkpoint of the consumers of `$all`
// (projections, relays) that must still receive what follows it, so that
// no subscription loses an event it has not reached. [es.End] means no
// consumer of `$all` needs anything (everything up to the head may go);
// [es.Start] deletes nothing.
//
//	res, err := store.Scavenge(ctx, lowestCheckpoint)
//
// [WithScavenge] runs it in the background every period, with a function
// that returns the horizon; the goroutine belongs to the Store, logs its
// errors, tries again next period and stops on Close.
//
// Scavenging works in short transactions (at most 1000 events deleted or 32
// streams visited each) that take the store's write lock, so appends wait
// for one of them at most, and each decides from the stream's state under
// that lock. It runs beside appends, reads and subscriptions, in any number
// of processes; it is idempotent, and a scavenge stopped halfway is finished
// by the next one. Stream rows stay: revisions continue after a scavenge.
//
// What changes once events are scavenged:
//   - Deleting is final. A change of metadata that would bring events back
//     (a lower `$tb`, a larger `$maxCount` or `$maxAge`, or none) shows only
//     those not yet scavenged; EventStoreDB behaves the same.
//   - `$all` reads and subscriptions from below the horizon skip the
//     deleted events (positions have gaps, as in EventStoreDB). Stream
//     reads and subscriptions return what they returned before: the
//     deleted events were hidden from them already.
//   - Idempotent appends recognise only event IDs that are still stored.
//     Re-appending the IDs of scavenged events with an exact revision
//     reports [es.ErrWrongExpectedVersion] (the events after that revision
//     cannot be compared), never a false success; with [es.Any] or
//     [es.StreamExists] the events are written again, as new events. In
//     EventStoreDB too the check of an append with any is best-effort
//     (recent event IDs) and knows nothing of scavenged events. Retries
//     come within seconds of the first attempt, and only events that
//     metadata hides and every consumer of `$all` has passed are deleted,
//     so this matters only for a retry that comes after its events were
//     both truncated and scavenged. (EventStoreDB itself does its best to
//     make appends with any idempotent but does not guarantee it.)
//
// # Schema and versions
//
// A Store creates its tables when it opens, if they do not exist, in one
// transaction: <prefix>streams (a row per stream: last revision, tombstone
// flag, metadata as JSON), <prefix>events (position as primary key, stream,
// revision, event ID, type, content type, data, metadata, created time in
// Unix nanoseconds; unique on stream and revision, indexed on stream and
// event ID) and <prefix>schema, whose one row holds the schema version.
// Stream metadata (`$maxCount`, `$maxAge`, `$tb`), soft deletes and
// tombstones hide events from reads; their rows stay, as they stay in
// `$all`, until a scavenge deletes them (see Retention). A database whose
// schema is current is only read when the Store opens, so a
// read-only database opens. A database with a newer schema version than this
// package knows is refused with [ErrSchemaVersion] before anything is
// written: an older program must not write rows that a newer one would
// misread. Later versions of the schema will be reached by migrations that
// run, in order, when a Store opens an older database.
package sqlstore
