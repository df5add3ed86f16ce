//! Requests to the server and their answers: [`Request`] (its event name and payload on the
//! wire), [`Reply`] (a successful ack, decoded by the request it answers) and [`Failure`].

use std::time::Duration;

use chat_protocol::events::{self, ErrorBody, ErrorCode};
use serde_json::Value;

/// A request to the server, answered by an ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Join {
        room: String,
    },
    Leave {
        room: String,
    },
    Message {
        room: String,
        text: String,
        action: bool,
    },
    Dm {
        to: String,
        text: String,
        action: bool,
    },
    Nick {
        nick: String,
    },
    Rooms,
    Who {
        room: String,
    },
    Topic {
        room: String,
        topic: Option<String>,
    },
    /// Older messages of a room (scrolling up past the top).
    History {
        room: String,
        before: Option<u64>,
        limit: u32,
    },
    Ping,
}

impl Request {
    pub fn event(&self) -> &'static str {
        use events::client as c;
        match self {
            Request::Join { .. } => c::JOIN,
            Request::Leave { .. } => c::LEAVE,
            Request::Message { .. } => c::MESSAGE,
            Request::Dm { .. } => c::DM,
            Request::Nick { .. } => c::NICK,
            Request::Rooms => c::ROOMS,
            Request::Who { .. } => c::WHO,
            Request::Topic { .. } => c::TOPIC,
            Request::History { .. } => c::HISTORY,
            Request::Ping => c::PING,
        }
    }

    /// The request object (the event's one argument).
    pub fn payload(&self) -> Value {
        let v = match self {
            Request::Join { room } => {
                serde_json::to_value(events::JoinRequest { room: room.clone() })
            }
            Request::Leave { room } => {
                serde_json::to_value(events::LeaveRequest { room: room.clone() })
            }
            Request::Message { room, text, action } => {
                // Built by hand rather than from `events::MessageRequest` so optional fields
                // the server added later do not have to be spelled out here.
                let mut map = serde_json::Map::new();
                map.insert("room".into(), Value::String(room.clone()));
                map.insert("text".into(), Value::String(text.clone()));
                if *action {
                    map.insert("action".into(), Value::Bool(true));
                }
                Ok(Value::Object(map))
            }
            Request::Dm { to, text, action } => serde_json::to_value(events::DmRequest {
                to: to.clone(),
                text: text.clone(),
                action: *action,
            }),
            Request::Nick { nick } => {
                serde_json::to_value(events::NickRequest { nick: nick.clone() })
            }
            Request::Rooms => serde_json::to_value(events::RoomsRequest {}),
            Request::Who { room } => {
                serde_json::to_value(events::WhoRequest { room: room.clone() })
            }
            Request::History {
                room,
                before,
                limit,
            } => serde_json::to_value(events::HistoryRequest {
                room: room.clone(),
                before: *before,
                limit: Some(*limit),
            }),
            Request::Topic { room, topic } => serde_json::to_value(events::TopicRequest {
                room: room.clone(),
                topic: topic.clone(),
            }),
            Request::Ping => Ok(Value::Object(serde_json::Map::new())),
        };
        v.unwrap_or(Value::Null)
    }

    /// Decodes the ack object for this request.
    pub(super) fn parse_ack(&self, ack: &Value, rtt: Duration) -> Result<Reply, ErrorBody> {
        use events::parse_reply;
        Ok(match self {
            Request::Join { .. } => Reply::Join(parse_reply(ack)?),
            Request::Leave { .. } => Reply::Leave(parse_reply(ack)?),
            Request::Message { .. } => Reply::Message(parse_reply(ack)?),
            Request::Dm { .. } => Reply::Dm(parse_reply(ack)?),
            Request::Nick { .. } => Reply::Nick(parse_reply(ack)?),
            Request::Rooms => Reply::Rooms(parse_reply(ack)?),
            Request::Who { .. } => Reply::Who(parse_reply(ack)?),
            Request::Topic { .. } => Reply::Topic(parse_reply(ack)?),
            Request::History { .. } => Reply::History(parse_reply(ack)?),
            Request::Ping => {
                let _: events::PingReply = parse_reply(ack)?;
                Reply::Pong { rtt }
            }
        })
    }
}

/// A successful ack, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Join(events::JoinReply),
    Leave(events::LeaveReply),
    Message(events::MessageReply<'static>),
    Dm(events::DmReply),
    Nick(events::NickReply),
    Rooms(events::RoomsReply),
    Who(events::WhoReply),
    Topic(events::TopicReply),
    History(events::HistoryReply),
    Pong { rtt: Duration },
}

/// Why a request failed: the server said no, or it never got an answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    #[error("{}", .0.message)]
    Server(ErrorBody),
    #[error("{0}")]
    Local(String),
}

impl Failure {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Failure::Server(body) => Some(body.code),
            Failure::Local(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_payloads_match_the_protocol() {
        assert_eq!(
            Request::Join { room: "r".into() }.payload().to_string(),
            r#"{"room":"r"}"#
        );
        assert_eq!(
            Request::Message {
                room: "r".into(),
                text: "hi".into(),
                action: true
            }
            .payload()
            .to_string(),
            r#"{"room":"r","text":"hi","action":true}"#
        );
        assert_eq!(Request::Ping.payload().to_string(), "{}");
        assert_eq!(Request::Rooms.payload().to_string(), "{}");
        assert_eq!(
            Request::Topic {
                room: "r".into(),
                topic: None
            }
            .payload()
            .to_string(),
            r#"{"room":"r"}"#
        );
    }

    #[test]
    fn acks_decode_into_typed_replies() {
        let ack = events::ok_reply(&events::LeaveReply { room: "a".into() });
        let r = Request::Leave { room: "a".into() }.parse_ack(&ack, Duration::ZERO);
        assert_eq!(r, Ok(Reply::Leave(events::LeaveReply { room: "a".into() })));
        let err = events::error_reply(ErrorCode::NotInRoom, "no");
        let r = Request::Leave { room: "a".into() }.parse_ack(&err, Duration::ZERO);
        assert_eq!(r.map_err(|e| e.code), Err(ErrorCode::NotInRoom));
    }
}
