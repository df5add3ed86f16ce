// sio.js: a small Socket.IO v5 client over Engine.IO v4, written for this chat's page (no
// build step, no library). Three layers, each knowing only the one below:
//
// - Transports: `WsTransport` (one packet per WebSocket frame) and `PollingTransport` (HTTP
//   long-polling: GET held until the server has packets, POST to send; packets joined by the
//   record separator \x1e, binary as "b" + base64).
// - `Engine`: one Engine.IO session: the open packet, the heartbeat (answer ping "2" with
//   pong "3"; a server silent for pingInterval + pingTimeout is given up), and the upgrade from
//   polling to WebSocket ("2probe", "3probe", "5").
// - `Manager` and `Socket`: Socket.IO packets, namespaces multiplexed over one Engine, acks
//   with timeouts, and the reconnect loop (capped, jittered backoff; WebSocket first, polling
//   when the WebSocket cannot be opened).
//
// Nothing here knows the chat: the chat's events and its retry policy are app.js's.

const RS = "\x1e";

/** The Engine.IO URL of a server base such as "http://host:port" (or "" for this page's). */
export function engineUrl(base, transport, sid) {
  const url = new URL("/socket.io/", base || location.origin);
  if (transport === "websocket") {
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  }
  url.searchParams.set("EIO", "4");
  url.searchParams.set("transport", transport);
  if (sid) url.searchParams.set("sid", sid);
  return url.toString();
}

/** The delay before reconnect attempt `attempt` (0-based): base * 2^attempt, capped, times
 * a random factor in [0.5, 1) so that many pages do not come back at the same instant. */
export function backoff(attempt, base, cap) {
  const exp = Math.min(cap, base * 2 ** Math.min(attempt, 16));
  return Math.round(exp * (0.5 + Math.random() / 2));
}

// ---- transports ----

/** One WebSocket: each text frame is an Engine.IO packet. */
class WsTransport {
  constructor(url) {
    this.name = "websocket";
    this.url = url;
    this.onpacket = () => {};
    this.onclose = () => {};
    this.ws = null;
  }

  /** Resolves once the socket is open; rejects when it cannot be opened. */
  open() {
    return new Promise((resolve, reject) => {
      let opened = false;
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onopen = () => {
        opened = true;
        resolve();
      };
      ws.onmessage = (e) => {
        if (typeof e.data === "string") this.onpacket(e.data);
      };
      ws.onclose = (e) => {
        if (!opened) {
          reject(new Error("the WebSocket could not be opened"));
          return;
        }
        this.onclose(e.reason ? `closed: ${e.reason}` : `the connection closed (${e.code})`);
      };
    });
  }

  send(packets) {
    for (const p of packets) this.ws.send(p);
  }

  /** Stops quietly: no onclose. */
  abort() {
    if (!this.ws) return;
    this.ws.onclose = null;
    this.ws.onmessage = null;
    try {
      this.ws.close(1000);
    } catch (_) {
      // Already closing.
    }
  }
}

/** Splits a long-polling payload into Engine.IO packets (strings; binary ones as bytes). */
export function decodePayload(body) {
  if (body === "") return [];
  return body.split(RS).map((p) => {
    if (p.startsWith("b")) {
      return Uint8Array.from(atob(p.slice(1)), (c) => c.charCodeAt(0));
    }
    return p;
  });
}

/** HTTP long-polling: one GET held at a time, one POST at a time (the rest waits in
 * `queue` and goes in the next POST). */
class PollingTransport {
  constructor(base) {
    this.name = "polling";
    this.base = base;
    this.sid = null;
    this.onpacket = () => {};
    this.onclose = () => {};
    this.queue = [];
    this.posting = null;
    this.polling = null;
    this.paused = false;
    this.closed = false;
  }

  url() {
    const u = new URL(engineUrl(this.base, "polling", this.sid));
    u.searchParams.set("t", Date.now().toString(36) + Math.random().toString(36).slice(2, 6));
    return u.toString();
  }

  async request(method, body) {
    const init = { method, cache: "no-store", credentials: "same-origin" };
    if (body !== undefined) {
      init.body = body;
      init.headers = { "Content-Type": "text/plain;charset=UTF-8" };
    }
    const res = await fetch(this.url(), init);
    const text = await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
    return text;
  }

