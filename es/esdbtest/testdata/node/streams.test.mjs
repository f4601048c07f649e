// Streams: appends with each expected state, reads, deletes, metadata.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { db, connect, name, events, collect, appendOptions, versions, StreamsService, serverVersion } from "./lib.mjs";

const { ANY, NO_STREAM, STREAM_EXISTS, START, END, BACKWARDS, FORWARDS } = db;

describe("append", () => {
  it("meets a server of the version it reports", async (t) => {
    const client = connect(t);
    assert.equal((await client.capabilities).serverVersion, serverVersion);
  });

  it("is served by BatchAppend, which the server advertises", async (t) => {
    const client = connect(t);
    assert.equal(await client.supports(StreamsService.batchAppend), true);
  });

  it("checks each kind of expected state", async (t) => {
    const client = connect(t);
    const stream = name("append");
    let r = await client.appendToStream(stream, events(2), appendOptions(NO_STREAM));
    assert.equal(r.success, true);
    assert.equal(r.nextExpectedRevision, 1n);
    assert.ok(r.position.commit > 0n);
    r = await client.appendToStream(stream, events(1), appendOptions(1n));
    assert.equal(r.nextExpectedRevision, 2n);
    r = await client.appendToStream(stream, events(1), appendOptions(STREAM_EXISTS));
    assert.equal(r.nextExpectedRevision, 3n);
    r = await client.appendToStream(stream, events(1), appendOptions(ANY));
    assert.equal(r.nextExpectedRevision, 4n);
  });

  it("reports a wrong expected version with both revisions", async (t) => {
    const client = connect(t);
    const stream = name("wev");
    await client.appendToStream(stream, events(3));
    await assert.rejects(client.appendToStream(stream, events(1), appendOptions(NO_STREAM)), (err) => {
      assert.ok(err instanceof db.WrongExpectedVersionError, String(err));
      assert.equal(err.streamName, stream);
      assert.deepEqual(versions(err), { expected: NO_STREAM, actual: 2n });
      return true;
    });
    await assert.rejects(client.appendToStream(stream, events(1), appendOptions(7n)), (err) => {
      assert.ok(err instanceof db.WrongExpectedVersionError, String(err));
      assert.deepEqual(versions(err), { expected: 7n, actual: 2n });
      return true;
    });
    const missing = name("wev-missing");
    await assert.rejects(client.appendToStream(missing, events(1), appendOptions(STREAM_EXISTS)), (err) => {
      assert.ok(err instanceof db.WrongExpectedVersionError, String(err));
      assert.equal(err.streamName, missing);
      assert.deepEqual(versions(err), { expected: STREAM_EXISTS, actual: NO_STREAM });
      return true;
    });
  });

  it("is idempotent for repeated event ids", async (t) => {
    const client = connect(t);
    const stream = name("idempotent");
    const batch = events(3);
    const first = await client.appendToStream(stream, batch, appendOptions(NO_STREAM));
    const again = await client.appendToStream(stream, batch, appendOptions(NO_STREAM));
    assert.equal(again.nextExpectedRevision, first.nextExpectedRevision);
    assert.equal((await collect(client.readStream(stream))).length, 3);
  });

  it("sends large appends in several chunks", async (t) => {
    const client = connect(t);
    const stream = name("chunks");
    const big = Array.from({ length: 20 }, (_, i) =>
      db.jsonEvent({ type: "big", data: { i, pad: "x".repeat(10_000) } }),
    );
    const r = await client.appendToStream(stream, big, appendOptions(NO_STREAM, { batchAppendSize: 50_000 }));
    assert.equal(r.nextExpectedRevision, 19n);
    const read = await collect(client.readStream(stream));
    assert.deepEqual(read.map((e) => e.event.data.i), [...Array(20).keys()]);
  });

  it("refuses an append over the maximum size", async (t) => {
    const client = connect(t);
    const huge = db.binaryEvent({ type: "huge", data: Buffer.alloc(2 << 20) });
    await assert.rejects(client.appendToStream(name("huge"), huge), (err) => {
      assert.ok(err instanceof db.MaxAppendSizeExceededError, String(err));
      assert.equal(err.maxAppendSize, 1 << 20);
      return true;
    });
  });

  it("gives up when its deadline passes", async (t) => {
    const client = connect(t);
    await assert.rejects(
      client.appendToStream(name("deadline"), events(2_000), { deadline: 1 }),
      db.DeadlineExceededError,
    );
  });
});

