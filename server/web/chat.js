// chat.js: the chat client without the page: the chat's events and requests (the same
// vocabulary as protocol/src/events.rs and docs/PROTOCOL.md), the namespaces asked for, and
// the guarantees the terminal client gives too:
//
// - every CONNECT carries `since` ({room: last seq}), so the server rejoins the rooms and
//   replays what was missed;
// - a message is kept in the outbox with its `cid` until acked, and re-sent after a
//   reconnect (the server stores a re-sent cid once);
// - a CONNECT refused with `busy` is retried with a growing, jittered delay, and one refused
//   with `nick_taken` while resuming (our previous connection may still hold the nick) a few
//   times;
// - `since` and the outbox are kept in sessionStorage (through `SessionStore`), so a reload
//   catches up and re-sends. Passwords are kept in memory only.
//
// Showing each message once, by (namespace, room, seq), is the page's (app.js).

import { CONNECTION_LOST, Manager, backoff } from "./sio.js";

/** Request and event names, as in protocol/src/events.rs. */
export const REQUEST = Object.freeze({
  JOIN: "join",
  LEAVE: "leave",
  MESSAGE: "message",
  DM: "dm",
  NICK: "nick",
  ROOMS: "rooms",
  WHO: "who",
  TOPIC: "topic",
  HISTORY: "history",
  TYPING: "typing",
  PING: "ping",
  WHOIS: "whois",
  AWAY: "away",
  KICK: "kick",
  BAN: "ban",
  UNBAN: "unban",
  MUTE: "mute",
  UNMUTE: "unmute",
  OP: "op",
  DEOP: "deop",
  DELETE: "delete",
  UNREGISTER: "unregister",
  RESET_PASSWORD: "reset_password",
  SEARCH: "search",
});

export const SERVER_EVENTS = Object.freeze([
  "message",
  "dm",
  "presence",
  "room",
  "topic",
  "notice",
  "typing",
  "moderation",
  "deleted",
]);

/** Codes of a CONNECT_ERROR or an error ack that the page reacts to. */
export const CODE = Object.freeze({
  BUSY: "busy",
  NICK_TAKEN: "nick_taken",
  NICK_CLAIMED: "nick_claimed",
  WRONG_PASSWORD: "wrong_password",
  RATE_LIMITED: "rate_limited",
  INTERNAL: "internal",
  UNAVAILABLE: "unavailable",
});

/** A CONNECT refused with `nick_taken` while resuming is tried again 2 s apart, for as long
 * as the server may keep our previous session after a drop it did not see (its ping interval
 * plus ping timeout, from the handshake: 45 s by default), and a little longer. */
const NICK_RETRY_MS = 2000;
const NICK_HELD_MS = 45000;

/** A client message id: 128 random bits in hex (crypto.randomUUID needs a secure context,
 * which a page on a LAN address over http is not). */
export function newCid() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** An error from the server (an error ack or a CONNECT_ERROR), with its stable code. */
export class ChatError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** Reads an ack `{"ok":true, ...}` / `{"ok":false,"error":{code,message}}`. */
function unwrap(reply) {
  if (reply && reply.ok === true) return reply;
  const error = (reply && reply.error) || {};
  throw new ChatError(error.code || "bad_request", error.message || "malformed reply");
}

/** What survives a reload, in sessionStorage: the nick, and per namespace the rooms' last
 * seqs and the unacked messages. Never a password. */
export class SessionStore {
  constructor(storage, key = "chat.session.v1") {
    this.storage = storage;
    this.key = key;
  }

  load() {
    try {
      const raw = this.storage.getItem(this.key);
      const data = raw ? JSON.parse(raw) : null;
      if (data && typeof data.nick === "string" && data.nss && typeof data.nss === "object") {
        return data;
      }
    } catch (_) {
      // Unreadable: start afresh.
    }
    return null;
  }

  save(data) {
    const json = JSON.stringify(data);
    try {
      this.storage.setItem(this.key, json);
    } catch (_) {
      // Storage full: the session comes first (a reload catches up and re-sends from it),
      // so the kept direct messages make room for it.
      try {
        this.storage.removeItem(DMS_KEY);
        this.storage.setItem(this.key, json);
      } catch (_) {
        // Still refused: the page still works, a reload just does not catch up.
      }
    }
  }

  clear() {
    this.storage.removeItem(this.key);
  }
}

/** Direct messages kept per conversation, at most this many each, across a reload. */
export const DMS_KEPT = 100;
/** At most this many characters of JSON for all of them: sessionStorage's quota (about 5 MB
 * per origin) is shared with the session (rooms' seqs, unacked messages), which must fit. */
