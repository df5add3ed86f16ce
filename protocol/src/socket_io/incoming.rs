//! A Socket.IO packet as a server reads it. An EVENT's arguments are never built into
//! `serde_json::Value`s: the packet's JSON array is walked item by item, its name parsed and
//! each argument checked as parsing it into a `Value` would check it (with nothing built),
//! and each argument is kept as its JSON text, for the handler to deserialize straight into
//! its request type. Anything unusual (JSON a `Value` refuses, an array that is not a name
//! and arguments, a reserved name) goes down [`Packet::decode`]'s path, which gives the same
//! error as ever. Every other packet (a BINARY_EVENT, with its placeholders, included) is
//! decoded as [`Packet::decode`] does.

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{Packet, PacketKind, RESERVED_EVENTS, decode_head};
use crate::DecodeError;

/// A decoded packet: an EVENT with its arguments as JSON text, or any other packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Event(RawEvent),
    Packet(Packet),
}

impl Incoming {
    /// Decodes the Socket.IO text form. Accepts exactly the text [`Packet::decode`] accepts
    /// and refuses the rest with the same [`DecodeError`]. An EVENT (not a BINARY_EVENT)
    /// comes back as a [`RawEvent`]; any other packet, and an EVENT whose arguments nest as
    /// deep as serde_json allows, as [`Packet::decode`] gives it.
    pub fn decode(text: &str) -> Result<Incoming, DecodeError> {
        let (head, json) = decode_head(text)?;
        if head.kind == PacketKind::Event
            && let Some((name, args)) = split_event(json)
        {
            return Ok(Incoming::Event(RawEvent {
                nsp: head.nsp,
                id: head.id,
                name,
                args,
            }));
        }
        Packet::with_json(head, json).map(Incoming::Packet)
    }
}

/// An EVENT packet whose arguments are still JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub nsp: String,
    /// Present when the client asked for an acknowledgement.
    pub id: Option<u64>,
    pub name: String,
    pub args: JsonArgs,
}

impl RawEvent {
    /// The [`Packet`] that [`Packet::decode`] gives for the same text.
    pub fn into_packet(self) -> Packet {
        Packet::event(&self.nsp, &self.name, self.args.to_values(), self.id)
    }
}

/// An event's arguments (those after its name), each kept as its JSON text: checked when the
/// packet was decoded, deserialized when a handler asks for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonArgs {
    /// The packet's JSON array, `["name",arg,...]`, as received.
    json: String,
    /// Where each argument sits in `json`.
    spans: Vec<Range<usize>>,
}

impl JsonArgs {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Argument `i`'s JSON text, as received.
    pub fn get(&self, i: usize) -> Option<&str> {
        self.json.get(self.spans.get(i)?.clone())
    }

    /// Argument `i` (`null` when there is none) as a `T`, deserialized from its text: the
    /// value, or the error (its message included), that `serde_json::from_value` gives for
    /// that argument's [`Value`].
    pub fn parse<T: DeserializeOwned>(&self, i: usize) -> Result<T, serde_json::Error> {
        let text = self.get(i).unwrap_or("null");
        // Straight from the text. When that fails (a wrong type, a missing field, or a key
        // given twice, of which a `Value` keeps the last) the answer is the `Value` path's:
        // its errors carry no position, and it accepts the repeated key. Only bad requests
        // pay for the second parse.
        serde_json::from_str(text)
            .or_else(|_| serde_json::from_value(serde_json::from_str::<Value>(text)?))
    }

    /// Every argument as a [`Value`] (the text was checked at decode: none fails).
    pub fn to_values(&self) -> Vec<Value> {
        (0..self.len())
            .map(|i| self.parse(i).unwrap_or(Value::Null))
            .collect()
    }
}

