// app.js: the chat page. The chat client (chat.js) does the talking; this file turns its
// events into windows (one per room, direct conversation and namespace) and the user's keys
// into requests. Text from the network only ever reaches the page through textContent (the
// `el` helper): nobody's text is read as HTML.
//
// Page parameters: `?nick=NAME&room=ROOM&ns=/NAME` connects and joins at once;
// `?transport=polling` (or `websocket`) forces a transport; `?server=http://HOST:PORT` talks
// to a chat-server other than the page's own (for tests and development). A password, key
// or token is never taken from the address.

import { ChatClient, CODE, DmHistory, SessionStore } from "./chat.js";
import { CONNECTION_LOST } from "./sio.js";

const TYPING_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 5000;
const HISTORY_PAGE = 50;
/** Most history pages loaded to bring a search hit into its window. */
const JUMP_PAGES_MAX = 20;
const NICK_KEY = "chat.nick";

// ---- DOM helpers ----

const $ = (id) => document.getElementById(id);

/** An element with classes and text children (strings become text nodes, never HTML). */
function el(tag, className, ...children) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return e;
}

function timeOf(ts) {
  const d = new Date(ts);
  const t = el("time", "ts", d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  t.dateTime = d.toISOString();
  t.title = d.toLocaleString();
  return t;
}

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A regular expression that finds `nick` as a word (not inside another nick, nor inside a
 * longer word: a combining mark, such as an Indic vowel sign, continues a word). */
function mentionPattern(nick) {
  return new RegExp(`(?<![\\p{L}\\p{M}\\p{N}_.-])${escapeRegExp(nick)}(?![\\p{L}\\p{M}\\p{N}_-])`, "giu");
}

// ---- page parameters ----

const params = new URLSearchParams(location.search);

function serverParam() {
  const raw = params.get("server");
  if (!raw) return "";
  try {
    const u = new URL(raw);
    if (u.protocol === "http:" || u.protocol === "https:") return u.origin;
  } catch (_) {
    // Not a URL: ignored.
  }
  return "";
}

function transportParam() {
  const t = params.get("transport");
  return t === "polling" || t === "websocket" ? t : "auto";
}

/** Removes secrets someone put in the link (they are never used) from the address bar. */
function scrubSecretsFromUrl() {
  const secrets = ["password", "pass", "key", "token"].filter((k) => params.has(k));
  if (secrets.length === 0) return false;
  const u = new URL(location.href);
  for (const k of secrets) u.searchParams.delete(k);
  history.replaceState(null, "", u.toString());
  return true;
}

/** `30s`, `10m`, `2h`, `1d`, `1w` (or plain seconds) in seconds; null for anything else. */
export function durationSecs(word) {
  const m = /^(\d+)([smhdw]?)$/.exec(word || "");
  if (!m) return null;
  const n = Number(m[1]) * { "": 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2]];
  return n > 0 && Number.isSafeInteger(n) ? n : null;
}

const MODERATION_USAGE = Object.freeze({
  kick: "/kick NICK [reason]",
  ban: "/ban NICK|IP [10m|2h|1d] [reason]",
  unban: "/unban NICK|IP",
  mute: "/mute NICK [10m|2h|1d] [reason]",
  unmute: "/unmute NICK",
  op: "/op NICK",
  deop: "/deop NICK",
});

/** The request object of a moderation command typed in `room`, or null (a usage error). */
export function moderationRequest(cmd, room, arg) {
  const [target, ...rest] = (arg || "").trim().split(/\s+/).filter(Boolean);
  if (!target) return null;
  if (["unban", "unmute", "op", "deop"].includes(cmd)) {
    if (rest.length) return null;
    return cmd === "unban" ? { room, target } : { room, nick: target };
  }
  const req = cmd === "ban" ? { room, target } : { room, nick: target };
  if (cmd !== "kick" && rest.length && durationSecs(rest[0]) !== null) {
    req.duration_secs = durationSecs(rest.shift());
  }
  if (rest.length) req.reason = rest.join(" ");
  return req;
}

