// Smoke test: the official socket.io-client (npm) against the real `chat-server` binary,
// over WebSocket only, with the client's default options (polling, then the upgrade) as in
// the README, and polling only. Run through tests/interop/run.sh, which sets CHAT_URL.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  Client,
  SETTLE_MS,
  emitWithAckArgs,
  nextEvent,
  requireUrl,
  sleep,
  token,
  waitConnectError,
} from "./helpers.mjs";

const TEST_TIMEOUT = { timeout: 20_000 };
const url = requireUrl("CHAT_URL");
const run = token();
const opened = [];
after(() => {
  for (const client of opened) client.close();
});

function client(nick, transports = ["websocket"]) {
  const c = new Client(nick, url, { auth: { nick }, transports });
  opened.push(c);
  return c;
}

describe("socket.io-client against chat-server", () => {
  test("join, message: the ack carries the message, the other member gets it, the sender does not", TEST_TIMEOUT, async () => {
    const alice = await client(`alice${run}`).connect(["/"]);
    // Bob connects as the README shows: the client's default options.
    const bob = await client(`bob${run}`, null).connect(["/"]);
    const room = `interop-${run}`;

    const [aliceJoin] = await emitWithAckArgs(alice.sockets["/"], "join", { room });
    assert.deepEqual(aliceJoin, { ok: true, room, members: [alice.name], topic: null, history: [] });
    const [bobJoin] = await emitWithAckArgs(bob.sockets["/"], "join", { room });
    assert.deepEqual(bobJoin, {
      ok: true,
      room,
      members: [alice.name, bob.name].sort(),
      topic: null,
      history: [],
    });

    const bobGets = nextEvent(bob.sockets["/"], "message");
    const before = Date.now();
    const text = `hello from node ${run} ✓`;
    const [ack] = await emitWithAckArgs(alice.sockets["/"], "message", { room, text });
    assert.equal(ack.ok, true, `message ack: ${JSON.stringify(ack)}`);
    const message = ack.message;
    assert.deepEqual(Object.keys(message).sort(), ["from", "id", "room", "seq", "text", "ts"]);
    assert.equal(typeof message.id, "string");
    assert.ok(message.id.length > 0);
    assert.equal(message.room, room);
    assert.equal(message.seq, 1, "first message of a fresh room");
    assert.equal(message.from, alice.name);
    assert.equal(message.text, text);
    assert.ok(Number.isInteger(message.ts), "ts is integer milliseconds");
    assert.ok(Math.abs(message.ts - before) < 60_000, `ts ${message.ts} is near now ${before}`);

    assert.deepEqual(await bobGets, [message], "bob receives exactly the acked message");
    await sleep(SETTLE_MS);
    assert.deepEqual(alice.eventsNamed("message"), [], "the sender gets its message in the ack only");
    assert.equal(bob.eventsNamed("message").length, 1, "bob gets it once");

    // A second message: seq goes up by one.
    const [ack2] = await emitWithAckArgs(bob.sockets["/"], "message", { room, text: "reply" });
    assert.equal(ack2.ok, true);
    assert.equal(ack2.message.seq, 2);
    assert.equal(ack2.message.from, bob.name);
    await sleep(SETTLE_MS);
    assert.deepEqual(
      alice.eventsNamed("message").map((r) => r.args),
      [[ack2.message]],
    );
    assert.equal(bob.eventsNamed("message").length, 1, "bob does not get his own message");
  });

  test("heartbeat: the server pings, the client pongs, the connection stays up", TEST_TIMEOUT, async () => {
    // run.sh starts chat-server with a short ping interval (CHAT_TEST_PING_INTERVAL_MS).
    const interval = Number(process.env.CHAT_TEST_PING_INTERVAL_MS || 0);
    if (!interval) return; // the default 25 s interval is too long to watch here
    await heartbeat(`dave${run}`, ["websocket"], interval);
    // Over long-polling the pings come as the held GET's answers, the pongs as POSTs.
    await heartbeat(`erin${run}`, ["polling"], interval);
  });

  async function heartbeat(nick, transports, interval) {
    const dave = await client(nick, transports).connect(["/"]);
    const engine = dave.manager.engine;
    let pings = 0;
    dave.manager.on("ping", () => pings++);
    const start = Date.now();
    await sleep(interval * 3 + interval / 2);
    const elapsed = Date.now() - start;
    // No ping right after the open packet; then one per interval.
    assert.ok(pings >= 2 && pings <= Math.ceil(elapsed / interval), `${pings} pings in ${elapsed} ms`);
    assert.equal(dave.manager.engine, engine, "same Engine.IO connection");
    assert.equal(engine.readyState, "open");
    assert.ok(dave.sockets["/"].connected);
    assert.equal(engine.transport.name, transports[0]);
    const [ack] = await emitWithAckArgs(dave.sockets["/"], "join", { room: `beat-${run}` });
    assert.equal(ack.ok, true);
  }

  test("a duplicate nick gets CONNECT_ERROR with data.code nick_taken", TEST_TIMEOUT, async () => {
    const nick = `carol${run}`;
    await client(nick).connect(["/"]);
    const dup = client(nick);
    const err = await waitConnectError(dup.socket("/"));
    assert.equal(typeof err.message, "string");
    assert.ok(err.message.length > 0);
    assert.equal(err.data?.code, "nick_taken", `CONNECT_ERROR data: ${JSON.stringify(err.data)}`);
    assert.equal(dup.sockets["/"].connected, false);
  });
});
