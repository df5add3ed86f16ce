//! Socket.IO packets against literal wire strings, plus round-trip and never-panic properties.

use chat_protocol::DecodeError;
use std::borrow::Cow;

use chat_protocol::events::{self, ChatMessage, MessageReply, OkAck};
use chat_protocol::socket_io::{
    BinaryAssembler, Packet, PacketKind, encode_frame_with, placeholder,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn decode(s: &str) -> Packet {
    Packet::decode(s).unwrap_or_else(|e| panic!("{s:?} should decode: {e}"))
}

#[test]
fn frames_written_straight_from_structs_match_frames_from_values() {
    let message = ChatMessage {
        id: "m1".into(),
        room: "r\u{e9}\"q".into(),
        seq: 7,
        from: "ada".into(),
        text: "hi \u{1F600}\n".into(),
        ts: 1_700_000_000_000,
        action: true,
    };
    for nsp in ["/", "/admin"] {
        let typed = encode_frame_with(PacketKind::Event, nsp, None, &("message", &message));
        let valued = Packet::event(nsp, "message", vec![json!(message)], None).encode_frame();
        assert_eq!(typed.unwrap(), valued);
        let borrowed = MessageReply {
            message: Cow::Borrowed(&message),
        };
        let typed = encode_frame_with(PacketKind::Ack, nsp, Some(42), &(OkAck::new(&borrowed),));
        let reply = events::ok_reply(&MessageReply {
            message: Cow::Owned(message.clone()),
        });
        let valued = Packet::ack(nsp, 42, vec![reply]).encode_frame();
        assert_eq!(typed.unwrap(), valued);
    }
    // Without the optional field too (`action` is left out when false).
    let plain = ChatMessage {
        action: false,
        ..message
    };
    assert_eq!(
        encode_frame_with(PacketKind::Event, "/", None, &("message", &plain)).unwrap(),
        Packet::event("/", "message", vec![json!(plain)], None).encode_frame()
    );
}

#[test]
fn connect_forms() {
    assert_eq!(decode("0"), Packet::connect("/", None));
    assert_eq!(
        decode(r#"0{"token":"x"}"#),
        Packet::connect("/", Some(json!({"token":"x"})))
    );
    assert_eq!(
        decode(r#"0/admin,{"token":"x"}"#),
        Packet::connect("/admin", Some(json!({"token":"x"})))
    );
    // The namespace may run to the end of the string.
    assert_eq!(decode("0/admin"), Packet::connect("/admin", None));
    assert_eq!(decode("0/admin,"), Packet::connect("/admin", None));
    assert_eq!(Packet::connect_ok("/", "abc").encode(), r#"0{"sid":"abc"}"#);
    assert_eq!(
        Packet::connect_ok("/admin", "abc").encode_frame(),
        r#"40/admin,{"sid":"abc"}"#
    );
}

#[test]
fn event_and_ack_forms() {
    let p = decode(r#"2["hello",1]"#);
    assert_eq!(p.kind, PacketKind::Event);
    assert_eq!(p.event_name(), Some("hello"));
    assert_eq!(p.id, None);

    let p = decode(r#"2/admin,7["join",{"room":"ops"}]"#);
    assert_eq!(
        p,
        Packet::event("/admin", "join", vec![json!({"room":"ops"})], Some(7))
    );
    assert_eq!(p.encode(), r#"2/admin,7["join",{"room":"ops"}]"#);

    let p = decode(r#"3/admin,7[{"ok":true}]"#);
    assert_eq!(p, Packet::ack("/admin", 7, vec![json!({"ok":true})]));
    assert_eq!(Packet::disconnect("/admin").encode(), "1/admin,");
    assert_eq!(decode("1/admin,"), Packet::disconnect("/admin"));
    assert_eq!(decode("1"), Packet::disconnect("/"));
    assert_eq!(
        Packet::connect_error(
            "/admin",
            "not authorized",
            Some(json!({"code":"forbidden"}))
        )
        .encode(),
        r#"4/admin,{"message":"not authorized","data":{"code":"forbidden"}}"#
    );
}

#[test]
fn binary_forms() {
    let p = decode(r#"51-["up",{"_placeholder":true,"num":0}]"#);
    assert_eq!(p.kind, PacketKind::BinaryEvent);
    assert_eq!(p.attachments, 1);
    let enc = Packet::event("/", "up", vec![placeholder(0)], None).with_attachments(1);
    assert_eq!(enc.encode(), r#"51-["up",{"_placeholder":true,"num":0}]"#);
    let p = decode(r#"62-/admin,9[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#);
    assert_eq!(
        (p.kind, p.attachments, p.id, p.nsp.as_str()),
        (PacketKind::BinaryAck, 2, Some(9), "/admin")
    );

    let mut asm = BinaryAssembler::new(p);
    assert_eq!(asm.remaining(), 2);
    assert!(
        !asm.push(bytes::Bytes::from_static(b"a")),
        "one more to come"
    );
    assert!(asm.push(bytes::Bytes::from_static(b"b")), "complete");
    let (_, atts) = asm.finish();
    assert_eq!(atts.len(), 2);
}

#[test]
fn json_is_compact_and_keeps_key_order() {
    let p = decode(r#"2["e",{"3":[true],"b":1,"a":2}]"#);
    assert_eq!(p.encode(), r#"2["e",{"3":[true],"b":1,"a":2}]"#);
}

#[test]
fn invalid_packets_are_errors() {
    type Check = fn(&DecodeError) -> bool;
    let cases: &[(&str, Check)] = &[
        ("", |e| *e == DecodeError::Empty),
        ("7", |e| matches!(e, DecodeError::UnknownType('7'))),
        ("a", |e| matches!(e, DecodeError::UnknownType('a'))),
        (r#"0"not an object""#, |e| {
            matches!(e, DecodeError::BadPayload(_))
        }),
        ("0[]", |e| matches!(e, DecodeError::BadPayload(_))),
        ("1{}", |e| matches!(e, DecodeError::BadPayload(_))),
        ("2", |e| matches!(e, DecodeError::BadPayload(_))),
        ("2[]", |e| matches!(e, DecodeError::BadPayload(_))),
        ("2{}", |e| matches!(e, DecodeError::BadPayload(_))),
        ("2[1]", |e| matches!(e, DecodeError::BadPayload(_))),
        (r#"2["connect"]"#, |e| {
            matches!(e, DecodeError::ReservedEvent(_))
        }),
        (r#"2["disconnecting"]"#, |e| {
            matches!(e, DecodeError::ReservedEvent(_))
        }),
        (r#"2["a""#, |e| matches!(e, DecodeError::BadJson(_))),
        (r#"2["a"]x"#, |e| matches!(e, DecodeError::BadJson(_))),
        ("3[]", |e| matches!(e, DecodeError::BadPayload(_))),
        ("31{}", |e| matches!(e, DecodeError::BadPayload(_))),
        ("4", |e| matches!(e, DecodeError::BadPayload(_))),
        (r#"5["a"]"#, |e| *e == DecodeError::BadAttachments),
        (r#"5x-["a"]"#, |e| *e == DecodeError::BadAttachments),
        (r#"2123456789012345678901["a"]"#, |e| {
            *e == DecodeError::BadAckId
        }),
    ];
    for (wire, check) in cases {
        let err = Packet::decode(wire).expect_err(wire);
        assert!(check(&err), "{wire:?} gave {err:?}");
    }
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z0-9]{1,5}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn namespace() -> impl Strategy<Value = String> {
    prop_oneof![Just("/".to_owned()), "/[a-z0-9_-]{1,10}"]
}

proptest! {
    #[test]
    fn event_round_trips(nsp in namespace(), name in "[a-z]{1,10}", args in prop::collection::vec(json_value(), 0..4), id in proptest::option::of(any::<u32>())) {
        let p = Packet::event(&nsp, &name, args, id.map(u64::from));
        prop_assert_eq!(Packet::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn ack_round_trips(nsp in namespace(), args in prop::collection::vec(json_value(), 0..4), id in any::<u32>(), atts in 0usize..3) {
        let p = Packet::ack(&nsp, u64::from(id), args).with_attachments(atts);
        prop_assert_eq!(Packet::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn decode_never_panics(s in ".{0,40}") {
        let _ = Packet::decode(&s);
        let _ = chat_protocol::engine_io::Packet::decode(&s);
    }

    #[test]
    fn decode_never_panics_on_near_valid(prefix in "[0-6]{1}[0-9-]{0,3}(/[a-z,]{0,4})?[0-9]{0,3}", body in ".{0,20}") {
        let _ = Packet::decode(&format!("{prefix}{body}"));
    }
}

#[test]
fn a_lone_surrogate_is_not_unicode() {
    for bad in [
        r#"2["m","\ud800"]"#,
        r#"2["m","\udc00x"]"#,
        r#"2["m","\ud800\u0041"]"#,
    ] {
        assert!(
            matches!(Packet::decode(bad), Err(DecodeError::LoneSurrogate(_))),
            "{bad}: {:?}",
            Packet::decode(bad)
        );
    }
    // A proper pair is one character.
    let p = Packet::decode(r#"2["m","\ud83d\ude80"]"#).expect("a pair");
    assert_eq!(p.data.expect("data")[1], "\u{1F680}");
    assert!(matches!(
        Packet::decode("2[\"m\""),
        Err(DecodeError::BadJson(_))
    ));
}
