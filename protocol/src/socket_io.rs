//! Socket.IO v5 packets: `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`, carried in
//! Engine.IO message packets. The namespace `/` is left out on the wire.
//!
//! Binary data never sits inside a `serde_json::Value`: a binary packet keeps its
//! `{"_placeholder":true,"num":N}` markers in `data` and carries the attachments beside it
//! (see [`BinaryAssembler`] for the receiving side).
//!
//! A server reads packets with [`Incoming::decode`]: the same checks and errors as
//! [`Packet::decode`], but an EVENT's arguments stay JSON text ([`JsonArgs`]), each
//! deserialized later straight into the type its handler wants (file `socket_io/incoming.rs`).

mod incoming;

pub use incoming::{Incoming, JsonArgs, RawEvent};

use bytes::Bytes;
use serde_json::Value;

use crate::DecodeError;

/// Event names an application may not use (the official clients reserve them).
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Longest ack id accepted: the official parser uses JavaScript numbers; u64 is plenty.
const MAX_ACK_DIGITS: usize = 19;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

impl PacketKind {
    pub fn digit(self) -> char {
        match self {
            PacketKind::Connect => '0',
            PacketKind::Disconnect => '1',
            PacketKind::Event => '2',
            PacketKind::Ack => '3',
            PacketKind::ConnectError => '4',
            PacketKind::BinaryEvent => '5',
            PacketKind::BinaryAck => '6',
        }
    }

    fn from_digit(c: char) -> Option<PacketKind> {
        Some(match c {
            '0' => PacketKind::Connect,
            '1' => PacketKind::Disconnect,
            '2' => PacketKind::Event,
            '3' => PacketKind::Ack,
            '4' => PacketKind::ConnectError,
            '5' => PacketKind::BinaryEvent,
            '6' => PacketKind::BinaryAck,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            PacketKind::Connect => "CONNECT",
            PacketKind::Disconnect => "DISCONNECT",
            PacketKind::Event => "EVENT",
            PacketKind::Ack => "ACK",
            PacketKind::ConnectError => "CONNECT_ERROR",
            PacketKind::BinaryEvent => "BINARY_EVENT",
            PacketKind::BinaryAck => "BINARY_ACK",
        }
    }

    pub fn is_binary(self) -> bool {
        matches!(self, PacketKind::BinaryEvent | PacketKind::BinaryAck)
    }
}

/// One Socket.IO packet (text part). For binary kinds `attachments` says how many binary
/// frames follow.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub kind: PacketKind,
    pub nsp: String,
    pub id: Option<u64>,
    pub data: Option<Value>,
    pub attachments: usize,
}

impl Packet {
    /// A client's CONNECT, with an optional auth object.
    pub fn connect(nsp: &str, auth: Option<Value>) -> Packet {
        Packet::new(PacketKind::Connect, nsp, None, auth)
    }

    /// The server's answer to a successful CONNECT: exactly `{"sid":...}`.
    pub fn connect_ok(nsp: &str, sid: &str) -> Packet {
        let mut map = serde_json::Map::new();
        map.insert("sid".into(), Value::String(sid.to_owned()));
        Packet::new(PacketKind::Connect, nsp, None, Some(Value::Object(map)))
    }

    /// A refusal: `{"message":...}` plus `data` when given.
    pub fn connect_error(nsp: &str, message: &str, data: Option<Value>) -> Packet {
        let mut map = serde_json::Map::new();
        map.insert("message".into(), Value::String(message.to_owned()));
        if let Some(data) = data {
            map.insert("data".into(), data);
        }
        Packet::new(
            PacketKind::ConnectError,
            nsp,
            None,
            Some(Value::Object(map)),
        )
    }

    pub fn disconnect(nsp: &str) -> Packet {
        Packet::new(PacketKind::Disconnect, nsp, None, None)
    }

    /// An EVENT (or BINARY_EVENT when `attachments > 0`): `[event, ...args]`.
    pub fn event(nsp: &str, event: &str, args: Vec<Value>, id: Option<u64>) -> Packet {
        let mut data = Vec::with_capacity(args.len() + 1);
        data.push(Value::String(event.to_owned()));
        data.extend(args);
        Packet::new(PacketKind::Event, nsp, id, Some(Value::Array(data)))
    }

    /// An ACK (or BINARY_ACK when `attachments > 0`) carrying `args`.
    pub fn ack(nsp: &str, id: u64, args: Vec<Value>) -> Packet {
        Packet::new(PacketKind::Ack, nsp, Some(id), Some(Value::Array(args)))
    }

