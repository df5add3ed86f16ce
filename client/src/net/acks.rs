//! The requests sent and not yet answered ([`InFlight`]): each EVENT's ack id, the client id
//! (`cid`) of a chat message, when it was sent (the ack timeout, the lag) and how its ack
//! decodes into a [`Reply`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chat_protocol::socket_io;
use serde_json::Value;

use super::random::random_u64;
use super::request::{Failure, Reply, Request};

/// How long a request waits for its ack.
const ACK_TIMEOUT: Duration = Duration::from_secs(15);

/// A request waiting for its ack.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) nsp: String,
    pub(super) request: Request,
    sent: Instant,
    /// Sent by the actor itself (a rejoin after a reconnect, the lag ping).
    pub(super) automatic: bool,
    /// The `cid` sent with a chat message: a re-send after a reconnect carries the same
    /// one, so the server stores the message once.
    pub(super) cid: Option<String>,
}

impl Pending {
    /// Decodes the ack's data (its first argument is the reply object).
    pub(super) fn result(&self, data: Option<&Value>) -> Result<Reply, Failure> {
        let ack = match data {
            Some(Value::Array(a)) => a.first().cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        };
        self.request
            .parse_ack(&ack, self.sent.elapsed())
            .map_err(Failure::Server)
    }
}

/// Every request of this session awaiting its ack, by ack id.
#[derive(Debug)]
pub(super) struct InFlight {
    by_id: HashMap<u64, Pending>,
    next_ack: u64,
    /// Random per process run; with a counter it makes the `cid` of each chat message.
    cid_prefix: u64,
    cid_counter: u64,
}

impl InFlight {
    pub(super) fn new() -> InFlight {
        InFlight {
            by_id: HashMap::new(),
            next_ack: 0,
            cid_prefix: random_u64(),
            cid_counter: 0,
        }
    }

    fn new_cid(&mut self) -> String {
        self.cid_counter += 1;
        format!("{:016x}-{}", self.cid_prefix, self.cid_counter)
    }

    /// Takes a request about to be sent and returns its EVENT packet, with an ack id and, for
    /// a chat message, its `cid` (the one it had, or a new one).
    pub(super) fn start(
        &mut self,
        nsp: &str,
        request: Request,
        automatic: bool,
        cid: Option<String>,
    ) -> socket_io::Packet {
        let id = self.next_ack;
        self.next_ack += 1;
        let mut payload = request.payload();
        let cid = match &request {
            Request::Message { .. } => {
                let cid = cid.unwrap_or_else(|| self.new_cid());
                if let Value::Object(map) = &mut payload {
                    map.insert("cid".into(), Value::String(cid.clone()));
                }
                Some(cid)
            }
            _ => None,
        };
        let packet = socket_io::Packet::event(nsp, request.event(), vec![payload], Some(id));
        self.by_id.insert(
            id,
            Pending {
                nsp: nsp.to_owned(),
                request,
                sent: Instant::now(),
                automatic,
                cid,
            },
        );
        packet
    }

    /// The request this ack id answers, if it is still waiting.
    pub(super) fn take(&mut self, id: u64) -> Option<Pending> {
        self.by_id.remove(&id)
    }

    /// Is a lag ping waiting for its answer?
    pub(super) fn ping_in_flight(&self) -> bool {
        self.by_id.values().any(|p| p.request == Request::Ping)
    }

    /// The requests that waited longer than the ack timeout.
    pub(super) fn take_expired(&mut self, now: Instant) -> Vec<Pending> {
        self.take_where(|p| now.duration_since(p.sent) > ACK_TIMEOUT)
    }

    /// The requests sent in this namespace.
    pub(super) fn take_namespace(&mut self, nsp: &str) -> Vec<Pending> {
        self.take_where(|p| p.nsp == nsp)
    }

    /// Every request, in the order sent (the connection is gone).
    pub(super) fn take_all(&mut self) -> impl Iterator<Item = Pending> + use<> {
        let mut all: Vec<(u64, Pending)> = self.by_id.drain().collect();
        all.sort_by_key(|(id, _)| *id);
        all.into_iter().map(|(_, p)| p)
    }

    fn take_where(&mut self, which: impl Fn(&Pending) -> bool) -> Vec<Pending> {
        let ids: Vec<u64> = self
            .by_id
            .iter()
            .filter(|(_, p)| which(p))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.by_id.remove(&id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> Request {
        Request::Message {
            room: "r".into(),
            text: text.into(),
            action: false,
        }
    }

    #[test]
    fn chat_messages_carry_a_cid_kept_across_resends() {
        let mut in_flight = InFlight::new();
        let first = in_flight.start("/", message("a"), false, None);
        let second = in_flight.start("/", message("b"), false, None);
        assert_eq!((first.id, second.id), (Some(0), Some(1)));
        let cid_of = |p: &socket_io::Packet| p.data.as_ref().unwrap()[1]["cid"].clone();
        assert_ne!(cid_of(&first), cid_of(&second));
        let all: Vec<Pending> = in_flight.take_all().collect();
        assert_eq!(all[0].request, message("a"), "in the order sent");
        let again = in_flight.start("/", message("a"), false, all[0].cid.clone());
        assert_eq!(cid_of(&again), cid_of(&first));
        let join = in_flight.start("/", Request::Join { room: "r".into() }, true, None);
        assert!(cid_of(&join).is_null(), "only chat messages carry a cid");
        assert!(in_flight.take(join.id.unwrap()).unwrap().automatic);
        assert!(in_flight.take(join.id.unwrap()).is_none());
    }

    #[test]
    fn requests_are_taken_by_namespace_and_by_age() {
        let mut in_flight = InFlight::new();
        in_flight.start("/", Request::Ping, true, None);
        in_flight.start("/x", Request::Rooms, false, None);
        assert!(in_flight.ping_in_flight());
        let now = Instant::now();
        assert!(in_flight.take_expired(now).is_empty());
        let x = in_flight.take_namespace("/x");
        assert_eq!(x.len(), 1);
        assert_eq!(x[0].request, Request::Rooms);
        let old = in_flight.take_expired(now + ACK_TIMEOUT + Duration::from_millis(1));
        assert_eq!(old.len(), 1);
        assert!(!in_flight.ping_in_flight());
    }
}
