//! The per-connection rate limit on CONNECT and EVENT packets: a token bucket. Over it the
//! packet is refused (the application's [`RateLimitReplies`](crate::RateLimitReplies)
//! say how) and the reader pauses until the next token, so a flooding client is slowed by
//! its own TCP window; a sustained flood is closed.

use chat_protocol::socket_io::Packet;
use tokio::time::Instant;

use super::{Close, Connection};
use crate::outbox::CloseReason;

/// A token bucket: `burst` tokens, refilled at `rate` per second. A rate of 0 disables it.
pub(super) struct TokenBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    pub(super) fn new(burst: u32, rate: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            tokens: burst,
            burst,
            rate: f64::from(rate),
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes one token if there is one. The second value says whether the bucket was at
    /// least half full (the client is not flooding).
    pub(super) fn take(&mut self, now: Instant) -> (bool, bool) {
        if self.rate <= 0.0 {
            return (true, true);
        }
        self.refill(now);
        let calm = self.tokens >= (self.burst / 2.0).max(1.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            (true, calm)
        } else {
            (false, false)
        }
    }

    /// How long until the next token.
    pub(super) fn wait(&self) -> std::time::Duration {
        if self.rate <= 0.0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_secs_f64(((1.0 - self.tokens).max(0.0) / self.rate).min(1.0))
    }
}

/// Whether a rate-limited packet may be handled.
pub(super) enum Admit {
    Yes,
    /// Over the limit: refused (the client has been told), not handled.
    Refused,
}

impl Connection {
    /// The rate limit for one CONNECT or EVENT. Over the limit the packet is refused: an
    /// event that asked for an ack gets `[{"ok":false,"error":{"code":"rate_limited",...}}]`,
    /// another event a `notice` event `{"text":...}` (at most one a second), a CONNECT a
    /// CONNECT_ERROR; then reading pauses until the next token. Over the limit for
    /// `flood_timeout` without the bucket once refilling to half: closed (1008).
    pub(super) fn admit(
        &mut self,
        nsp: &str,
        ack: Option<u64>,
        connect: bool,
    ) -> Result<Admit, Close> {
        let now = Instant::now();
        let (ok, calm) = self.bucket.take(now);
        if calm {
            self.throttled_since = None;
        }
        if ok {
            return Ok(Admit::Yes);
        }
        let since = *self.throttled_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.engine.config().flood_timeout {
            return Err(CloseReason::RATE_LIMIT);
        }
        self.engine.stats().rate_limited();
        let replies = self.engine.rate_limit_replies();
        if connect {
            let data = replies.connect_data.clone();
            self.send_alone(Packet::connect_error(nsp, "Rate limit exceeded", data));
        } else if let Some(id) = ack {
            self.send(Packet::ack(nsp, id, replies.ack.clone()));
        } else if let Some((event, args)) = &replies.notice
            && self.last_notice.is_none_or(|t| {
                now.saturating_duration_since(t) >= std::time::Duration::from_secs(1)
            })
        {
            self.last_notice = Some(now);
            self.send(Packet::event(nsp, event, args.clone(), None));
        }
        self.resume_at = Some(now + self.bucket.wait());
        Ok(Admit::Refused)
    }
}
