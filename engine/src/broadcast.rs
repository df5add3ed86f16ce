//! The broadcast operator: choose targets (`to`, `except`, `volatile`), then `emit`, which
//! encodes the packet once and hands it to the namespace's adapter.

use bytes::Bytes;
use chat_protocol::socket_io::{Packet, PacketKind, encode_frame_with};
use serde_json::Value;

use super::adapter::BroadcastOptions;
use super::namespace::Namespace;
use super::outbox::{EncodedPacket, SendError};
use super::{Room, Sid};

/// The namespace's ways into a broadcast; they live here, beside the operator, so the
/// namespace need not know the operator.
impl Namespace {
    /// Targets every socket of the namespace (narrow it with `to`, `except`, `volatile`).
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.clone())
    }

    /// Targets a room.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        BroadcastOperator::new(self.clone()).to(room)
    }

    /// Targets everyone but the sockets in this room.
    pub fn except(&self, room: impl Into<Room>) -> BroadcastOperator {
        BroadcastOperator::new(self.clone()).except(room)
    }

    /// Targets everyone, volatile.
    pub fn volatile(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.clone()).volatile()
    }

    /// Emits to every socket of the namespace.
    pub fn emit(&self, event: &str, args: Vec<Value>) -> usize {
        BroadcastOperator::new(self.clone()).emit(event, args)
    }
}

#[derive(Clone)]
pub struct BroadcastOperator {
    ns: Namespace,
    opts: BroadcastOptions,
}

impl BroadcastOperator {
    pub(crate) fn new(ns: Namespace) -> BroadcastOperator {
        BroadcastOperator {
            ns,
            opts: BroadcastOptions::default(),
        }
    }

    /// Leaves out the sender (through its own-id room).
    pub(crate) fn from_socket(ns: Namespace, sid: &Sid) -> BroadcastOperator {
        BroadcastOperator::new(ns).except(sid.as_str())
    }

    /// Adds a target room (targets are a union; each socket receives once).
    pub fn to(mut self, room: impl Into<Room>) -> Self {
        self.opts.rooms.push(room.into());
        self
    }

    /// Leaves out every socket in this room.
    pub fn except(mut self, room: impl Into<Room>) -> Self {
        self.opts.except.push(room.into());
        self
    }

    /// Lets the packet be dropped for a client that cannot take it now.
    pub fn volatile(mut self) -> Self {
        self.opts.volatile = true;
        self
    }

    /// Only this process's sockets (see [`BroadcastOptions::local`]).
    pub fn local(mut self) -> Self {
        self.opts.local = true;
        self
    }

    pub fn options(&self) -> &BroadcastOptions {
        &self.opts
    }

    /// Emits `event` with `args`; returns how many local sockets took it.
    pub fn emit(&self, event: &str, args: Vec<Value>) -> usize {
        self.emit_binary(event, args, Vec::new())
    }

    /// Emits with binary attachments (`args` hold the placeholders).
    pub fn emit_binary(&self, event: &str, args: Vec<Value>, attachments: Vec<Bytes>) -> usize {
        let packet = EncodedPacket::new(
            Packet::event(self.ns.name(), event, args, None),
            attachments,
        );
        let delivered = self.ns.adapter().broadcast(packet, &self.opts);
        self.ns.stats().delivered(delivered);
        delivered
    }

    /// Emits `event` with one argument written straight to JSON (no `Value` built);
    /// returns how many local sockets took it.
    pub fn emit_json<T: serde::Serialize + ?Sized>(
        &self,
        event: &str,
        arg: &T,
    ) -> Result<usize, SendError> {
        let text = encode_frame_with(PacketKind::Event, self.ns.name(), None, &(event, arg))
            .map_err(|_| SendError::Unserializable)?;
        let delivered = self
            .ns
            .adapter()
            .broadcast(EncodedPacket::raw(text), &self.opts);
        self.ns.stats().delivered(delivered);
        Ok(delivered)
    }

    /// The sockets this operator currently targets.
    pub fn sockets(&self) -> Vec<Sid> {
        self.ns.adapter().sockets(&self.opts)
    }
}
