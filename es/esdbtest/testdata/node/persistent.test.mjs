// Persistent subscriptions to a stream and to $all.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { db, connect, name, events, take, collect, eventually, kurrent } from "./lib.mjs";

const {
  START,
  END,
  ROUND_ROBIN,
  DISPATCH_TO_SINGLE,
  PINNED,
  persistentSubscriptionToStreamSettingsFromDefaults: streamSettings,
  persistentSubscriptionToAllSettingsFromDefaults: allSettings,
  streamNameFilter,
} = db;

// subscribe opens a consumer, closed when the test ends.
function subscribe(t, client, stream, group, bufferSize = 10) {
  const sub = client.subscribeToPersistentSubscriptionToStream(stream, group, { bufferSize });
  t.after(() => sub.unsubscribe());
  return sub;
}

const revisions = (evs) => evs.map((e) => e.event.revision);
const parkedStream = (stream, group) => `$persistentsubscription-${stream}::${group}-parked`;
const checkpointStream = (stream, group) => `$persistentsubscription-${stream}::${group}-checkpoint`;

describe("persistent subscriptions to a stream", () => {
  it("create, get info with every setting, list, update, delete", async (t) => {
    const client = connect(t);
    const stream = name("ps");
    const group = name("g");
    const settings = streamSettings({
      startFrom: 2n,
      resolveLinkTos: true,
      extraStatistics: true,
      messageTimeout: 12_000,
      maxRetryCount: 3,
      checkPointAfter: 500,
      checkPointLowerBound: 10,
      checkPointUpperBound: 1, // below the lower bound: valid, the maximum wins
      maxSubscriberCount: 4,
      liveBufferSize: 50,
      readBatchSize: 5,
      historyBufferSize: 60,
      consumerStrategyName: PINNED,
    });
    await client.createPersistentSubscriptionToStream(stream, group, settings);
    const info = await client.getPersistentSubscriptionToStreamInfo(stream, group);
    assert.equal(info.groupName, group);
    assert.equal(info.eventSource, stream);
    for (const key of Object.keys(settings)) {
      assert.deepEqual(info.settings[key], settings[key], key);
    }

    const listed = await client.listPersistentSubscriptionsToStream(stream);
    assert.deepEqual(listed.map((i) => i.groupName), [group]);
    const everything = await client.listAllPersistentSubscriptions();
    assert.ok(everything.some((i) => i.groupName === group && i.eventSource === stream));

    await assert.rejects(client.createPersistentSubscriptionToStream(stream, group, settings), (err) => {
      assert.ok(err instanceof db.PersistentSubscriptionExistsError, String(err));
      assert.equal(err.message, `6 ALREADY_EXISTS: Subscription group ${group} on stream ${stream} exists.`);
      return true;
    });

    await client.updatePersistentSubscriptionToStream(stream, group, {
      ...settings,
      startFrom: END,
      consumerStrategyName: ROUND_ROBIN,
      maxRetryCount: 7,
    });
    const updated = await client.getPersistentSubscriptionToStreamInfo(stream, group);
    assert.equal(updated.settings.startFrom, END);
    assert.equal(updated.settings.consumerStrategyName, ROUND_ROBIN);
    assert.equal(updated.settings.maxRetryCount, 7);

    await client.deletePersistentSubscriptionToStream(stream, group);
    await assert.rejects(client.getPersistentSubscriptionToStreamInfo(stream, group), db.PersistentSubscriptionDoesNotExistError);
    await assert.rejects(client.deletePersistentSubscriptionToStream(stream, group), (err) => {
      assert.ok(err instanceof db.PersistentSubscriptionDoesNotExistError, String(err));
      assert.equal(err.message, `5 NOT_FOUND: Subscription group ${group} on stream ${stream} does not exist.`);
      assert.equal(err.groupName, group);
      assert.equal(err.streamName, stream);
      return true;
    });
    await assert.rejects(client.listPersistentSubscriptionsToStream(stream), db.PersistentSubscriptionDoesNotExistError);
  });

  it("update moves the start of a group nothing was acknowledged in", async (t) => {
    const client = connect(t);
    const stream = name("ps-start");
    const group = name("g");
    await client.appendToStream(stream, events(6));
    await client.createPersistentSubscriptionToStream(stream, group, streamSettings({ startFrom: START }));
    await client.updatePersistentSubscriptionToStream(stream, group, streamSettings({ startFrom: 4n }));
    assert.equal((await client.getPersistentSubscriptionToStreamInfo(stream, group)).settings.startFrom, 4n);
    const sub = subscribe(t, client, stream, group);
    const got = await take(sub, 2);
    assert.deepEqual(revisions(got), [4n, 5n]);
  });

  it("ack, nack with retry, skip and park; replay parked; checkpoints", async (t) => {
    const client = connect(t);
    const stream = name("ps-nack");
    const group = name("g");
    await client.appendToStream(stream, events(5));
    await client.createPersistentSubscriptionToStream(
      stream,
      group,
      streamSettings({ startFrom: START, checkPointLowerBound: 1, checkPointUpperBound: 1, checkPointAfter: 100 }),
    );
    const sub = subscribe(t, client, stream, group);
    const [e0, e1, e2, e3, e4] = await take(sub, 5);
    const [read0] = await collect(client.readStream(stream, { maxCount: 1 }));
    assert.deepEqual(e0.event.position, read0.event.position, "the log position of each event");
    await sub.ack(e0);
    await sub.nack(db.PARK, "park it", e1);
    await sub.nack(db.SKIP, "skip it", e2);
    await sub.nack(db.RETRY, "again", e3);
    await sub.nack(db.PARK, "park it too", e4);
    const [retried] = await take(sub, 1);
    assert.equal(retried.event.revision, 3n);
    assert.equal(retried.retryCount, 1);
    await sub.ack(retried);

    const parked = await eventually(async () => {
      const evs = await collect(client.readStream(parkedStream(stream, group), { resolveLinkTos: true }));
      assert.equal(evs.length, 2);
      return evs;
    });
    assert.deepEqual(parked.map((e) => `${e.event.revision}@${e.event.streamId}`), [`1@${stream}`, `4@${stream}`]);
    assert.equal(parked[0].link.type, "$>");

    const info = await eventually(async () => {
      const i = await client.getPersistentSubscriptionToStreamInfo(stream, group);
      assert.equal(i.stats.parkedMessageCount, 2n);
      assert.equal(i.stats.lastCheckpointedEventRevision, 4n);
      return i;
    });
    assert.equal(info.stats.lastKnownEventRevision, 4n);
    const [checkpoint] = await collect(
      client.readStream(checkpointStream(stream, group), { direction: db.BACKWARDS, fromRevision: END, maxCount: 1 }),
    );
    assert.equal(checkpoint.event.type, "$SubscriptionCheckpoint");
    assert.equal(checkpoint.event.data, "4"); // the revision as a JSON string

    await client.replayParkedMessagesToStream(stream, group, { stopAt: 1 });
    const [replayed] = await take(sub, 1);
    assert.equal(replayed.event.revision, 1n);
    await sub.ack(replayed);
    await eventually(async () => {
      const i = await client.getPersistentSubscriptionToStreamInfo(stream, group);
      assert.equal(i.stats.parkedMessageCount, 1n);
    });
    await client.replayParkedMessagesToStream(stream, group);
    const [rest] = await take(sub, 1);
    assert.equal(rest.event.revision, 4n);
    await sub.ack(rest);
    await eventually(async () => {
      const i = await client.getPersistentSubscriptionToStreamInfo(stream, group);
      assert.equal(i.stats.parkedMessageCount, 0n);
    });
  });

  it("reports the connection name and the extra statistics", async (t) => {
    const connectionName = name("conn");
    const client = connect(t, `connectionName=${connectionName}`);
    assert.equal(client.connectionName, connectionName);
    const stream = name("ps-conn");
    const group = name("g");
    await client.appendToStream(stream, events(3));
    await client.createPersistentSubscriptionToStream(stream, group, streamSettings({ startFrom: START, extraStatistics: true }));
    const sub = subscribe(t, client, stream, group);
    for (const e of await take(sub, 3)) await sub.ack(e);
    const info = await eventually(async () => {
      const i = await client.getPersistentSubscriptionToStreamInfo(stream, group);
      assert.equal(i.connections.length, 1);
      assert.equal(i.connections[0].totalItems, 3n);
      assert.ok(i.connections[0].extraStatistics?.size > 0, "extra statistics reported");
      return i;
    });
    const [connection] = info.connections;
    assert.equal(connection.connectionName, connectionName);
    assert.ok(connection.from.length > 0);
    for (const key of ["mean", "median", "fastest", "highest", "99.9%"]) {
      assert.ok(connection.extraStatistics.has(key), key);
    }
  });

  it("deals messages with every consumer strategy", async (t) => {
    const client = connect(t);
    const strategies = [ROUND_ROBIN, DISPATCH_TO_SINGLE, PINNED];
    if (kurrent) strategies.push(db.PINNED_BY_CORRELATION);
    for (const strategy of strategies) {
      const stream = name(`ps-${strategy}`);
      const group = name("g");
      await client.createPersistentSubscriptionToStream(
        stream,
        group,
        streamSettings({ startFrom: START, consumerStrategyName: strategy }),
      );
      assert.equal((await client.getPersistentSubscriptionToStreamInfo(stream, group)).settings.consumerStrategyName, strategy);
      const a = subscribe(t, client, stream, group, 20);
      const b = subscribe(t, client, stream, group, 20);
      await eventually(async () => {
        assert.equal((await client.getPersistentSubscriptionToStreamInfo(stream, group)).connections.length, 2);
      });
      await client.appendToStream(
        stream,
        Array.from({ length: 8 }, (_, i) =>
          db.jsonEvent({ type: "dealt", data: { i }, metadata: { $correlationId: "one" } }),
        ),
      );
      const info = await eventually(async () => {
        const i = await client.getPersistentSubscriptionToStreamInfo(stream, group);
        const total = i.connections.reduce((n, c) => n + c.inFlightMessages, 0);
        assert.equal(total, 8, strategy);
        return i;
      });
      const counts = info.connections.map((c) => c.inFlightMessages).sort();
      if (strategy === ROUND_ROBIN) assert.deepEqual(counts, [4, 4], strategy);
      else assert.deepEqual(counts, [0, 8], strategy); // one stream, one correlation id: one consumer
      void a;
      void b;
    }
  });
});

