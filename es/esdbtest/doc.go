// Package esdbtest is an EventStoreDB-compatible gRPC server that runs
// inside a test process, in the spirit of net/http/httptest: no Docker, no
// EventStoreDB binary, the real wire protocol. Point the EventStoreDB v4 Go
// client (github.com/EventStore/EventStore-Client-Go/v4/esdb) at it:
//
//	srv := esdbtest.New(t) // closed when the test ends
//	cfg, _ := esdb.ParseConnectionString(srv.ConnectionString())
//	client, _ := esdb.NewClient(cfg)
//	defer client.Close()
//	_, err := client.AppendToStream(ctx, "order-42", esdb.AppendToStreamOptions{}, event)
//
// Outside tests, [Start] returns a server to [Server.Close] yourself, and
// the command esdbtest/cmd/esdbtest serves one from a terminal.
//
// # What it serves
//
// The Streams service (reads, subscriptions, appends, soft deletes and
// tombstones), PersistentSubscriptions (create, update, delete, read with
// ack and nack, info, list, replay parked, restart), ServerFeatures
// (version [DefaultServerVersion]) and a one-member Gossip, from one
// in-memory log, `$all`. BatchAppend, which the v4 client never calls, and
// the Projections, Users and Operations services answer Unimplemented.
//
// # Semantics
//
// The server follows EventStoreDB 24.x as the v4 client observes it:
//
//   - appends check the expected revision (any, no stream, stream exists,
//     exact) in EventStoreDB's order, are idempotent for repeated event IDs,
//     report a wrong expected version with both revisions, and reject
//     events without type or content type and appends over the maximum
//     append size (1 MiB unless [WithMaxAppendSize]);
//   - stream reads apply `$maxCount`, `$maxAge` and `$tb` from the stream's
//     metadata; missing and soft-deleted streams answer "stream not found",
//     tombstoned ones StreamDeleted;
//   - a soft delete writes `{"$tb": 2^63-1}` to `$$<stream>`, and a later
//     append recreates the stream where it left off; a tombstone writes a
//     `$streamDeleted` record and deletes the stream for good;
//   - subscriptions confirm, deliver history (start points are exclusive),
//     send caught-up, then deliver live events; filtered `$all`
//     subscriptions send checkpoints every window × multiplier records
//     scanned and one just before caught-up;
//   - malformed requests get the status EventStoreDB answers with (mostly
//     InvalidArgument, with its trailers), never a panic or a hang.
//
// Positions are byte-counter-like numbers with commit equal to prepare.
//
// Persistent subscription groups live in memory: unlike EventStoreDB, the
// server writes no checkpoint or parked-message streams to `$all`. The
// consumer strategies are honoured: round robin over the consumers with
// room in their buffer, dispatch to single (the first consumer with room),
// pinned (by a hash of the stream name).
//
// # Security
//
// By default the server speaks plain gRPC and accepts every call: over
// plain gRPC the v4 client sends no credentials. [WithTLS] serves over TLS
// with a self-signed certificate and checks Basic credentials ([DefaultUser]
// and [DefaultPassword], more with [WithUser]) like EventStoreDB with
// anonymous access disabled.
//
// # Steering tests
//
// [Server.Seed] writes events directly, [Server.Events] and [Server.All]
// return what is stored, [Server.SetError] and [Server.FailNext] make
// calls fail with a chosen gRPC status ([NotLeader] sends the client to
// another server), [Server.DropSubscriptions] ends the running
// subscriptions with Unavailable, and [Server.Restart] drops every
// connection while keeping the data, to exercise reconnection paths.
package esdbtest
