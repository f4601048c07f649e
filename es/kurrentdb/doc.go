// Package kurrentdb is an [es.Store] on KurrentDB (the new name of
// EventStoreDB, from version 25.0), through its official Go client,
// github.com/kurrent-io/KurrentDB-Client-Go. It is the only package of
// eventfold that imports that client.
//
//	store, err := kurrentdb.Open("kurrentdb://localhost:2113?tls=false")
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//
// # One client per program
//
// KurrentDB-Client-Go and EventStore-Client-Go v4 (used by
// es/eventstoredb and es/esdbtest) register the same protobuf names: a
// program that links both panics when it starts. A program links either
// this package or es/eventstoredb, never both. Both talk to EventStoreDB
// 23.10 and 24.10 and to KurrentDB; this one also offers what KurrentDB 25
// adds. Its tests run es/esdbtest as a separate process for that reason.
//
// # Shared behaviour
//
// The Store behaves as es/eventstoredb's does, with the same options and
// errors: both are built on one internal core (options, connections,
// bounded calls, error mapping, resubscription). The client's errors are
// mapped to the sentinels of package es; a connection loss is returned as
// an error wrapping [ErrUnavailable] (see [IsTransient]) and the Store
// connects a new client at the next call; every call is bounded by
// [WithCallTimeout]; dropped subscriptions resubscribe from the last event
// or checkpoint they delivered ([WithResubscribe]).
//
// # Multi-stream appends
//
// [Store.AppendStreams] implements [es.MultiStreamAppender] through
// KurrentDB's multi-stream append (KurrentDB 25.0 and later): events of
// several streams, written atomically. KurrentDB keeps an event's metadata
// as properties, so the metadata of those events must be a JSON object
// whose values are strings. Against an older server it returns an error
// matching [errors.ErrUnsupported].
//
// # Caught-up position
//
// From KurrentDB 25.0, the server says where a `$all` subscription stands
// when it catches up: the [es.Message] of kind [es.KindCaughtUp] carries
// that position, and a resubscription resumes after it. Older servers do
// not send it: the Position is then zero.
//
// # Testing
//
// The conformance suite es/estest runs against this package through the
// esdbtest command (es/esdbtest/cmd/esdbtest), reporting KurrentDB 25.0
// and EventStoreDB 24.10. Set EVENTFOLD_TEST_KURRENTDB to a connection
// string to run the same suite against a real node.
package kurrentdb
