//! Name rules: the validators never panic, and a name they accept is within its limit.
#![no_main]

use chat_protocol::names;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if names::validate_namespace(s).is_ok() {
        assert!(s.chars().count() <= names::NAMESPACE_MAX && !s.contains(','));
    }
    if names::validate_room(s).is_ok() {
        assert!(s.chars().count() <= names::ROOM_MAX);
    }
    if names::validate_nick(s).is_ok() {
        assert!(s.chars().count() <= names::NICK_MAX);
        let key = names::nick_key(s);
        assert_eq!(names::nick_key(&key), key);
    }
    let _ = names::validate_text(s);
});
