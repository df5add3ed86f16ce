//! A socket: one client's membership of one namespace. It emits to its own client, asks for
//! and answers acknowledgements, joins and leaves rooms, and broadcasts to others.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chat_protocol::socket_io::{Packet, PacketKind, encode_frame_with};
use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::oneshot;
use tracing::warn;

use super::broadcast::BroadcastOperator;
use super::namespace::{ConnectionInfo, Extensions, Namespace};
use super::outbox::{EncodedPacket, Outbox, SendError};
use super::{Room, Sid, lock};

/// The arguments of an acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub struct AckResponse {
    pub args: Vec<Value>,
    pub attachments: Vec<Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("no acknowledgement within the timeout")]
    Timeout,
    #[error("the socket disconnected before acknowledging")]
    Disconnected,
    #[error("the packet could not be sent")]
    NotSent,
}

/// Answers one client request. Dropping it sends nothing.
#[derive(Debug)]
pub struct AckSender {
    outbox: Outbox,
    nsp: String,
    id: u64,
}

impl AckSender {
    pub(crate) fn new(outbox: Outbox, nsp: &str, id: u64) -> AckSender {
        AckSender {
            outbox,
            nsp: nsp.to_owned(),
            id,
        }
    }

    pub fn send(self, args: Vec<Value>) -> Result<(), SendError> {
        self.send_binary(args, Vec::new())
    }

    pub fn send_binary(self, args: Vec<Value>, attachments: Vec<Bytes>) -> Result<(), SendError> {
        let packet = EncodedPacket::new(Packet::ack(&self.nsp, self.id, args), attachments);
        self.outbox.send(packet, false)
    }

    /// Answers with `args` written straight to JSON, no `Value` built: they must serialise
    /// to an array (a tuple does: `(&reply,)`).
    pub fn send_json<T: serde::Serialize + ?Sized>(self, args: &T) -> Result<(), SendError> {
        let text = encode_frame_with(PacketKind::Ack, &self.nsp, Some(self.id), args)
            .map_err(|_| SendError::Unserializable)?;
        self.outbox.send(EncodedPacket::raw(text), false)
    }
}

#[derive(Clone)]
pub struct Socket {
    inner: Arc<SocketInner>,
}

struct SocketInner {
    sid: Sid,
    ns: Namespace,
    outbox: Outbox,
    conn: Arc<ConnectionInfo>,
    extensions: Extensions,
    connected: AtomicBool,
    next_ack: AtomicU64,
    acks: Mutex<HashMap<u64, oneshot::Sender<AckResponse>>>,
}

impl Socket {
    pub(crate) fn new(
        ns: Namespace,
        outbox: Outbox,
        conn: Arc<ConnectionInfo>,
        extensions: Extensions,
    ) -> Socket {
        Socket {
            inner: Arc::new(SocketInner {
                sid: Sid::random(),
                ns,
                outbox,
                conn,
                extensions,
                connected: AtomicBool::new(true),
                next_ack: AtomicU64::new(0),
                acks: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn sid(&self) -> &Sid {
        &self.inner.sid
    }

    pub fn namespace(&self) -> &Namespace {
        &self.inner.ns
    }

    pub fn conn(&self) -> &ConnectionInfo {
        &self.inner.conn
    }

    /// Values shared by this connection's sockets in every namespace.
    pub fn extensions(&self) -> &Extensions {
        &self.inner.extensions
    }

    pub(crate) fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// Emits to this socket's client.
    pub fn emit(&self, event: &str, args: Vec<Value>) -> Result<(), SendError> {
        self.emit_binary(event, args, Vec::new())
    }

    /// Emits `event` with one argument written straight to JSON (no `Value` built).
    pub fn emit_json<T: serde::Serialize + ?Sized>(
        &self,
        event: &str,
        arg: &T,
    ) -> Result<(), SendError> {
        let text = encode_frame_with(PacketKind::Event, self.inner.ns.name(), None, &(event, arg))
            .map_err(|_| SendError::Unserializable)?;
        self.inner.outbox.send(EncodedPacket::raw(text), false)
    }

    pub fn emit_binary(
        &self,
        event: &str,
        args: Vec<Value>,
        attachments: Vec<Bytes>,
    ) -> Result<(), SendError> {
        let packet = EncodedPacket::new(
            Packet::event(self.inner.ns.name(), event, args, None),
            attachments,
        );
        self.inner.outbox.send(packet, false)
    }

    /// Emits and asks for an acknowledgement. The packet is queued now; the returned future
    /// resolves with the client's answer or an error after `timeout`. (Inside a handler, spawn
    /// the wait: see [`super::Handlers`].)
    pub fn emit_with_ack(
        &self,
        event: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> impl Future<Output = Result<AckResponse, AckError>> + Send + 'static {
        let id = self.inner.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.acks).insert(id, tx);
        let packet = EncodedPacket::new(
            Packet::event(self.inner.ns.name(), event, args, Some(id)),
            Vec::new(),
        );
        let sent = self.inner.outbox.send(packet, false);
        let inner = self.inner.clone();
        async move {
            if sent.is_err() {
                lock(&inner.acks).remove(&id);
                return Err(AckError::NotSent);
            }
            let result = match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(_)) => Err(AckError::Disconnected),
                Err(_) => Err(AckError::Timeout),
            };
            lock(&inner.acks).remove(&id);
            result
        }
    }

    /// Delivers a client's acknowledgement; unknown ids are ignored.
    pub(crate) fn resolve_ack(&self, id: u64, response: AckResponse) {
        if let Some(tx) = lock(&self.inner.acks).remove(&id) {
            let _ = tx.send(response);
        }
    }

    pub fn join(&self, room: impl Into<Room>) {
        self.inner
            .ns
            .adapter()
            .join(&self.inner.sid, &[room.into()]);
    }

    pub fn leave(&self, room: &str) {
        self.inner.ns.adapter().leave(&self.inner.sid, room);
    }

    /// The rooms this socket is in, its own-id room included.
    pub fn rooms(&self) -> Vec<Room> {
        self.inner.ns.adapter().rooms_of(&self.inner.sid)
    }

    /// Targets a room, leaving out this socket.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        BroadcastOperator::from_socket(self.inner.ns.clone(), &self.inner.sid).to(room)
    }

    /// Targets the whole namespace but this socket.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::from_socket(self.inner.ns.clone(), &self.inner.sid)
    }

    /// Disconnects this socket from its namespace (the client is told with a DISCONNECT
    /// packet and, per the protocol, does not reconnect it by itself).
    pub async fn disconnect(&self) {
        let packet = EncodedPacket::new(Packet::disconnect(self.inner.ns.name()), Vec::new());
        if self.is_connected() {
            let _ = self.inner.outbox.send(packet, false);
        }
        self.close("server namespace disconnect").await;
    }

    /// Leaves the namespace: runs the disconnect handler (still in its rooms), then leaves
    /// every room. Runs once; later calls do nothing.
    pub(crate) async fn close(&self, reason: &'static str) {
        if !self.inner.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Some(handler) = self.inner.ns.handlers().on_disconnect.clone() {
            // A panicking handler must not keep the socket in its namespace (and a dynamic
            // namespace alive): it is logged and the socket leaves all the same.
            if AssertUnwindSafe(handler(self.clone(), reason))
                .catch_unwind()
                .await
                .is_err()
            {
                warn!(sid = %self.inner.sid, "disconnect handler panicked");
            }
        }
        self.inner.ns.remove_socket(&self.inner.sid);
        lock(&self.inner.acks).clear();
    }
}