  /** The handshake GET: resolves with its packets (the open packet first). */
  async open() {
    const packets = decodePayload(await this.request("GET"));
    const open = packets[0];
    if (typeof open !== "string" || !open.startsWith("0")) throw new Error("no open packet");
    this.sid = JSON.parse(open.slice(1)).sid;
    return packets;
  }

  /** Starts the GET loop. The held GET is never aborted: a client that hangs up on it ends
   * the session on the server. */
  start() {
    const loop = async () => {
      while (!this.closed && !this.paused) {
        let body;
        this.polling = this.request("GET");
        try {
          body = await this.polling;
        } catch (e) {
          this.fail(`polling failed: ${e.message}`);
          return;
        } finally {
          this.polling = null;
        }
        for (const p of decodePayload(body)) {
          if (this.closed) return;
          this.onpacket(p);
        }
      }
    };
    loop();
  }

  send(packets) {
    this.queue.push(...packets);
    this.flush();
  }

  async flush() {
    if (this.posting || this.queue.length === 0 || this.closed || this.paused) return;
    const body = this.queue.splice(0).join(RS);
    this.posting = this.request("POST", body);
    try {
      await this.posting;
    } catch (e) {
      this.posting = null;
      this.fail(`sending failed: ${e.message}`);
      return;
    }
    this.posting = null;
    this.flush();
  }

  fail(reason) {
    if (this.closed) return;
    this.closed = true;
    this.onclose(reason);
  }

  /** For the upgrade: no new GET or POST; resolves once the held GET (which the server
   * answers with a noop once it has the probe) and the POST under way are answered. */
  async pause() {
    this.paused = true;
    await Promise.allSettled([this.polling, this.posting].filter(Boolean));
  }

  /** Stops quietly: no onclose. Sends the close packet when asked (a clean close). */
  abort(sayClose = false) {
    if (sayClose && !this.closed && this.sid) {
      this.request("POST", "1").catch(() => {});
    }
    this.closed = true;
  }
}

// ---- the Engine.IO session ----

/**
 * One Engine.IO session over a transport. `onmessage(data)` gets each message packet's data,
 * `onclose(reason)` is called once when the session ends (not after `close()`).
 */
export class Engine {
  constructor(base, mode, log) {
    this.base = base;
    this.mode = mode; // "auto" (WebSocket, else polling, then the upgrade), "polling", "websocket"
    this.log = log;
    this.transport = null;
    this.onmessage = () => {};
    this.onclose = () => {};
    this.onupgrade = () => {};
    this.silence = null;
    this.silenceMs = 45000;
    this.closed = false;
  }

  get transportName() {
    return this.transport ? this.transport.name : "";
  }

  /** Opens a session: WebSocket first unless told otherwise, then long-polling; rejects
   * when neither could. */
  async open(allowPolling) {
    if (this.mode !== "polling") {
      try {
        return await this.openWebSocket();
      } catch (e) {
        if (this.mode === "websocket" || !allowPolling) throw e;
        this.log(`WebSocket failed (${e.message}): trying long-polling`);
      }
    }
    return this.openPolling();
  }

