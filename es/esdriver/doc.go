// Package esdriver is the kit for writing an [es.Store], as
// database/sql/driver is for database/sql: what every store must decide the
// same way, written once, so that a new store writes storage access only and
// package es/estest proves the rest.
//
// Applications do not need this package; package es is theirs.
//
// A store built on the kit:
//
//   - validates every append with [PrepareAppend], so that all stores
//     accept and reject the same input;
//   - reads the [Stream] it appends to, and lets [DecideAppend] apply the
//     expected revision and the idempotency of event IDs (with
//     [DecideDelete] for deletes and tombstones);
//   - hides the events that stream metadata drops with [Retains] and
//     [FirstRetained], and reports a missing or deleted stream with
//     [StreamNotFound] and [StreamDeleted];
//   - serves its subscriptions with [SubscribeAll] and [SubscribeStream],
//     which need only pages of events and a signal of change ([Log]);
//   - runs the conformance suite of es/estest.
//
// es/memstore, the reference store, and es/sqlstore are built this way.
// es/esdbtest keeps its own copy of these rules, on purpose: it is an
// independent imitation of the real server, against which this kit is
// checked.
package esdriver
