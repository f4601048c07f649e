// TLS with credentials (only when the server serves TLS).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { db, connect, connectAs, name, events, collect, tls } from "./lib.mjs";

describe("security", { skip: !tls && "the server does not serve TLS" }, () => {
  it("accepts the admin's credentials", async (t) => {
    const client = connect(t);
    const stream = name("secure");
    await client.appendToStream(stream, events(1));
    assert.equal((await collect(client.readStream(stream))).length, 1);
  });

  it("refuses wrong credentials", async (t) => {
    const client = connectAs(t, "admin", "wrong-password");
    // Unauthenticated, which both clients report as access denied.
    const denied = (err) => {
      assert.ok(err instanceof db.AccessDeniedError, `${err?.constructor?.name}: ${err}`);
      return true;
    };
    await assert.rejects(client.appendToStream(name("denied"), events(1)), denied);
    await assert.rejects(collect(client.readStream(name("denied"))), denied);
    await assert.rejects(client.getStreamMetadata(name("denied")), denied);
  });

  it("lets a user who is not an admin write user streams, not system streams", async (t) => {
    // TestNodeClients adds the user ops (password ops-secret).
    const client = connectAs(t, "ops", "ops-secret");
    const stream = name("ops");
    await client.appendToStream(stream, events(1));
    assert.equal((await collect(client.readStream(stream))).length, 1);
    await assert.rejects(client.appendToStream(`$${name("system")}`, events(1)), db.AccessDeniedError);
  });

  it("takes other credentials per call", async (t) => {
    const client = connect(t);
    await assert.rejects(
      client.appendToStream(name("per-call"), events(1), {
        credentials: { username: "nobody", password: "nothing" },
      }),
      db.AccessDeniedError,
    );
    const stream = name("per-call-ok");
    await client.appendToStream(stream, events(1), { credentials: { username: "admin", password: "changeit" } });
  });
});
