// Package estest is the conformance suite of the [es.Store] contract, in the
// spirit of [testing/fstest.TestFS] and [testing/slogtest.Run]: a Store
// implementation's tests call [Run], and the suite checks that the store has
// EventStoreDB's semantics.
//
//	func TestConformance(t *testing.T) {
//		estest.Run(t, func(t *testing.T) es.Store {
//			return memstore.MustNew()
//		})
//	}
//
// # What it checks
//
// Subtests are grouped by operation, so that one group can be run alone
// with go test -run 'TestConformance/Append':
//
//   - Append: the expected-revision matrix (any, no stream, stream exists,
//     exact) against missing, existing, soft-deleted and tombstoned
//     streams; results; empty appends; generated IDs and default content
//     types; idempotent re-appends;
//   - ReadStream and ReadAll: directions, start points, limits, the fields
//     of recorded events, early breaks and cancelled contexts;
//   - Validation: invalid stream names for every operation, events without
//     a type, unknown content types, the maximum append size;
//   - StreamMetadata: `$maxCount`, `$tb` and `$maxAge` enforced on reads;
//   - Delete and Tombstone: soft deletes, recreation, hard deletes;
//   - SubscribeStream and SubscribeAll: start points, caught-up, live
//     events, filters and checkpoints, cancellation;
//   - Concurrency: racing writers and subscribers watching them
//     (sized by [WithConcurrency]).
//
// # Stores that are not empty
//
// The suite never assumes that a store is empty or fresh: newStore may
// return the same store to every subtest, even a shared EventStoreDB node
// that other programs write to. Every subtest uses stream names of its own
// (with a random UUID in them), and looks at `$all` only from a position
// taken just before its own appends, keeping only its own streams' events.
// It assumes that positions are strictly increasing, not consecutive, and
// ignores system events (types starting with "$") that a server adds,
// except where a subtest is about them.
//
// Subscriptions run in goroutines that each subtest stops and waits for
// before it ends; nothing sleeps: the suite waits for messages with a
// deadline ([WithTimeout]).
package estest
