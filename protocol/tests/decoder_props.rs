//! Property tests for every decoder, run on stable in CI (the cargo-fuzz targets in `fuzz/`
//! check the same properties with coverage guidance): decoders never panic, what decodes
//! re-encodes to the same value, the binary assembler completes exactly on its count, the
//! name rules hold their limits, and chat payloads parse from any JSON without panicking.

use bytes::Bytes;
use chat_protocol::events::{
    self, Auth, DmRequest, HistoryRequest, JoinReply, JoinRequest, MessageRequest, NickRequest,
    TopicRequest,
};
use chat_protocol::socket_io::{BinaryAssembler, Packet};
use chat_protocol::{engine_io, names};
use proptest::prelude::*;
use serde_json::Value;

/// Strings shaped like Socket.IO packets: a type, maybe attachments, a namespace, an ack id
/// and a JSON-ish body, so the decoder's deeper branches are reached.
fn packet_like() -> impl Strategy<Value = String> {
    (
        "[0-7]",
        prop::option::of("[0-9]{1,3}-"),
        prop::option::of("/[a-z0-9,]{0,6},"),
        prop::option::of("[0-9]{1,22}"),
        prop_oneof![
            Just(String::new()),
            Just("[]".to_owned()),
            Just("{}".to_owned()),
            "\\[\"[a-z]{0,8}\"(,[0-9]{1,3}|,\"[a-z]{0,3}\"|,\\{\"_placeholder\":true,\"num\":[0-9]\\})*\\]",
            "\\{(\"[a-z]{1,4}\":(true|[0-9]{1,3}|\"x\"|null))?\\}",
            ".{0,12}",
        ],
    )
        .prop_map(|(t, a, n, id, body)| {
            format!(
                "{t}{}{}{}{body}",
                a.unwrap_or_default(),
                n.unwrap_or_default(),
                id.unwrap_or_default()
            )
        })
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn socket_io_decoded_packets_round_trip(s in packet_like()) {
        if let Ok(p) = Packet::decode(&s) {
            prop_assert_eq!(Packet::decode(&p.encode()), Ok(p));
        }
    }

    #[test]
    fn engine_io_decode_never_panics_and_round_trips(s in "[0-9]?.{0,30}") {
        if let Ok(p) = engine_io::Packet::decode(&s) {
            prop_assert_eq!(engine_io::Packet::decode(&p.encode()), Ok(p));
        }
    }

    #[test]
    fn binary_assembler_completes_exactly_on_its_count(n in 1usize..8, frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 0..12)) {
        let header = Packet::decode(&format!("5{n}-[\"e\"]")).expect("binary event");
        let mut a = BinaryAssembler::new(header);
        for (i, f) in frames.iter().enumerate() {
            let done = a.push(Bytes::from(f.clone()));
            prop_assert_eq!(done, i + 1 == n);
            if done {
                let (_, atts) = a.finish();
                prop_assert_eq!(atts.len(), n);
                return Ok(());
            }
        }
        prop_assert_eq!(a.remaining(), n - frames.len());
    }

    #[test]
    fn names_hold_their_limits(s in ".{0,80}") {
        if names::validate_namespace(&s).is_ok() {
            prop_assert!(s.chars().count() <= names::NAMESPACE_MAX && !s.contains(','));
        }
        if names::validate_room(&s).is_ok() {
            prop_assert!(s.chars().count() <= names::ROOM_MAX);
        }
        if names::validate_nick(&s).is_ok() {
            prop_assert!(s.chars().count() <= names::NICK_MAX);
            let key = names::nick_key(&s);
            prop_assert_eq!(names::nick_key(&key), key);
        }
        let _ = names::validate_text(&s);
    }

    #[test]
    fn chat_payloads_parse_from_any_json(v in json()) {
        let _ = serde_json::from_value::<Auth>(v.clone());
        let _ = serde_json::from_value::<JoinRequest>(v.clone());
        let _ = serde_json::from_value::<MessageRequest>(v.clone());
        let _ = serde_json::from_value::<DmRequest>(v.clone());
        let _ = serde_json::from_value::<NickRequest>(v.clone());
        let _ = serde_json::from_value::<TopicRequest>(v.clone());
        let _ = serde_json::from_value::<HistoryRequest>(v.clone());
        let _ = events::parse_reply::<JoinReply>(&v);
    }

    /// Found by the `socket_io` fuzz target: a number too large for an integer became a float
    /// that re-decoded one ULP off until serde_json's `float_roundtrip` was enabled.
    #[test]
    fn floats_and_huge_integers_round_trip(f in any::<f64>().prop_filter("finite", |f| f.is_finite()), digits in "[1-9][0-9]{19,30}") {
        let p = Packet::event("/", "e", vec![Value::from(f)], None);
        prop_assert_eq!(Packet::decode(&p.encode()), Ok(p));
        if let Ok(p) = Packet::decode(&format!("2[\"e\",{digits}]")) {
            prop_assert_eq!(Packet::decode(&p.encode()), Ok(p));
        }
    }

    #[test]
    fn events_with_any_json_arguments_round_trip(nsp in "/|/[a-z]{1,6}", args in prop::collection::vec(json(), 0..3), id in prop::option::of(0u64..1_000_000)) {
        let p = Packet::event(&nsp, "e", args, id);
        prop_assert_eq!(Packet::decode(&p.encode()), Ok(p));
    }
}

mod payload_props {
    use chat_protocol::payload::{Decoded, Part, decode, encode};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn payload_decode_never_panics(s in any::<String>()) {
            for part in decode(&s) {
                let _ = part;
            }
        }

        #[test]
        fn payloads_round_trip(parts in prop::collection::vec(prop_oneof![
            "[0-6][^\u{1e}]{0,20}".prop_map(Ok),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(Err),
        ], 1..8)) {
            let borrowed: Vec<Part<'_>> = parts.iter().map(|p| match p {
                Ok(t) => Part::Text(t),
                Err(b) => Part::Binary(b),
            }).collect();
            let mut out = String::new();
            encode(borrowed.iter().copied(), &mut out);
            prop_assert_eq!(out.len() + 1, borrowed.iter().map(Part::encoded_len).sum::<usize>());
            let back: Vec<Decoded<'_>> = decode(&out).collect::<Result<_, _>>().expect("decodes");
            let want: Vec<Decoded<'_>> = parts.iter().map(|p| match p {
                Ok(t) => Decoded::Text(t),
                Err(b) => Decoded::Binary(b.clone()),
            }).collect();
            prop_assert_eq!(back, want);
        }
    }
}
