//! The namespaces the application asked for, each with its connect state machine:
//! wanted -> CONNECT sent -> connected, or refused (CONNECT_ERROR: retried after a while for
//! `nick_taken` after a reconnect and for `busy`, else until the application asks again), or
//! closed (the server's DISCONNECT). Each remembers its rooms and the last `seq` seen per room
//! (the `since` of the next CONNECT's auth) and keeps requests until it is connected. No I/O:
//! the session sends what these transitions decide.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chat_protocol::events::{self, ErrorCode};
use serde::Deserialize;
use serde_json::Value;

use super::reconnect::{NICK_RETRY, busy_retry};
use super::request::{Reply, Request};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum NsState {
    /// To be CONNECTed when the session is (re)opened.
    Wanted,
    /// CONNECT sent, no answer yet.
    Connecting,
    Connected,
    /// CONNECT_ERROR; retried at the given time (nick clash after a reconnect, `busy`), else
    /// never.
    Refused {
        retry_at: Option<Instant>,
    },
    /// Server DISCONNECT: never again (unless the application asks).
    Closed,
}

#[derive(Debug)]
pub(super) struct Namespace {
    pub(super) name: String,
    key: Option<String>,
    state: NsState,
    /// Has this namespace been connected in some earlier session?
    was_connected: bool,
    /// CONNECTs refused with `busy` in a row (the server was short of password checks).
    busy_refusals: u32,
    /// Rooms joined (acked), rejoined after a reconnect.
    rooms: BTreeSet<String>,
    /// Last seq seen per room, sent as `since` in the CONNECT auth.
    since: BTreeMap<String, u64>,
    /// Requests waiting for the CONNECT answer (and messages to re-send after a reconnect).
    queue: Vec<Queued>,
}

/// A request waiting for its namespace, with the client message id of a chat message.
#[derive(Debug)]
pub(super) struct Queued {
    pub(super) request: Request,
    pub(super) cid: Option<String>,
}

/// What a CONNECT's acceptance leaves to do.
pub(super) struct Accepted {
    /// Connected in an earlier session too.
    pub(super) resumed: bool,
    /// The rooms to join again.
    pub(super) rooms: Vec<String>,
    /// The requests that waited, in order.
    pub(super) queued: Vec<Queued>,
}

/// What a CONNECT_ERROR leaves to do.
pub(super) enum Refusal {
    /// The namespace is tried again later by itself: nothing to report.
    Retry,
    /// Refused until the application asks again: report it and fail what waited.
    Final { queued: Vec<Queued> },
}

impl Namespace {
    fn new(name: String, key: Option<String>) -> Namespace {
        Namespace {
            name,
            key,
            state: NsState::Wanted,
            was_connected: false,
            busy_refusals: 0,
            rooms: BTreeSet::new(),
            since: BTreeMap::new(),
            queue: Vec::new(),
        }
    }

    /// The auth of this namespace's CONNECT.
    pub(super) fn auth(&self, nick: &str, password: Option<&str>, token: Option<&str>) -> Value {
        connect_auth(nick, password, token, self.key.as_deref(), &self.since)
    }

    /// The server accepted our CONNECT.
    pub(super) fn accepted(&mut self) -> Accepted {
        let resumed = self.was_connected;
        self.state = NsState::Connected;
        self.was_connected = true;
        self.busy_refusals = 0;
        Accepted {
            resumed,
            rooms: self.rooms.iter().cloned().collect(),
            queued: std::mem::take(&mut self.queue),
        }
    }

    /// The server refused our CONNECT with this `data.code`.
    pub(super) fn refused(&mut self, code: Option<ErrorCode>, now: Instant) -> Refusal {
        // After a reconnect our previous connection may still hold the nick; `busy` (the
        // server is short of password checks) and `unavailable` (its storage, in cluster
        // mode Redis, is down for a moment) are retried with a growing, jittered delay.
        let retry_at = if code == Some(ErrorCode::NickTaken) && self.was_connected {
            Some(now + NICK_RETRY)
        } else if code == Some(ErrorCode::Busy) || code == Some(ErrorCode::Unavailable) {
            let delay = busy_retry(self.busy_refusals);
            self.busy_refusals = self.busy_refusals.saturating_add(1);
            Some(now + delay)
        } else {
            None
        };
        self.state = NsState::Refused { retry_at };
        if retry_at.is_some() {
            Refusal::Retry
        } else {
            Refusal::Final {
                queued: std::mem::take(&mut self.queue),
            }
        }
    }

