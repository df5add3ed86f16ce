//! `Incoming::decode` (an EVENT's arguments kept as JSON text) against `Packet::decode` (a
//! `Value` tree): the same text accepted, the same error for the rest, the same packet; and
//! `JsonArgs::parse` against `serde_json::from_value`: the same request, or the same error
//! message.

use chat_protocol::DecodeError;
use chat_protocol::events::{
    DmRequest, HistoryRequest, JoinRequest, KickRequest, MessageRequest, NickRequest, TopicRequest,
};
use chat_protocol::socket_io::{Incoming, JsonArgs, Packet};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Both decoders on `text`: equal errors, or equal packets (an EVENT's arguments turned back
/// into `Value`s). Returns whether it came back as an EVENT with its arguments as text.
fn agree(text: &str) -> Result<bool, TestCaseError> {
    match (Packet::decode(text), Incoming::decode(text)) {
        (Err(a), Err(b)) => prop_assert_eq!(a, b, "{:?}", text),
        (Ok(p), Ok(Incoming::Packet(q))) => prop_assert_eq!(p, q, "{:?}", text),
        (Ok(p), Ok(Incoming::Event(e))) => {
            prop_assert_eq!(p, e.into_packet(), "{:?}", text);
            return Ok(true);
        }
        (a, b) => prop_assert!(false, "{:?}: {:?} but {:?}", text, a, b),
    }
    Ok(false)
}

fn raw_args(text: &str) -> JsonArgs {
    match Incoming::decode(text) {
        Ok(Incoming::Event(e)) => e.args,
        other => panic!("{text:?} is not an EVENT: {other:?}"),
    }
}

/// `args.parse::<T>(0)` against `from_value` of the same argument as a `Value`: the same
/// request, or errors with the same message.
fn same_parse<T: DeserializeOwned + PartialEq + std::fmt::Debug>(
    args: &JsonArgs,
    value: &Value,
) -> Result<(), TestCaseError> {
    let direct = args.parse::<T>(0).map_err(|e| e.to_string());
    let via_value = serde_json::from_value::<T>(value.clone()).map_err(|e| e.to_string());
    prop_assert_eq!(direct, via_value, "{}", value);
    Ok(())
}

#[test]
fn events_keep_their_arguments_as_text() {
    let text = "2/chat,12 [ \"m\\u0065ssage\" ,\n {\"room\" : \"a,]\\\"\" , \"text\":\"hi\"} , 3 ]";
    assert!(agree(text).unwrap());
    let Ok(Incoming::Event(event)) = Incoming::decode(text) else {
        panic!("an EVENT");
    };
    assert_eq!(
        (event.nsp.as_str(), event.id, event.name.as_str()),
        ("/chat", Some(12), "message")
    );
    assert_eq!(event.args.len(), 2);
    assert_eq!(
        event.args.get(0),
        Some("{\"room\" : \"a,]\\\"\" , \"text\":\"hi\"}")
    );
    assert_eq!(event.args.get(1), Some("3"));
    assert_eq!(event.args.get(2), None);
    assert_eq!(
        event.args.to_values(),
        vec![json!({"room": "a,]\"", "text": "hi"}), json!(3)]
    );
    let request: MessageRequest = event.args.parse(0).unwrap();
    assert_eq!(
        (request.room.as_str(), request.text.as_str()),
        ("a,]\"", "hi")
    );
}

#[test]
fn what_a_value_refuses_is_refused_with_the_same_error() {
    let deep = format!("2[\"e\",{}{}]", "[".repeat(200), "]".repeat(200));
    for text in [
        // Valid JSON syntax that a `Value` does not take: a number out of range, half a
        // surrogate pair, nesting deeper than serde_json's limit.
        "2[\"e\",1e400]",
        "2[\"e\",{\"a\":[-1e999]}]",
        "2[\"e\",\"\\ud800\"]",
        "2[\"e\",{\"\\udc00\":1}]",
        deep.as_str(),
        // Not JSON, not an event.
        "2[\"e\",]",
        "2[\"e\" 1]",
        "2[\"e\"]x",
        "2[\"e\",{\"a\"}]",
        "2[]",
        "2[ ]",
        "2{}",
        "2\"e\"",
        "2[1,2]",
        "2[null]",
        "2[\"connect\",{}]",
        "2[\"disc\\u006fnnect\"]",
        "2",
    ] {
        assert!(Incoming::decode(text).is_err(), "{text:?}");
        agree(text).unwrap();
    }
    assert!(matches!(
        Incoming::decode("2[\"e\",\"\\ud800\"]"),
        Err(DecodeError::LoneSurrogate(_))
    ));
    assert!(matches!(
        Incoming::decode("2[\"e\",1e400]"),
        Err(DecodeError::BadJson(_))
    ));
}

#[test]
fn arguments_nested_to_serde_jsons_limit_go_the_value_way() {
    let nested = |levels: usize| format!("2[\"e\",{}{}]", "[".repeat(levels), "]".repeat(levels));
    // The event's array and 126 more levels: a `Value` takes it, and so does the text path.
    assert!(agree(&nested(126)).unwrap());
    // One more is refused, with the `Value` path's error.
    assert!(!agree(&nested(127)).unwrap());
    assert!(matches!(
        Incoming::decode(&nested(127)),
        Err(DecodeError::BadJson(_))
    ));
}

#[test]
fn other_packets_are_decoded_as_packets() {
    for text in [
        "0",
        "0/chat,{\"token\":\"x\"}",
        "1/chat,",
        "3/chat,7[\"ok\",{\"a\":1}]",
        "51-[\"e\",{\"_placeholder\":true,\"num\":0}]",
        "61-4[{\"_placeholder\":true,\"num\":0}]",
    ] {
        assert!(
            matches!(Incoming::decode(text), Ok(Incoming::Packet(_))),
            "{text:?}"
        );
        agree(text).unwrap();
    }
}

#[test]
fn a_request_is_what_from_value_makes_of_its_argument() {
    // No argument reads as `null`, as an absent first argument always did.
    let none = raw_args("2[\"message\"]");
    same_parse::<MessageRequest>(&none, &Value::Null).unwrap();
    assert_eq!(
        none.parse::<MessageRequest>(0).unwrap_err().to_string(),
        "invalid type: null, expected struct MessageRequest"
    );
    // A key given twice: a `Value` keeps the last, and so does the request.
    let twice = raw_args("2[\"message\",{\"room\":\"a\",\"text\":\"t\",\"room\":\"b\"}]");
    let request: MessageRequest = twice.parse(0).unwrap();
    assert_eq!(request.room, "b");
    // Errors carry no position (the message a client sees in its error ack).
    for (text, message) in [
        ("{\"room\":\"a\"}", "missing field `text`"),
        (
            "{\"room\":1,\"text\":\"t\"}",
            "invalid type: integer `1`, expected a string",
        ),
        (
            "[\"a\",\"t\",true,\"c\",5]",
            "invalid length 5, expected fewer elements in array",
        ),
    ] {
        let args = raw_args(&format!("2[\"message\",{text}]"));
        let value: Value = serde_json::from_str(text).unwrap();
        same_parse::<MessageRequest>(&args, &value).unwrap();
        assert_eq!(
            args.parse::<MessageRequest>(0).unwrap_err().to_string(),
            message
        );
    }
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
        "[\\[\\]{},:\"\\\\ a]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Object keys: mostly the requests' own field names, so their parsers go deep.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "room", "text", "action", "cid", "to", "nick", "topic", "before", "limit", "reason",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z\"\\\\]{1,4}",
    ]
}

