//! Requests to the server and their answers: [`Request`] (its event name and payload on the
//! wire), [`Reply`] (a successful ack, decoded by the request it answers) and [`Failure`].

use std::time::Duration;

use chat_protocol::events::{self, ErrorBody, ErrorCode};
use serde_json::Value;

use crate::command::Moderate;

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
    Whois {
        nick: String,
    },
    /// Away with a reason, or back without one.
    Away {
        reason: Option<String>,
    },
    /// A moderation action in a room (`/kick`, `/ban`, ...).
    Moderate {
        room: String,
        /// Boxed: the largest request otherwise, and every `NetEvent` would be as large.
        action: Box<Moderate>,
    },
    /// Messages holding a phrase: in one room, or in every room of the namespace (boxed:
    /// the largest request by far).
    Search(Box<events::SearchRequest>),
}

impl Request {
    /// The one place a command meets the wire: its protocol request (which names its event
    /// and its reply type, `chat_protocol::events::Request`) and the [`Reply`] its ack becomes.
    /// A new request is a variant above and a line here.
    fn wire(&self) -> Box<dyn Wire> {
        use events::{
            AwayRequest, DmRequest, HistoryRequest, JoinRequest, LeaveRequest, MessageRequest,
            NickRequest, PingRequest, RoomsRequest, SearchRequest, TopicRequest, WhoRequest,
            WhoisRequest,
        };
        match self {
            Request::Join { room } => typed(JoinRequest { room: room.clone() }, Reply::Join),
            Request::Leave { room } => typed(LeaveRequest { room: room.clone() }, Reply::Leave),
            Request::Message { room, text, action } => typed(
                MessageRequest {
                    room: room.clone(),
                    text: text.clone(),
                    action: *action,
                    // Added when sent (`acks`): a re-send keeps the first one.
                    cid: None,
                },
                Reply::Message,
            ),
            Request::Dm { to, text, action } => typed(
                DmRequest {
                    to: to.clone(),
                    text: text.clone(),
                    action: *action,
                },
                Reply::Dm,
            ),
            Request::Nick { nick } => typed(NickRequest { nick: nick.clone() }, Reply::Nick),
            Request::Rooms => typed(RoomsRequest {}, Reply::Rooms),
            Request::Who { room } => typed(WhoRequest { room: room.clone() }, Reply::Who),
            Request::Topic { room, topic } => typed(
                TopicRequest {
                    room: room.clone(),
                    topic: topic.clone(),
                },
                Reply::Topic,
            ),
            Request::History {
                room,
                before,
                limit,
            } => typed(
                HistoryRequest {
                    room: room.clone(),
                    before: *before,
                    limit: Some(*limit),
                },
                Reply::History,
            ),
            // The round trip is measured by the sender (`parse_ack`).
            Request::Ping => typed(PingRequest {}, |_| Reply::Pong {
                rtt: Duration::ZERO,
            }),
            Request::Whois { nick } => typed(WhoisRequest { nick: nick.clone() }, Reply::Whois),
            Request::Away { reason } => typed(
                AwayRequest {
                    reason: reason.clone(),
                },
                Reply::Away,
            ),
            Request::Moderate { room, action } => moderation(room.clone(), (**action).clone()),
            Request::Search(search) => typed(SearchRequest::clone(search), Reply::Search),
        }
    }

    pub fn event(&self) -> &'static str {
        self.wire().event()
    }

    /// The request object (the event's one argument).
    pub fn payload(&self) -> Value {
        self.wire().payload()
    }

    /// Decodes the ack object for this request.
    pub(super) fn parse_ack(&self, ack: &Value, rtt: Duration) -> Result<Reply, ErrorBody> {
        Ok(match self.wire().reply(ack)? {
            Reply::Pong { .. } => Reply::Pong { rtt },
            reply => reply,
        })
    }
}