    /// The server sent a DISCONNECT for this namespace.
    pub(super) fn closed(&mut self) {
        self.state = NsState::Closed;
        self.rooms.clear();
        // Not members any more: a later CONNECT must not rejoin them by `since`.
        self.since.clear();
    }

    /// We were removed from `room` (kicked): it is not rejoined.
    pub(super) fn removed(&mut self, room: &str) {
        self.rooms.remove(room);
        self.since.remove(room);
    }

    /// A message of `room` with this `seq` reached us.
    pub(super) fn seen(&mut self, room: &str, seq: u64) {
        bump(&mut self.since, room, seq);
    }

    /// Keeps the rejoin list and the `since` map in step with a successful reply.
    pub(super) fn track(&mut self, reply: &Reply) {
        match reply {
            Reply::Join(j) => {
                self.rooms.insert(j.room.clone());
                // Every joined room is named in `since` (0: nothing seen yet), so a server
                // that catches up on CONNECT covers it too.
                self.since.entry(j.room.clone()).or_insert(0);
                for m in &j.history {
                    bump(&mut self.since, &m.room, m.seq);
                }
            }
            Reply::Leave(l) => {
                self.rooms.remove(&l.room);
                self.since.remove(&l.room);
            }
            Reply::Message(m) => bump(&mut self.since, &m.message.room, m.message.seq),
            _ => {}
        }
    }
}

/// Every namespace asked for, in the order asked.
#[derive(Debug, Default)]
pub(super) struct Namespaces {
    list: Vec<Namespace>,
}

impl Namespaces {
    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut Namespace> {
        self.list.iter_mut().find(|n| n.name == name)
    }

    pub(super) fn is_connected(&self, name: &str) -> bool {
        self.list
            .iter()
            .any(|n| n.name == name && n.state == NsState::Connected)
    }

    /// The first connected namespace (where the lag is measured).
    pub(super) fn first_connected(&self) -> Option<&str> {
        self.list
            .iter()
            .find(|n| n.state == NsState::Connected)
            .map(|n| n.name.as_str())
    }

    /// Records a Connect: a new namespace, or a new try for a refused or closed one.
    /// Returns true when a CONNECT should be sent now (if a session is open).
    pub(super) fn want(&mut self, nsp: String, key: Option<String>) -> bool {
        match self.get_mut(&nsp) {
            Some(ns) => match ns.state {
                NsState::Refused { .. } | NsState::Closed => {
                    if key.is_some() {
                        ns.key = key;
                    }
                    ns.state = NsState::Wanted;
                    true
                }
                _ => false,
            },
            None => {
                self.list.push(Namespace::new(nsp, key));
                true
            }
        }
    }

    /// Forgets a namespace; returns whether a DISCONNECT is due (it was connected or
    /// CONNECTing) and the requests that were waiting for it.
    pub(super) fn remove(&mut self, nsp: &str) -> (bool, Vec<Request>) {
        let Some(at) = self.list.iter().position(|n| n.name == nsp) else {
            return (false, Vec::new());
        };
        let ns = self.list.remove(at);
        let live = matches!(ns.state, NsState::Connected | NsState::Connecting);
        (live, ns.queue.into_iter().map(|q| q.request).collect())
    }

    /// The nick changed: every refused namespace is wanted again.
    pub(super) fn retry_refused(&mut self) {
        for ns in &mut self.list {
            if matches!(ns.state, NsState::Refused { .. }) {
                ns.state = NsState::Wanted;
            }
        }
    }

    /// Namespaces whose retry time has come are wanted again; true when there were any.
    pub(super) fn retry_due(&mut self, now: Instant) -> bool {
        let mut retry = false;
        for ns in &mut self.list {
            if matches!(ns.state, NsState::Refused { retry_at: Some(at) } if at <= now) {
                ns.state = NsState::Wanted;
                retry = true;
            }
        }
        retry
    }

    /// The wanted namespaces, each marked as CONNECTing as it is yielded.
    pub(super) fn start_wanted(&mut self) -> impl Iterator<Item = &Namespace> {
        self.list
            .iter_mut()
            .filter(|ns| ns.state == NsState::Wanted)
            .map(|ns| {
                ns.state = NsState::Connecting;
                &*ns
            })
    }

