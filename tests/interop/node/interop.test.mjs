// The official socket.io-client (npm) against the `interop` example
// (server/examples/interop.rs), WebSocket transport only, two namespaces multiplexed over
// one connection per client. Run through tests/interop/run.sh, which sets INTEROP_URL.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  Client,
  SETTLE_MS,
  WAIT_MS,
  emitWithAckArgs,
  nextEvent,
  receiversOf,
  requireUrl,
  sleep,
  token,
  waitConnect,
  waitConnectError,
} from "./helpers.mjs";

const TEST_TIMEOUT = { timeout: 20_000 };
const url = requireUrl("INTEROP_URL");
const run = token();
const room = (name) => `${name}-${run}`;
let eventCounter = 0;
const freshEvent = () => `ev-${run}-${++eventCounter}`;

// Four clients, each ONE Manager (one WebSocket) with a socket on `/` and one on `/admin`.
// Room membership (rooms are per namespace: the same name in two namespaces is two rooms):
//   `/`      : A in r1; B in r1, r2; C in r2; D in none
//   `/admin` : A in r2; B in none;   C in r1; D in r1
const NAMESPACES = ["/", "/admin"];
const MEMBERSHIP = {
  "/": { A: ["r1"], B: ["r1", "r2"], C: ["r2"], D: [] },
  "/admin": { A: ["r2"], B: [], C: ["r1"], D: ["r1"] },
};
const clients = {};
const all = () => Object.values(clients);

/**
 * `sender` asks the server (over `nsp`) to run `handler` with `payload` plus a fresh event
 * name and data; waits for the ack ("done", sent after the broadcast was queued), then
 * collects for SETTLE_MS and returns who received the event (see receiversOf).
 */
async function broadcast(sender, nsp, handler, payload) {
  const event = freshEvent();
  const data = { from: sender.name, nsp, handler, n: eventCounter, nested: { ok: true } };
  const ack = await emitWithAckArgs(sender.sockets[nsp], handler, { ...payload, event, data });
  assert.deepEqual(ack, ["done"], `${handler} ack`);
  await sleep(SETTLE_MS);
  for (const client of all()) {
    for (const r of client.eventsNamed(event)) {
      assert.deepEqual(r.args, [data], `${client.name}${r.nsp} got the broadcast data intact`);
    }
  }
  return receiversOf(all(), event);
}

before(async () => {
  for (const name of ["A", "B", "C", "D"]) {
    clients[name] = await new Client(name, url).connect(NAMESPACES);
  }
  for (const nsp of NAMESPACES) {
    for (const [name, rooms] of Object.entries(MEMBERSHIP[nsp])) {
      for (const r of rooms) {
        const ack = await emitWithAckArgs(clients[name].sockets[nsp], "join", { room: room(r) });
        assert.deepEqual(ack, ["done"], "join ack");
      }
    }
  }
});

after(() => {
  for (const client of all()) client.close();
});

