#!/usr/bin/env node
// A tiny stand-in for the `chat-server` binary on the official Node `socket.io` server, only
// as much of the chat protocol (protocol/src/events.rs) as the smoke test uses. It exists so
// the interop tests themselves can be checked against real Socket.IO; see interop-server.mjs.
// Usage: chat-server.mjs --listen 127.0.0.1:PORT   (logs "listening on ..." to stderr)
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { Server } from "socket.io";

const args = process.argv.slice(2);
const listenIdx = args.indexOf("--listen");
const [host, port] = (listenIdx >= 0 ? args[listenIdx + 1] : "127.0.0.1:7878").split(":");
const flag = (name, dflt) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);

const httpServer = createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  pingInterval: flag("--ping-interval-ms", 25000),
  pingTimeout: flag("--ping-timeout-ms", 20000),
});
const nicks = new Set();
const seqs = new Map();

io.use((socket, next) => {
  const nick = socket.handshake.auth && socket.handshake.auth.nick;
  if (typeof nick !== "string" || !nick) {
    const err = new Error("a nick is required");
    err.data = { code: "nick_required" };
    return next(err);
  }
  if (nicks.has(nick.toLowerCase())) {
    const err = new Error("nick is taken");
    err.data = { code: "nick_taken" };
    return next(err);
  }
  next();
});

io.on("connection", (socket) => {
  const nick = socket.handshake.auth.nick;
  nicks.add(nick.toLowerCase());
  socket.on("disconnect", () => nicks.delete(nick.toLowerCase()));
  socket.on("join", async ({ room }, ack) => {
    socket.join(room);
    const members = (await io.in(room).fetchSockets()).map((s) => s.handshake.auth.nick).sort();
    ack({ ok: true, room, members, topic: null, history: [] });
  });
  socket.on("message", ({ room, text }, ack) => {
    const seq = (seqs.get(room) || 0) + 1;
    seqs.set(room, seq);
    const message = { id: randomUUID(), room, seq, from: nick, text, ts: Date.now() };
    socket.to(room).emit("message", message);
    ack({ ok: true, message });
  });
});

httpServer.listen(Number(port), host, () => {
  console.error(`INFO listening on ${host}:${httpServer.address().port}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