describe("persistent subscriptions to $all", () => {
  it("create with a filter, info, list, update, delete", async (t) => {
    const client = connect(t);
    const tag = name("psall").replaceAll("-", "");
    const group = name("g");
    await client.createPersistentSubscriptionToAll(group, allSettings({ startFrom: START }), {
      filter: streamNameFilter({ prefixes: [tag] }),
    });
    const info = await client.getPersistentSubscriptionToAllInfo(group);
    assert.equal(info.eventSource, "$all");
    assert.equal(info.settings.startFrom, START);
    const listed = await client.listPersistentSubscriptionsToAll();
    assert.ok(listed.some((i) => i.groupName === group));

    await client.appendToStream(`${tag}-1`, events(2));
    await client.appendToStream(name("other"), events(2));
    await client.appendToStream(`${tag}-2`, events(1));
    const sub = client.subscribeToPersistentSubscriptionToAll(group, { bufferSize: 10 });
    t.after(() => sub.unsubscribe());
    const got = await take(sub, 3);
    assert.deepEqual(got.map((e) => e.event.streamId), [`${tag}-1`, `${tag}-1`, `${tag}-2`]);
    for (const e of got) await sub.ack(e);

    await client.updatePersistentSubscriptionToAll(group, allSettings({ startFrom: END, maxRetryCount: 2 }));
    const updated = await client.getPersistentSubscriptionToAllInfo(group);
    assert.equal(updated.settings.startFrom, END);
    assert.equal(updated.settings.maxRetryCount, 2);

    await client.deletePersistentSubscriptionToAll(group);
    await assert.rejects(client.getPersistentSubscriptionToAllInfo(group), (err) => {
      assert.ok(err instanceof db.PersistentSubscriptionDoesNotExistError, String(err));
      assert.equal(err.message, `5 NOT_FOUND: Subscription group ${group} on stream $all does not exist.`);
      return true;
    });
  });

  it("parks and replays, with checkpoints as positions", async (t) => {
    const client = connect(t);
    const tag = name("psallpark").replaceAll("-", "");
    const group = name("g");
    await client.createPersistentSubscriptionToAll(
      group,
      allSettings({ startFrom: START, checkPointLowerBound: 1, checkPointUpperBound: 1, checkPointAfter: 100 }),
      { filter: streamNameFilter({ prefixes: [tag] }) },
    );
    const written = await client.appendToStream(`${tag}-1`, events(2));
    const sub = client.subscribeToPersistentSubscriptionToAll(group, { bufferSize: 10 });
    t.after(() => sub.unsubscribe());
    const [first, second] = await take(sub, 2);
    await sub.nack(db.PARK, "park", first);
    await sub.ack(second);
    const info = await eventually(async () => {
      const i = await client.getPersistentSubscriptionToAllInfo(group);
      assert.equal(i.stats.parkedMessageCount, 1n);
      assert.deepEqual(i.stats.lastCheckpointedEventPosition, written.position);
      return i;
    });
    assert.ok(info);
    const parked = await collect(client.readStream(parkedStream("$all", group), { resolveLinkTos: true }));
    assert.equal(parked[0].event.streamId, `${tag}-1`);
    await client.replayParkedMessagesToAll(group);
    const [replayed] = await take(sub, 1);
    assert.equal(replayed.event.revision, 0n);
    await sub.ack(replayed);
  });

  it("says when a group is missing, and when none are listed", async (t) => {
    const client = connect(t);
    const stream = name("none");
    await assert.rejects(client.listPersistentSubscriptionsToStream(stream), (err) => {
      assert.ok(err instanceof db.PersistentSubscriptionDoesNotExistError, String(err));
      return true;
    });
    const group = name("missing");
    const sub = client.subscribeToPersistentSubscriptionToStream(stream, group);
    t.after(() => sub.unsubscribe());
    await assert.rejects(take(sub, 1), (err) => {
      assert.ok(err instanceof db.PersistentSubscriptionDoesNotExistError, String(err));
      assert.equal(err.streamName, stream);
      assert.equal(err.groupName, group);
      return true;
    });
  });

  it("refuses a consumer over the maximum", async (t) => {
    const client = connect(t);
    const stream = name("ps-max");
    const group = name("g");
    await client.createPersistentSubscriptionToStream(stream, group, streamSettings({ maxSubscriberCount: 1 }));
    subscribe(t, client, stream, group);
    await eventually(async () => {
      assert.equal((await client.getPersistentSubscriptionToStreamInfo(stream, group)).connections.length, 1);
    });
    const second = subscribe(t, client, stream, group);
    await assert.rejects(take(second, 1), (err) => {
      assert.ok(err instanceof db.PersistentSubscriptionMaximumSubscribersReachedError, String(err));
      assert.equal(err.groupName, group);
      return true;
    });
  });

  it("restarts the subsystem", async (t) => {
    const client = connect(t);
    await client.restartPersistentSubscriptionSubsystem();
  });
});