describe("socket.io-client against the interop example", () => {
  test("connects over WebSocket only, two namespaces on one Engine.IO connection", TEST_TIMEOUT, () => {
    const engineIds = new Set();
    for (const client of all()) {
      const [root, admin] = [client.sockets["/"], client.sockets["/admin"]];
      assert.ok(root.connected && admin.connected, `${client.name} connected to both namespaces`);
      assert.equal(root.io, admin.io, "both sockets share one Manager");
      assert.equal(client.manager.engine.transport.name, "websocket");
      assert.ok(typeof root.id === "string" && root.id.length > 0, "socket id on /");
      assert.ok(typeof admin.id === "string" && admin.id.length > 0, "socket id on /admin");
      assert.notEqual(root.id, admin.id, "each namespace gets its own socket id");
      engineIds.add(client.manager.engine.id);
    }
    assert.equal(engineIds.size, 4, "one Engine.IO session per client");
    // Nothing is emitted on connect.
    assert.deepEqual(
      all().flatMap((c) => c.received.map((r) => `${c.name}${r.nsp}:${r.event}`)),
      [],
    );
  });

  test("to(rooms): a union, each member once, sender included only if a member", TEST_TIMEOUT, async () => {
    const { A, D } = clients;
    // D is in no room of `/`; B is in both r1 and r2 but must get it once.
    assert.deepEqual(
      await broadcast(D, "/", "to-rooms", { rooms: [room("r1"), room("r2")] }),
      ["A", "B", "C"],
    );
    // The sender is a member of r1, so it receives its own room broadcast.
    assert.deepEqual(await broadcast(A, "/", "to-rooms", { rooms: [room("r1")] }), ["A", "B"]);
    // Same room name in /admin is a different room: C and D, and nothing arrives on `/`.
    assert.deepEqual(
      await broadcast(A, "/admin", "to-rooms", { rooms: [room("r1")] }),
      ["C/admin", "D/admin"],
    );
    // An empty room receives nothing.
    assert.deepEqual(await broadcast(A, "/", "to-rooms", { rooms: [room("nobody")] }), []);
  });

  test("to(rooms).except(rooms)", TEST_TIMEOUT, async () => {
    const { A, C, D } = clients;
    // r1 ∪ r2 = {A, B, C}; B and C are in r2.
    assert.deepEqual(
      await broadcast(D, "/", "except", { rooms: [room("r1"), room("r2")], except: [room("r2")] }),
      ["A"],
    );
    // No rooms: everyone in the namespace (sender included) except members of r1.
    // Other clients of the namespace (none of ours) are not looked at: the event is fresh.
    assert.deepEqual(
      await broadcast(D, "/", "except", { rooms: [], except: [room("r1")] }),
      ["C", "D"],
    );
    assert.deepEqual(
      await broadcast(C, "/admin", "except", { rooms: [room("r1"), room("r2")], except: [room("r1")] }),
      ["A/admin"],
    );
    assert.deepEqual(
      await broadcast(A, "/admin", "except", { rooms: [], except: [room("r2"), room("r1")] }),
      ["B/admin"],
    );
  });

  test("socket.to(room) and broadcast exclude the sender", TEST_TIMEOUT, async () => {
    const { A, B, C, D } = clients;
    assert.deepEqual(await broadcast(A, "/", "broadcast-room", { room: room("r1") }), ["B"]);
    assert.deepEqual(await broadcast(B, "/", "broadcast-room", { room: room("r2") }), ["C"]);
    // C is in /admin r1 but not in `/` r1: it still is excluded only as the sender.
    assert.deepEqual(
      await broadcast(C, "/admin", "broadcast-room", { room: room("r1") }),
      ["D/admin"],
    );
    // Everyone in the namespace but the sender (our clients only: the event is fresh).
    assert.deepEqual(
      await broadcast(A, "/admin", "broadcast", {}),
      ["B/admin", "C/admin", "D/admin"],
    );
    assert.deepEqual(await broadcast(D, "/", "broadcast", {}), ["A", "B", "C"]);
  });

  test("order: one client's events are handled, acked and broadcast in the order sent", TEST_TIMEOUT, async () => {
    const { A, B } = clients;
    const event = freshEvent();
    const ackOrder = [];
    const pending = [];
    for (let i = 0; i < 50; i++) {
      pending.push(
        emitWithAckArgs(A.sockets["/"], "broadcast-room", { room: room("r1"), event, data: i }).then(
          (ack) => {
            assert.deepEqual(ack, ["done"]);
            ackOrder.push(i);
          },
        ),
      );
    }
    await Promise.all(pending);
    await sleep(SETTLE_MS);
    const range = [...Array(50).keys()];
    assert.deepEqual(ackOrder, range, "acks in order");
    assert.deepEqual(B.eventsNamed(event).map((r) => r.args[0]), range, "broadcasts in order, once each");
    assert.deepEqual(receiversOf(all(), event), Array(50).fill("B"));
  });

  test("leave: a socket that left a room no longer receives its broadcasts", TEST_TIMEOUT, async () => {
    const { B, D } = clients;
    assert.deepEqual(await emitWithAckArgs(B.sockets["/"], "leave", { room: room("r1") }), ["done"]);
    try {
      assert.deepEqual(await broadcast(D, "/", "to-rooms", { rooms: [room("r1")] }), ["A"]);
      // Leaving r1 on `/` does not touch B's other room, nor anything in /admin.
      assert.deepEqual(await broadcast(D, "/", "to-rooms", { rooms: [room("r2")] }), ["B", "C"]);
    } finally {
      await emitWithAckArgs(B.sockets["/"], "join", { room: room("r1") });
    }
  });

  test("client->server ack: echo-ack returns exactly the arguments sent", TEST_TIMEOUT, async () => {
    const { A } = clients;
    const args = [{ "3": [true], z: 1, a: [null, 1.5, "é"] }, "two", 3, [4, { five: 5 }], null];
    assert.deepEqual(await emitWithAckArgs(A.sockets["/"], "echo-ack", ...args), args);
    assert.deepEqual(await emitWithAckArgs(A.sockets["/admin"], "echo-ack", "admin"), ["admin"]);
    // Key order survives the round trip.
    const [echoed] = await emitWithAckArgs(A.sockets["/"], "echo-ack", { b: 1, a: 2, c: 3 });
    assert.deepEqual(Object.keys(echoed), ["b", "a", "c"]);
    // Several acks in flight on both namespaces of one connection resolve to their own ids.
    const pending = [];
    for (let i = 0; i < 10; i++) {
      pending.push(emitWithAckArgs(A.sockets[i % 2 ? "/admin" : "/"], "echo-ack", i));
    }
    assert.deepEqual(await Promise.all(pending), [...Array(10).keys()].map((i) => [i]));
  });

  test("binary: echo-ack returns binary attachments (BINARY_EVENT -> BINARY_ACK)", TEST_TIMEOUT, async () => {
    const { A } = clients;
    const args = [{ blob: Buffer.from([0, 1, 2, 255]), list: [Buffer.from("xyz")] }, "text", Buffer.alloc(0)];
    const echoed = await emitWithAckArgs(A.sockets["/admin"], "echo-ack", ...args);
    assert.equal(echoed.length, 3);
    assert.deepEqual(Buffer.from(echoed[0].blob), args[0].blob);
    assert.deepEqual(Buffer.from(echoed[0].list[0]), args[0].list[0]);
    assert.equal(echoed[1], "text");
    assert.deepEqual(Buffer.from(echoed[2]), args[2]);
  });

  test("server->client ack: the server gets the client's ack arguments", TEST_TIMEOUT, async () => {
    const { B } = clients;
    for (const nsp of NAMESPACES) {
      const socket = B.sockets[nsp];
      const event = freshEvent();
      const seen = [];
      socket.on(event, (data, ack) => {
        seen.push(data);
        assert.equal(typeof ack, "function", "the server asked for an ack");
        ack("pong", { nsp, got: data });
      });
      const result = nextEvent(socket, "server-ack-result");
      const ack = await emitWithAckArgs(socket, "server-ack", { event, data: { ping: nsp } });
      assert.deepEqual(ack, ["done"]);
      // The example emits the client's ack arguments as the event's arguments.
      assert.deepEqual(await result, ["pong", { nsp, got: { ping: nsp } }]);
      assert.deepEqual(seen, [{ ping: nsp }]);
    }
  });

  test("server->client ack that never comes: the server reports a timeout", TEST_TIMEOUT, async () => {
    const { C } = clients;
    const event = freshEvent();
    C.sockets["/"].on(event, () => {
      /* deliberately never acks */
    });
    const result = nextEvent(C.sockets["/"], "server-ack-result", 2000 + WAIT_MS);
    const start = Date.now();
    assert.deepEqual(await emitWithAckArgs(C.sockets["/"], "server-ack", { event, data: 1 }), ["done"]);
    const args = await result;
    const elapsed = Date.now() - start;
    // One object {error: "...timeout..."} (the text is the example's own), after the 2 s timeout.
    assert.equal(args.length, 1, JSON.stringify(args));
    assert.deepEqual(Object.keys(args[0]), ["error"]);
    assert.match(args[0].error, /timeout/);
    assert.ok(elapsed >= 1900 && elapsed < 2000 + WAIT_MS, `timed out after ${elapsed} ms, not ~2000`);
  });

  test("CONNECT_ERROR from a namespace's middleware, on a multiplexed connection", TEST_TIMEOUT, async () => {
    const { D } = clients;
    const secure = D.socket("/secure", { token: "nope" });
    const err = await waitConnectError(secure);
    assert.equal(err.message, "not authorized");
    assert.deepEqual(err.data, { reason: "bad token" });
    assert.equal(secure.connected, false);
    // The refusal touched only /secure: the other namespaces of the connection still work.
    assert.deepEqual(await emitWithAckArgs(D.sockets["/"], "echo-ack", "still here"), ["still here"]);
    assert.deepEqual(await emitWithAckArgs(D.sockets["/admin"], "echo-ack", 1), [1]);
    // A refused namespace may be CONNECTed again on the same connection, with the right auth.
    secure.auth = { token: "letmein" };
    secure.connect();
    await waitConnect(secure);
    assert.ok(typeof secure.id === "string" && secure.id.length > 0);
    assert.ok(![D.sockets["/"].id, D.sockets["/admin"].id].includes(secure.id));
    assert.equal(secure.io.engine, D.sockets["/"].io.engine, "same Engine.IO connection");
    assert.deepEqual(await emitWithAckArgs(D.sockets["/"], "echo-ack", "after"), ["after"]);
    secure.disconnect();
  });

  test("DISCONNECT from one namespace leaves the others of the connection alone", TEST_TIMEOUT, async () => {
    const client = await new Client("G", url).connect(NAMESPACES);
    try {
      const { A } = clients;
      const engine = client.manager.engine;
      client.sockets["/admin"].disconnect();
      assert.deepEqual(await emitWithAckArgs(client.sockets["/"], "echo-ack", "root"), ["root"]);
      assert.equal(client.manager.engine, engine, "same Engine.IO connection");
      assert.equal(engine.readyState, "open");
      // G is gone from /admin (no delivery there) but still in / (delivery on /).
      const event = freshEvent();
      assert.deepEqual(await emitWithAckArgs(A.sockets["/admin"], "broadcast", { event, data: 1 }), ["done"]);
      const event2 = freshEvent();
      assert.deepEqual(await emitWithAckArgs(A.sockets["/"], "broadcast", { event: event2, data: 2 }), ["done"]);
      await sleep(SETTLE_MS);
      assert.deepEqual(receiversOf([client], event), []);
      assert.deepEqual(receiversOf([client], event2), ["G"]);
      // And /admin can be CONNECTed again on the same connection.
      client.sockets["/admin"].connect();
      await waitConnect(client.sockets["/admin"]);
      assert.deepEqual(await emitWithAckArgs(client.sockets["/admin"], "echo-ack", "back"), ["back"]);
    } finally {
      client.close();
    }
  });

  test("CONNECT_ERROR for an unknown namespace", TEST_TIMEOUT, async () => {
    const client = new Client("E", url);
    try {
      await client.connect(["/"]);
      const err = await waitConnectError(client.socket("/no-such-namespace"));
      assert.equal(err.message, "Invalid namespace");
      assert.deepEqual(await emitWithAckArgs(client.sockets["/"], "echo-ack", "ok"), ["ok"]);
    } finally {
      client.close();
    }
  });

  test("CONNECT_ERROR as the first namespace of a fresh connection (no auth)", TEST_TIMEOUT, async () => {
    const client = new Client("F", url);
    try {
      const err = await waitConnectError(client.socket("/secure"));
      assert.equal(err.message, "not authorized");
      assert.deepEqual(err.data, { reason: "bad token" });
    } finally {
      client.close();
    }
  });
});