    fn new(kind: PacketKind, nsp: &str, id: Option<u64>, data: Option<Value>) -> Packet {
        Packet {
            kind,
            nsp: nsp.to_owned(),
            id,
            data,
            attachments: 0,
        }
    }

    /// Marks the packet as carrying `n` binary attachments (turning EVENT/ACK into
    /// BINARY_EVENT/BINARY_ACK when `n > 0`).
    pub fn with_attachments(mut self, n: usize) -> Packet {
        self.attachments = n;
        self.kind = match (self.kind, n > 0) {
            (PacketKind::Event, true) => PacketKind::BinaryEvent,
            (PacketKind::Ack, true) => PacketKind::BinaryAck,
            (PacketKind::BinaryEvent, false) => PacketKind::Event,
            (PacketKind::BinaryAck, false) => PacketKind::Ack,
            (k, _) => k,
        };
        self
    }

    /// The event name of an EVENT/BINARY_EVENT packet.
    pub fn event_name(&self) -> Option<&str> {
        match (&self.kind, &self.data) {
            (PacketKind::Event | PacketKind::BinaryEvent, Some(Value::Array(a))) => {
                a.first()?.as_str()
            }
            _ => None,
        }
    }

    /// The Socket.IO text form (without the Engine.IO `4`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_into(&mut out);
        out
    }

    /// The whole WebSocket text frame: Engine.IO `4` followed by the Socket.IO text form.
    pub fn encode_frame(&self) -> String {
        let mut out = String::from("4");
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut String) {
        encode_head(out, self.kind, self.attachments, &self.nsp, self.id);
        if let Some(data) = &self.data {
            // A Value always serialises.
            out.push_str(&serde_json::to_string(data).unwrap_or_default());
        }
    }

    /// Decodes and validates the Socket.IO text form.
    pub fn decode(text: &str) -> Result<Packet, DecodeError> {
        let (head, json) = decode_head(text)?;
        Packet::with_json(head, json)
    }

    /// The packet of a decoded head and the JSON text after it, validated.
    fn with_json(head: Head, json: &str) -> Result<Packet, DecodeError> {
        let data = if json.is_empty() {
            None
        } else {
            Some(serde_json::from_str::<Value>(json).map_err(|e| json_error(json, e))?)
        };
        let packet = Packet {
            kind: head.kind,
            nsp: head.nsp,
            id: head.id,
            data,
            attachments: head.attachments,
        };
        packet.validate()?;
        Ok(packet)
    }

    fn validate(&self) -> Result<(), DecodeError> {
        let bad = || DecodeError::BadPayload(self.kind.name());
        match (self.kind, &self.data) {
            (PacketKind::Connect, None | Some(Value::Object(_))) => {}
            (PacketKind::Disconnect, None) => {}
            (PacketKind::ConnectError, Some(Value::Object(_) | Value::String(_))) => {}
            (PacketKind::Event | PacketKind::BinaryEvent, Some(Value::Array(args))) => {
                match args.first() {
                    Some(Value::String(name)) if RESERVED_EVENTS.contains(&name.as_str()) => {
                        return Err(DecodeError::ReservedEvent(name.clone()));
                    }
                    Some(Value::String(_)) => {}
                    _ => return Err(bad()),
                }
            }
            (PacketKind::Ack | PacketKind::BinaryAck, Some(Value::Array(_)))
                if self.id.is_some() => {}
            _ => return Err(bad()),
        }
        Ok(())
    }
}

/// Everything of a packet's text form before its JSON data.
struct Head {
    kind: PacketKind,
    attachments: usize,
    nsp: String,
    id: Option<u64>,
}

/// Splits the text form into its head and the JSON text after it (maybe empty).
fn decode_head(text: &str) -> Result<(Head, &str), DecodeError> {
    let mut rest = text;
    let first = rest.chars().next().ok_or(DecodeError::Empty)?;
    let kind = PacketKind::from_digit(first).ok_or(DecodeError::UnknownType(first))?;
    rest = &rest[first.len_utf8()..];

    let mut attachments = 0;
    if kind.is_binary() {
        let dash = rest.find('-').ok_or(DecodeError::BadAttachments)?;
        let digits = &rest[..dash];
        if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DecodeError::BadAttachments);
        }
        attachments = digits.parse().map_err(|_| DecodeError::BadAttachments)?;
        rest = &rest[dash + 1..];
    }

    let mut nsp = "/".to_owned();
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        nsp = rest[..end].to_owned();
        rest = if end < rest.len() {
            &rest[end + 1..]
        } else {
            ""
        };
    }

    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let mut id = None;
    if digits > 0 {
        if digits > MAX_ACK_DIGITS {
            return Err(DecodeError::BadAckId);
        }
        id = Some(rest[..digits].parse().map_err(|_| DecodeError::BadAckId)?);
        rest = &rest[digits..];
    }
    let head = Head {
        kind,
        attachments,
        nsp,
        id,
    };
    Ok((head, rest))
}

