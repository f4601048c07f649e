// Catch-up subscriptions to a stream and to $all, filtered with checkpoints.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { db, connect, name, events, take } from "./lib.mjs";

const { START, END, streamNameFilter, eventTypeFilter } = db;

describe("subscriptions", () => {
  it("to a stream: history, caught up, then live", async (t) => {
    const client = connect(t);
    const stream = name("sub");
    await client.appendToStream(stream, events(3));
    const sub = client.subscribeToStream(stream, { fromRevision: START });
    t.after(() => sub.unsubscribe());
    const caughtUp = once(sub, "caughtUp");
    const history = await take(sub, 3);
    assert.deepEqual(history.map((e) => e.event.revision), [0n, 1n, 2n]);
    await caughtUp;
    await client.appendToStream(stream, events(2));
    const live = await take(sub, 2);
    assert.deepEqual(live.map((e) => e.event.revision), [3n, 4n]);
  });

  it("to a stream from a revision (exclusive), and from the end", async (t) => {
    const client = connect(t);
    const stream = name("sub-from");
    await client.appendToStream(stream, events(4));
    const from = client.subscribeToStream(stream, { fromRevision: 1n });
    t.after(() => from.unsubscribe());
    assert.deepEqual((await take(from, 2)).map((e) => e.event.revision), [2n, 3n]);
    const end = client.subscribeToStream(stream, { fromRevision: END });
    t.after(() => end.unsubscribe());
    await once(end, "caughtUp");
    await client.appendToStream(stream, events(1));
    assert.deepEqual((await take(end, 1)).map((e) => e.event.revision), [4n]);
  });

  it("to a stream that does not exist yet", async (t) => {
    const client = connect(t);
    const stream = name("sub-later");
    const sub = client.subscribeToStream(stream);
    t.after(() => sub.unsubscribe());
    await once(sub, "caughtUp");
    await client.appendToStream(stream, events(1));
    assert.deepEqual((await take(sub, 1)).map((e) => e.event.revision), [0n]);
  });

  it("to a tombstoned stream fails", async (t) => {
    const client = connect(t);
    const stream = name("sub-tombstoned");
    await client.tombstoneStream(stream);
    const sub = client.subscribeToStream(stream);
    t.after(() => sub.unsubscribe());
    await assert.rejects(take(sub, 1), db.StreamDeletedError);
  });

  it("to $all: history, caught up, then live", async (t) => {
    const client = connect(t);
    const stream = name("sub-all");
    const written = await client.appendToStream(stream, events(2));
    const sub = client.subscribeToAll({ fromPosition: START });
    t.after(() => sub.unsubscribe());
    const caughtUp = once(sub, "caughtUp");
    const mine = (e) => e.event?.streamId === stream;
    const history = await take(sub, 2, 10_000, mine);
    assert.equal(history[1].event.position.commit, written.position.commit);
    await caughtUp;
    await client.appendToStream(stream, events(1));
    const live = await take(sub, 1, 10_000, mine);
    assert.equal(live[0].event.revision, 2n);
  });

  it("to $all from a position (exclusive)", async (t) => {
    const client = connect(t);
    const stream = name("sub-all-from");
    const first = await client.appendToStream(stream, events(1));
    await client.appendToStream(stream, events(1));
    const sub = client.subscribeToAll({ fromPosition: first.position });
    t.after(() => sub.unsubscribe());
    const [next] = await take(sub, 1);
    assert.equal(next.event.streamId, stream);
    assert.equal(next.event.revision, 1n);
  });

  it("to $all filtered, with checkpoints every interval", async (t) => {
    const client = connect(t);
    const tag = name("chk").replaceAll("-", "");
    const checkpoints = [];
    const sub = client.subscribeToAll({
      fromPosition: START,
      filter: streamNameFilter({
        prefixes: [`${tag}-match`],
        checkpointInterval: 1,
        checkpointReached: (_, position) => {
          checkpoints.push(position);
        },
      }),
    });
    t.after(() => sub.unsubscribe());
    await once(sub, "caughtUp");
    const seenBefore = checkpoints.length;
    assert.ok(seenBefore >= 1, "a checkpoint before caught up");
    await client.appendToStream(`${tag}-other`, events(40));
    await client.appendToStream(`${tag}-match`, events(1));
    const [hit] = await take(sub, 1);
    assert.equal(hit.event.streamId, `${tag}-match`);
    assert.ok(checkpoints.length > seenBefore, "checkpoints while only other streams were written");
    for (let i = 1; i < checkpoints.length; i++) {
      assert.ok(checkpoints[i].commit >= checkpoints[i - 1].commit, "checkpoints never go back");
    }

    const types = client.subscribeToAll({ fromPosition: START, filter: eventTypeFilter({ regex: `^${tag}T` }) });
    t.after(() => types.unsubscribe());
    await client.appendToStream(`${tag}-typed`, events(1, `${tag}Typed`));
    const [typed] = await take(types, 1);
    assert.equal(typed.event.type, `${tag}Typed`);
  });

  it("to $all filtered: a checkpoint every interval × 32 events scanned, as the clients' own test counts them", async (t) => {
    const client = connect(t);
    const a = name("chk-a");
    const marker = await client.appendToStream(name("chk-b"), events(1, "marker"));
    await client.appendToStream(a, events(8));
    const checkpoints = [];
    const sub = client.subscribeToAll({
      fromPosition: marker.position,
      filter: db.excludeSystemEvents({
        checkpointInterval: 2,
        checkpointReached: (_, position) => {
          checkpoints.push(position);
        },
      }),
    });
    t.after(() => sub.unsubscribe());
    for (let i = 0; i < 18; i++) await client.appendToStream(a, events(20));
    await client.appendToStream(a, [...events(15), db.jsonEvent({ type: "finish", data: {} })]);
    const got = await take(sub, 384, 20_000);
    assert.equal(got.at(-1).event.type, "finish");
    // 384 / (32 × 2) = 6, and maybe one when it caught up.
    assert.ok(checkpoints.length >= 6 && checkpoints.length <= 7, `${checkpoints.length} checkpoints`);
    for (const { commit, prepare } of checkpoints) {
      assert.equal(typeof commit, "bigint");
      assert.equal(typeof prepare, "bigint");
    }
  });
});