  openWebSocket() {
    const t = new WsTransport(engineUrl(this.base, "websocket"));
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        t.abort();
        reject(new Error("no open packet in time"));
      }, 10000);
      t.onpacket = (p) => {
        if (settled) {
          this.onpacket(p);
          return;
        }
        settled = true;
        clearTimeout(timer);
        if (!p.startsWith("0")) {
          t.abort();
          reject(new Error("no open packet"));
          return;
        }
        this.use(t, JSON.parse(p.slice(1)));
        resolve(this);
      };
      t.open().catch((e) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  async openPolling() {
    const t = new PollingTransport(this.base);
    const packets = await t.open();
    const handshake = JSON.parse(packets[0].slice(1));
    t.onpacket = (p) => this.onpacket(p);
    this.use(t, handshake);
    // The caller sets its handlers before the handshake's other packets are read.
    setTimeout(() => {
      for (const p of packets.slice(1)) this.onpacket(p);
      t.start();
      if (this.mode === "auto" && (handshake.upgrades || []).includes("websocket")) {
        this.upgrade(handshake.sid);
      }
    }, 0);
    return this;
  }

  use(t, handshake) {
    this.transport = t;
    this.sid = handshake.sid;
    this.silenceMs = (handshake.pingInterval || 25000) + (handshake.pingTimeout || 20000);
    t.onclose = (reason) => this.end(reason);
    this.alive();
  }

  /** Any packet shows the server is there; one silent for pingInterval + pingTimeout (no
   * ping in that time) is given up. */
  alive() {
    clearTimeout(this.silence);
    this.silence = setTimeout(
      () => this.end("ping timeout: the server went silent"),
      this.silenceMs,
    );
  }

  onpacket(p) {
    if (this.closed) return;
    this.alive();
    if (typeof p !== "string") return; // binary attachments: the chat sends none
    switch (p[0]) {
      case "2": // ping
        this.transport.send(["3" + p.slice(1)]);
        break;
      case "4":
        this.onmessage(p.slice(1));
        break;
      case "1":
        this.end("the server closed the session", false);
        break;
      default: // 6 noop, and anything else: nothing to do
        break;
    }
  }

  /** Long-polling to WebSocket: "2probe", and on "3probe" pause polling, send "5" and go on
   * over the WebSocket. Any failure leaves the session on long-polling. */
  upgrade(sid) {
    const ws = new WsTransport(engineUrl(this.base, "websocket", sid));
    let probed = false;
    const giveUp = (why) => {
      clearTimeout(timer);
      ws.abort();
      this.log(`staying on long-polling (${why})`);
    };
    // A probe not answered in time is given up (the server gives up its side too).
    const timer = setTimeout(() => {
      if (!probed) giveUp("no answer to the probe");
    }, 10000);
    ws.onpacket = async (p) => {
      if (probed || p !== "3probe") {
        giveUp("unexpected answer to the probe");
        return;
      }
      probed = true;
      clearTimeout(timer);
      const polling = this.transport;
      await polling.pause();
      if (this.closed || polling.closed) {
        ws.abort();
        return;
      }
      ws.send(["5"]);
      ws.onpacket = (q) => this.onpacket(q);
      ws.onclose = (reason) => this.end(reason);
      // What waited to be POSTed goes over the WebSocket, in order.
      const waiting = polling.queue.splice(0);
      polling.abort();
      this.transport = ws;
      ws.send(waiting);
      this.onupgrade();
    };
    ws.onclose = () => {
      if (!probed) this.log("the upgrade's WebSocket closed: staying on long-polling");
    };
    ws.open().then(
      () => {
        if (this.closed) ws.abort();
        else ws.send(["2probe"]);
      },
      (e) => giveUp(e.message),
    );
  }

  send(data) {
    if (!this.closed) this.transport.send(["4" + data]);
  }

  /** The session is over for us (`onclose` once). Unless the server ended it (`tellServer`
   * false), a long-polling session is closed on the server too, so our nick is free at once
   * for the next session (a WebSocket's close does that by itself). */
  end(reason, tellServer = true) {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.silence);
    if (this.transport) this.transport.abort(tellServer);
    this.onclose(reason);
  }

  /** Closes on purpose (the close packet "1"): no onclose. */
  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.silence);
    if (!this.transport) return;
    if (this.transport.name === "websocket") {
      this.transport.send(["1"]);
      this.transport.abort();
    } else {
      this.transport.abort(true);
    }
  }
}

// ---- Socket.IO packets ----

const CONNECT = 0;
const DISCONNECT = 1;
const EVENT = 2;
const ACK = 3;
const CONNECT_ERROR = 4;

/** `<type>[<nsp>,][<id>][<json>]`, the namespace left out for "/". */
export function encodePacket(type, nsp, data, id) {
  let s = String(type);
  if (nsp !== "/") s += nsp + ",";
  if (id !== undefined && id !== null) s += String(id);
  if (data !== undefined) s += JSON.stringify(data);
  return s;
}