/// The error for JSON text that did not parse.
fn json_error(json: &str, e: serde_json::Error) -> DecodeError {
    if has_lone_surrogate(json) {
        DecodeError::LoneSurrogate(e.to_string())
    } else {
        DecodeError::BadJson(e.to_string())
    }
}

/// The marker that stands for attachment `num` inside a binary packet's JSON.
pub fn placeholder(num: usize) -> Value {
    serde_json::json!({"_placeholder": true, "num": num})
}

/// Whether JSON text holds a `\\u` escape of half a UTF-16 surrogate pair without its other
/// half (serde_json refuses it with a message that does not say so). Only called on text
/// that failed to parse.
fn has_lone_surrogate(json: &str) -> bool {
    let bytes = json.as_bytes();
    let escape_at = |i: usize| -> Option<u16> {
        let hex = bytes.get(i..i + 6)?;
        if hex[0] != b'\\' || hex[1] != b'u' {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()
    };
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        match escape_at(i) {
            Some(0xD800..=0xDBFF) => {
                if !matches!(escape_at(i + 6), Some(0xDC00..=0xDFFF)) {
                    return true;
                }
                i += 12;
            }
            Some(0xDC00..=0xDFFF) => return true,
            Some(_) => i += 6,
            // Another escape (`\\\\`, `\\"`, ...): skip the escaped character.
            None => i += 2,
        }
    }
    false
}

/// Collects the binary frames that follow a BINARY_EVENT or BINARY_ACK.
#[derive(Debug)]
pub struct BinaryAssembler {
    packet: Packet,
    attachments: Vec<Bytes>,
}

impl BinaryAssembler {
    /// Starts collecting for a decoded binary packet.
    pub fn new(packet: Packet) -> BinaryAssembler {
        let expected = packet.attachments;
        BinaryAssembler {
            packet,
            attachments: Vec::with_capacity(expected.min(16)),
        }
    }

    /// Adds one binary frame; true once every attachment has arrived.
    pub fn push(&mut self, frame: Bytes) -> bool {
        self.attachments.push(frame);
        self.remaining() == 0
    }

    /// The packet and its attachments.
    pub fn finish(self) -> (Packet, Vec<Bytes>) {
        (self.packet, self.attachments)
    }

    pub fn remaining(&self) -> usize {
        self.packet
            .attachments
            .saturating_sub(self.attachments.len())
    }
}

/// Everything of the text form before the JSON data.
fn encode_head(out: &mut String, kind: PacketKind, attachments: usize, nsp: &str, id: Option<u64>) {
    use std::fmt::Write;
    out.push(kind.digit());
    if kind.is_binary() {
        let _ = write!(out, "{attachments}-");
    }
    if nsp != "/" && !nsp.is_empty() {
        out.push_str(nsp);
        out.push(',');
    }
    if let Some(id) = id {
        let _ = write!(out, "{id}");
    }
}

/// The whole WebSocket text frame (Engine.IO `4` included) of a packet without attachments
/// whose data is `data` written straight to JSON, without building a [`Value`]: the same text
/// as [`Packet::encode_frame`] of the packet holding `serde_json::to_value(data)`. For
/// EVENT and ACK, `data` must serialise to an array (a tuple does: `("message", &msg)`).
pub fn encode_frame_with<T: serde::Serialize + ?Sized>(
    kind: PacketKind,
    nsp: &str,
    id: Option<u64>,
    data: &T,
) -> Result<String, serde_json::Error> {
    let mut out = String::from("4");
    encode_head(&mut out, kind, 0, nsp, id);
    let mut bytes = out.into_bytes();
    serde_json::to_writer(&mut bytes, data)?;
    // serde_json writes only valid UTF-8 after a valid UTF-8 head.
    String::from_utf8(bytes).map_err(|e| serde::ser::Error::custom(e.to_string()))
}
