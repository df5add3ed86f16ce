//! Engine.IO text packets: `decode` never panics, and whatever decodes re-encodes to a
//! packet that decodes to the same value.
#![no_main]

use chat_protocol::engine_io::Packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(packet) = Packet::decode(text) {
        let again = Packet::decode(&packet.encode()).expect("an encoded packet decodes");
        assert_eq!(again, packet);
    }
});