/// An EVENT's JSON text split into its name and its arguments' spans, each argument checked
/// as a `Value` would check it (building nothing). `None` for anything else: an array that
/// is not a name and arguments, a reserved name, JSON that a `Value` would refuse or that
/// nests as deep as its limit; then [`Packet::decode`]'s own path decides, with its own
/// errors. So this accepts only what that path accepts, with the same name and arguments.
fn split_event(json: &str) -> Option<(String, JsonArgs)> {
    let bytes = json.as_bytes();
    let mut at = skip_whitespace(bytes, 0);
    if bytes.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_whitespace(bytes, at + 1);
    let (name, end) = value_at::<String>(json, at)?;
    if RESERVED_EVENTS.contains(&name.as_str()) {
        return None;
    }
    let mut spans = Vec::new();
    at = skip_whitespace(bytes, end);
    loop {
        match bytes.get(at)? {
            b']' => break,
            b',' => {
                let start = skip_whitespace(bytes, at + 1);
                let (Checked, end) = value_at::<Checked>(json, start)?;
                spans.push(start..end);
                at = skip_whitespace(bytes, end);
            }
            _ => return None,
        }
    }
    if skip_whitespace(bytes, at + 1) != bytes.len() {
        return None;
    }
    let args = JsonArgs {
        json: json.to_owned(),
        spans,
    };
    Some((name, args))
}

/// The first index from `at` on that is not JSON whitespace.
fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// The JSON value that starts at `at`, and where it ends.
fn value_at<T: DeserializeOwned>(json: &str, at: usize) -> Option<(T, usize)> {
    let mut values = serde_json::Deserializer::from_str(json.get(at..)?).into_iter::<T>();
    let value = values.next()?.ok()?;
    Some((value, at + values.byte_offset()))
}

/// The most levels an argument's arrays and objects may nest: serde_json refuses a 128th
/// level in a `Value`, and the event's own array is the first.
const MAX_NESTING: usize = 126;

/// An argument checked as [`Value`] parses it (the same text accepted: numbers in range, no
/// half surrogate pair, nesting within [`MAX_NESTING`]), with nothing built.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Checked, D::Error> {
        Check { level: 1 }.deserialize(deserializer)
    }
}

/// Checks one value whose arrays and objects are at nesting `level`.
#[derive(Clone, Copy)]
struct Check {
    level: usize,
}

impl Check {
    /// The check of an array's or object's items; an error beyond [`MAX_NESTING`].
    fn items<E: serde::de::Error>(self) -> Result<Check, E> {
        if self.level > MAX_NESTING {
            return Err(E::custom("nested too deep"));
        }
        Ok(Check {
            level: self.level + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Check {
    type Value = Checked;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Checked, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        let items = self.items()?;
        while seq.next_element_seed(items)?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        let items = self.items()?;
        while map.next_entry_seed(items, items)?.is_some() {}
        Ok(Checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(json: &str) -> Option<(String, Vec<&str>)> {
        let (name, args) = split_event(json)?;
        let texts = (0..args.len())
            .map(|i| &json[args.spans[i].clone()])
            .collect();
        Some((name, texts))
    }

    #[test]
    fn items_are_split_at_their_own_commas_only() {
        assert_eq!(split(r#"["e"]"#), Some(("e".into(), vec![])));
        assert_eq!(
            split(" [ \"a,]\" ,\n{\"k\":[1,{\"x\":\"}\"}]} ,\t-1.5e3 , true,null,\"\\\"],\" ] "),
            Some((
                "a,]".into(),
                vec![
                    r#"{"k":[1,{"x":"}"}]}"#,
                    "-1.5e3",
                    "true",
                    "null",
                    r#""\"],""#
                ]
            ))
        );
        assert_eq!(
            split(r#"["\u0065",[[]],{}]"#),
            Some(("e".into(), vec!["[[]]", "{}"]))
        );
    }

    #[test]
    fn anything_unusual_is_left_to_the_value_path() {
        let nested =
            |levels: usize| format!("[\"e\",{}{}]", "[".repeat(levels), "]".repeat(levels));
        assert!(split(&nested(MAX_NESTING)).is_some());
        assert!(split(&nested(MAX_NESTING + 1)).is_none());
        for json in [
            "[]",
            "[1]",
            "[\"e\",]",
            "[\"e\" 1]",
            "[\"e\"]x",
            "[\"e\",1x]",
            "{}",
            "\"e\"",
            "[\"connect\"]",
            "[\"e\",1e400]",
            "[\"e\",\"\\ud800\"]",
            "[\"e\",[1,]]",
        ] {
            assert!(split(json).is_none(), "{json}");
        }
    }
}
