// Shared helpers for the socket.io-client interop tests. Every wait here is bounded.
import { randomBytes } from "node:crypto";
import { Manager } from "socket.io-client";

/** How long receivers are collected after an acked broadcast. */
export const SETTLE_MS = 300;
/** Bound on any single wait for the server (connect, ack, event). */
export const WAIT_MS = 5000;

export function requireUrl(name) {
  const url = process.env[name];
  if (!url) {
    throw new Error(`${name} is not set: run tests/interop/run.sh, which starts the servers`);
  }
  return url;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A short random token, to keep rooms, events and nicks of different runs apart. */
export function token() {
  return randomBytes(4).toString("hex");
}

/** Rejects with a clear message when `promise` does not settle within `ms`. */
export function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Emits with an ack and resolves with ALL the ack's arguments (bounded by the client's own timeout). */
export function emitWithAckArgs(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(WAIT_MS).emit(event, ...args, (err, ...ackArgs) => {
      if (err) reject(new Error(`no ack for ${event} on ${socket.nsp} within ${WAIT_MS} ms`));
      else resolve(ackArgs);
    });
  });
}

/** Resolves on `connect`, rejects with the CONNECT_ERROR (or a timeout). */
export function waitConnect(socket) {
  return within(
    new Promise((resolve, reject) => {
      if (socket.connected) return resolve(socket);
      const onConnect = () => {
        socket.off("connect_error", onError);
        resolve(socket);
      };
      const onError = (err) => {
        socket.off("connect", onConnect);
        reject(err);
      };
      socket.once("connect", onConnect);
      socket.once("connect_error", onError);
    }),
    WAIT_MS,
    `connect to ${socket.nsp}`,
  );
}

/** Resolves with the Error of the CONNECT_ERROR; fails if the socket connects instead. */
export function waitConnectError(socket) {
  return within(
    new Promise((resolve, reject) => {
      const onError = (err) => {
        socket.off("connect", onConnect);
        resolve(err);
      };
      const onConnect = () => {
        socket.off("connect_error", onError);
        reject(new Error(`${socket.nsp} connected although a CONNECT_ERROR was expected`));
      };
      socket.once("connect_error", onError);
      socket.once("connect", onConnect);
    }),
    WAIT_MS,
    `CONNECT_ERROR from ${socket.nsp}`,
  );
}

/** Resolves with the arguments of the next `event` on `socket`. */
export function nextEvent(socket, event, ms = WAIT_MS) {
  return within(
    new Promise((resolve) => socket.once(event, (...args) => resolve(args))),
    ms,
    `event ${event} on ${socket.nsp}`,
  );
}

/**
 * One client = one Manager = one Engine.IO connection (WebSocket only unless `transports`
 * says otherwise; `null` for the client's defaults), with one Socket per namespace
 * multiplexed over it. Every event that arrives is recorded per namespace.
 */
export class Client {
  constructor(name, url, { auth, transports = ["websocket"] } = {}) {
    this.name = name;
    this.manager = new Manager(url, {
      // `null`: the client's defaults (long-polling, then the upgrade to WebSocket).
      ...(transports ? { transports } : {}),
      reconnection: false,
      timeout: WAIT_MS,
      autoConnect: true,
    });
    this.auth = auth;
    this.sockets = {};
    /** @type {{nsp: string, event: string, args: unknown[]}[]} */
    this.received = [];
  }

  /** Opens (or returns) the socket for `nsp`, recording everything it receives. */
  socket(nsp, auth = this.auth) {
    if (!this.sockets[nsp]) {
      const socket = this.manager.socket(nsp, auth === undefined ? {} : { auth });
      socket.onAny((event, ...args) => {
        this.received.push({ nsp, event, args: args.filter((a) => typeof a !== "function") });
      });
      this.sockets[nsp] = socket;
    }
    return this.sockets[nsp];
  }

  async connect(namespaces) {
    const sockets = namespaces.map((nsp) => this.socket(nsp));
    await Promise.all(sockets.map(waitConnect));
    return this;
  }

  eventsNamed(event) {
    return this.received.filter((r) => r.event === event);
  }

  close() {
    for (const socket of Object.values(this.sockets)) socket.disconnect();
    this.manager._close?.();
    this.manager.engine?.close();
  }
}

/**
 * Every (client, namespace) that received `event`, one entry per delivery, sorted:
 * "A" for a delivery on `/`, "A/admin" on `/admin`. Duplicates stay, so a socket that got a
 * broadcast twice shows up twice.
 */
export function receiversOf(clients, event) {
  const out = [];
  for (const client of clients) {
    for (const r of client.eventsNamed(event)) {
      out.push(r.nsp === "/" ? client.name : `${client.name}${r.nsp}`);
    }
  }
  return out.sort();
}
