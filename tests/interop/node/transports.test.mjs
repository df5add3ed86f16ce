// The official socket.io-client (npm) against the `interop` example over each transport:
// the client's default options (HTTP long-polling, then the upgrade to WebSocket), polling
// only, and WebSocket only; events, binary attachments and broadcasts on each. Run through
// tests/interop/run.sh, which sets INTEROP_URL.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Client, WAIT_MS, emitWithAckArgs, nextEvent, requireUrl, token, within } from "./helpers.mjs";

const TEST_TIMEOUT = { timeout: 20_000 };
const url = requireUrl("INTEROP_URL");
const opened = [];

async function client(name, transports) {
  const c = await new Client(name, url, { transports }).connect(["/"]);
  opened.push(c);
  return c;
}

/** Echo (with a binary attachment) and a broadcast to another client, over `c`. */
async function exercise(c, other) {
  const blob = Buffer.from([0, 1, 2, 255]);
  const echoed = await emitWithAckArgs(c.sockets["/"], "echo-ack", { blob }, "text");
  assert.deepEqual(Buffer.from(echoed[0].blob), blob);
  assert.equal(echoed[1], "text");
  const event = `ev-${token()}`;
  const got = nextEvent(other.sockets["/"], event);
  const ack = await emitWithAckArgs(c.sockets["/"], "broadcast", { event, data: { n: 1 } });
  assert.deepEqual(ack, ["done"]);
  assert.deepEqual(await got, [{ n: 1 }]);
}

after(() => {
  for (const c of opened) c.close();
});

describe("socket.io-client transports", () => {
  test("default options: long-polling first, then the upgrade to WebSocket", TEST_TIMEOUT, async () => {
    const a = await client("default-a", null);
    const b = await client("default-b", null);
    for (const c of [a, b]) {
      const engine = c.manager.engine;
      if (engine.transport.name !== "websocket") {
        assert.equal(engine.transport.name, "polling");
        await within(new Promise((resolve) => engine.once("upgrade", resolve)), WAIT_MS, "upgrade");
      }
      assert.equal(engine.transport.name, "websocket");
    }
    await exercise(a, b);
    await exercise(b, a);
  });

  test("polling only, binary attachments as base64", TEST_TIMEOUT, async () => {
    const a = await client("polling-a", ["polling"]);
    const b = await client("polling-b", ["polling"]);
    assert.equal(a.manager.engine.transport.name, "polling");
    await exercise(a, b);
    await exercise(b, a);
  });

  test("WebSocket only", TEST_TIMEOUT, async () => {
    const a = await client("ws-a", ["websocket"]);
    const b = await client("polling-c", ["polling"]);
    assert.equal(a.manager.engine.transport.name, "websocket");
    await exercise(a, b);
    await exercise(b, a);
  });
});
