//! The HTTP request head: the upgrade parsers and the Engine.IO request router never panic;
//! an accepted request's head length lies within the input, and a polling POST's body length
//! within the limit.
#![no_main]

use chat_protocol::http::{
    EngineRequest, parse_engine_request, parse_upgrade, parse_websocket_upgrade,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(u) = parse_upgrade(data) {
        assert!(u.head_len <= data.len());
        assert_eq!(u.accept_key.len(), 28);
    }
    if let Ok(u) = parse_websocket_upgrade(data) {
        assert!(u.head_len <= data.len());
    }
    match parse_engine_request(data, 1000) {
        Ok(EngineRequest::Polling(p)) => {
            assert!(p.head_len <= data.len());
            assert!(p.content_length <= 1000);
        }
        Ok(EngineRequest::Preflight(p)) => assert!(p.head_len <= data.len()),
        _ => {}
    }
});
