//! How the chat answers and pushes, typed. An ack carries the reply type of its request
//! ([`Request::Reply`]), so a handler cannot answer one request with another's reply; a
//! pushed event takes its name from its type ([`ServerEvent::EVENT`]). Both are written
//! straight to JSON, no `Value` built.

use std::borrow::Cow;

use chat_protocol::events::{
    ChatMessage, ErrorAck, ErrorBody, ErrorCode, MessageReply, OkAck, Request, ServerEvent,
};
use serde::Serialize;

use crate::engine::{AckSender, BroadcastOperator, Namespace, Socket};

/// An error ack: its code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub ErrorCode, pub String);

/// What a handler of request `R` returns: `Outcome<R::Reply>`.
pub type Outcome<T> = Result<T, Failure>;

/// Sends the ack of request `R` (nothing when the client asked for none).
pub(crate) fn answer<R: Request>(ack: Option<AckSender>, outcome: Outcome<R::Reply>) {
    send(ack, outcome);
}

/// The `message` ack, borrowing the stored message (it is published too, so not copied):
/// `{"ok":true,"message":{...}}`.
pub(crate) fn answer_message(ack: AckSender, message: &ChatMessage) {
    let reply = MessageReply {
        message: Cow::Borrowed(message),
    };
    send(Some(ack), Ok(reply));
}

/// Refuses a request whatever its type (an unknown event, a store failure).
pub(crate) fn refuse(ack: Option<AckSender>, failure: Failure) {
    send::<()>(ack, Err(failure));
}

fn send<T: Serialize>(ack: Option<AckSender>, outcome: Outcome<T>) {
    let Some(ack) = ack else {
        return;
    };
    // Our reply types always serialise; a closed connection needs no answer.
    let _ = match outcome {
        Ok(reply) => {
            crate::metrics::chat().ack(Ok(()));
            ack.send_json(&(OkAck::new(&reply),))
        }
        Err(Failure(code, message)) => {
            crate::metrics::chat().ack(Err(code));
            ack.send_json(&(ErrorAck::new(&ErrorBody { code, message }),))
        }
    };
}

/// Pushes a typed server event; returns how many local sockets took it.
pub(crate) trait Push {
    fn push<E: ServerEvent>(&self, event: &E) -> usize;
}

impl Push for BroadcastOperator {
    fn push<E: ServerEvent>(&self, event: &E) -> usize {
        self.emit_json(E::EVENT, event).unwrap_or(0)
    }
}

impl Push for Namespace {
    fn push<E: ServerEvent>(&self, event: &E) -> usize {
        self.broadcast().push(event)
    }
}

impl Push for Socket {
    fn push<E: ServerEvent>(&self, event: &E) -> usize {
        usize::from(self.emit_json(E::EVENT, event).is_ok())
    }
}
