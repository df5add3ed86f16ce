//! Long-polling payloads: decoding never panics, and what decodes re-encodes to a payload
//! that decodes the same.
#![no_main]

use chat_protocol::payload::{Decoded, Part, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parts) = decode(text).collect::<Result<Vec<_>, _>>() else {
        return;
    };
    let mut out = String::new();
    encode(
        parts.iter().map(|p| match p {
            Decoded::Text(t) => Part::Text(t),
            Decoded::Binary(b) => Part::Binary(b),
        }),
        &mut out,
    );
    let again: Vec<_> = decode(&out)
        .collect::<Result<_, _>>()
        .expect("re-encoded payload decodes");
    assert_eq!(again, parts);
});
