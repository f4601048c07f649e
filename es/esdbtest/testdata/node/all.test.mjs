// $all: reads in both directions and server-side filters.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { db, connect, name, events, collect, kurrent } from "./lib.mjs";

const { START, END, BACKWARDS, FORWARDS, streamNameFilter, eventTypeFilter, excludeSystemEvents } = db;

describe("read $all", () => {
  it("reads forwards and backwards from positions", async (t) => {
    const client = connect(t);
    const stream = name("all");
    const written = await client.appendToStream(stream, events(5));
    const forwards = (await collect(client.readAll({ fromPosition: START, maxCount: 100_000 }))).filter(
      (e) => e.event?.streamId === stream,
    );
    assert.equal(forwards.length, 5);
    const positions = forwards.map((e) => e.event.position.commit);
    assert.deepEqual([...positions].sort((a, b) => (a < b ? -1 : 1)), positions);
    assert.equal(forwards[4].event.position.commit, written.position.commit);
    for (const e of forwards) assert.equal(typeof e.commitPosition, "bigint");

    const [last] = await collect(client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1 }));
    assert.ok(last.event.position.commit >= written.position.commit);

    const from = forwards[2].event.position;
    const after = await collect(client.readAll({ fromPosition: from, maxCount: 3 }));
    assert.deepEqual(after.map((e) => e.event.revision), [2n, 3n, 4n], "inclusive forwards");
    const before = await collect(client.readAll({ direction: BACKWARDS, fromPosition: from, maxCount: 2 }));
    assert.deepEqual(before.map((e) => e.event.revision), [1n, 0n], "exclusive backwards");
    if (!kurrent) {
      // (@kurrent/kurrentdb-client reads backwards from the end whatever
      // the direction asked.)
      const none = await collect(client.readAll({ direction: FORWARDS, fromPosition: END }));
      assert.equal(none.length, 0);
    }
  });

  // @eventstore/db-client 6.2.1 reads $all without filters (it sends
  // no_filter); @kurrent/kurrentdb-client sends them.
  const filtered = { skip: !kurrent && "this client reads $all without filters" };

  it("shows system events, and hides them with excludeSystemEvents", filtered, async (t) => {
    const client = connect(t);
    const stream = name("sys");
    await client.setStreamMetadata(stream, { maxCount: 3 });
    const all = await collect(client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 50 }));
    assert.ok(all.some((e) => e.event?.streamId === `$$${stream}` && e.event.type === "$metadata"));
    const filtered = await collect(
      client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 50, filter: excludeSystemEvents() }),
    );
    assert.ok(filtered.length > 0);
    assert.ok(filtered.every((e) => !e.event.type.startsWith("$")));
  });

  it("filters on stream name and event type, by prefix and regex", filtered, async (t) => {
    const client = connect(t);
    const tag = name("f").replaceAll("-", "");
    await client.appendToStream(`${tag}a-1`, events(2, `${tag}Created`));
    await client.appendToStream(`${tag}b-1`, events(2, `${tag}Deleted`));
    await client.appendToStream(`${tag}a-2`, events(1, `${tag}Deleted`));
    const read = async (filter) =>
      (await collect(client.readAll({ fromPosition: START, maxCount: 100_000, filter }))).map(
        (e) => `${e.event.streamId}/${e.event.type}`,
      );
    assert.deepEqual(await read(streamNameFilter({ prefixes: [`${tag}a`] })), [
      `${tag}a-1/${tag}Created`,
      `${tag}a-1/${tag}Created`,
      `${tag}a-2/${tag}Deleted`,
    ]);
    assert.deepEqual(await read(streamNameFilter({ regex: `^${tag}[ab]-1$` })), [
      `${tag}a-1/${tag}Created`,
      `${tag}a-1/${tag}Created`,
      `${tag}b-1/${tag}Deleted`,
      `${tag}b-1/${tag}Deleted`,
    ]);
    assert.deepEqual(await read(eventTypeFilter({ prefixes: [`${tag}Del`] })), [
      `${tag}b-1/${tag}Deleted`,
      `${tag}b-1/${tag}Deleted`,
      `${tag}a-2/${tag}Deleted`,
    ]);
    assert.deepEqual(await read(eventTypeFilter({ regex: `^${tag}C` })), [
      `${tag}a-1/${tag}Created`,
      `${tag}a-1/${tag}Created`,
    ]);
    const backwards = await collect(
      client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1, filter: eventTypeFilter({ prefixes: [tag] }) }),
    );
    assert.equal(backwards[0].event.streamId, `${tag}a-2`);
  });
});