    /// Keeps a request for when its namespace is connected, or gives it back with the reason
    /// when the namespace was refused, closed or never asked for.
    pub(super) fn queue(&mut self, nsp: &str, request: Request) -> Result<(), (Request, String)> {
        let why = match self.get_mut(nsp) {
            Some(ns) => match ns.state {
                NsState::Refused { retry_at: None } => format!("not connected to {nsp}"),
                NsState::Closed => format!("the server closed {nsp}"),
                _ => {
                    ns.queue.push(Queued { request, cid: None });
                    return Ok(());
                }
            },
            None => format!("not connected to {nsp} (use /ns {nsp})"),
        };
        Err((request, why))
    }

    /// The connection is gone: the requests to send again go first in their namespaces'
    /// queues (in the order they were first sent), and live namespaces, and those waiting
    /// for a retry, are to be CONNECTed in the next session.
    pub(super) fn connection_lost(&mut self, resend: Vec<(String, Queued)>) {
        for (i, (nsp, queued)) in resend.into_iter().enumerate() {
            if let Some(ns) = self.get_mut(&nsp) {
                // Before anything queued later, in the order they were first sent.
                let at = i.min(ns.queue.len());
                ns.queue.insert(at, queued);
            }
        }
        for ns in &mut self.list {
            match ns.state {
                NsState::Connecting | NsState::Connected => ns.state = NsState::Wanted,
                NsState::Refused {
                    retry_at: Some(_), ..
                } => ns.state = NsState::Wanted,
                _ => {}
            }
        }
    }
}

/// The CONNECT auth payload: the nick (every namespace repeats it), the optional password,
/// token and namespace key, and `since: {room: last seq}` when the client has seen messages
/// there (the catch-up seam for durable history).
pub fn connect_auth(
    nick: &str,
    password: Option<&str>,
    token: Option<&str>,
    key: Option<&str>,
    since: &BTreeMap<String, u64>,
) -> Value {
    let auth = events::Auth {
        nick: Some(nick.to_owned()),
        password: password.map(str::to_owned),
        token: token.map(str::to_owned),
        key: key.map(str::to_owned),
        since: (!since.is_empty()).then(|| since.clone()),
    };
    serde_json::to_value(auth).unwrap_or(Value::Null)
}

fn bump(since: &mut BTreeMap<String, u64>, room: &str, seq: u64) {
    let entry = since.entry(room.to_owned()).or_insert(0);
    *entry = (*entry).max(seq);
}

