//! Engine.IO v4 packets: a type digit then data; over WebSocket one packet per frame, over
//! long-polling several in a payload (see [`crate::payload`]).
//! A binary WebSocket frame is a binary message as-is and never passes through [`Packet`].

use serde::{Deserialize, Serialize};

use crate::DecodeError;

/// The payload of the open packet, the server's first frame. Field order and names are the
/// ones the official clients expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenPayload {
    pub sid: String,
    /// `["websocket"]` for a session opened by long-polling; empty for one opened over
    /// WebSocket (nothing to upgrade to).
    pub upgrades: Vec<String>,
    pub ping_interval: u64,
    pub ping_timeout: u64,
    pub max_payload: u64,
}

/// One Engine.IO text packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Open(OpenPayload),
    Close,
    /// Ping with its optional data (`probe` during an upgrade).
    Ping(String),
    Pong(String),
    /// A Socket.IO packet (text form).
    Message(String),
    Upgrade,
    Noop,
}

impl Packet {
    /// The text frame for this packet.
    pub fn encode(&self) -> String {
        match self {
            Packet::Open(open) => {
                // Serialising a struct of strings and integers cannot fail.
                let json = serde_json::to_string(open).unwrap_or_default();
                format!("0{json}")
            }
            Packet::Close => "1".to_owned(),
            Packet::Ping(data) => format!("2{data}"),
            Packet::Pong(data) => format!("3{data}"),
            Packet::Message(data) => {
                let mut s = String::with_capacity(data.len() + 1);
                s.push('4');
                s.push_str(data);
                s
            }
            Packet::Upgrade => "5".to_owned(),
            Packet::Noop => "6".to_owned(),
        }
    }

    /// Decodes a text frame. Unknown types and a malformed open payload are errors.
    pub fn decode(text: &str) -> Result<Packet, DecodeError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(DecodeError::Empty)?;
        let rest = chars.as_str();
        Ok(match kind {
            '0' => Packet::Open(
                serde_json::from_str(rest).map_err(|e| DecodeError::BadJson(e.to_string()))?,
            ),
            '1' => Packet::Close,
            '2' => Packet::Ping(rest.to_owned()),
            '3' => Packet::Pong(rest.to_owned()),
            '4' => Packet::Message(rest.to_owned()),
            '5' => Packet::Upgrade,
            '6' => Packet::Noop,
            other => return Err(DecodeError::UnknownType(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_packet_has_exact_keys_in_order() {
        let p = Packet::Open(OpenPayload {
            sid: "abc".into(),
            upgrades: vec![],
            ping_interval: 25000,
            ping_timeout: 20000,
            max_payload: 1_000_000,
        });
        assert_eq!(
            p.encode(),
            r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
        assert_eq!(Packet::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn literal_packets() {
        assert_eq!(Packet::decode("2"), Ok(Packet::Ping(String::new())));
        assert_eq!(Packet::decode("3probe"), Ok(Packet::Pong("probe".into())));
        assert_eq!(Packet::decode("1"), Ok(Packet::Close));
        assert_eq!(Packet::decode("6"), Ok(Packet::Noop));
        assert_eq!(Packet::decode("440"), Ok(Packet::Message("40".into())));
        assert_eq!(Packet::Message("2[\"a\"]".into()).encode(), "42[\"a\"]");
        assert_eq!(Packet::decode(""), Err(DecodeError::Empty));
        assert_eq!(Packet::decode("7"), Err(DecodeError::UnknownType('7')));
        assert_eq!(Packet::decode("é"), Err(DecodeError::UnknownType('é')));
        assert!(matches!(Packet::decode("0{"), Err(DecodeError::BadJson(_))));
    }
}
