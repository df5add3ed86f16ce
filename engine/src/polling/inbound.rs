//! A polling session's inbound frames: those its POSTs carry, then, once it upgrades, the
//! WebSocket's. One stream for the session's reader, which cannot tell the two apart.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{self, Message};

/// What the session task receives, in order.
pub(crate) enum Feed {
    /// A packet a POST carried (a text packet, or an attachment as a binary one).
    Frame(Message),
    /// The upgrade: from here on the session reads this WebSocket (its writer already
    /// drains the session's outbox).
    Upgrade(Upgraded),
}

/// A WebSocket that took over a session.
pub(crate) struct Upgraded {
    pub(crate) ws: Box<dyn WebSocketSide>,
    /// The WebSocket writer task, awaited when the session ends.
    pub(crate) writer: JoinHandle<()>,
}

/// The read side of an upgraded WebSocket (boxed: its type depends on the stream under it;
/// only upgraded sessions pay the indirection, a direct WebSocket connection does not).
/// Its `Sink` side only flushes what tungstenite owes the peer (a close reply) into the
/// writer's control bytes.
pub(crate) trait WebSocketSide:
    Stream<Item = Result<Message, tungstenite::Error>>
    + Sink<Message, Error = tungstenite::Error>
    + Send
    + Unpin
{
}

impl<T> WebSocketSide for T where
    T: Stream<Item = Result<Message, tungstenite::Error>>
        + Sink<Message, Error = tungstenite::Error>
        + Send
        + Unpin
{
}

/// The session reader's stream.
pub(super) struct Inbound {
    feed: mpsc::Receiver<Feed>,
    ws: Option<Box<dyn WebSocketSide>>,
    writer: Option<JoinHandle<()>>,
}

impl Inbound {
    pub(super) fn new(feed: mpsc::Receiver<Feed>) -> Inbound {
        Inbound {
            feed,
            ws: None,
            writer: None,
        }
    }

    /// After the reader is done: lets tungstenite put its close reply in the writer's control
    /// bytes, drops the read side, and returns the WebSocket writer to wait for, if any.
    pub(super) async fn close(mut self) -> Option<JoinHandle<()>> {
        if let Some(mut ws) = self.ws.take() {
            let _ = ws.flush().await;
        }
        self.writer.take()
    }
}

impl Stream for Inbound {
    type Item = Result<Message, tungstenite::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(ws) = this.ws.as_mut() {
                return ws.poll_next_unpin(cx);
            }
            match std::task::ready!(this.feed.poll_recv(cx)) {
                Some(Feed::Frame(message)) => return Poll::Ready(Some(Ok(message))),
                Some(Feed::Upgrade(upgraded)) => {
                    this.ws = Some(upgraded.ws);
                    this.writer = Some(upgraded.writer);
                }
                None => return Poll::Ready(None),
            }
        }
    }
}
