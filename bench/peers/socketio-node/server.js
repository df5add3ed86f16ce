// The Node Socket.IO peer of chat-bench: socket.io 4.8 on ws, WebSocket transport only,
// no compression. The same two events as the chat server's bench path, nothing else:
// `join {room}` joins and acks {ok:true, room}; `message {room, text}` is broadcast to the
// room, sender excluded, as `message {room, from, text}` and acked {ok:true}.
// Usage: NODE_ENV=production node server.js <port>
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2] || 3000);
const io = new Server({
  transports: ["websocket"],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  maxHttpBufferSize: 1e6,
});

io.on("connection", (socket) => {
  const nick = (socket.handshake.auth && socket.handshake.auth.nick) || "anon";
  socket.on("join", (data, ack) => {
    socket.join(data.room);
    if (typeof ack === "function") ack({ ok: true, room: data.room });
  });
  socket.on("message", (data, ack) => {
    socket.to(data.room).emit("message", { room: data.room, from: nick, text: data.text });
    if (typeof ack === "function") ack({ ok: true });
  });
});

// Loopback only.
const httpServer = http.createServer();
io.attach(httpServer);
httpServer.listen(port, "127.0.0.1", () => console.log(`listening on 127.0.0.1:${port}`));
process.on("SIGTERM", () => process.exit(0));
