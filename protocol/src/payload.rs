//! Engine.IO v4 long-polling payloads: the body of a polling GET answer or POST request.
//!
//! A payload is packets joined by the record separator `\x1e`. A text packet is its
//! Engine.IO text form (`4...`, `2`, `6`); a binary packet (a Socket.IO attachment) is `b`
//! followed by the standard base64 of its bytes. No packet's text form starts with `b`, so the
//! two never mix up. [`decode`] never panics (property-tested on arbitrary strings).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::DecodeError;

/// The record separator between the packets of a payload.
pub const SEPARATOR: char = '\x1e';

/// One packet of a payload, borrowed: the text form of an Engine.IO packet, or the bytes of
/// a binary one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

/// One decoded packet of a payload: text borrowed from the body, binary decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    Text(&'a str),
    Binary(Vec<u8>),
}

impl Part<'_> {
    /// The bytes this part adds to a payload, its separator included.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Part::Text(t) => t.len(),
            Part::Binary(b) => 1 + b.len().div_ceil(3) * 4,
        }
    }
}

/// Appends `parts` to `out` as a payload (`out` is expected empty, or to end a payload this
/// one continues).
pub fn encode<'a>(parts: impl IntoIterator<Item = Part<'a>>, out: &mut String) {
    for part in parts {
        if !out.is_empty() {
            out.push(SEPARATOR);
        }
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Binary(bytes) => {
                out.push('b');
                STANDARD.encode_string(bytes, out);
            }
        }
    }
}

/// The packets of a payload, in order. An empty packet or bad base64 is an error; the text
/// parts are not decoded further here (see [`crate::engine_io::Packet::decode`]).
pub fn decode(body: &str) -> impl Iterator<Item = Result<Decoded<'_>, DecodeError>> {
    body.split(SEPARATOR).map(|part| {
        if part.is_empty() {
            return Err(DecodeError::Empty);
        }
        match part.strip_prefix('b') {
            Some(b64) => STANDARD
                .decode(b64)
                .map(Decoded::Binary)
                .map_err(|_| DecodeError::BadPayload("binary")),
            None => Ok(Decoded::Text(part)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_payloads() {
        let mut out = String::new();
        encode(
            [
                Part::Text("2"),
                Part::Text("451-[\"up\",{\"_placeholder\":true,\"num\":0}]"),
                Part::Binary(&[1, 2, 3, 4]),
            ],
            &mut out,
        );
        assert_eq!(
            out,
            "2\x1e451-[\"up\",{\"_placeholder\":true,\"num\":0}]\x1ebAQIDBA=="
        );
        let back: Vec<_> = decode(&out).collect();
        assert_eq!(
            back,
            [
                Ok(Decoded::Text("2")),
                Ok(Decoded::Text(
                    "451-[\"up\",{\"_placeholder\":true,\"num\":0}]"
                )),
                Ok(Decoded::Binary(vec![1, 2, 3, 4])),
            ]
        );
        assert_eq!(
            out.len(),
            [
                Part::Text("2"),
                Part::Text("451-[\"up\",{\"_placeholder\":true,\"num\":0}]"),
                Part::Binary(&[1, 2, 3, 4])
            ]
            .iter()
            .map(Part::encoded_len)
            .sum::<usize>()
                - 1
        );
    }

    #[test]
    fn bad_payloads() {
        assert_eq!(decode("").collect::<Vec<_>>(), [Err(DecodeError::Empty)]);
        assert_eq!(
            decode("4a\x1e\x1e6").collect::<Vec<_>>(),
            [
                Ok(Decoded::Text("4a")),
                Err(DecodeError::Empty),
                Ok(Decoded::Text("6"))
            ]
        );
        assert_eq!(
            decode("b!!").collect::<Vec<_>>(),
            [Err(DecodeError::BadPayload("binary"))]
        );
        assert_eq!(
            decode("b").collect::<Vec<_>>(),
            [Ok(Decoded::Binary(Vec::new()))]
        );
    }
}
