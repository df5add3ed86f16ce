//! Events the server pushes, typed: [`ServerEvent`] and its decoding from an EVENT's name and
//! argument.

use chat_protocol::events;
use serde_json::Value;

/// An event pushed by the server, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    Message(events::ChatMessage),
    Dm(events::DirectMessage),
    Presence(events::Presence),
    Room(events::RoomChange),
    Topic(events::TopicChange),
    Notice(events::Notice),
    Typing(events::Typing),
    /// Boxed, as `Reply::Moderation`.
    Moderation(Box<events::Moderation>),
    Deleted(events::MessageDeleted),
    /// The server's limits, after each CONNECT.
    Limits(events::Limits),
    /// An event this client does not know (or could not decode); logged, shown plainly.
    Unknown(String),
}

impl ServerEvent {
    /// Decodes an EVENT's name and first argument.
    pub fn decode(name: &str, arg: &Value) -> ServerEvent {
        use events::server as s;
        fn de<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
            T::deserialize(v).ok()
        }
        let decoded = match name {
            s::MESSAGE => de(arg).map(ServerEvent::Message),
            s::DM => de(arg).map(ServerEvent::Dm),
            s::PRESENCE => de(arg).map(ServerEvent::Presence),
            s::ROOM => de(arg).map(ServerEvent::Room),
            s::TOPIC => de(arg).map(ServerEvent::Topic),
            s::NOTICE => de(arg).map(ServerEvent::Notice),
            s::TYPING => de(arg).map(ServerEvent::Typing),
            s::MODERATION => de(arg).map(|m| ServerEvent::Moderation(Box::new(m))),
            s::DELETED => de(arg).map(ServerEvent::Deleted),
            s::LIMITS => de(arg).map(ServerEvent::Limits),
            _ => None,
        };
        decoded.unwrap_or_else(|| ServerEvent::Unknown(format!("{name} {arg}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_events_decode() {
        let v = serde_json::json!({"text":"hello"});
        assert_eq!(
            ServerEvent::decode("notice", &v),
            ServerEvent::Notice(events::Notice {
                text: "hello".into()
            })
        );
        assert!(matches!(
            ServerEvent::decode("weird", &v),
            ServerEvent::Unknown(_)
        ));
    }
}