describe("read stream", () => {
  it("reads forwards and backwards, from revisions, up to maxCount", async (t) => {
    const client = connect(t);
    const stream = name("read");
    await client.appendToStream(stream, events(10), appendOptions(NO_STREAM));
    const all = await collect(client.readStream(stream));
    assert.deepEqual(all.map((e) => e.event.revision), [...Array(10).keys()].map(BigInt));
    const e = all[3].event;
    assert.equal(e.streamId, stream);
    assert.equal(e.type, "test-event");
    assert.equal(e.isJson, true);
    assert.deepEqual(e.data, { n: 3 });
    assert.ok(e.created > 0);
    assert.ok(e.position.commit > 0n);

    const page = await collect(client.readStream(stream, { fromRevision: 4n, maxCount: 3 }));
    assert.deepEqual(page.map((e) => e.event.revision), [4n, 5n, 6n]);
    const back = await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: END, maxCount: 2 }));
    assert.deepEqual(back.map((e) => e.event.revision), [9n, 8n]);
    const backFrom = await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: 2n }));
    assert.deepEqual(backFrom.map((e) => e.event.revision), [2n, 1n, 0n]);
    const past = await collect(client.readStream(stream, { direction: FORWARDS, fromRevision: 10n }));
    assert.equal(past.length, 0);
  });

  it("says a missing stream is not found", async (t) => {
    const client = connect(t);
    const stream = name("missing");
    await assert.rejects(collect(client.readStream(stream, { fromRevision: START })), (err) => {
      assert.ok(err instanceof db.StreamNotFoundError, String(err));
      assert.equal(err.streamName, stream);
      return true;
    });
  });

  it("keeps metadata and binary events apart", async (t) => {
    const client = connect(t);
    const stream = name("binary");
    await client.appendToStream(stream, [
      db.binaryEvent({ type: "bin", data: Buffer.from([1, 2, 3]), metadata: Buffer.from("m") }),
      db.jsonEvent({ type: "json", data: { a: 1 }, metadata: { $correlationId: "c-1" } }),
    ]);
    const [bin, json] = await collect(client.readStream(stream));
    assert.equal(bin.event.isJson, false);
    assert.deepEqual([...bin.event.data], [1, 2, 3]);
    assert.deepEqual(json.event.metadata, { $correlationId: "c-1" });
  });
});

describe("delete", () => {
  it("soft-deletes, then recreates where the stream left off", async (t) => {
    const client = connect(t);
    const stream = name("soft");
    await client.appendToStream(stream, events(3));
    await client.deleteStream(stream, { expectedRevision: 2n });
    await assert.rejects(collect(client.readStream(stream)), db.StreamNotFoundError);
    const r = await client.appendToStream(stream, events(2), appendOptions(NO_STREAM));
    assert.equal(r.nextExpectedRevision, 4n);
    const read = await collect(client.readStream(stream));
    assert.deepEqual(read.map((e) => e.event.revision), [3n, 4n]);
    const meta = await client.getStreamMetadata(stream);
    assert.equal(meta.metadata?.truncateBefore, 3);
  });

  it("refuses a soft delete with a wrong expected revision", async (t) => {
    const client = connect(t);
    const stream = name("soft-wev");
    await client.appendToStream(stream, events(2));
    await assert.rejects(client.deleteStream(stream, { expectedRevision: 5n }), (err) => {
      assert.ok(err instanceof db.WrongExpectedVersionError, String(err));
      assert.equal(err.streamName, stream);
      assert.deepEqual(versions(err), { expected: 5n, actual: 1n });
      return true;
    });
  });

  it("soft-deletes a stream that only has metadata, with no stream expected", async (t) => {
    const client = connect(t);
    const stream = name("meta-only");
    await client.setStreamMetadata(stream, { maxCount: 5 });
    await client.deleteStream(stream, { expectedRevision: NO_STREAM });
  });

  it("tombstones for good", async (t) => {
    const client = connect(t);
    const stream = name("tombstone");
    await client.appendToStream(stream, events(2));
    await client.tombstoneStream(stream);
    const deleted = (err) => {
      assert.ok(err instanceof db.StreamDeletedError, String(err));
      assert.equal(err.streamName, stream);
      return true;
    };
    await assert.rejects(collect(client.readStream(stream)), deleted);
    await assert.rejects(client.appendToStream(stream, events(1)), deleted);
    await assert.rejects(client.deleteStream(stream), deleted);
    await assert.rejects(client.tombstoneStream(stream), deleted);
  });

  it("tombstones a stream that never existed", async (t) => {
    const client = connect(t);
    await client.tombstoneStream(name("tombstone-missing"));
  });
});

describe("metadata", () => {
  it("round-trips every field, and is enforced on reads", async (t) => {
    const client = connect(t);
    const stream = name("meta");
    await client.appendToStream(stream, events(6));
    const acl = {
      readRoles: ["$admins", "ops"],
      writeRoles: ["$admins"],
      deleteRoles: ["$admins"],
      metaReadRoles: ["$all"],
      metaWriteRoles: ["$admins"],
    };
    const set = await client.setStreamMetadata(stream, {
      maxCount: 4,
      truncateBefore: 1,
      cacheControl: 30,
      acl,
      custom: "kept",
    });
    assert.equal(set.success, true);
    const got = await client.getStreamMetadata(stream);
    assert.equal(got.streamName, stream);
    // The client returns the commit position of the metadata event here.
    assert.equal(typeof got.metastreamRevision, "bigint");
    assert.equal(got.metadata.maxCount, 4);
    assert.equal(got.metadata.truncateBefore, 1);
    assert.equal(got.metadata.cacheControl, 30);
    assert.deepEqual(got.metadata.acl, acl);
    assert.equal(got.metadata.custom, "kept");
    const read = await collect(client.readStream(stream));
    assert.deepEqual(read.map((e) => e.event.revision), [2n, 3n, 4n, 5n]);

    await client.setStreamMetadata(stream, { truncateBefore: 5 }, appendOptions(0n));
    const later = await collect(client.readStream(stream));
    assert.deepEqual(later.map((e) => e.event.revision), [5n]);
  });

  it("answers a stream without metadata with none", async (t) => {
    const client = connect(t);
    const got = await client.getStreamMetadata(name("no-meta"));
    assert.equal(got.metadata, undefined);
  });
});
