// Package eventstoredb is an [es.Store] on EventStoreDB, through the official
// Go client, github.com/EventStore/EventStore-Client-Go/v4. It is the only
// package of eventfold that imports that client.
//
//	store, err := eventstoredb.Open("esdb://localhost:2113?tls=false")
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//
// # Connection strings
//
// The connection string is the client's own (`esdb://` or
// `esdb+discover://`, with TLS settings, credentials and keep-alive
// parameters); see EventStoreDB's documentation. Credentials and TLS
// material are handed to the client and never logged by this package.
//
// # Errors
//
// The client's errors are mapped to the sentinels of package es:
// [es.ErrWrongExpectedVersion] (with the actual revision when the server
// reports it, including for deletes, which the client leaves unmapped),
// [es.ErrStreamNotFound], [es.ErrStreamDeleted],
// [es.ErrMaxAppendSizeExceeded]. Other errors are returned wrapped, with
// the client's error in the chain.
//
// # Subscriptions
//
// Subscriptions are EventStoreDB catch-up subscriptions, with server-side
// filters and checkpoints. When one drops (a server restart, a network
// failure), the Store resubscribes from the last event or checkpoint it
// delivered, with exponential backoff, so that the consumer never sees an
// event twice or misses one; see [WithResubscribe].
//
// # Outages
//
// Every call into the client is bounded by [WithCallTimeout] (when the
// caller's context has no earlier deadline) and returns when its context
// ends, even where the client blocks internally. Connection loss is
// returned as an error wrapping [ErrUnavailable] (see [IsTransient]); the
// Store then connects a new client at the next call, with backoff while
// the node stays unreachable, and subscriptions resubscribe through it.
// docs/eventstoredb.md records what the v4 client does on its own.
//
// # Testing
//
// Package es/esdbtest runs an EventStoreDB-compatible server inside a test
// process; the conformance suite es/estest runs against this package through
// it. Set EVENTFOLD_TEST_ESDB to a connection string to run the same suite
// against a real node.
package eventstoredb
