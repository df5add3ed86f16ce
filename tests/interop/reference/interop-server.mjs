#!/usr/bin/env node
// Reference implementation of the `interop` example (server/examples/interop.rs) on the
// official Node `socket.io` server. It is NOT what the interop tests are for: it exists so
// the tests themselves can be checked against real Socket.IO semantics:
//   INTEROP_BIN=tests/interop/reference/interop-server.mjs \
//   CHAT_SERVER_BIN=tests/interop/reference/chat-server.mjs bash tests/interop/run.sh
// Usage: interop-server.mjs --port PORT   (prints "listening on 127.0.0.1:PORT")
import { createServer } from "node:http";
import { Server } from "socket.io";

const args = process.argv.slice(2);
const portIdx = args.indexOf("--port");
const port = portIdx >= 0 ? Number(args[portIdx + 1]) : 0;

const httpServer = createServer();
const io = new Server(httpServer, { transports: ["websocket"], serveClient: false });

function ackDone(ack) {
  if (typeof ack === "function") ack("done");
}

function setup(nsp) {
  nsp.on("connection", (socket) => {
    socket.on("join", ({ room }, ack) => {
      socket.join(room);
      ackDone(ack);
    });
    socket.on("leave", ({ room }, ack) => {
      socket.leave(room);
      ackDone(ack);
    });
    socket.on("to-rooms", ({ rooms, event, data }, ack) => {
      nsp.to(rooms).emit(event, data);
      ackDone(ack);
    });
    socket.on("except", ({ rooms, except, event, data }, ack) => {
      (rooms.length ? nsp.to(rooms) : nsp).except(except).emit(event, data);
      ackDone(ack);
    });
    socket.on("broadcast-room", ({ room, event, data }, ack) => {
      socket.to(room).emit(event, data);
      ackDone(ack);
    });
    socket.on("broadcast", ({ event, data }, ack) => {
      socket.broadcast.emit(event, data);
      ackDone(ack);
    });
    socket.on("echo-ack", (...all) => {
      const ack = typeof all[all.length - 1] === "function" ? all.pop() : null;
      if (ack) ack(...all);
    });
    socket.on("server-ack", ({ event, data }, ack) => {
      socket.timeout(2000).emit(event, data, (err, ...clientArgs) => {
        if (err) socket.emit("server-ack-result", { error: "timeout" });
        else socket.emit("server-ack-result", ...clientArgs);
      });
      ackDone(ack);
    });
  });
}

setup(io.of("/"));
setup(io.of("/admin"));
const secure = io.of("/secure");
secure.use((socket, next) => {
  const auth = socket.handshake.auth;
  if (auth && auth.token === "letmein" && Object.keys(auth).length === 1) return next();
  const err = new Error("not authorized");
  err.data = { reason: "bad token" };
  next(err);
});
// /secure has no event handlers of its own.

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${httpServer.address().port}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