/// The message and code of a CONNECT_ERROR payload (`{"message":..,"data":{"code":..}}`).
pub fn connect_error_details(data: Option<&Value>) -> (String, Option<ErrorCode>) {
    match data {
        Some(Value::String(s)) => (s.clone(), None),
        Some(v) => {
            let message = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("refused")
                .to_owned();
            let code = v
                .get("data")
                .and_then(|d| d.get("code"))
                .and_then(|c| ErrorCode::deserialize(c).ok());
            (message, code)
        }
        None => ("refused".to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn connect_auth_carries_since() {
        let none = BTreeMap::new();
        assert_eq!(
            connect_auth("alice", None, None, None, &none).to_string(),
            r#"{"nick":"alice"}"#
        );
        let mut since = BTreeMap::new();
        bump(&mut since, "general", 7);
        bump(&mut since, "general", 3);
        bump(&mut since, "ops", 1);
        assert_eq!(
            connect_auth("alice", Some("pw"), None, Some("k"), &since).to_string(),
            r#"{"nick":"alice","password":"pw","key":"k","since":{"general":7,"ops":1}}"#
        );
    }

    #[test]
    fn connect_error_payloads() {
        let v = serde_json::json!({"message":"nick 'x' is in use","data":{"code":"nick_taken"}});
        assert_eq!(
            connect_error_details(Some(&v)),
            ("nick 'x' is in use".into(), Some(ErrorCode::NickTaken))
        );
        let v = serde_json::json!({"message":"Invalid namespace"});
        assert_eq!(
            connect_error_details(Some(&v)),
            ("Invalid namespace".into(), None)
        );
        // A code from a newer server: still a refusal with its message.
        let v = serde_json::json!({"message":"m","data":{"code":"from_the_future"}});
        assert_eq!(
            connect_error_details(Some(&v)),
            ("m".into(), Some(ErrorCode::Unknown))
        );
    }

    fn join(room: &str) -> Request {
        Request::Join { room: room.into() }
    }

    #[test]
    fn a_refusal_is_final_unless_nick_taken_after_a_reconnect_or_busy() {
        let now = Instant::now();
        let mut all = Namespaces::default();
        assert!(all.want("/".into(), None));
        assert!(!all.want("/".into(), None), "already wanted");
        assert_eq!(all.start_wanted().count(), 1);
        all.queue("/", join("a")).unwrap();

        // A first-time nick clash is final and gives back what waited.
        let ns = all.get_mut("/").unwrap();
        match ns.refused(Some(ErrorCode::NickTaken), now) {
            Refusal::Final { queued } => assert_eq!(queued[0].request, join("a")),
            Refusal::Retry => panic!("a first nick clash is not retried"),
        }
        let (_, why) = all.queue("/", join("b")).unwrap_err();
        assert_eq!(why, "not connected to /");

        // Asked again, connected, lost: now a nick clash is retried after NICK_RETRY.
        assert!(all.want("/".into(), Some("k".into())));
        assert_eq!(all.start_wanted().count(), 1);
        let accepted = all.get_mut("/").unwrap().accepted();
        assert!(!accepted.resumed);
        all.connection_lost(Vec::new());
        assert_eq!(all.start_wanted().count(), 1);
        let ns = all.get_mut("/").unwrap();
        assert!(matches!(
            ns.refused(Some(ErrorCode::NickTaken), now),
            Refusal::Retry
        ));
        assert_eq!(
            ns.state,
            NsState::Refused {
                retry_at: Some(now + NICK_RETRY)
            }
        );
        assert!(!all.retry_due(now), "not before its time");
        assert!(all.retry_due(now + NICK_RETRY));
        assert_eq!(all.start_wanted().count(), 1);
        assert!(all.get_mut("/").unwrap().accepted().resumed);
        assert!(all.is_connected("/"));
        assert_eq!(all.first_connected(), Some("/"));
    }

    #[test]
    fn busy_refusals_back_off_and_reset_on_acceptance() {
        let now = Instant::now();
        let mut all = Namespaces::default();
        all.want("/".into(), None);
        let ns = all.get_mut("/").unwrap();
        for n in 0..3 {
            assert!(matches!(
                ns.refused(Some(ErrorCode::Busy), now),
                Refusal::Retry
            ));
            let NsState::Refused { retry_at: Some(at) } = ns.state else {
                panic!("busy is retried");
            };
            let most = Duration::from_millis(500) * 2u32.pow(n);
            assert!(at > now && at <= now + most, "refusal {n}: {:?}", at - now);
        }
        assert_eq!(ns.busy_refusals, 3);
        ns.accepted();
        assert_eq!(ns.busy_refusals, 0);
    }

    #[test]
    fn a_connect_refused_unavailable_is_retried_like_busy() {
        let now = Instant::now();
        let mut all = Namespaces::default();
        all.want("/".into(), None);
        let ns = all.get_mut("/").unwrap();
        assert!(matches!(
            ns.refused(Some(ErrorCode::Unavailable), now),
            Refusal::Retry
        ));
        let NsState::Refused { retry_at: Some(at) } = ns.state else {
            panic!("unavailable is retried");
        };
        assert!(at > now && at <= now + Duration::from_millis(500));
    }

    #[test]
    fn a_lost_connection_resends_first_and_a_disconnect_forgets_the_rooms() {
        let mut all = Namespaces::default();
        all.want("/".into(), None);
        all.start_wanted().count();
        let ns = all.get_mut("/").unwrap();
        ns.accepted();
        let reply = Reply::Join(events::JoinReply {
            room: "a".into(),
            members: vec!["n".into()],
            away: Vec::new(),
            operators: Vec::new(),
            topic: None,
            history: Vec::new(),
        });
        ns.track(&reply);
        ns.seen("a", 4);
        assert_eq!(
            ns.auth("n", None, None).to_string(),
            r#"{"nick":"n","since":{"a":4}}"#
        );
        all.queue("/", join("later")).unwrap();
        let resent = Queued {
            request: join("first"),
            cid: None,
        };
        all.connection_lost(vec![("/".into(), resent)]);
        let accepted = all.get_mut("/").unwrap().accepted();
        assert_eq!(accepted.rooms, vec!["a".to_owned()]);
        let order: Vec<_> = accepted.queued.iter().map(|q| q.request.clone()).collect();
        assert_eq!(order, vec![join("first"), join("later")]);

        let ns = all.get_mut("/").unwrap();
        ns.closed();
        assert_eq!(ns.auth("n", None, None).to_string(), r#"{"nick":"n"}"#);
        let (_, why) = all.queue("/", join("b")).unwrap_err();
        assert_eq!(why, "the server closed /");
        assert!(all.queue("/x", join("b")).is_err());
    }
}
