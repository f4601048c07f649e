// Details clients rely on: created times, links, results without throwing,
// tombstones under a subscription, metadata expected revisions.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { db, connect, name, events, collect, take, appendOptions, versions } from "./lib.mjs";

const { NO_STREAM, START } = db;

describe("details", () => {
  it("stamps events with their created time", async (t) => {
    const client = connect(t);
    const stream = name("created");
    const before = Date.now();
    await client.appendToStream(stream, events(1));
    const [e] = await collect(client.readStream(stream));
    const created = e.event.created instanceof Date ? e.event.created.getTime() : Number(e.event.created);
    assert.ok(created >= before - 5_000 && created <= Date.now() + 5_000, `created ${e.event.created}`);
  });

  it("reports a failed append as a result when asked not to throw", async (t) => {
    const client = connect(t, "throwOnAppendFailure=false");
    const stream = name("nothrow");
    await client.appendToStream(stream, events(2));
    const r = await client.appendToStream(stream, events(1), appendOptions(NO_STREAM));
    assert.equal(r.success, false);
    assert.equal(r.nextExpectedRevision, 1n);
  });

  it("resolves links", async (t) => {
    const client = connect(t);
    const target = name("target");
    const links = name("links");
    await client.appendToStream(target, events(2));
    await client.appendToStream(links, [
      db.binaryEvent({ type: "$>", data: Buffer.from(`1@${target}`) }),
    ]);
    const [resolved] = await collect(client.readStream(links, { resolveLinkTos: true }));
    assert.equal(resolved.event.streamId, target);
    assert.equal(resolved.event.revision, 1n);
    assert.equal(resolved.link.streamId, links);
    const [raw] = await collect(client.readStream(links));
    assert.equal(raw.event.type, "$>");
    assert.equal(raw.link, undefined);
  });

  it("ends a subscription to a stream that is tombstoned", async (t) => {
    const client = connect(t);
    const stream = name("sub-tomb");
    await client.appendToStream(stream, events(1));
    const sub = client.subscribeToStream(stream, { fromRevision: START });
    t.after(() => sub.unsubscribe());
    await take(sub, 1);
    await client.tombstoneStream(stream);
    await assert.rejects(take(sub, 5), db.StreamDeletedError);
  });

  it("checks the expected revision of metadata", async (t) => {
    const client = connect(t);
    const stream = name("meta-wev");
    await client.setStreamMetadata(stream, { maxCount: 2 });
    // (@kurrent/kurrentdb-client reads the expected state of metadata from
    // streamState, like its appends, and ignores expectedRevision.)
    await assert.rejects(client.setStreamMetadata(stream, { maxCount: 3 }, appendOptions(5n)), (err) => {
      assert.ok(err instanceof db.WrongExpectedVersionError, String(err));
      assert.equal(err.streamName, `$$${stream}`);
      assert.deepEqual(versions(err), { expected: 5n, actual: 0n });
      return true;
    });
  });

  it("nack with stop drops the consumer", async (t) => {
    const client = connect(t);
    const stream = name("ps-stop");
    const group = name("g");
    await client.appendToStream(stream, events(1));
    await client.createPersistentSubscriptionToStream(
      stream,
      group,
      db.persistentSubscriptionToStreamSettingsFromDefaults({ startFrom: START }),
    );
    const sub = client.subscribeToPersistentSubscriptionToStream(stream, group);
    t.after(() => sub.unsubscribe());
    const [first] = await take(sub, 1);
    await sub.nack(db.STOP, "stop", first);
    await assert.rejects(take(sub, 1), (err) => {
      assert.ok(err instanceof db.PersistentSubscriptionDroppedError, String(err));
      assert.equal(err.message, `1 CANCELLED: Subscription group ${group} on stream ${stream} was dropped.`);
      return true;
    });
  });
});
