//! The chat's JSON payloads: every request type, the CONNECT auth and ack replies parse
//! from arbitrary JSON without panicking.
#![no_main]

use chat_protocol::events::{
    self, Auth, DmRequest, HistoryReply, HistoryRequest, JoinReply, JoinRequest, MessageRequest,
    NickRequest, TopicRequest, WhoRequest,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = serde_json::from_value::<Auth>(value.clone());
    let _ = serde_json::from_value::<JoinRequest>(value.clone());
    let _ = serde_json::from_value::<MessageRequest>(value.clone());
    let _ = serde_json::from_value::<DmRequest>(value.clone());
    let _ = serde_json::from_value::<NickRequest>(value.clone());
    let _ = serde_json::from_value::<TopicRequest>(value.clone());
    let _ = serde_json::from_value::<HistoryRequest>(value.clone());
    let _ = serde_json::from_value::<WhoRequest>(value.clone());
    let _ = events::parse_reply::<JoinReply>(&value);
    let _ = events::parse_reply::<HistoryReply>(&value);
});
