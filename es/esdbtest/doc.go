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
// The Streams service (reads, subscriptions, appends, batch appends, soft
// deletes and tombstones), PersistentSubscriptions (create, update, delete,
// read with ack and nack, info, list, replay parked, restart),
// ServerFeatures (version [DefaultServerVersion]) and a one-member Gossip,
// from one in-memory log, `$all`. The Projections, Users, Operations,
// Monitoring and cluster services answer Unimplemented; nothing is
// persisted, and there is one node (no elections, no followers).
//
// # Semantics
//
// The server imitates EventStoreDB 23.10 and 24.10 (the versions whose
// behaviour the official v4 Go, Node.js and .NET clients are tested
// against) as their clients observe it:
//
//   - appends check the expected revision (any, no stream, stream exists,
//     exact) in EventStoreDB's order, are idempotent for repeated event IDs,
//     report a wrong expected version with both revisions, and reject
//     events without type or content type and appends over the maximum
//     append size (1 MiB unless [WithMaxAppendSize]);
//   - stream reads apply `$maxCount`, `$maxAge` and `$tb` from the stream's
//     metadata; missing and soft-deleted streams answer "stream not found",
//     tombstoned ones StreamDeleted;
//   - read events carry their commit position, from stream reads too when
//     the version reported is 22.6.0 or later (as from EventStoreDB 22.6);
//   - BatchAppend (used by the Node.js and .NET clients) takes appends as
//     chunks sharing a correlation ID, checks and writes each like Append
//     once its final chunk arrives, and answers each with its correlation
//     ID: success, or a google.rpc.Status whose detail is
//     WrongExpectedVersion, StreamDeleted, AccessDenied,
//     MaximumAppendSizeExceeded, BadRequest or Timeout (its deadline passed);
//   - a soft delete writes `{"$tb": 2^63-1}` to `$$<stream>`, and a later
//     append recreates the stream where it left off; a stream that exists
//     only through its metadata is deleted with expected revision "no
//     stream" (or any); a tombstone writes a `$streamDeleted` record and
//     deletes the stream for good;
//   - subscriptions confirm, deliver history (start points are exclusive),
//     send caught-up, then deliver live events; one that falls more than
//     512 events behind sends fell-behind, reads them as history and
//     sends caught-up again; filtered `$all`
//     subscriptions send checkpoints every window × multiplier records
//     scanned and one just before caught-up;
//   - malformed requests get the status EventStoreDB answers with (mostly
//     InvalidArgument, with its trailers), never a panic or a hang.
//
// Reporting KurrentDB 25.0 or later ([WithServerVersion]), it also serves
// and advertises what KurrentDB 25 adds and its clients use: the v2
// StreamsService.AppendSession (atomic appends to several streams, decided
// under one lock and written contiguously in `$all`; a record's properties
// and schema become its event's JSON metadata) and caught-up and
// fell-behind messages that carry the server's time and the stream
// revision or `$all` position.
// AppendRecords (KurrentDB 26.1) is neither served nor advertised.
//
// Positions are byte-counter-like numbers with commit equal to prepare.
// The errors clients decode (stream deleted, wrong expected version,
// maximum append size, missing metadata, persistent subscriptions) carry
// EventStoreDB's trailers and its messages word for word: the Node.js
// clients show the messages, and their tests compare them.
//
// # Persistent subscriptions
//
// Groups live in memory and write to system streams as EventStoreDB does:
//
//   - a parked message (a nack with park, or a message retried
//     maxRetryCount times) is appended to
//     `$persistentsubscription-<stream>::<group>-parked` (`$all` for groups
//     on `$all`) as a link, type `$>`, data "<revision>@<stream>"; GetInfo
//     counts the parked messages from that stream, and ReplayParked
//     delivers the oldest ones again (all, or up to its limit) and
//     truncates the stream past them with `$tb`;
//   - checkpoints are `$SubscriptionCheckpoint` events in
//     `$persistentsubscription-<stream>::<group>-checkpoint` (`$maxCount`
//     2, an admins-only `$acl`), whose data is the position as a JSON string: "<revision>" for a
//     stream, "C:<commit>/P:<prepare>" for `$all`. The checkpoint is the
//     newest record up to which every message is acknowledged, skipped or
//     parked; it is written as soon as maxCheckpointCount messages were
//     settled since the last one, otherwise every checkpointAfter once at
//     least minCheckpointCount were (a maximum below the minimum is valid:
//     the maximum wins). Replayed parked messages are not checkpointed;
//   - deleting a group soft-deletes both streams. Groups on `$all` never
//     deliver their own checkpoint and parked streams; `$all` reads show
//     them, and on a TLS server only the admin may write system streams.
//
// A group keeps its state while consumers come and go: unacknowledged
// messages of a consumer that leaves are retried. With [WithDataDir],
// groups survive a restart and resume after their last checkpoint.
//
// Consumer strategies: RoundRobin (over the consumers with room in their
// buffer), DispatchToSingle (the first consumer with room), Pinned and
// PinnedByCorrelation. The pinned strategies hash a key onto a fixed set of
// buckets: the stream of the event (the target's stream when links are
// resolved) for Pinned, its `$correlationId` metadata for
// PinnedByCorrelation (the stream when it has none). A bucket goes to the
// consumer with the fewest buckets when its first message comes and stays
// there until that consumer leaves; a consumer that joins gets only
// buckets nobody holds. So messages of one key go to one consumer, in
// order, while the set of consumers is stable; a retry (nack, timeout) or a
// consumer leaving may redeliver messages out of order, on another
// consumer. A message whose consumer has a full buffer waits for it. The
// v4 Go client cannot create a PinnedByCorrelation group (its Create
// panics on the name); other clients send the name in the
// consumer_strategy field.
//
// Create and Update take the start either from the stream or `$all`
// options or, for clients that send the stream in the deprecated
// stream_identifier field (the Node.js clients' Update), from the
// deprecated settings.revision (2^64-1 meaning the end). Update sets the
// group's start; the read cursor moves there only while nothing was
// acknowledged, as a checkpoint wins over the start.
//
// GetInfo reports, per connection, the observed measurements of extra
// statistics when the group has them on (Mean, Median, Fastest, Quintile
// 1-5, 90%, 95%, 99%, 99.5%, 99.9%, Highest: the time from dispatch to
// acknowledgement in milliseconds, over the newest 4096 acknowledgements).
// Rates (average items per second, counts since the last measurement) are
// not measured and stay 0.
//
// GetInfo reports the connection name a client sent in its
// "connection-name" header (the v4 Go client sends none: add it to the
// context with metadata.AppendToOutgoingContext), and the user of a TLS
// connection.
//
// # Security
//
// By default the server speaks plain gRPC and accepts every call: over
// plain gRPC the v4 client sends no credentials. [WithTLS] serves over TLS
// with a self-signed certificate and checks Basic credentials ([DefaultUser]
// and [DefaultPassword], more with [WithUser]) like EventStoreDB with
// anonymous access disabled; [WithCertificate] serves a certificate of
// your own.
//
// # Keeping data
//
// The log lives in memory unless [WithDataDir] names a directory: the
// journal there is loaded at [Start], every write is appended to it and
// synced before it is acknowledged, and a last record torn by a crash is
// dropped at load ([WithLogger] reports it); other damage is a
// [*CorruptJournalError]. Persistent subscription groups are kept too,
// and resume after their last checkpoint. The command
// esdbtest/cmd/esdbtest uses it as a local development server.
//
// # Datasets
//
// [Server.Load] (and [WithDataset], and the command's -load flag) writes a
// dataset into the log: a copy of a log in JSON Lines, one event per
// line, in log order (blank lines are skipped). It keeps the IDs, types,
// data and metadata given, and, when given, positions and created times,
// so that a client reads exactly what another server served:
//
//	{"stream":"order-1","type":"OrderPlaced","id":"5f1c2a40-8a8e-4d6a-9a55-0c1e6f3b7a10","data":{"total":3}}
//	{"stream":"blob-9","type":"Chunk","contentType":"application/octet-stream","dataBase64":"AAEC"}
//	{"stream":"order-1","type":"OrderPaid","revision":1,"position":4096,"created":"2020-01-12T18:16:26.2459170Z"}
//
// The fields of a line:
//
//	stream          the stream name (required; not "$all")
//	type            the event type (required)
//	id              the event ID, a UUID (default: a random one)
//	contentType     "application/json" (the default) or "application/octet-stream"
//	data            the payload as a JSON value, stored as the exact bytes
//	                of the line (spacing included); null or absent: empty
//	dataBase64      the payload in standard base64, for bytes that are not
//	                JSON or whose spacing must survive a rewrite of the
//	                file; excludes data
//	metadata        the user metadata, as for data
//	metadataBase64  the user metadata in base64; excludes metadata
//	created         the created time, RFC 3339 (default: the server's
//	                clock); clients get it in 100-nanosecond ticks
//	position        the position in `$all`, commit and prepare alike
//	                (default: the next one): 1 to 2^62, and above the
//	                position of every record before it
//	revision        the revision the event must get in its stream: it
//	                always follows the stream's last one, and this checks it
//
// An unknown field is an error, so that a misspelt one is not ignored. A
// bad line stops the load with a [*LoadError] naming the line and the
// field, and nothing of the dataset is written. A dataset whose first event
// is stored already must be stored entirely, and then loads as nothing.
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
