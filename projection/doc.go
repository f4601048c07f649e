// Package projection builds read models from the global log: checkpointed
// runners that fold `$all` into tables, documents or maps, and that can
// throw a read model away and rebuild it at any time.
//
//	runner, err := projection.NewRunner(store, checkpoints, types, projection.Projection[*sql.Tx]{
//		Name:       "order-summaries",
//		Categories: []string{"order"},
//		Handle:     summaries.Apply,
//		Reset:      summaries.Reset,
//	})
//	go runner.Run(ctx) // history, then live, until ctx is done
//
// # Checkpoints and transactions
//
// A [Runner] subscribes to `$all` from its projection's checkpoint, decodes
// the events with an [es.Registry], and hands them to the projection's
// handler in batches (up to 500 events by default; [WithBatch]). Each batch
// runs in one transaction of the [Checkpoints] store together with the new
// checkpoint: where the read model lives in the same SQL database (package
// projection/sqlproj), a crash never skips or doubles an event. Filtered
// subscriptions also move the checkpoint on the log's checkpoints, so a
// projection that matches few events does not lag.
//
// # Batches and latency
//
// Catching up or rebuilding, a runner fills every batch. Live, it commits
// as soon as its subscription has nothing more ready: an event on an idle
// runner is applied at once, and under load the events that arrive while a
// batch commits form the next one. Batching costs latency only under load.
//
// # Failures
//
// A failing batch is retried with exponential backoff ([WithRetry]). When
// it still fails, the runner applies its events one by one to find the
// culprit: by default it stops with a [*PoisonError] naming the event; with
// [WithSkipPoison] it records the event in a dead-letter store and goes on.
// An event that does not decode is a poison event at once. The runner never
// moves past an event silently.
//
// # Rebuilds
//
// [Runner.Rebuild] empties the read model and replays the log into it, in
// place. [Runner.RebuildBlueGreen] builds the next version beside the one
// serving and switches over atomically once caught up; [Runner.DropVersion]
// drops the old one. Deploying a projection with a higher [Projection.Version]
// does the same on its own. Both kinds are resumable: interrupted, they go
// on from their checkpoint. [WithProgress] reports events done, rate and time
// left.
//
// # Status and read-your-writes
//
// [Runner.Status] and [Runner.Lag] tell where a projection stands;
// [Runner.WaitFor] waits until it has applied a position, such as the one
// aggregate.Result reports after a command, so that a query right after a
// command sees it.
//
// # One runner per projection
//
// Checkpoint stores that implement [Leaser] make sure that of several
// replicas of a service only one runs a projection; the others wait in
// standby ([StateStandby]). A lease can be lost while its runner runs (in
// projection/sqlproj, one not renewed within its time-to-live): the runner
// then stops committing and fails with [ErrLeaseLost], and with
// [WithRestart] waits for the lease again. Stores that implement
// [LeaseHolders] name the holder, in [Status].Holder.
//
// # Telemetry
//
// A runner records an OpenTelemetry span "process {projection}" per batch,
// linked to the trace of each event's command (the trace context that
// es/esotel writes into events' metadata), and the metrics of its batches
// (duration, size, events applied, retries), its poison events, and, while
// it runs, its lag (events, seconds) and state, measured at each
// collection. [WithTracerProvider] and [WithMeterProvider] choose the
// providers (the global ones by default); without an SDK installed no span
// is started. See docs/observability.md.
package projection