export const DMS_CHARS_MAX = 1_000_000;
/** Where `DmHistory` keeps them. */
export const DMS_KEY = "chat.dms.v1";

/** The direct messages shown, in sessionStorage (this tab only, gone with it): the server
 * keeps none once delivered, so a reload would lose the conversations. Kept for one nick
 * (another nick in the tab starts afresh); by namespace, then by the other's nick
 * (lowercase): `{name, messages}`, the newest `DMS_KEPT`. */
export class DmHistory {
  constructor(storage, key = DMS_KEY) {
    this.storage = storage;
    this.key = key;
    this.data = { nick: "", nss: {} };
  }

  /** The conversations kept for `nick` (none for another nick). */
  load(nick) {
    try {
      const raw = this.storage.getItem(this.key);
      const data = raw ? JSON.parse(raw) : null;
      if (data && typeof data.nick === "string" && data.nick.toLowerCase() === nick.toLowerCase() &&
          data.nss && typeof data.nss === "object") {
        this.data = data;
        return data.nss;
      }
    } catch (_) {
      // Unreadable: start afresh.
    }
    this.data = { nick, nss: {} };
    return {};
  }

  /** Keeps a direct message of the conversation with `other`, once per id. */
  add(nsp, other, message) {
    const byPeer = (this.data.nss[nsp] ||= {});
    const key = other.toLowerCase();
    const conversation = (byPeer[key] ||= { name: other, messages: [] });
    if (conversation.messages.some((m) => m.id === message.id)) return;
    conversation.messages.push(message);
    if (conversation.messages.length > DMS_KEPT) conversation.messages.splice(0, conversation.messages.length - DMS_KEPT);
    this.write(conversation);
  }

  /** The nick changed (`/nick`): the conversations stay its. */
  rename(nick) {
    this.data.nick = nick;
    this.write(null);
  }

  /** Saves, within `DMS_CHARS_MAX`: the conversations least recently written to are dropped
   * first (never `keep`), then `keep`'s oldest messages. */
  write(keep) {
    let json = JSON.stringify(this.data);
    while (json.length > DMS_CHARS_MAX) {
      let oldest = null;
      for (const byPeer of Object.values(this.data.nss)) {
        for (const [key, c] of Object.entries(byPeer)) {
          if (c === keep) continue;
          const last = c.messages.length ? c.messages[c.messages.length - 1].ts : 0;
          if (!oldest || last < oldest.last) oldest = { byPeer, key, last };
        }
      }
      if (oldest) delete oldest.byPeer[oldest.key];
      else if (keep && keep.messages.length > 1) keep.messages.splice(0, Math.ceil(keep.messages.length / 2));
      else break;
      json = JSON.stringify(this.data);
    }
    try {
      this.storage.setItem(this.key, json);
    } catch (_) {
      // Storage full or refused: the conversation is still shown, only not kept.
    }
  }

  clear() {
    this.data = { nick: "", nss: {} };
    this.storage.removeItem(this.key);
  }
}

/** One namespace asked for: its socket, rooms and outbox. */
class Namespace {
  constructor(name, saved) {
    this.name = name;
    this.socket = null;
    this.key = null;
    /** Last seq per joined room (0: joined, nothing seen yet): the next CONNECT's `since`. */
    this.since = { ...(saved && saved.since) };
    /** Messages not acked yet, in the order sent: {cid, room, text, action}. */
    this.outbox = Array.isArray(saved && saved.outbox) ? saved.outbox : [];
    this.everConnected = false;
    this.resuming = Boolean(saved);
    this.busyRefusals = 0;
    this.nickRetries = 0;
    /** Ids of the direct messages seen (a waiting one can come again). */
    this.dmIds = new Set();
  }
}

/**
 * The chat client. Events (`on(name, fn)`):
 * - "state": the connection's ({state, reason, retryIn, transport}, from sio.js);
 * - "ns": a namespace's ({nsp, state: "connected" | "down" | "refused" | "retrying" | "closed",
 *   resumed, reason, code, message});
 * - "joined" ({nsp, reply, auto, again}: `again` when the socket was in the room already),
 *   "left" ({nsp, room});
 * - "sent" ({nsp, entry}) a message in the outbox, "acked" ({nsp, entry, message}),
 *   "failed" ({nsp, entry, error});
 * - the server's events by name, each with ({nsp, ...payload}): "message", "dm" (once per id),
 *   "presence", "room", "topic", "notice", "typing", "moderation", "deleted".
 */
