// Persistent subscription info as the clients' own tests check it.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { db, connect, name, events, collect, eventually, tls } from "./lib.mjs";

const {
  END,
  ROUND_ROBIN,
  persistentSubscriptionToStreamSettingsFromDefaults: streamSettings,
  persistentSubscriptionToAllSettingsFromDefaults: allSettings,
} = db;

// drain acknowledges every event a consumer gets until the test ends.
function drain(t, sub) {
  sub.on("error", () => {});
  sub.on("data", (e) => sub.ack(e).catch(() => {}));
  t.after(() => sub.unsubscribe());
}

describe("persistent subscription info", () => {
  it("to a stream: settings, revisions, the connection", async (t) => {
    const client = connect(t);
    const stream = name("info");
    const group = name("g");
    const settings = streamSettings({ startFrom: END, checkPointUpperBound: 1 });
    await client.createPersistentSubscriptionToStream(stream, group, settings);
    const info = await client.getPersistentSubscriptionToStreamInfo(stream, group);
    assert.deepEqual(info.settings, settings);
    assert.equal(info.connections.length, 0);

    const settings2 = streamSettings({
      ...settings,
      startFrom: 123n,
      checkPointLowerBound: 12,
      maxSubscriberCount: 200,
      consumerStrategyName: ROUND_ROBIN,
    });
    await client.updatePersistentSubscriptionToStream(stream, group, settings2);
    const info2 = await client.getPersistentSubscriptionToStreamInfo(stream, group);
    assert.deepEqual(info2.settings, settings2);
    assert.equal(info2.stats.lastKnownEventRevision, undefined);

    await client.appendToStream(stream, events(200));
    drain(t, client.subscribeToPersistentSubscriptionToStream(stream, group));
    const info3 = await eventually(async () => {
      const i = await client.getPersistentSubscriptionToStreamInfo(stream, group);
      assert.equal(i.stats.lastCheckpointedEventRevision, 199n);
      return i;
    });
    assert.deepEqual(info3.settings, settings2);
    assert.equal(info3.stats.lastKnownEventRevision, 199n);
    assert.equal(info3.connections.length, 1);
    if (tls) assert.equal(info3.connections[0].username, "admin");
    assert.equal(info3.connections[0].connectionName, client.connectionName);
  });

  it("to $all: settings, positions", async (t) => {
    const client = connect(t);
    const group = name("g");
    const settings = allSettings({ startFrom: END, checkPointUpperBound: 1 });
    await client.createPersistentSubscriptionToAll(group, settings);
    const info = await client.getPersistentSubscriptionToAllInfo(group);
    assert.deepEqual(info.settings, settings);

    const [last] = await collect(client.readAll({ direction: db.BACKWARDS, fromPosition: END, maxCount: 1 }));
    const settings2 = allSettings({
      ...settings,
      startFrom: last.event.position,
      checkPointLowerBound: 12,
      maxSubscriberCount: 200,
      consumerStrategyName: ROUND_ROBIN,
    });
    await client.updatePersistentSubscriptionToAll(group, settings2);
    const info2 = await client.getPersistentSubscriptionToAllInfo(group);
    assert.deepEqual(info2.settings, settings2);
    assert.equal("lastKnownEventRevision" in info2.stats, false);

    const written = await client.appendToStream(name("info-all"), events(50));
    drain(t, client.subscribeToPersistentSubscriptionToAll(group));
    const info3 = await eventually(async () => {
      const i = await client.getPersistentSubscriptionToAllInfo(group);
      assert.ok(i.stats.lastCheckpointedEventPosition?.commit >= written.position.commit);
      return i;
    });
    assert.equal("lastCheckpointedEventRevision" in info3.stats, false);
    assert.equal(typeof info3.stats.lastKnownEventPosition?.prepare, "bigint");
  });

  it("is denied to wrong credentials", { skip: !tls && "the server does not serve TLS" }, async (t) => {
    const client = connect(t);
    await assert.rejects(
      client.getPersistentSubscriptionToStreamInfo(name("s"), name("g"), {
        credentials: { username: "AzureDiamond", password: "hunter2" },
      }),
      db.AccessDeniedError,
    );
  });
});

