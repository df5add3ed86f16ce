//! The HTTP upgrade request head: both parsers never panic; an accepted request's head
//! length lies within the input.
#![no_main]

use chat_protocol::http::{parse_upgrade, parse_websocket_upgrade};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(u) = parse_upgrade(data) {
        assert!(u.head_len <= data.len());
        assert_eq!(u.accept_key.len(), 28);
    }
    if let Ok(u) = parse_websocket_upgrade(data) {
        assert!(u.head_len <= data.len());
    }
});