/// A moderation command's protocol request; each is answered with the room's `moderation`
/// event.
fn moderation(room: String, action: Moderate) -> Box<dyn Wire> {
    use events::{
        BanRequest, DeopRequest, KickRequest, MuteRequest, OpRequest, UnbanRequest, UnmuteRequest,
    };
    let into = |m| Reply::Moderation(Box::new(m));
    match action {
        Moderate::Kick { nick, reason } => typed(KickRequest { room, nick, reason }, into),
        Moderate::Ban {
            target,
            duration_secs,
            reason,
        } => typed(
            BanRequest {
                room,
                target,
                duration_secs,
                reason,
            },
            into,
        ),
        Moderate::Unban(target) => typed(UnbanRequest { room, target }, into),
        Moderate::Mute {
            nick,
            duration_secs,
            reason,
        } => typed(
            MuteRequest {
                room,
                nick,
                duration_secs,
                reason,
            },
            into,
        ),
        Moderate::Unmute(nick) => typed(UnmuteRequest { room, nick }, into),
        Moderate::Op(nick) => typed(OpRequest { room, nick }, into),
        Moderate::Deop(nick) => typed(DeopRequest { room, nick }, into),
    }
}

/// A request on the wire, whatever its type.
trait Wire {
    fn event(&self) -> &'static str;
    fn payload(&self) -> Value;
    fn reply(&self, ack: &Value) -> Result<Reply, ErrorBody>;
}

/// A protocol request and how its reply type becomes a [`Reply`].
struct Typed<R: events::Request> {
    request: R,
    into: fn(R::Reply) -> Reply,
}

fn typed<R: events::Request + 'static>(request: R, into: fn(R::Reply) -> Reply) -> Box<dyn Wire> {
    Box::new(Typed { request, into })
}

impl<R: events::Request> Wire for Typed<R> {
    fn event(&self) -> &'static str {
        R::EVENT
    }

    fn payload(&self) -> Value {
        // Our request types always serialise.
        serde_json::to_value(&self.request).unwrap_or(Value::Null)
    }

    fn reply(&self, ack: &Value) -> Result<Reply, ErrorBody> {
        events::parse_reply::<R::Reply>(ack).map(self.into)
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
    Pong {
        rtt: Duration,
    },
    Whois(events::WhoisReply),
    Away(events::AwayReply),
    /// Any moderation request's answer: the event the room saw.
    /// (Boxed: the largest reply, and every `NetEvent` would be as large.)
    Moderation(Box<events::Moderation>),
    Search(events::SearchReply),
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
    fn each_request_goes_out_under_its_protocol_event() {
        use events::client as c;
        let cases = [
            (Request::Join { room: "r".into() }, c::JOIN),
            (Request::Leave { room: "r".into() }, c::LEAVE),
            (
                Request::Message {
                    room: "r".into(),
                    text: "t".into(),
                    action: false,
                },
                c::MESSAGE,
            ),
            (
                Request::Dm {
                    to: "n".into(),
                    text: "t".into(),
                    action: false,
                },
                c::DM,
            ),
            (Request::Nick { nick: "n".into() }, c::NICK),
            (Request::Rooms, c::ROOMS),
            (Request::Who { room: "r".into() }, c::WHO),
            (
                Request::Topic {
                    room: "r".into(),
                    topic: None,
                },
                c::TOPIC,
            ),
            (
                Request::History {
                    room: "r".into(),
                    before: Some(3),
                    limit: 10,
                },
                c::HISTORY,
            ),
            (Request::Ping, c::PING),
            (
                Request::Moderate {
                    room: "r".into(),
                    action: Box::new(Moderate::Ban {
                        target: "n".into(),
                        duration_secs: Some(60),
                        reason: None,
                    }),
                },
                c::BAN,
            ),
            (
                Request::Moderate {
                    room: "r".into(),
                    action: Box::new(Moderate::Deop("n".into())),
                },
                c::DEOP,
            ),
        ];
        for (request, event) in cases {
            assert_eq!(request.event(), event, "{request:?}");
        }
        let pong = events::ok_reply(&events::PingReply { ts: 1 });
        let rtt = Duration::from_millis(7);
        assert_eq!(Request::Ping.parse_ack(&pong, rtt), Ok(Reply::Pong { rtt }));
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