/** The inverse of `encodePacket`; binary packets (5, 6) are marked `binary`. */
export function decodePacket(s) {
  const type = Number(s[0]);
  let i = 1;
  let binary = false;
  if (type === 5 || type === 6) {
    binary = true;
    i = s.indexOf("-", i) + 1;
  }
  let nsp = "/";
  if (s[i] === "/") {
    const comma = s.indexOf(",", i);
    nsp = comma < 0 ? s.slice(i) : s.slice(i, comma);
    i = comma < 0 ? s.length : comma + 1;
  }
  let id = null;
  const start = i;
  while (i < s.length && s[i] >= "0" && s[i] <= "9") i++;
  if (i > start) id = Number(s.slice(start, i));
  const rest = s.slice(i);
  return { type, nsp, id, data: rest ? JSON.parse(rest) : undefined, binary };
}

// ---- the manager: one Engine, many namespaces, reconnects ----

/** A minimal event emitter. */
class Emitter {
  constructor() {
    this.listeners = new Map();
  }

  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, []);
    this.listeners.get(name).push(fn);
  }

  fire(name, ...args) {
    for (const fn of this.listeners.get(name) || []) fn(...args);
  }
}

/** The code of a request's error when the connection was lost before its answer (or was
 * down when it was made): the request may be made again once connected. */
export const CONNECTION_LOST = "connection_lost";

function connectionLost(message) {
  const e = new Error(message);
  e.code = CONNECTION_LOST;
  return e;
}

/**
 * Keeps one Engine.IO session open, reconnecting with capped, jittered backoff, and the
 * namespaces' sockets on it. Events: "state" ({state: "connecting" | "open" | "down",
 * reason, retryIn, transport}), "log" (text).
 */
export class Manager extends Emitter {
  constructor({ base = "", transport = "auto", backoffBase = 250, backoffCap = 3000 } = {}) {
    super();
    this.base = base;
    this.mode = transport;
    this.backoffBase = backoffBase;
    this.backoffCap = backoffCap;
    this.sockets = new Map();
    this.engine = null;
    this.nextId = 0;
    this.acks = new Map();
    /** Engine sessions opened so far (a new one after each reconnect). */
    this.sessions = 0;
    this.attempt = 0;
    this.stopped = true;
    this.wsWorked = false;
    this.retryTimer = null;
  }

  /** The socket of a namespace (made on first use; CONNECTed whenever the Engine opens). */
  socket(nsp, auth) {
    let s = this.sockets.get(nsp);
    if (!s) {
      s = new Socket(this, nsp, auth);
      this.sockets.set(nsp, s);
      s.connect();
    }
    return s;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  async connect() {
    if (this.stopped) return;
    this.fire("state", { state: "connecting", attempt: this.attempt });
    const engine = new Engine(this.base, this.mode, (t) => this.fire("log", t));
    try {
      // Once a WebSocket has worked, a failed one means the server is away, not that
      // WebSockets are blocked on the way: no fallback to polling then.
      await engine.open(!this.wsWorked);
    } catch (e) {
      this.down(e.message);
      return;
    }
    if (this.stopped) {
      engine.close();
      return;
    }
    if (engine.transportName === "websocket") this.wsWorked = true;
    this.engine = engine;
    this.sessions += 1;
    this.attempt = 0;
    engine.onmessage = (data) => this.onmessage(data);
    engine.onclose = (reason) => this.lost(reason);
    engine.onupgrade = () => {
      this.wsWorked = true;
      this.fire("state", { state: "open", transport: "websocket" });
    };
    this.fire("state", { state: "open", transport: engine.transportName });
    for (const s of this.sockets.values()) {
      if (s.wanted) s.sendConnect();
    }
  }

  /** The session ended: every socket is down and its acks fail; connect again later. */
  lost(reason) {
    this.engine = null;
    for (const [id, a] of this.acks) {
      clearTimeout(a.timer);
      a.reject(connectionLost("connection lost before the answer"));
      this.acks.delete(id);
    }
    for (const s of this.sockets.values()) s.lost(reason);
    this.down(reason);
  }

  down(reason) {
    if (this.stopped) return;
    const delay = backoff(this.attempt, this.backoffBase, this.backoffCap);
    this.attempt += 1;
    this.fire("state", { state: "down", reason, retryIn: delay });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Tries again now instead of waiting out the backoff (the browser came back online). */
  retryNow() {
    if (this.stopped || this.engine) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.engine) this.engine.close();
    this.engine = null;
  }

  get transportName() {
    return this.engine ? this.engine.transportName : "";
  }

  sendPacket(type, nsp, data, id) {
    if (!this.engine) return false;
    this.engine.send(encodePacket(type, nsp, data, id));
    return true;
  }

  /** An EVENT with an ack id; resolves with the ack's first argument, rejects when the
   * connection is lost first or after `timeoutMs`. */
  request(nsp, event, arg, timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.acks.delete(id);
        reject(new Error("no answer from the server"));
      }, timeoutMs);
      this.acks.set(id, { resolve, reject, timer });
      if (!this.sendPacket(EVENT, nsp, [event, arg], id)) {
        clearTimeout(timer);
        this.acks.delete(id);
        reject(connectionLost("not connected"));
      }
    });
  }

  onmessage(data) {
    let p;
    try {
      p = decodePacket(data);
    } catch (e) {
      this.fire("log", `undecodable packet: ${e.message}`);
      return;
    }
    const s = this.sockets.get(p.nsp);
    switch (p.type) {
      case CONNECT:
        if (s) s.onconnect(p.data);
        break;
      case CONNECT_ERROR:
        if (s) s.onconnecterror(p.data || {});
        break;
      case DISCONNECT:
        if (s) s.ondisconnect();
        break;
      case EVENT:
        if (Array.isArray(p.data) && s) s.fire(String(p.data[0]), ...p.data.slice(1));
        // The server asks for an ack when it must know the event arrived.
        if (p.id !== null) this.sendPacket(ACK, p.nsp, [], p.id);
        break;
      case ACK: {
        const a = this.acks.get(p.id);
        if (!a) break;
        this.acks.delete(p.id);
        clearTimeout(a.timer);
        a.resolve(Array.isArray(p.data) ? p.data[0] : undefined);
        break;
      }
      default:
        this.fire("log", `ignored packet type ${p.type}`);
    }
  }
}

