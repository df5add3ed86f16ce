//! Property tests of the HTTP upgrade parsers (stable, in CI; `fuzz/` has the cargo-fuzz
//! target): they never panic on any bytes, and a valid request is accepted whatever other
//! query parameters and headers come with it.

use chat_protocol::http::{parse_upgrade, parse_websocket_upgrade};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(u) = parse_upgrade(&bytes) {
            prop_assert!(u.head_len <= bytes.len());
        }
        let _ = parse_websocket_upgrade(&bytes);
    }

    #[test]
    fn near_valid_heads_never_panic(path in "/socket\\.io/?\\??[a-zA-Z0-9=&%]{0,40}", header in "[A-Za-z-]{1,20}: [ -~]{0,30}", cut in 0usize..300) {
        let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{header}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
        let cut = cut.min(head.len());
        let _ = parse_upgrade(&head.as_bytes()[..cut]);
        let _ = parse_upgrade(head.as_bytes());
    }

    #[test]
    fn valid_requests_are_accepted_with_any_extra_parameters(extra in prop::collection::vec("[a-z]{1,5}=[a-zA-Z0-9]{0,8}", 0..4), header in "X-[A-Za-z]{1,10}: [a-z0-9]{0,20}") {
        let mut params = vec!["EIO=4".to_owned(), "transport=websocket".to_owned()];
        params.extend(extra.into_iter().filter(|p| !p.starts_with("sid=") && !p.starts_with("eio=")));
        let head = format!("GET /socket.io/?{} HTTP/1.1\r\nHost: x\r\n{header}\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", params.join("&"));
        let u = parse_upgrade(head.as_bytes()).expect("a valid request");
        prop_assert_eq!(u.head_len, head.len());
        prop_assert_eq!(u.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}

proptest! {
    #[test]
    fn engine_request_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), max in 0usize..2000) {
        let _ = chat_protocol::http::parse_engine_request(&bytes, max);
    }

    #[test]
    fn near_valid_polling_heads_never_panic(query in "[a-zA-Z0-9=&%]{0,60}", method in "(GET|POST|PUT|OPTIONS)", header in "[A-Za-z-]{1,20}: [ -~]{0,30}") {
        let head = format!("{method} /socket.io/?EIO=4&transport=polling&{query} HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n");
        let _ = chat_protocol::http::parse_engine_request(head.as_bytes(), 1000);
    }

    #[test]
    fn preflights_keep_within_their_head(origin in "[ -~]{0,40}", asked in "[ -~]{0,60}", extra in "[A-Za-z-]{1,20}: [ -~]{0,30}") {
        let head = format!("OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: a\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: {asked}\r\n{extra}\r\n\r\n");
        if let Ok(chat_protocol::http::EngineRequest::Preflight(p)) =
            chat_protocol::http::parse_engine_request(head.as_bytes(), 1000)
        {
            prop_assert!(p.head_len <= head.len());
            prop_assert_eq!(p.origin.as_str(), origin.trim());
        }
    }
}
