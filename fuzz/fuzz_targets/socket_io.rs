//! Socket.IO text packets: `decode` never panics, and a decoded packet survives an
//! encode/decode round trip unchanged.
#![no_main]

use chat_protocol::socket_io::Packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(packet) = Packet::decode(text) {
        let encoded = packet.encode();
        let again = Packet::decode(&encoded).expect("an encoded packet decodes");
        assert_eq!(again, packet, "round trip of {text:?} via {encoded:?}");
    }
});
