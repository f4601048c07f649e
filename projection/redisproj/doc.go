// Package redisproj keeps projection checkpoints in Redis, so that a read
// model in Redis changes in the MULTI/EXEC that records how far it got:
// each batch of events takes effect exactly once, whatever crashes.
//
//	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
//	cps, err := redisproj.New(ctx, client) // keys under "eventfold:"
//	runner, err := projection.NewRunner(store, cps, types, projection.Projection[redisproj.Tx]{
//		Name:   "order-details",
//		Handle: projection.Dispatch(projection.On(placeOrder)),
//		Reset:  redisproj.DeleteVersion,
//		Drop:   redisproj.DeleteVersion,
//	})
//	go runner.Run(ctx)
//
//	func placeOrder(ctx context.Context, tx redisproj.Tx, ev projection.Typed[OrderPlaced]) error {
//		return tx.Pipe.HSet(ctx, tx.Key(ev.Version, "order", ev.Stream), "customer", ev.Payload.Customer).Err()
//	}
//
// Queries find the keys of the version to read with
// [Checkpoints.ActivePrefix].
//
// # Transactions
//
// [Checkpoints.Commit] WATCHes the checkpoint's key (and the lease's, see
// Leases), reads them on the watching connection to check the fences,
// then runs the projection's handler on a [Tx]: the handler queues its
// writes on [Tx].Pipe, a MULTI/EXEC pipeline, after which Commit queues the
// checkpoint's write (a hash "<prefix>cp:<key>") and sends the whole
// transaction. Redis runs it at once, or not at all if a watched key
// changed (Commit then tries again). A crash, even SIGKILL in the middle
// of a batch, leaves the read model and its checkpoint as of the last
// transaction that ran, and the runner resumes from there: nothing is
// skipped or applied twice. An error of the handler discards the queued
// writes.
//
// [Tx].Read reads at once, on the watching connection: the handler sees
// Redis as it was before the batch, not its own queued writes. Handlers
// therefore write with commands that compute on the server (HINCRBY,
// HSET, SADD, ZADD, EVAL of a script of their own) rather than read,
// compute and write back.
//
// Redis does not roll back a transaction: a command that fails when it
// runs (one on a key of the wrong type: a bug) fails alone while the
// others take effect, the checkpoint included. Commit reports it with
// [ErrPartialCommit] and its next commit of the key is fenced
// ([ErrConflict]), so that the runner stops rather than apply the batch
// again: fix the handler, then rebuild.
//
// Commits are fenced as in sqlproj: a [Checkpoints] writes a checkpoint
// only if Redis still holds what it last read or wrote there, and fails
// with [ErrConflict] otherwise, writing nothing.
//
// # Leases
//
// A lease is the key "<prefix>lease:<key>", set if absent with a
// time-to-live ([WithLeaseTTL], 15 s by default) to a value unique to the
// take, and renewed every third of it by a goroutine with a script that
// extends the key only while it holds that value. A commit of a leased key
// WATCHes the lease and checks its value in the transaction: a replica
// whose lease expired (it froze, or was cut off from Redis) or was taken
// over cannot commit; its commit fails with an error matching
// [projection.ErrFenced] and [projection.ErrLeaseLost], writing nothing.
// Memberships ([Checkpoints.Join]) are leases too, listed in the set
// "<prefix>members:<group>".
//
// # Versions and keys
//
// Everything the package writes is under a prefix ([WithPrefix];
// "eventfold:" by default): checkpoints "cp:<key>", leases "lease:<key>",
// memberships "members:<group>", the active versions "active:<name>", the
// dead letters "dead:<name>" (a hash of JSON by event ID), and the read
// models "rm:<name>:v<version>:…". Each version of a read model has keys
// of its own ([Tx.Key], [Checkpoints.Prefix]): a blue/green rebuild builds
// version n+1 beside n, then [Checkpoints.SetActiveVersion] switches the
// active version (and runs the projection's Activate) in one MULTI/EXEC;
// queries that look up [Checkpoints.ActivePrefix] read the new version
// from then on. [DeleteVersion] deletes a version's keys (SCAN and UNLINK,
// in the transaction): the Reset of a rebuild in place, and the Drop of an
// old version.
//
// # Redis restarts and outages
//
// A Redis without persistence that restarts has lost the read models,
// their checkpoints and the leases together, consistently: the holder's
// lease is gone, so its next commit is fenced and its renewal finds the
// lease lost; the runner (with [projection.WithRestart]) takes the lease
// again, finds no checkpoint, and rebuilds the read model from the log,
// under the code's version. With persistence (AOF, RDB), Redis may come
// back as of an earlier moment: read model and checkpoint still agree,
// and the runner resumes from that checkpoint.
//
// Every call into Redis has a deadline ([WithCallTimeout]); a lost
// connection or a call that times out fails with an error matching
// [projection.ErrUnavailable], which the runner retries without blaming
// the batch's events. Make the client with ContextTimeoutEnabled, so that
// go-redis applies those deadlines to its sockets.
//
// New takes the client of one Redis server (*redis.Client, also the
// failover client of Sentinel): a transaction of Redis Cluster cannot
// span keys of different hash slots, so Cluster and Ring clients are
// refused.
package redisproj