function normRoom(s) {
  return (s || "").trim().replace(/^#/, "");
}

function normNs(s) {
  const t = (s || "").trim();
  if (!t) return "/";
  return t.startsWith("/") ? t : `/${t}`;
}

// ---- windows ----

/** The key of a window: "<nsp> #room", "<nsp> @nick" or "<nsp> *" (the namespace's own). */
const keyOf = (nsp, kind, name) =>
  kind === "room" ? `${nsp} #${name}` : kind === "dm" ? `${nsp} @${name}` : `${nsp} *`;

class Win {
  constructor(nsp, kind, name) {
    this.nsp = nsp;
    this.kind = kind;
    this.name = name;
    this.key = keyOf(nsp, kind, name);
    this.unread = 0;
    this.mentions = 0;
    this.members = new Set();
    /** The members who are away, with their reason. */
    this.away = new Map();
    /** The members who are room operators (marked @). */
    this.operators = new Set();
    this.topic = null;
    /** Shown messages by seq (rooms): each (namespace, room, seq) once. */
    this.bySeq = new Map();
    /** Pending messages by cid. */
    this.pending = new Map();
    this.dmIds = new Set();
    this.oldestSeq = null;
    this.loadingOlder = false;
    this.noOlder = false;
    this.typers = new Map();
    /** Whether the view was at the bottom when last scrolled: a resize keeps it there. */
    this.stuck = true;
    this.log = el("ol", "log");
    this.log.setAttribute("role", "log");
    this.log.dataset.window = this.key;
    this.log.tabIndex = -1;
    this.log.setAttribute("aria-label", this.label);
    this.log.hidden = true;
  }

  get label() {
    if (this.kind === "room") return `#${this.name}`;
    if (this.kind === "dm") return `@${this.name}`;
    return this.nsp === "/" ? "server" : this.nsp;
  }
}

// ---- the page ----

class Page {
  constructor() {
    this.client = null;
    this.windows = new Map();
    this.active = null;
    /** The window whose entry the list last scrolled into view. */
    this.listedActive = null;
    /** Joins to make once the namespace is connected ({nsp, room, focus}): a link's room, and
     * any join whose answer a lost connection took away. */
    this.pendingJoins = [];
    this.lastTypingSent = new Map();
    this.typingTimer = null;
    /** Messages a room's window keeps while its reader follows the newest. */
    this.maxShown = 1000;
    this.bindStatic();
  }

  // -- start and log in --

  start() {
    const warned = scrubSecretsFromUrl();
    const sessionNick = new SessionStore(sessionStorage).load();
    const urlNick = (params.get("nick") || "").trim();
    const remembered = localStorage.getItem(NICK_KEY) || "";
    $("login-nick").value = urlNick || (sessionNick && sessionNick.nick) || remembered;
    $("login-remember").checked = Boolean(remembered);
    if (params.get("room")) $("login-room").value = normRoom(params.get("room"));
    if (params.get("ns")) $("login-ns").value = normNs(params.get("ns"));
    if (serverParam()) {
      const note = $("login-server");
      note.textContent = `Server: ${serverParam()} (from the link's server parameter)`;
      note.hidden = false;
    }
    if (warned) {
      this.showLogin("A password, key or token in a link is never used: type it here instead.");
      return;
    }
    if (urlNick) {
      this.connect(urlNick, "", normRoom(params.get("room")), normNs(params.get("ns")));
    } else if (sessionNick) {
      this.connect(sessionNick.nick, "", "", "/");
    } else {
      this.showLogin();
    }
  }

  showLogin(error) {
    $("app").hidden = true;
    $("login").hidden = false;
    const e = $("login-error");
    e.textContent = error || "";
    e.hidden = !error;
    const nick = $("login-nick");
    (nick.value ? $("login-password") : nick).focus();
  }

  onLoginSubmit(ev) {
    ev.preventDefault();
    const nick = $("login-nick").value.trim();
    if (!nick) {
      this.showLogin("Choose a nick.");
      return;
    }
    const password = $("login-password").value;
    $("login-password").value = "";
    if ($("login-remember").checked) localStorage.setItem(NICK_KEY, nick);
    else localStorage.removeItem(NICK_KEY);
    const room = normRoom($("login-room").value);
    const ns = normNs($("login-ns").value);
    if (this.client && this.client.nick && this.client.nick.toLowerCase() === nick.toLowerCase()) {
      // A refused login tried again (a password given): same client, same windows.
      $("login").hidden = true;
      $("app").hidden = false;
      if (room) this.pendingJoins.push({ nsp: ns, room, focus: true });
      this.client.retry(ns, password);
      for (const nsp of this.client.namespaces.keys()) {
        if (nsp !== ns) this.client.retry(nsp);
      }
      return;
    }
    if (this.client) this.reset();
    this.connect(nick, password, room, ns);
  }

  reset() {
    this.client.stop();
    this.client = null;
    for (const w of this.windows.values()) w.log.remove();
    this.windows.clear();
    $("window-list").replaceChildren();
    this.active = null;
  }

  connect(nick, password, room, nsp) {
    $("login").hidden = true;
    $("app").hidden = false;
    $("me-nick").textContent = nick;
    const client = new ChatClient({
      base: serverParam(),
      transport: transportParam(),
      store: new SessionStore(sessionStorage),
    });
    this.client = client;
    this.bindClient(client);
    this.pendingJoins = room ? [{ nsp, room, focus: true }] : [];
    const resumed = client.start(nick, password);
    for (const ns of resumed) {
      this.nsWindow(ns);
      for (const r of client.rooms(ns)) this.window(ns, "room", r);
      for (const entry of client.outbox(ns)) this.showPending(ns, entry);
    }
    // The conversations shown before a reload, as they were (for this nick only).
    this.dms = new DmHistory(sessionStorage);
    for (const [ns, peers] of Object.entries(this.dms.load(nick))) {
      for (const { name, messages } of Object.values(peers)) {
        for (const d of messages) this.addDm(ns, d, false, name);
      }
    }
    if (!client.namespaces.has(nsp)) {
      client.openNamespace(nsp);
      this.nsWindow(nsp);
    }
    // A resumed session opens on its first room; a link's room is selected once joined.
    const firstRoom = this.ordered().find((w) => w.kind === "room");
    if (!this.active) this.select(firstRoom || this.nsWindow(nsp));
    this.updateTitle();
  }

  // -- the client's events --

  bindClient(c) {
    c.on("state", (s) => this.onState(s));
    c.on("ns", (e) => this.onNs(e));
    c.on("joined", (e) => this.onJoined(e));
    c.on("left", ({ nsp, room }) => this.closeWindow(keyOf(nsp, "room", room)));
    c.on("sent", ({ nsp, entry }) => this.showPending(nsp, entry));
    c.on("acked", ({ nsp, entry, message }) => {
      this.removePending(nsp, entry);
      this.addMessage(nsp, message, true);
    });
    c.on("failed", ({ nsp, entry, error }) => {
      const w = this.windows.get(keyOf(nsp, "room", entry.room));
      const li = w && w.pending.get(entry.cid);
      if (li) {
        li.classList.remove("pending");
        li.classList.add("failed");
        li.append(el("span", "why", ` (not sent: ${error.message})`));
        w.pending.delete(entry.cid);
      }
    });
    c.on("message", (m) => this.addMessage(m.nsp, m, true));
    c.on("dm", (d) => this.addDm(d.nsp, d, true));
    c.on("presence", (p) => this.onPresence(p));
    c.on("topic", (t) => {
      const w = this.windows.get(keyOf(t.nsp, "room", t.room));
      if (!w) return;
      w.topic = t.topic || null;
      this.system(w, t.topic ? `${t.by} set the topic: ${t.topic}` : `${t.by} cleared the topic`);
      if (w === this.active) this.renderHeader();
    });
    c.on("moderation", (m) => this.onModeration(m));
    c.on("deleted", (d) => {
      const w = this.windows.get(keyOf(d.nsp, "room", d.room));
      if (!w) return;
      const li = w.bySeq.get(d.seq);
      const text = li && li.querySelector(".text");
      if (text) {
        text.textContent = `(message deleted by ${d.by})`;
        li.classList.add("deleted");
      }
      this.system(w, `${d.by} deleted message #${d.seq}`, "moderation");
    });
    c.on("typing", (t) => this.onTyping(t));
    c.on("notice", (n) => this.system(this.nsWindow(n.nsp), n.text, "notice"));
    c.on("room", () => {});
    c.on("log", (t) => console.debug("chat:", t));
  }

  onState(s) {
    const status = $("status");
    status.dataset.state = s.state;
    if (s.state === "open") {
      status.textContent = `connected (${s.transport === "polling" ? "long-polling" : "WebSocket"})`;
    } else if (s.state === "down") {
      status.textContent = `reconnecting in ${(s.retryIn / 1000).toFixed(1)} s: ${s.reason}`;
    } else {
      status.textContent = "connecting…";
    }
    status.title = status.textContent;
  }

  onNs(e) {
    const nsw = this.nsWindow(e.nsp);
    const rooms = [...this.windows.values()].filter((w) => w.nsp === e.nsp && w !== nsw);
    switch (e.state) {
      case "connected":
        this.system(nsw, `${e.resumed ? "reconnected" : "connected"} to ${e.nsp} as ${this.client.nick}`, "conn");
        if (e.resumed) for (const w of rooms) this.system(w, "reconnected", "conn");
        if (this.pendingJoins.some((j) => j.nsp === e.nsp)) {
          this.joinPending(e.nsp);
        } else if (this.active === nsw && rooms.length === 0) {
          $("join-room").focus();
        }
        break;
      case "down":
        for (const w of [nsw, ...rooms]) this.system(w, `disconnected: ${e.reason}; reconnecting…`, "conn");
        for (const w of rooms) w.typers.clear();
        this.renderTyping();
        break;
      case "closed":
        this.system(nsw, `the server closed ${e.nsp}`, "error");
        break;
      case "retrying":
        this.system(nsw, `${e.message}: trying again in ${(e.retryIn / 1000).toFixed(1)} s`, "conn");
        break;
      case "refused":
        this.system(nsw, `refused: ${e.message}`, "error");
        if (e.code === "forbidden") this.system(nsw, `to give its key: /ns ${e.nsp} KEY`);
        if ([CODE.NICK_CLAIMED, CODE.WRONG_PASSWORD, CODE.NICK_TAKEN].includes(e.code) ||
            e.code === "invalid_name" || e.code === "nick_required" || !this.anyConnected()) {
          this.showLogin(e.message);
        }
        break;
      default:
        break;
    }
  }

  anyConnected() {
    return [...this.client.namespaces.keys()].some((n) => this.client.isConnected(n));
  }

  onJoined({ nsp, reply, auto, again }) {
    // A `/join` of a room the page is in already is answered too (joins are idempotent):
    // its window is selected, with no second "you joined" (`again`; after a kick the
    // window stays open but the page is no longer in the room: a rejoin says so).
    const w = this.window(nsp, "room", reply.room);
    w.members = new Set(reply.members || []);
    w.away = new Map((reply.away || []).map((n) => [n, ""]));
    w.operators = new Set(reply.operators || []);
    w.topic = reply.topic || null;
    if (!auto && !again) this.system(w, `you joined #${reply.room} (${w.members.size} member${w.members.size === 1 ? "" : "s"})`);
    for (const m of reply.history || []) this.addMessage(nsp, m, false);
    if (w.oldestSeq === null && (reply.history || []).length === 0) w.noOlder = true;
    if (w === this.active) {
      this.renderHeader();
      this.renderMembers();
    }
  }

  /** A `moderation` event: a line in the room, and the member list kept in step (a kick
   * removes its target; a kick of us leaves the room). */
  onModeration(m) {
    const w = this.windows.get(keyOf(m.nsp, "room", m.room));
    if (!w) return;
    const us = this.client.nick && m.target.toLowerCase() === this.client.nick.toLowerCase();
    let text = {
      kick: us ? `you were kicked from #${m.room} by ${m.actor}` : `${m.actor} kicked ${m.target}`,
      ban: `${m.actor} banned ${m.target}`,
      unban: `${m.actor} lifted the ban on ${m.target}`,
      mute: `${m.actor} muted ${m.target}`,
      unmute: `${m.actor} unmuted ${m.target}`,
      op: `${m.actor} made ${m.target} an operator`,
      deop: `${m.actor} took operator status from ${m.target}`,
    }[m.action] || `${m.actor} moderated ${m.target} (${m.action})`;
    if (typeof m.until === "number") {
      const mins = Math.max(1, Math.round((m.until - Date.now()) / 60000));
      text += ` for ${mins} min`;
    }
    if (m.reason) text += ` (${m.reason})`;
    if (m.action === "kick") {
      w.members.delete(m.target);
      w.away.delete(m.target);
      w.operators.delete(m.target);
    }
    if (m.action === "op") w.operators.add(m.target);
    if (m.action === "deop") w.operators.delete(m.target);
    this.system(w, text, us && m.action === "kick" ? "error" : "moderation");
    if (w === this.active) this.renderMembers();
  }

  onPresence(p) {
    const w = this.windows.get(keyOf(p.nsp, "room", p.room));
    if (!w) return;
    const text = {
      join: `${p.nick} joined`,
      leave: `${p.nick} left`,
      quit: `${p.nick} quit`,
      nick: `${p.previous} is now known as ${p.nick}`,
      away: p.reason ? `${p.nick} is away: ${p.reason}` : `${p.nick} is away`,
      back: `${p.nick} is back`,
    }[p.action] || `${p.nick}: ${p.action}`;
    if (p.action === "join") w.members.add(p.nick);
    if (p.action === "leave" || p.action === "quit") {
      w.members.delete(p.nick);
      w.away.delete(p.nick);
    }
    if (p.action === "nick") {
      w.members.delete(p.previous);
      w.members.add(p.nick);
      if (w.away.has(p.previous)) w.away.set(p.nick, w.away.get(p.previous));
      w.away.delete(p.previous);
    }
    if (p.action === "away") w.away.set(p.nick, p.reason || "");
    if (p.action === "back") w.away.delete(p.nick);
    w.typers.delete(p.previous || p.nick);
    this.system(w, text, "presence");
    if (w === this.active) {
      this.renderMembers();
      this.renderTyping();
    }
  }

  onTyping(t) {
    const w = this.windows.get(keyOf(t.nsp, "room", t.room));
    if (!w || t.nick === this.client.nick) return;
    w.typers.set(t.nick, Date.now() + TYPING_SHOWN_MS);
    if (w === this.active) this.renderTyping();
  }

  // -- windows --

  nsWindow(nsp) {
    return this.window(nsp, "ns", nsp);
  }

  window(nsp, kind, name) {
    const key = keyOf(nsp, kind, name);
    let w = this.windows.get(key);
    if (w) return w;
    w = new Win(nsp, kind, name);
    this.windows.set(key, w);
    $("logs").append(w.log);
    w.log.addEventListener("scroll", () => {
      w.stuck = this.atBottom(w);
      this.onScroll(w);
    });
    // A narrower window wraps the lines into more height: a view that was at the bottom
    // stays there (the browser keeps the top still).
    new ResizeObserver(() => {
      if (w.stuck && !w.log.hidden) this.stickToBottom(w);
    }).observe(w.log);
    this.renderWindowList();
    return w;
  }

  closeWindow(key) {
    const w = this.windows.get(key);
    if (!w || w.kind === "ns") return;
    const order = this.ordered();
    const at = order.indexOf(w);
    w.log.remove();
    this.windows.delete(key);
    if (this.active === w) this.select(order[at - 1] || this.nsWindow(w.nsp));
    this.renderWindowList();
    this.updateTitle();
  }

  /** Windows in list order: by namespace, its own window first, then rooms, then DMs. */
  ordered() {
    const rank = { ns: 0, room: 1, dm: 2 };
    return [...this.windows.values()].sort(
      (a, b) =>
        a.nsp.localeCompare(b.nsp) ||
        rank[a.kind] - rank[b.kind] ||
        a.name.localeCompare(b.name, undefined, { numeric: true }),
    );
  }

  select(w, focus = true) {
    if (!w) return;
    if (this.active) this.active.log.hidden = true;
    this.active = w;
    w.log.hidden = false;
    w.unread = 0;
    w.mentions = 0;
    this.renderWindowList();
    this.renderHeader();
    this.renderMembers();
    this.renderTyping();
    this.updateTitle();
    this.stickToBottom(w);
    document.body.classList.remove("show-rooms", "show-members");
    $("toggle-rooms").setAttribute("aria-expanded", "false");
    $("toggle-members").setAttribute("aria-expanded", "false");
    if (focus) $("composer").focus();
    this.maybeLoadOlder(w);
  }

  step(delta) {
    const order = this.ordered();
    if (order.length === 0) return;
    const at = order.indexOf(this.active);
    this.select(order[(at + delta + order.length) % order.length]);
  }

  // -- rendering --

  renderWindowList() {
    const list = $("window-list");
    const focused = list.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    const items = [];
    for (const w of this.ordered()) {
      const b = el("button", "win", w.label);
      b.type = "button";
      b.dataset.key = w.key;
      if (w === this.active) b.setAttribute("aria-current", "true");
      // Unread messages, and among them those that mention us (every DM does).
      if (w.unread > 0) {
        const unread = el("span", "badge unread", String(w.unread));
        unread.title = `${w.unread} unread`;
        b.append(unread);
      }
      if (w.mentions > 0) {
        const mentions = el("span", "badge mention", `@${w.mentions}`);
        mentions.title = `${w.mentions} mentioning you`;
        b.append(mentions);
      }
      b.addEventListener("click", () => this.select(w));
      const li = el("li", `win-item kind-${w.kind}`, b);
      items.push(li);
    }
    list.replaceChildren(...items);
    // Rebuilt under a keyboard user: the focus stays on the same window's button.
    if (focused) {
      const again = [...list.querySelectorAll("button")].find((b) => b.dataset.key === focused);
      if (again) again.focus();
    }
    // A long list scrolls on its own (the forms below it stay in view): a newly selected
    // window's entry is brought into its view (only then: new messages re-render the list,
    // and must not pull it away from where the user scrolled it).
    const current = list.querySelector('[aria-current="true"]');
    if (current && this.listedActive !== this.active) current.scrollIntoView({ block: "nearest" });
    this.listedActive = this.active;
  }

  renderHeader() {
    const w = this.active;
    if (!w) return;
    $("window-title").textContent = w.kind === "ns" && w.nsp !== "/" ? `${w.nsp}` : w.label;
    $("window-topic").textContent =
      w.kind === "room" ? w.topic || "" : w.kind === "dm" ? "direct messages" : "server messages";
    $("leave").hidden = w.kind === "ns";
    // Direct messages are not kept by the server: nothing to search there.
    $("search-button").hidden = w.kind === "dm";
    $("leave").textContent = w.kind === "room" ? "Leave" : "Close";
    $("composer").placeholder =
      w.kind === "room"
        ? `Message #${w.name}`
        : w.kind === "dm"
          ? `Message @${w.name}`
          : "Type /join #room, or /help";
  }

  renderMembers() {
    const w = this.active;
    const list = $("members");
    if (!w || w.kind !== "room") {
      $("members-title").textContent = "Members";
      list.replaceChildren();
      return;
    }
    $("members-title").textContent = `Members (${w.members.size})`;
    const nicks = [...w.members].sort((a, b) => a.localeCompare(b));
    list.replaceChildren(
      ...nicks.map((n) => {
        const away = w.away.has(n);
        const op = w.operators.has(n);
        const b = el(
          "button",
          "member",
          op ? el("span", "op", "@") : null,
          n,
          away ? el("span", "away", " away") : null,
        );
        if (op) b.classList.add("operator");
        b.type = "button";
        b.title = n === this.client.nick ? "you" : `Message ${n} privately`;
        if (away) b.title += w.away.get(n) ? ` (away: ${w.away.get(n)})` : " (away)";
        if (n === this.client.nick) b.classList.add("self");
        else b.addEventListener("click", () => this.select(this.window(w.nsp, "dm", n)));
        return el("li", null, b);
      }),
    );
  }

  renderTyping() {
    const w = this.active;
    const line = $("typing");
    clearTimeout(this.typingTimer);
    if (!w) return;
    const now = Date.now();
    for (const [n, until] of w.typers) if (until <= now) w.typers.delete(n);
    const nicks = [...w.typers.keys()];
    line.textContent =
      nicks.length === 0
        ? ""
        : nicks.length === 1
          ? `${nicks[0]} is typing…`
          : nicks.length <= 3
            ? `${nicks.slice(0, -1).join(", ")} and ${nicks[nicks.length - 1]} are typing…`
            : "several people are typing…";
    if (nicks.length > 0) {
      const next = Math.min(...w.typers.values()) - now;
      this.typingTimer = setTimeout(() => this.renderTyping(), Math.max(50, next));
    }
  }

  updateTitle() {
    let unread = 0;
    let mentions = 0;
    for (const w of this.windows.values()) {
      unread += w.unread;
      mentions += w.mentions;
    }
    const where = this.active ? this.active.label : "";
    document.title = `${unread > 0 ? `(${unread}${mentions > 0 ? "!" : ""}) ` : ""}${where ? `${where} · ` : ""}chat`;
    const badge = $("total-badge");
    badge.textContent = String(unread);
    badge.hidden = unread === 0;
  }

  atBottom(w) {
    return w.log.scrollHeight - w.log.scrollTop - w.log.clientHeight < 40;
  }

  stickToBottom(w) {
    w.log.scrollTop = w.log.scrollHeight;
  }

  /** Appends a line (keeping the view at the bottom if it was there). */
  appendLine(w, li, before = null) {
    const stick = this.atBottom(w);
    w.log.insertBefore(li, before);
    if (stick || w.log.hidden) this.stickToBottom(w);
  }

  system(w, text, kind = "info") {
    const li = el("li", `sys ${kind}`, timeOf(Date.now()), el("span", "text", text));
    this.appendLine(w, li, w.log.querySelector("li.pending"));
  }

  /** The text of a message, with mentions of our nick marked (text nodes only). */
  textWithMentions(text) {
    const span = el("span", "text");
    const nick = this.client && this.client.nick;
    let mentioned = false;
    if (!nick) {
      span.textContent = text;
      return { span, mentioned };
    }
    let last = 0;
    for (const m of text.matchAll(mentionPattern(nick))) {
      span.append(text.slice(last, m.index), el("mark", "mention", m[0]));
      last = m.index + m[0].length;
      mentioned = true;
    }
    span.append(text.slice(last));
    return { span, mentioned };
  }

  messageLine(m, pending) {
    const self = this.client && m.from === this.client.nick;
    const { span, mentioned } = this.textWithMentions(m.text);
    const from = el("span", "from", m.action ? `* ${m.from}` : m.from);
    const li = el("li", "msg", timeOf(m.ts), from, span);
    if (m.action) li.classList.add("action");
    if (self) li.classList.add("self");
    if (mentioned && !self) li.classList.add("mentioned");
    if (pending) li.classList.add("pending");
    li.dataset.from = m.from;
    return { li, mentioned: mentioned && !self };
  }

  /** A room message, shown once per (namespace, room, seq), in seq order. */
  addMessage(nsp, m, live) {
    const w = this.window(nsp, "room", m.room);
    if (w.bySeq.has(m.seq)) return;
    const { li, mentioned } = this.messageLine(m, false);
    li.dataset.seq = String(m.seq);
    li.dataset.id = m.id;
    w.bySeq.set(m.seq, li);
    // Before the first shown message with a larger seq, else before the pending ones.
    let before = null;
    const seqs = [...w.bySeq.keys()];
    const later = seqs.filter((s) => s > m.seq);
    if (later.length > 0) before = w.bySeq.get(Math.min(...later));
    else before = w.log.querySelector("li.pending");
    this.appendLine(w, li, before);
    if (w.oldestSeq === null || m.seq < w.oldestSeq) w.oldestSeq = m.seq;
    w.typers.delete(m.from);
    if (w === this.active) this.renderTyping();
    if (live && later.length === 0 && m.from !== this.client.nick) this.bump(w, mentioned);
    if (later.length === 0) this.trim(w);
  }

  /** Keeps a room's window to `maxShown` messages while its reader is at the bottom: the
   * oldest go (scrolling up loads them again with `history`). */
  trim(w) {
    if (w.bySeq.size <= this.maxShown || !this.atBottom(w)) return;
    const seqs = [...w.bySeq.keys()].sort((a, b) => a - b);
    for (const seq of seqs.slice(0, seqs.length - Math.floor(this.maxShown * 0.8))) {
      w.bySeq.get(seq).remove();
      w.bySeq.delete(seq);
    }
    w.oldestSeq = Math.min(...w.bySeq.keys());
    w.noOlder = false;
    const beginning = w.log.querySelector("li.beginning");
    if (beginning) beginning.remove();
  }

  /** A direct message, in the conversation with `peer` (by default the other of its two
   * nicks: a kept one names its conversation, as our nick may have changed since). */
  addDm(nsp, d, live, peer = null) {
    const me = this.client.nick;
    const other = peer || (d.from.toLowerCase() === me.toLowerCase() ? d.to : d.from);
    const w = this.window(nsp, "dm", other);
    if (w.dmIds.has(d.id)) return;
    w.dmIds.add(d.id);
    this.dms.add(nsp, other, d);
    const { li } = this.messageLine(d, false);
    li.dataset.id = d.id;
    this.appendLine(w, li, w.log.querySelector("li.pending"));
    if (live && d.from !== me) this.bump(w, true);
  }

  /** Counts a new message for a window the user is not looking at. */
  bump(w, mention) {
    if (w === this.active && !document.hidden) return;
    w.unread += 1;
    if (mention) w.mentions += 1;
    this.renderWindowList();
    this.updateTitle();
  }

  showPending(nsp, entry) {
    const w = this.window(nsp, "room", entry.room);
    if (w.pending.has(entry.cid)) return;
    const { li } = this.messageLine(
      { from: this.client.nick, text: entry.text, action: entry.action, ts: Date.now() },
      true,
    );
    li.dataset.cid = entry.cid;
    li.title = "sending…";
    w.pending.set(entry.cid, li);
    this.appendLine(w, li);
    if (w === this.active) this.stickToBottom(w);
  }

  removePending(nsp, entry) {
    const w = this.windows.get(keyOf(nsp, "room", entry.room));
    const li = w && w.pending.get(entry.cid);
    if (!li) return;
    li.remove();
    w.pending.delete(entry.cid);
  }

  // -- older history --

  onScroll(w) {
    if (w.log.scrollTop < 60) this.maybeLoadOlder(w);
  }

  async maybeLoadOlder(w) {
    if (w.kind !== "room" || w.loadingOlder || w.noOlder || !this.client) return;
    if (w.oldestSeq === null || w.oldestSeq <= 1) {
      if (w.oldestSeq === 1) this.markBeginning(w);
      return;
    }
    if (w.log.scrollTop >= 60 && w.log.scrollHeight > w.log.clientHeight) return;
    if (!this.client.isConnected(w.nsp)) return;
    w.loadingOlder = true;
    try {
      const height = w.log.scrollHeight;
      const top = w.log.scrollTop;
      await this.olderPage(w);
      w.log.scrollTop = top + (w.log.scrollHeight - height);
    } catch (e) {
      this.system(w, `could not load older messages: ${e.message}`, "error");
    } finally {
      w.loadingOlder = false;
    }
    // Still no scroll bar: load more.
    if (!w.noOlder && w.log.scrollHeight <= w.log.clientHeight) this.maybeLoadOlder(w);
  }

  /** Loads the page of history before the oldest message shown (the newest page when none
   * is), and marks the beginning when it is the last. */
  async olderPage(w) {
    const reply = await this.client.history(w.nsp, w.name, w.oldestSeq || undefined, HISTORY_PAGE);
    for (const m of reply.messages) this.addOlder(w, m);
    if (reply.messages.length < HISTORY_PAGE || w.oldestSeq <= 1) this.markBeginning(w);
  }

  addOlder(w, m) {
    if (w.bySeq.has(m.seq)) return;
    const { li } = this.messageLine(m, false);
    li.dataset.seq = String(m.seq);
    li.dataset.id = m.id;
    const later = [...w.bySeq.keys()].filter((s) => s > m.seq);
    const before = later.length > 0 ? w.bySeq.get(Math.min(...later)) : null;
    w.bySeq.set(m.seq, li);
    w.log.insertBefore(li, before);
    if (w.oldestSeq === null || m.seq < w.oldestSeq) w.oldestSeq = m.seq;
  }

  markBeginning(w) {
    if (w.noOlder && w.log.querySelector("li.beginning")) return;
    w.noOlder = true;
    if (!w.log.querySelector("li.beginning")) {
      w.log.prepend(el("li", "sys beginning", el("span", "text", `the beginning of #${w.name}`)));
    }
  }

  // -- sending --

  async join(nsp, room, focus) {
    const w = this.nsWindow(nsp);
    try {
      const reply = await this.client.join(nsp, room);
      const rw = this.window(nsp, "room", reply.room);
      this.select(rw, true);
      if (focus) $("composer").focus();
    } catch (e) {
      if (e.code === CONNECTION_LOST) {
        // Made again once connected (the server may have joined us, or not: a join is
        // idempotent).
        if (!this.pendingJoins.some((j) => j.nsp === nsp && j.room === room)) {
          this.pendingJoins.push({ nsp, room, focus });
        }
        this.system(this.active || w, `#${room}: the connection dropped; joining once reconnected`, "conn");
        if (this.client.isConnected(nsp)) this.joinPending(nsp);
        return;
      }
      this.system(this.active || w, `cannot join #${room}: ${e.message}`, "error");
    }
  }

  /** Makes the joins waiting for `nsp` to be connected. */
  joinPending(nsp) {
    const due = this.pendingJoins.filter((j) => j.nsp === nsp);
    this.pendingJoins = this.pendingJoins.filter((j) => j.nsp !== nsp);
    for (const j of due) this.join(nsp, j.room, j.focus);
  }

  async leave(w) {
    if (w.kind === "dm") {
      this.closeWindow(w.key);
      return;
    }
    try {
      await this.client.leave(w.nsp, w.name);
    } catch (e) {
      this.system(w, `cannot leave: ${e.message}`, "error");
    }
  }

  onComposerKey(ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      this.submit();
    } else if ((ev.key === "PageUp" || ev.key === "PageDown") && this.active) {
      // The messages scroll from the input (older ones load at the top).
      ev.preventDefault();
      const log = this.active.log;
      log.scrollBy(0, (ev.key === "PageUp" ? -0.9 : 0.9) * log.clientHeight);
    } else if (ev.key === "Escape") {
      ev.preventDefault();
      if (this.active) {
        this.active.unread = 0;
        this.active.mentions = 0;
        this.renderWindowList();
        this.updateTitle();
        this.stickToBottom(this.active);
      }
    }
  }

  onComposerInput() {
    const w = this.active;
    const text = $("composer").value;
    this.autosize();
    if (!w || w.kind !== "room" || !text || text.startsWith("/")) return;
    const now = Date.now();
    const last = this.lastTypingSent.get(w.key) || 0;
    if (now - last >= TYPING_EVERY_MS) {
      this.lastTypingSent.set(w.key, now);
      this.client.typing(w.nsp, w.name);
    }
  }

  autosize() {
    const c = $("composer");
    const lines = Math.min(6, c.value.split("\n").length);
    c.rows = lines;
  }

  submit() {
    const c = $("composer");
    const text = c.value;
    if (!text.trim() || !this.client) return;
    c.value = "";
    this.autosize();
    if (this.active) this.lastTypingSent.delete(this.active.key);
    if (text.startsWith("/") && !text.startsWith("//")) this.command(text);
    else this.say(text.startsWith("//") ? text.slice(1) : text, false);
  }

  say(text, action) {
    const w = this.active;
    if (!w) return;
    if (w.kind === "room") {
      this.client.send(w.nsp, w.name, text, action);
      this.stickToBottom(w);
    } else if (w.kind === "dm") {
      this.sendDm(w.nsp, w.name, text, action);
    } else {
      this.system(w, "join a room first: /join #room (or /msg NICK text)", "error");
    }
  }

  async sendDm(nsp, to, text, action) {
    const w = this.window(nsp, "dm", to);
    const { li } = this.messageLine({ from: this.client.nick, text, action, ts: Date.now() }, true);
    this.appendLine(w, li);
    try {
      const reply = await this.client.dm(nsp, to, text, action);
      li.remove();
      this.addDm(nsp, reply.message, false);
      if (!reply.delivered && reply.queued) this.system(w, `${to} is offline: the message waits for them`);
    } catch (e) {
      li.classList.remove("pending");
      li.classList.add("failed");
      li.append(el("span", "why", ` (not sent: ${e.message})`));
    }
  }

  async command(line) {
    const w = this.active;
    const nsp = w ? w.nsp : "/";
    const [cmd, ...rest] = line.slice(1).split(" ");
    const arg = rest.join(" ").trim();
    const report = (text, kind = "info") => this.system(this.active || this.nsWindow(nsp), text, kind);
    try {
      switch (cmd.toLowerCase()) {
        case "join":
        case "j":
          if (!normRoom(arg)) return report("usage: /join #room", "error");
          await this.join(nsp, normRoom(arg), true);
          break;
        case "leave":
        case "part": {
          const target = arg ? this.windows.get(keyOf(nsp, "room", normRoom(arg))) : w;
          if (target && target.kind !== "ns") await this.leave(target);
          else report("usage: /leave [#room]", "error");
          break;
        }
        case "me":
          if (!arg) return report("usage: /me waves", "error");
          this.say(arg, true);
          break;
        case "msg":
        case "query": {
          const [to, ...words] = arg.split(" ");
          if (!to) return report("usage: /msg NICK text", "error");
          const dw = this.window(nsp, "dm", to);
          this.select(dw);
          if (words.join(" ").trim()) await this.sendDm(nsp, to, words.join(" "), false);
          break;
        }
        case "topic":
          if (!w || w.kind !== "room") return report("/topic works in a room", "error");
          if (arg) await this.client.topic(nsp, w.name, arg === "-" ? "" : arg);
          else {
            const r = await this.client.topic(nsp, w.name);
            report(r.topic ? `topic: ${r.topic}` : "no topic");
          }
          if (arg) {
            w.topic = arg === "-" ? null : arg;
            this.renderHeader();
            report(arg === "-" ? "you cleared the topic" : `you set the topic: ${arg}`);
          }
          break;
        case "nick": {
          if (!arg) return report("usage: /nick NEWNICK", "error");
          const r = await this.client.setNick(nsp, arg);
          this.dms.rename(r.nick);
          $("me-nick").textContent = r.nick;
          report(`you are now ${r.nick}`);
          break;
        }
        case "away":
        case "back": {
          const reason = cmd.toLowerCase() === "back" ? "" : arg;
          const r = await this.client.away(nsp, reason);
          report(r.away ? `you are away: ${r.away}` : "you are back");
          break;
        }
        case "whois": {
          if (!arg) return report("usage: /whois NICK", "error");
          const r = await this.client.whois(nsp, arg);
          const parts = [
            r.online ? "online" : "offline",
            r.registered ? "registered" : "guest",
          ];
          if (r.rooms && r.rooms.length) parts.push(`with you in ${r.rooms.map((x) => `#${x}`).join(" ")}`);
          if (typeof r.idle_secs === "number") parts.push(`idle ${Math.round(r.idle_secs / 60)} min`);
          if (r.away) parts.push(`away: ${r.away}`);
          report(`${r.nick}: ${parts.join(", ")}`);
          break;
        }
        case "who": {
          if (!w || w.kind !== "room") return report("/who works in a room", "error");
          const r = await this.client.who(nsp, w.name);
          w.away = new Map((r.away || []).map((n) => [n, w.away.get(n) || ""]));
          w.members = new Set(r.members);
          w.operators = new Set(r.operators || []);
          this.renderMembers();
          report(`in #${w.name}: ${r.members.join(", ")}`);
          break;
        }
        case "rooms": {
          const r = await this.client.listRooms(nsp);
          report(r.rooms.length ? `rooms: ${r.rooms.map((x) => `#${x.room} (${x.members})`).join(", ")}` : "no rooms");
          break;
        }
        case "ns": {
          // `/ns /name [key]`: the key is typed, never taken from a link.
          const [name, key] = arg.split(/\s+/);
          if (!name) return report("usage: /ns /name [key]", "error");
          const target = normNs(name);
          this.client.openNamespace(target, key || undefined);
          this.select(this.nsWindow(target));
          break;
        }
        case "close":
          if (w && w.kind === "ns" && w.nsp !== "/") {
            this.client.closeNamespace(w.nsp);
            for (const x of [...this.windows.values()]) {
              if (x.nsp === w.nsp) {
                x.log.remove();
                this.windows.delete(x.key);
              }
            }
            this.select(this.nsWindow("/"));
          } else if (w && w.kind !== "ns") await this.leave(w);
          else report("/ stays open (use Log out)", "error");
          break;
        case "kick":
        case "ban":
        case "unban":
        case "mute":
        case "unmute":
        case "op":
        case "deop": {
          if (!w || w.kind !== "room") return report(`/${cmd} works in a room`, "error");
          const request = moderationRequest(cmd.toLowerCase(), w.name, arg);
          if (!request) return report(`usage: ${MODERATION_USAGE[cmd.toLowerCase()]}`, "error");
          const r = await this.client.moderate(nsp, cmd.toLowerCase(), request);
          // The room shows the event; a room we are not in (or left) gets no line otherwise.
          if (!w.members.has(this.client.nick)) report(`done: ${r.action} ${r.target}`);
          break;
        }
        case "delete":
        case "del": {
          // `/delete SEQ`, or `/delete NICK TEXT`: the newest shown message of NICK holding TEXT.
          if (!w || w.kind !== "room") return report("/delete works in a room", "error");
          const [first, ...words] = arg.split(/\s+/).filter(Boolean);
          let seq = null;
          if (words.length === 0 && /^\d+$/.test(first || "")) seq = Number(first);
          else if (words.length > 0) {
            const nick = first.toLowerCase();
            const text = words.join(" ").toLowerCase();
            const lines = [...w.log.querySelectorAll("li.msg[data-seq]")].reverse();
            const li = lines.find(
              (x) =>
                (x.dataset.from || "").toLowerCase() === nick &&
                (x.querySelector(".text")?.textContent || "").toLowerCase().includes(text),
            );
            if (!li) return report(`no message of ${first} holding "${words.join(" ")}" is shown here`, "error");
            seq = Number(li.dataset.seq);
          } else return report("usage: /delete SEQ or /delete NICK TEXT", "error");
          const r = await this.client.admin(nsp, "delete", { room: w.name, seq });
          // The room shows the `deleted` event; a room we are not in gets no line otherwise.
          if (!w.members.has(this.client.nick)) report(`message #${r.seq} deleted`);
          break;
        }
        case "unregister": {
          const nicks = arg.split(/\s+/).filter(Boolean);
          if (nicks.length !== 1) return report("usage: /unregister NICK", "error");
          const r = await this.client.admin(nsp, "unregister", { nick: nicks[0] });
          report(`${r.nick} is no longer registered`);
          break;
        }
        case "resetpass":
        case "reset_password": {
          // The password is never shown: not in a line, not in an error.
          const words = arg.split(/\s+/).filter(Boolean);
          if (words.length !== 2) return report("usage: /resetpass NICK NEWPASSWORD", "error");
          const r = await this.client.admin(nsp, "reset_password", { nick: words[0], password: words[1] });
          report(`password of ${r.nick} reset`);
          break;
        }
        case "search":
        case "find": {
          if (!arg) return report("usage: /search TEXT (in a room: that room; in a namespace's window: all its rooms)", "error");
          const room = w && w.kind === "room" ? w.name : null;
          if (w && w.kind === "dm") return report("direct messages are not kept by the server: use the browser's find (Ctrl+F)", "error");
          await this.openSearch(nsp, room, arg);
          break;
        }
        case "help":
          report(
            "/join #room · /leave · /me action · /msg NICK text · /topic [text|-] · /nick NEW · " +
              "/who · /whois NICK · /away [reason] · /back · /rooms · /search TEXT · /ns /name [key] · /close · " +
              "/kick NICK [reason] · /ban NICK|IP [10m|2h|1d] [reason] · /unban · /mute · /unmute · /op · /deop · " +
              "admins: /delete SEQ|NICK TEXT · /unregister NICK · /resetpass NICK NEWPASSWORD · " +
              "Alt+Up/Down or Ctrl+K: switch · PageUp/PageDown: scroll · Esc: mark read",
          );
          break;
        default:
          report(`unknown command /${cmd} (try /help)`, "error");
      }
    } catch (e) {
      report(`/${cmd}: ${e.message}`, "error");
    }
  }

  // -- search (/search) --

  /** Asks the server for the hits of `text` (in `room`, or every room of `nsp` when null)
   * and shows them, newest first, in the search panel; "Older hits" asks for the next page. */
  async openSearch(nsp, room, text, before = null) {
    const reply = await this.client.search(nsp, room, text, before);
    const list = $("search-list");
    if (!before) {
      list.replaceChildren();
      $("search-title").textContent = `"${text}" in ${room ? `#${room}` : nsp}`;
    }
    for (const m of reply.messages) {
      const when = new Date(m.ts).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
      const hit = el("button", "hit",
        el("span", "where", `#${m.room} · ${when} · `),
        el("strong", "", m.from), " ", m.text);
      hit.type = "button";
      hit.addEventListener("click", () => this.jumpTo(nsp, m));
      list.append(el("li", "", hit));
    }
    if (!list.children.length) list.append(el("li", "sys", "no message holds it"));
    const more = $("search-more");
    more.hidden = !reply.next;
    more.onclick = () =>
      this.openSearch(nsp, room, text, reply.next).catch((e) =>
        this.system(this.active || this.nsWindow(nsp), `/search: ${e.message}`, "error"));
    $("search").hidden = false;
    const first = list.querySelector("button.hit");
    (before ? more : first || more).focus();
  }

  closeSearch() {
    $("search").hidden = true;
    $("composer").focus();
  }

  /** Shows a hit in its room's window: older pages are loaded until it is there (at most
   * `JUMP_PAGES_MAX`: the window's messages stay one unbroken run), then it is scrolled to
   * and outlined for a moment. */
  async jumpTo(nsp, m) {
    $("search").hidden = true;
    const w = this.windows.get(keyOf(nsp, "room", m.room));
    if (!w) return this.system(this.active, `#${m.room}: join it to read the message`, "error");
    this.select(w);
    w.loadingOlder = true;
    try {
      for (let pages = 0; !w.bySeq.has(m.seq) && !w.noOlder && pages < JUMP_PAGES_MAX; pages++) {
        if (w.oldestSeq !== null && w.oldestSeq <= m.seq) break;
        await this.olderPage(w);
      }
    } finally {
      w.loadingOlder = false;
    }
    const li = w.bySeq.get(m.seq);
    if (!li) return this.system(w, `message #${m.seq} is not shown here: scroll up to it`, "error");
    w.stuck = false;
    li.scrollIntoView({ block: "center" });
    li.classList.add("found");
    setTimeout(() => li.classList.remove("found"), 3000);
  }

  // -- the switcher (Ctrl+K) --

  openSwitcher() {
    $("switcher").hidden = false;
    this.switcherIndex = 0;
    const input = $("switcher-input");
    input.value = "";
    this.renderSwitcher();
    input.focus();
  }

  closeSwitcher() {
    $("switcher").hidden = true;
    $("composer").focus();
  }

  /** The windows whose name has what was typed: those it starts first, then the others. */
  switcherMatches() {
    const q = $("switcher-input").value.trim().toLowerCase().replace(/^[#@]/, "");
    const rank = (w) => {
      const name = w.label.replace(/^[#@]/, "").toLowerCase();
      if (name.startsWith(q)) return 0;
      if (name.includes(q)) return 1;
      return w.nsp.toLowerCase().includes(q) ? 2 : 3;
    };
    const order = this.ordered();
    return order
      .filter((w) => rank(w) < 3)
      .sort((a, b) => rank(a) - rank(b) || order.indexOf(a) - order.indexOf(b));
  }

  renderSwitcher() {
    const matches = this.switcherMatches();
    this.switcherIndex = Math.max(0, Math.min(this.switcherIndex || 0, matches.length - 1));
    const items = matches.map((w, i) => {
      const b = el("button", "win", `${w.label}`, w.nsp !== "/" ? el("span", "nsp", ` ${w.nsp}`) : null);
      b.type = "button";
      if (i === this.switcherIndex) b.classList.add("chosen");
      b.addEventListener("click", () => {
        $("switcher").hidden = true;
        this.select(w);
      });
      return el("li", null, b);
    });
    $("switcher-list").replaceChildren(...items);
  }

  // -- static bindings --

  bindStatic() {
    $("login-form").addEventListener("submit", (e) => this.onLoginSubmit(e));
    $("composer-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    $("composer").addEventListener("keydown", (e) => this.onComposerKey(e));
    $("composer").addEventListener("input", () => this.onComposerInput());
    $("join-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const room = normRoom($("join-room").value);
      $("join-room").value = "";
      if (room && this.active) this.join(this.active.nsp, room, true);
    });
    $("ns-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const nsp = normNs($("ns-name").value);
      $("ns-name").value = "";
      this.client.openNamespace(nsp);
      this.select(this.nsWindow(nsp), false);
      $("join-room").focus();
    });
    $("leave").addEventListener("click", () => this.active && this.leave(this.active));
    $("logout").addEventListener("click", () => {
      this.client.forget();
      this.dms.clear();
      this.reset();
      this.showLogin();
    });
    const toggle = (cls, button) => {
      const on = document.body.classList.toggle(cls);
      $(button).setAttribute("aria-expanded", String(on));
    };
    $("toggle-rooms").addEventListener("click", () => {
      toggle("show-rooms", "toggle-rooms");
      const current = document.querySelector('#window-list [aria-current="true"]');
      if (document.body.classList.contains("show-rooms") && current) current.focus();
    });
    $("toggle-members").addEventListener("click", () => toggle("show-members", "toggle-members"));
    $("search-close").addEventListener("click", () => this.closeSearch());
    // The search button starts a /search in the input line, where the text is typed.
    $("search-button").addEventListener("click", () => {
      const composer = $("composer");
      if (!composer.value.startsWith("/search ")) composer.value = "/search ";
      composer.focus();
      composer.setSelectionRange(composer.value.length, composer.value.length);
    });
    $("switcher-input").addEventListener("input", () => {
      this.switcherIndex = 0;
      this.renderSwitcher();
    });
    $("switcher-input").addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        this.switcherIndex += e.key === "ArrowDown" ? 1 : -1;
        this.renderSwitcher();
      } else if (e.key === "Enter") {
        e.preventDefault();
        const chosen = this.switcherMatches()[this.switcherIndex];
        $("switcher").hidden = true;
        if (chosen) this.select(chosen);
        else $("composer").focus();
      }
    });
    document.addEventListener("keydown", (e) => this.onGlobalKey(e));
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.active) {
        this.active.unread = 0;
        this.active.mentions = 0;
        this.renderWindowList();
        this.updateTitle();
      }
    });
    window.addEventListener("online", () => this.client && this.client.manager.retryNow());
  }

  onGlobalKey(e) {
    if ($("app").hidden) return;
    if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
      e.preventDefault();
      this.step(e.key === "ArrowUp" ? -1 : 1);
    } else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "k") {
      e.preventDefault();
      if ($("switcher").hidden) this.openSwitcher();
      else this.closeSwitcher();
    } else if (e.key === "Escape") {
      if (!$("search").hidden) {
        e.preventDefault();
        this.closeSearch();
      } else if (!$("switcher").hidden) {
        e.preventDefault();
        this.closeSwitcher();
      } else if (document.body.classList.contains("show-rooms") || document.body.classList.contains("show-members")) {
        e.preventDefault();
        document.body.classList.remove("show-rooms", "show-members");
        $("composer").focus();
      } else if (document.activeElement !== $("composer")) {
        e.preventDefault();
        $("composer").focus();
      }
    }
  }
}

const page = new Page();
page.start();
// For the browser tests and for debugging from the console.
window.chatPage = page;