/// A request-shaped argument: an object of the requests' fields with any values.
fn request_like() -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), json()), 0..5)
        .prop_map(|kv| Value::Object(kv.into_iter().collect()))
}

/// The text of an EVENT carrying `args`, compact or pretty, maybe with one character cut out
/// (mostly no longer JSON, or no longer an event).
fn event_text(args: Vec<Value>, pretty: bool, cut: Option<prop::sample::Index>) -> String {
    let mut data = vec![json!("e")];
    data.extend(args);
    let json = if pretty {
        serde_json::to_string_pretty(&data).expect("JSON")
    } else {
        serde_json::to_string(&data).expect("JSON")
    };
    let mut text = format!("2{json}");
    if let Some(cut) = cut {
        let at = cut.index(text.chars().count());
        text = text
            .chars()
            .enumerate()
            .filter_map(|(i, c)| (i != at).then_some(c))
            .collect();
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn incoming_agrees_with_packet_decode(
        args in prop::collection::vec(json(), 0..4),
        pretty in any::<bool>(),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let whole = cut.is_none();
        let as_text = agree(&event_text(args, pretty, cut))?;
        // An event as a client writes it keeps its arguments as text.
        prop_assert!(as_text || !whole);
    }

    #[test]
    fn incoming_agrees_on_anything(s in "[0-6]{0,1}(/[a-z]{0,3},)?[0-9]{0,2}[\\[\\]{}\",:0-9a-z\\\\ .e-]{0,24}") {
        agree(&s)?;
    }

    #[test]
    fn requests_parse_as_from_value_makes_them(arg in prop_oneof![json(), request_like()], pretty in any::<bool>()) {
        let args = raw_args(&event_text(vec![arg.clone()], pretty, None));
        same_parse::<MessageRequest>(&args, &arg)?;
        same_parse::<JoinRequest>(&args, &arg)?;
        same_parse::<DmRequest>(&args, &arg)?;
        same_parse::<NickRequest>(&args, &arg)?;
        same_parse::<TopicRequest>(&args, &arg)?;
        same_parse::<HistoryRequest>(&args, &arg)?;
        same_parse::<KickRequest>(&args, &arg)?;
        same_parse::<Value>(&args, &arg)?;
    }
}