/**
 * A namespace's socket. `auth()` is called for each CONNECT, so it carries fresh state (the
 * chat's `since`). Events: "connect" (sid), "connect_error" ({message, data}), "disconnect"
 * ({reason, byServer}), and every server event by its name.
 */
export class Socket extends Emitter {
  constructor(manager, nsp, auth) {
    super();
    this.manager = manager;
    this.nsp = nsp;
    this.auth = auth;
    this.connected = false;
    this.wanted = true;
    this.retryTimer = null;
  }

  sendConnect() {
    clearTimeout(this.retryTimer);
    this.manager.sendPacket(CONNECT, this.nsp, this.auth());
  }

  /** CONNECTs again after `delay` ms (a refusal worth retrying). */
  retryAfter(delay) {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.wanted && !this.connected && this.manager.engine) this.sendConnect();
    }, delay);
  }

  /** Asks for the namespace (now if the Engine is open, else when it opens). */
  connect() {
    this.wanted = true;
    if (this.manager.engine && !this.connected) this.sendConnect();
  }

  /** Leaves the namespace for good. */
  disconnect() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    if (this.connected) this.manager.sendPacket(DISCONNECT, this.nsp);
    this.connected = false;
    this.manager.sockets.delete(this.nsp);
  }

  /** An event without an ack (the chat's volatile `typing`). */
  emit(event, arg) {
    if (this.connected) this.manager.sendPacket(EVENT, this.nsp, [event, arg]);
  }

  request(event, arg, timeoutMs) {
    if (!this.connected) return Promise.reject(new Error("not connected"));
    return this.manager.request(this.nsp, event, arg, timeoutMs);
  }

  onconnect(data) {
    this.connected = true;
    this.fire("connect", data && data.sid);
  }

  onconnecterror(data) {
    this.connected = false;
    this.fire("connect_error", data);
  }

  ondisconnect() {
    this.connected = false;
    this.wanted = false;
    this.fire("disconnect", { reason: "the server closed the namespace", byServer: true });
  }

  lost(reason) {
    clearTimeout(this.retryTimer);
    if (!this.connected) return;
    this.connected = false;
    this.fire("disconnect", { reason, byServer: false });
  }
}
