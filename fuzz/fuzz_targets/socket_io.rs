//! Socket.IO text packets: `decode` never panics, a decoded packet survives an
//! encode/decode round trip unchanged, and the server's decoder (`Incoming::decode`, an
//! EVENT's arguments kept as JSON text) accepts the same text with the same packet and
//! refuses the rest with the same error.
#![no_main]

use chat_protocol::socket_io::{Incoming, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let decoded = Packet::decode(text);
    match (&decoded, Incoming::decode(text)) {
        (Err(a), Err(b)) => assert_eq!(*a, b, "{text:?}"),
        (Ok(p), Ok(Incoming::Packet(q))) => assert_eq!(*p, q, "{text:?}"),
        (Ok(p), Ok(Incoming::Event(e))) => assert_eq!(*p, e.into_packet(), "{text:?}"),
        (a, b) => panic!("{text:?}: {a:?} but {b:?}"),
    }
    if let Ok(packet) = decoded {
        let encoded = packet.encode();
        let again = Packet::decode(&encoded).expect("an encoded packet decodes");
        assert_eq!(again, packet, "round trip of {text:?} via {encoded:?}");
    }
});