export class ChatClient {
  constructor({ base = "", transport = "auto", store = null } = {}) {
    this.manager = new Manager({ base, transport });
    this.store = store;
    this.nick = null;
    this.password = null;
    /** The away reason (null: here). Away belongs to a connection: said again after a
     * reconnect. */
    this.awayReason = null;
    this.awaySentIn = null;
    this.namespaces = new Map();
    this.listeners = new Map();
    /** The Engine session each outbox entry was last sent in (not saved: a reload sends
     * everything again). */
    this.sentIn = new WeakMap();
    this.manager.on("state", (s) => this.fire("state", s));
    this.manager.on("log", (t) => this.fire("log", t));
  }

  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, []);
    this.listeners.get(name).push(fn);
  }

  fire(name, arg) {
    for (const fn of this.listeners.get(name) || []) fn(arg);
  }

  get transport() {
    return this.manager.transportName;
  }

  /** Starts with a nick (and a password for a registered one), resuming what the session
   * store kept when it is the same nick. Returns the namespaces resumed. */
  start(nick, password) {
    this.nick = nick;
    this.password = password || null;
    const saved = this.store && this.store.load();
    const resumed = [];
    if (saved && saved.nick.toLowerCase() === nick.toLowerCase()) {
      for (const [nsp, data] of Object.entries(saved.nss)) {
        this.namespaces.set(nsp, new Namespace(nsp, data));
        resumed.push(nsp);
      }
    }
    this.save();
    this.manager.start();
    for (const ns of this.namespaces.values()) this.attach(ns);
    return resumed;
  }

  stop() {
    this.manager.stop();
  }

  /** Forgets the session (logging out): nothing is resumed by a reload. */
  forget() {
    this.stop();
    if (this.store) this.store.clear();
  }

  save() {
    if (!this.store || !this.nick) return;
    const nss = {};
    for (const ns of this.namespaces.values()) {
      nss[ns.name] = { since: ns.since, outbox: ns.outbox };
    }
    this.store.save({ nick: this.nick, nss });
  }

  /** The rooms joined in a namespace, and the messages waiting for their ack. */
  rooms(nsp) {
    const ns = this.namespaces.get(nsp);
    return ns ? Object.keys(ns.since) : [];
  }

  outbox(nsp) {
    const ns = this.namespaces.get(nsp);
    return ns ? ns.outbox.slice() : [];
  }

  isConnected(nsp) {
    const ns = this.namespaces.get(nsp);
    return Boolean(ns && ns.socket && ns.socket.connected);
  }

  /** Opens a namespace (with its shared key, if it has one). */
  openNamespace(nsp, key) {
    let ns = this.namespaces.get(nsp);
    if (!ns) {
      ns = new Namespace(nsp, null);
      this.namespaces.set(nsp, ns);
      this.save();
    }
    if (key) ns.key = key;
    if (!ns.socket) this.attach(ns);
    else ns.socket.connect();
    return ns;
  }

  closeNamespace(nsp) {
    const ns = this.namespaces.get(nsp);
    if (!ns) return;
    if (ns.socket) ns.socket.disconnect();
    this.namespaces.delete(nsp);
    this.save();
  }

  auth(ns) {
    const auth = { nick: this.nick };
    if (this.password) auth.password = this.password;
    if (ns.key) auth.key = ns.key;
    if (Object.keys(ns.since).length > 0) auth.since = { ...ns.since };
    return auth;
  }

  attach(ns) {
    const socket = this.manager.socket(ns.name, () => this.auth(ns));
    ns.socket = socket;
    socket.on("connect", () => this.onConnect(ns));
    socket.on("connect_error", (data) => this.onConnectError(ns, data));
    socket.on("disconnect", ({ reason, byServer }) => {
      this.fire("ns", { nsp: ns.name, state: byServer ? "closed" : "down", reason });
      if (byServer) {
        ns.since = {};
        this.save();
      }
    });
    for (const name of SERVER_EVENTS) {
      socket.on(name, (payload) => this.onServerEvent(ns, name, payload || {}));
    }
  }

  /** CONNECT accepted: refresh each room (members, topic, recent history), then re-send
   * what was not acked, in order. */
  onConnect(ns) {
    const resumed = ns.everConnected || ns.resuming;
    ns.everConnected = true;
    ns.busyRefusals = 0;
    ns.nickRetries = 0;
    this.fire("ns", { nsp: ns.name, state: "connected", resumed });
    if (this.awayReason && this.awaySentIn !== this.manager.sessions) {
      this.awaySentIn = this.manager.sessions;
      this.away(ns.name, this.awayReason).catch(() => {});
    }
    for (const room of Object.keys(ns.since)) {
      this.join(ns.name, room, true).catch(() => {});
    }
    for (const entry of ns.outbox) this.transmit(ns, entry);
  }

  onConnectError(ns, data) {
    const code = data && data.data && data.data.code;
    const message = (data && data.message) || "refused";
    let delay = null;
    if (code === CODE.BUSY || code === CODE.UNAVAILABLE) {
      delay = backoff(ns.busyRefusals, 500, 10000);
      ns.busyRefusals += 1;
    } else if (
      code === CODE.NICK_TAKEN &&
      (ns.everConnected || ns.resuming) &&
      ns.nickRetries < this.nickRetries()
    ) {
      delay = NICK_RETRY_MS;
      ns.nickRetries += 1;
    }
    if (delay !== null) {
      ns.socket.retryAfter(delay);
      this.fire("ns", { nsp: ns.name, state: "retrying", code, message, retryIn: delay });
      return;
    }
    this.fire("ns", { nsp: ns.name, state: "refused", code, message });
  }

  /** How many `nick_taken` refusals in a row a resuming namespace waits out. */
  nickRetries() {
    const engine = this.manager.engine;
    const held = (engine && engine.silenceMs) || NICK_HELD_MS;
    return Math.ceil(held / NICK_RETRY_MS) + 2;
  }

  /** Tries a refused namespace again (after the user gave a password, say). */
  retry(nsp, password) {
    if (password !== undefined) this.password = password || null;
    const ns = this.namespaces.get(nsp);
    if (ns && ns.socket) ns.socket.connect();
  }

  onServerEvent(ns, name, payload) {
    if (name === "message") this.seen(ns, payload.room, payload.seq);
    // Kicked (or removed by a ban): no longer a member, so not rejoined on reconnect.
    if (
      name === "moderation" &&
      payload.action === "kick" &&
      typeof payload.target === "string" &&
      this.nick &&
      payload.target.toLowerCase() === this.nick.toLowerCase() &&
      payload.room in ns.since
    ) {
      delete ns.since[payload.room];
      this.save();
    }
    if (name === "dm") {
      if (ns.dmIds.has(payload.id)) return;
      ns.dmIds.add(payload.id);
      if (ns.dmIds.size > 2000) ns.dmIds.delete(ns.dmIds.values().next().value);
    }
    this.fire(name, { nsp: ns.name, ...payload });
  }

  seen(ns, room, seq) {
    if (typeof seq !== "number" || !(room in ns.since)) return;
    if (seq > ns.since[room]) {
      ns.since[room] = seq;
      this.save();
    }
  }

  async request(nsp, event, arg) {
    const ns = this.namespaces.get(nsp);
    if (!ns || !ns.socket) throw new ChatError(CONNECTION_LOST, `not connected to ${nsp}`);
    return unwrap(await ns.socket.request(event, arg));
  }

  /** Joins a room (`auto`: a rejoin after CONNECT). */
  async join(nsp, room, auto = false) {
    const reply = await this.request(nsp, REQUEST.JOIN, { room });
    const ns = this.namespaces.get(nsp);
    // Already a member (a `/join` of a room the socket is in: joins are idempotent).
    const again = Boolean(ns && reply.room in ns.since);
    if (ns) {
      if (!(reply.room in ns.since)) ns.since[reply.room] = 0;
      for (const m of reply.history || []) this.seen(ns, m.room, m.seq);
      this.save();
    }
    this.fire("joined", { nsp, reply, auto, again });
    return reply;
  }

  async leave(nsp, room) {
    const reply = await this.request(nsp, REQUEST.LEAVE, { room });
    const ns = this.namespaces.get(nsp);
    if (ns) {
      delete ns.since[room];
      ns.outbox = ns.outbox.filter((e) => e.room !== room);
      this.save();
    }
    this.fire("left", { nsp, room });
    return reply;
  }

  /** Sends a room message: kept in the outbox with its cid until acked (and re-sent after a
   * reconnect); "sent" fires at once, "acked" or "failed" later. */
  send(nsp, room, text, action = false) {
    const ns = this.namespaces.get(nsp);
    if (!ns) throw new ChatError("not_connected", `not connected to ${nsp}`);
    const entry = { cid: newCid(), room, text, action };
    ns.outbox.push(entry);
    this.save();
    this.fire("sent", { nsp, entry });
    if (ns.socket && ns.socket.connected) this.transmit(ns, entry);
    return entry;
  }

  /** Sends an outbox entry once per connection; a lost connection leaves it in the outbox. */
  transmit(ns, entry) {
    const session = this.manager.sessions;
    if (this.sentIn.get(entry) === session) return;
    this.sentIn.set(entry, session);
    const req = { room: entry.room, text: entry.text, cid: entry.cid };
    if (entry.action) req.action = true;
    ns.socket.request(REQUEST.MESSAGE, req).then(
      (reply) => {
        let message;
        try {
          message = unwrap(reply).message;
        } catch (error) {
          // A refusal is final (not in the room, bad text), except a rate limit, a store
          // failure or a store unavailable for a moment (cluster mode, Redis restarting):
          // those are sent again (same cid) after a breath, on the same connection.
          if (
            error.code === CODE.RATE_LIMITED ||
            error.code === CODE.INTERNAL ||
            error.code === CODE.UNAVAILABLE
          ) {
            setTimeout(() => {
              this.sentIn.delete(entry);
              if (ns.socket.connected && ns.outbox.includes(entry)) this.transmit(ns, entry);
            }, 1000);
            return;
          }
          this.drop(ns, entry);
          this.fire("failed", { nsp: ns.name, entry, error });
          return;
        }
        this.drop(ns, entry);
        this.seen(ns, message.room, message.seq);
        this.fire("acked", { nsp: ns.name, entry, message });
      },
      () => {
        // Lost before the answer, or no answer: sent again after the next CONNECT.
      },
    );
  }

  drop(ns, entry) {
    const at = ns.outbox.indexOf(entry);
    if (at >= 0) ns.outbox.splice(at, 1);
    this.save();
  }

  /** A direct message; not re-sent after a reconnect (it has no cid). */
  async dm(nsp, to, text, action = false) {
    const req = { to, text };
    if (action) req.action = true;
    const reply = await this.request(nsp, REQUEST.DM, req);
    const ns = this.namespaces.get(nsp);
    if (ns) ns.dmIds.add(reply.message.id);
    return reply;
  }

  async setNick(nsp, nick) {
    const reply = await this.request(nsp, REQUEST.NICK, { nick });
    this.nick = reply.nick;
    this.save();
    return reply;
  }

  topic(nsp, room, topic) {
    const req = { room };
    if (topic !== undefined) req.topic = topic;
    return this.request(nsp, REQUEST.TOPIC, req);
  }

  who(nsp, room) {
    return this.request(nsp, REQUEST.WHO, { room });
  }

  whois(nsp, nick) {
    return this.request(nsp, REQUEST.WHOIS, { nick });
  }

  /** The messages whose text holds `text` as a phrase, newest first: of `room`, or of every
   * room the socket is in (in `nsp`) when it is null; `before`: a page's `next`. */
  search(nsp, room, text, before) {
    const req = { text };
    if (room) req.room = room;
    if (before) req.before = before;
    return this.request(nsp, REQUEST.SEARCH, req);
  }

  /** Away with a reason, back without one (for the whole connection, every namespace). */
  async away(nsp, reason) {
    const req = reason ? { reason } : {};
    const reply = await this.request(nsp, REQUEST.AWAY, req);
    this.awayReason = reply.away || null;
    this.awaySentIn = this.manager.sessions;
    return reply;
  }

  /** A server admin's request (`delete`, `unregister`, `reset_password`). */
  admin(nsp, event, request) {
    if (![REQUEST.DELETE, REQUEST.UNREGISTER, REQUEST.RESET_PASSWORD].includes(event)) {
      return Promise.reject(new ChatError("bad_request", `not an admin request: ${event}`));
    }
    return this.request(nsp, event, request);
  }

  /** A moderation request (`kick`, `ban`, `unban`, `mute`, `unmute`, `op`, `deop`): its
   * reply is the `moderation` event the room saw. */
  moderate(nsp, event, request) {
    if (![REQUEST.KICK, REQUEST.BAN, REQUEST.UNBAN, REQUEST.MUTE, REQUEST.UNMUTE, REQUEST.OP, REQUEST.DEOP].includes(event)) {
      return Promise.reject(new ChatError("bad_request", `not a moderation request: ${event}`));
    }
    return this.request(nsp, event, request);
  }

  listRooms(nsp) {
    return this.request(nsp, REQUEST.ROOMS, {});
  }

  history(nsp, room, before, limit = 50) {
    const req = { room, limit };
    if (before) req.before = before;
    return this.request(nsp, REQUEST.HISTORY, req);
  }

  /** Volatile, no ack. */
  typing(nsp, room) {
    const ns = this.namespaces.get(nsp);
    if (ns && ns.socket) ns.socket.emit(REQUEST.TYPING, { room });
  }
}
