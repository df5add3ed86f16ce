//! A binary packet header followed by binary frames: the assembler never panics and
//! completes exactly when the announced number of attachments has arrived.
#![no_main]

use bytes::Bytes;
use chat_protocol::socket_io::{BinaryAssembler, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line is the packet; every following line is one binary frame.
    let mut parts = data.split(|b| *b == b'\n');
    let Some(head) = parts.next() else { return };
    let Ok(text) = std::str::from_utf8(head) else {
        return;
    };
    let Ok(packet) = Packet::decode(text) else {
        return;
    };
    let expected = packet.attachments;
    if expected == 0 || expected > 64 {
        return;
    }
    let mut assembler = BinaryAssembler::new(packet);
    let mut pushed = 0;
    for frame in parts {
        pushed += 1;
        let done = assembler.push(Bytes::copy_from_slice(frame));
        assert_eq!(done, pushed == expected);
        if done {
            let (_, attachments) = assembler.finish();
            assert_eq!(attachments.len(), expected);
            return;
        }
    }
    assert_eq!(assembler.remaining(), expected - pushed);
});
