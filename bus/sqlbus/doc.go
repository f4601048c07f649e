// Package sqlbus keeps the bus's records in SQL, on PostgreSQL or SQLite:
// [Processed], the events each event handler group has processed, for
// bus.WithIdempotency and for handlers that mark their event in their own
// transaction ([Processed.MarkProcessedTx]).
//
//	processed, err := sqlbus.NewProcessed(ctx, db, "processed_events")
//	err = bus.HandleEvent(b, "totals", addDeposit, bus.WithIdempotency(processed))
//
// It is apart from package bus so that a bus on a broker links no
// database/sql, and beside the bus rather than in projection/sqlproj
// because it reads the bus's handler context (the group and the event),
// which the projection packages must not import.
//
// # Deadlines
//
// Each call of a [Processed] into its database is bounded (5s), so that a
// database that stalls fails the handler in time rather than holding it
// until the bus's handler timeout.
package sqlbus
