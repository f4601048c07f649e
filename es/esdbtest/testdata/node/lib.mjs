// Shared helpers of the esdbtest Node.js suite. ESDBTEST_CLIENT picks the
// client under test ("eventstore": @eventstore/db-client, "kurrent":
// @kurrent/kurrentdb-client); ESDBTEST_CONNECTION is the server's
// connection string, ESDBTEST_TLS=1 says it serves TLS with credentials,
// ESDBTEST_VERSION is the version it reports.
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { after } from "node:test";

const require = createRequire(import.meta.url);

export const clientName = process.env.ESDBTEST_CLIENT ?? "eventstore";
if (clientName !== "eventstore" && clientName !== "kurrent") {
  throw new Error(`ESDBTEST_CLIENT=${clientName}: want eventstore or kurrent`);
}
export const kurrent = clientName === "kurrent";
export const tls = process.env.ESDBTEST_TLS === "1";
// serverVersion is the version the server reports.
export const serverVersion = process.env.ESDBTEST_VERSION ?? "24.10.0";

const pkg = kurrent ? "@kurrent/kurrentdb-client" : "@eventstore/db-client";
// db is the client module; both export the same names for what we use.
export const db = require(pkg);
const Client = kurrent ? db.KurrentDBClient : db.EventStoreDBClient;

// StreamsService describes the v1 Streams service, to ask the client
// whether the server advertised a method.
export const StreamsService = require(
  kurrent
    ? `${pkg}/generated/kurrentdb/protocols/v1/streams_grpc_pb`
    : `${pkg}/generated/streams_grpc_pb`,
).StreamsService;

// connectionString returns the server's connection string in the client's
// own scheme, with extra query parameters.
export function connectionString(extra = "") {
  let s = process.env.ESDBTEST_CONNECTION;
  if (!s) throw new Error("ESDBTEST_CONNECTION is not set");
  if (kurrent) s = s.replace(/^esdb:/, "kurrentdb:");
  return extra ? `${s}&${extra}` : s;
}

// clients are the clients connect made, by connection string: a test file
// shares them (a client's first call takes a while with the kurrent
// client), and closes them when its tests are done.
const clients = new Map();
after(() => Promise.all([...clients.values()].map((c) => c.dispose())));

// connect returns a client of the server, shared by the tests of a file.
export function connect(_t, extra = "") {
  const s = connectionString(extra);
  if (!clients.has(s)) clients.set(s, Client.connectionString(s));
  return clients.get(s);
}

// connectAs returns a client of the server that sends other credentials.
export function connectAs(t, user, password) {
  const s = connectionString().replace(/\/\/[^@/]*@/, "//");
  const client = Client.connectionString(
    s.replace("//", `//${encodeURIComponent(user)}:${encodeURIComponent(password)}@`),
  );
  t.after(() => client.dispose());
  return client;
}

// appendOptions returns the options of appendToStream for an expected
// state: the kurrent client renamed expectedRevision to streamState.
export const appendOptions = (state, more = {}) =>
  kurrent ? { streamState: state, ...more } : { expectedRevision: state, ...more };

// versions returns the expected and actual state of a wrong expected
// version error: the kurrent client renamed them expectedState and
// actualState.
export const versions = (err) =>
  kurrent
    ? { expected: err.expectedState, actual: err.actualState }
    : { expected: err.expectedVersion, actual: err.actualVersion };

// name returns a stream or group name unique to this run.
export const name = (prefix) => `${prefix}-${randomUUID()}`;

// events returns n JSON events of the type, numbered in their data.
export function events(n, type = "test-event", extra = {}) {
  return Array.from({ length: n }, (_, i) =>
    db.jsonEvent({ type, data: { n: i }, ...extra }),
  );
}

// collect reads an async iterable to the end.
export async function collect(iterable) {
  const out = [];
  for await (const x of iterable) out.push(x);
  return out;
}

// iterators holds the one iterator take uses per subscription.
const iterators = new WeakMap();

// take returns the next n items of a subscription that keep accepts,
// leaving it open for the caller to close; it fails after ms milliseconds.
export async function take(iterable, n, ms = 10_000, keep = () => true) {
  const out = [];
  if (n === 0) return out;
  let iterator = iterators.get(iterable);
  if (!iterator) {
    iterator = iterable[Symbol.asyncIterator]();
    iterators.set(iterable, iterator);
  }
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms with ${out.length}/${n} items`)), ms);
  });
  try {
    while (out.length < n) {
      const next = await Promise.race([iterator.next(), timeout]);
      if (next.done) throw new Error(`ended after ${out.length}/${n} items`);
      if (keep(next.value)) out.push(next.value);
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

// eventually retries fn until it stops throwing, for at most ms.
export async function eventually(fn, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
