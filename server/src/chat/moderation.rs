//! Moderation, as IRC users know it: who may moderate a room, the rules in force in each
//! room, and the requests that change them.
//!
//! - **Server admins** are the registered nicks listed in the config (`admins`), connected
//!   with their password. They may moderate every room (as its operators may), ban by
//!   address, delete messages, unregister nicks and reset passwords.
//! - **Room operators** are registered nicks kept in the store per room: whoever joins a
//!   room that has no member and no operator while registered becomes its operator (the
//!   room's creator, as on IRC), and operators `op` others. A room with no operator (one a
//!   guest created) stays so until an admin `op`s someone (or themselves: a claim).
//!   Guests never moderate.
//! - **Rules** (`RoomRules`): a room's operators, bans and mutes, read from the store and
//!   cached while the room has members (forgotten when it empties), so `join` and `message`
//!   check them without a store read.
//!
//! [`ChatApp::kick`] and [`ChatApp::ban`] take an [`Actor`] and a namespace, not a socket, so
//! an admin API can call them (`Actor::server()`).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::RwLock;

use chat_protocol::events::{
    BanRequest, DeleteRequest, DeopRequest, ErrorCode, KickRequest, MessageDeleted, Moderation,
    ModerationAction, MuteRequest, OpRequest, ResetPasswordReply, ResetPasswordRequest,
    UnbanRequest, UnmuteRequest, UnregisterReply, UnregisterRequest,
};
use chat_protocol::names;

use super::handlers::{Failure, internal, parse, valid_room};
use super::reply::{Outcome, Push};
use super::store::{Restriction, RestrictionKind, now_ms};
use super::{ChatApp, Session, engine_room};
use crate::engine::{BroadcastOptions, Event, Namespace, Socket, lock};

/// The longest ban or mute: ten years (a longer one is the same as none).
const DURATION_MAX_SECS: u64 = 10 * 365 * 24 * 3600;

/// Most rooms whose rules are cached; beyond, the cache starts over (the store is the truth).
const CACHED_ROOMS_MAX: usize = 100_000;

/// Who performs a moderation action.
#[derive(Debug, Clone)]
pub struct Actor {
    /// As shown to the room.
    pub nick: String,
    /// Its nick key, for a registered user (guests have none: they never moderate).
    key: Option<String>,
    pub admin: bool,
}

impl Actor {
    /// The server itself (the admin API): an admin named `server`.
    pub fn server() -> Actor {
        Actor::admin("server")
    }

    /// An admin shown to rooms under this name (an admin API that names who called it).
    pub fn admin(name: &str) -> Actor {
        Actor {
            nick: name.to_owned(),
            key: None,
            admin: true,
        }
    }
}

/// A room's operators (nick keys), bans and mutes.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoomRules {
    pub(crate) operators: HashSet<String>,
    restrictions: Vec<Restriction>,
}

impl RoomRules {
    /// Rules of these restrictions alone, no operator (a ban checked against members).
    pub(crate) fn of(restrictions: Vec<Restriction>) -> RoomRules {
        RoomRules {
            operators: HashSet::new(),
            restrictions,
        }
    }

    /// The ban or mute in force on this nick (or its look-alikes) or address.
    pub(crate) fn find(
        &self,
        kind: RestrictionKind,
        nick: &str,
        ip: Option<IpAddr>,
    ) -> Option<&Restriction> {
        // The usual room has none: no skeleton computed.
        if !self.restrictions.iter().any(|r| r.kind == kind) {
            return None;
        }
        let now = now_ms();
        let key = names::nick_key(nick);
        let skeletons = names::nick_skeletons(nick);
        let address = ip.map(address_target);
        self.restrictions
            .iter()
            .filter(|r| r.kind == kind && r.active(now))
            .find(|r| {
                if r.target.starts_with("ip:") {
                    return address.as_ref() == Some(&r.target);
                }
                r.target == key
                    || names::nick_skeletons(&r.target)
                        .iter()
                        .any(|s| skeletons.contains(s))
            })
    }

    fn may_moderate(&self, actor: &Actor) -> bool {
        actor.admin
            || actor
                .key
                .as_ref()
                .is_some_and(|k| self.operators.contains(k))
    }
}

/// How a ban by address is kept: `ip:` and the address as the server counts addresses
/// (IPv4 as is, IPv6 by its /64).
fn address_target(ip: IpAddr) -> String {
    format!("ip:{}", super::auth::address_key(ip))
}

/// A ban's target: an address (admins only) or a nick; its store key and how it is shown.
fn ban_target(actor: &Actor, target: &str) -> Result<(String, String), Failure> {
    if let Ok(ip) = target.trim().parse::<IpAddr>() {
        if !actor.admin {
            return Err(Failure(
                ErrorCode::NotAdmin,
                "only server admins ban by address".into(),
            ));
        }
        let shown = super::auth::address_key(ip).to_string();
        return Ok((address_target(ip), shown));
    }
    valid_nick(target)?;
    Ok((names::nick_key(target), target.to_owned()))
}

fn valid_nick(nick: &str) -> Result<(), Failure> {
    names::validate_nick(nick).map_err(|e| Failure(ErrorCode::InvalidName, e.to_string()))
}

/// A reason: the rules of a topic (one line, at most 300 characters); blank is none.
fn reason(reason: Option<String>) -> Result<Option<String>, Failure> {
    let Some(r) = reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
    else {
        return Ok(None);
    };
    names::validate_reason(&r).map_err(|e| Failure(ErrorCode::InvalidText, e.to_string()))?;
    Ok(Some(r))
}

fn until(duration_secs: Option<u64>) -> Option<i64> {
    duration_secs.map(|s| now_ms().saturating_add(s.min(DURATION_MAX_SECS) as i64 * 1000))
}

fn not_operator(room: &str, what: &str) -> Failure {
    Failure(
        ErrorCode::NotOperator,
        format!("only operators of {room} (or server admins) can {what}"),
    )
}

fn not_admin(what: &str) -> Failure {
    Failure(
        ErrorCode::NotAdmin,
        format!("only server admins can {what}"),
    )
}

/// The sockets of a namespace in a chat room.
fn room_sockets(ns: &Namespace, room: &str) -> Vec<Socket> {
    let opts = BroadcastOptions {
        rooms: vec![engine_room(room)],
        ..Default::default()
    };
    ns.adapter()
        .sockets(&opts)
        .iter()
        .filter_map(|sid| ns.socket(sid.as_str()))
        .collect()
}

impl ChatApp {
    /// The actor a session is: an admin when it proved a nick the config lists.
    pub(crate) fn actor(&self, session: &Session) -> Actor {
        let nick = session.nick();
        let registered = session.is_authenticated();
        let key = registered.then(|| names::nick_key(&nick));
        let admin = key.as_ref().is_some_and(|k| self.admins.contains(k));
        Actor { nick, key, admin }
    }

    /// Runs `f` on a room's rules, read from the store unless cached. `cache`: keep them
    /// (the room has, or is about to have, members; forgotten when it empties).
    pub(crate) async fn with_rules<T>(
        &self,
        ns: &str,
        room: &str,
        cache: bool,
        f: impl FnOnce(&RoomRules) -> T,
    ) -> Result<T, Failure> {
        // The hit (every `message` checks its room's mutes): a read lock, no allocation.
        // (`f` is taken by the read only when the rules are cached.)
        let mut f = Some(f);
        if let Some(out) = self
            .rules
            .read(ns, room, |r| f.take().map(|f| f(r)))
            .flatten()
        {
            return Ok(out);
        }
        let Some(f) = f else {
            return Err(internal("the rules cache took the reader and gave nothing"));
        };
        // Loads that cache and writes take turns, so a load never caches what a write just
        // changed (a load that does not cache needs no turn).
        let _io = if cache {
            Some(self.rules_io.lock().await)
        } else {
            None
        };
        let operators = self.store.operators(ns, room).await.map_err(internal)?;
        let restrictions = self.store.restrictions(ns, room).await.map_err(internal)?;
        let rules = RoomRules {
            operators: operators.into_iter().collect(),
            restrictions,
        };
        let out = f(&rules);
        if cache {
            self.rules.insert(ns, room, rules);
        }
        Ok(out)
    }

    /// Forgets every room's cached rules: in cluster mode, every
    /// [`RULES_REFRESH`](super::RULES_REFRESH), so that another node's moderation (written
    /// to the shared store) holds here within that time.
    pub(crate) fn forget_all_rules(&self) {
        self.rules.clear();
    }

    /// Forgets a room's cached rules (it has no member left).
    pub(crate) fn forget_rules(&self, ns: &str, room: &str) {
        self.rules.remove(ns, room);
    }

    /// Applies a change to a room's rules to the cache, if it holds them (the store was
    /// written first, under `rules_io`).
    fn cached_change(&self, ns: &str, room: &str, f: impl FnOnce(&mut RoomRules)) {
        self.rules.change(ns, room, f);
    }

    /// Refuses an actor who may not moderate the room.
    async fn moderator(&self, ns: &str, room: &str, actor: &Actor, what: &str) -> Outcome<()> {
        valid_room(room)?;
        // A guest is refused before any store read: what a moderation request costs an
        // unauthenticated client is its parsing.
        if actor.key.is_none() && !actor.admin {
            return Err(not_operator(room, what));
        }
        if self
            .with_rules(ns, room, false, |r| r.may_moderate(actor))
            .await?
        {
            Ok(())
        } else {
            Err(not_operator(room, what))
        }
    }

    /// Operators do not act on server admins (admins do).
    fn not_on_an_admin(&self, actor: &Actor, nick: &str, room: &str, what: &str) -> Outcome<()> {
        if !actor.admin && self.admins.contains(&names::nick_key(nick)) {
            return Err(Failure(
                ErrorCode::NotOperator,
                format!("{nick} is a server admin: operators of {room} cannot {what} them"),
            ));
        }
        Ok(())
    }

    /// The ban in force on this user in this room, if any.
    pub(crate) async fn ban_on(
        &self,
        ns: &str,
        room: &str,
        nick: &str,
        ip: IpAddr,
        cache: bool,
    ) -> Result<Option<Restriction>, Failure> {
        self.with_rules(ns, room, cache, |r| {
            r.find(RestrictionKind::Ban, nick, Some(ip)).cloned()
        })
        .await
    }

    /// Refuses a `join` (or a `since` room) of a user the room bans.
    pub(crate) async fn may_enter(
        &self,
        socket: &Socket,
        session: &Session,
        room: &str,
    ) -> Outcome<()> {
        let ip = socket.conn().remote.ip();
        let ns = socket.namespace().name();
        match self.ban_on(ns, room, &session.nick(), ip, false).await? {
            Some(ban) => Err(ChatApp::banned(room, &ban)),
            None => Ok(()),
        }
    }

    /// Removes a socket that entered a room whose ban (set meanwhile) matches it, as the
    /// ban's own removal does: a `kick` to the room, then out.
    pub(crate) async fn banned_after_entering(
        &self,
        socket: &Socket,
        session: &Session,
        room: &str,
    ) {
        let ns = socket.namespace();
        let ip = socket.conn().remote.ip();
        let Ok(Some(ban)) = self
            .ban_on(ns.name(), room, &session.nick(), ip, true)
            .await
        else {
            return;
        };
        let kick = Moderation {
            room: room.to_owned(),
            actor: ban.by,
            action: ModerationAction::Kick,
            target: session.nick(),
            reason: ban.reason,
            until: None,
        };
        let sid = socket.sid().clone();
        self.remove_from_room(ns, room, Some(&kick), |_, s| *s.sid() == sid, |_| true);
    }

    /// The refusal of a banned user: why and until when.
    pub(crate) fn banned(room: &str, ban: &Restriction) -> Failure {
        let mut text = format!("you are banned from {room}");
        if let Some(until) = ban.until {
            let secs = (until - now_ms()).max(0) / 1000 + 1;
            text.push_str(&format!(" for {secs} more seconds"));
        }
        if let Some(why) = &ban.reason {
            text.push_str(&format!(" ({why})"));
        }
        Failure(ErrorCode::Banned, text)
    }

    /// Refuses a muted user's message.
    pub(crate) async fn not_muted(
        &self,
        socket: &Socket,
        session: &Session,
        room: &str,
    ) -> Outcome<()> {
        let nick = session.nick();
        let ns = socket.namespace().name();
        let mute = self
            .with_rules(ns, room, true, |r| {
                r.find(RestrictionKind::Mute, &nick, None).cloned()
            })
            .await?;
        match mute {
            None => Ok(()),
            Some(m) => {
                let mut text = format!("you are muted in {room}");
                if let Some(why) = &m.reason {
                    text.push_str(&format!(" ({why})"));
                }
                Err(Failure(ErrorCode::Muted, text))
            }
        }
    }

    /// Whether a `topic` set is allowed: in a room with operators, only to them (and admins).
    pub(crate) async fn may_set_topic(&self, ns: &str, room: &str, actor: &Actor) -> Outcome<()> {
        let allowed = self
            .with_rules(ns, room, true, |r| {
                r.operators.is_empty() || r.may_moderate(actor)
            })
            .await?;
        if allowed {
            Ok(())
        } else {
            Err(not_operator(room, "set its topic"))
        }
    }

    /// A registered joiner of a room with no member and no operator becomes its operator.
    pub(crate) async fn creator_takes_op(
        &self,
        ns: &str,
        room: &str,
        session: &Session,
    ) -> Outcome<()> {
        if !session.is_authenticated() {
            return Ok(());
        }
        if !self
            .with_rules(ns, room, true, |r| r.operators.is_empty())
            .await?
        {
            return Ok(());
        }
        let key = names::nick_key(&session.nick());
        let _io = self.rules_io.lock().await;
        self.store
            .set_operator(ns, room, &key, true)
            .await
            .map_err(internal)?;
        self.cached_change(ns, room, |r| {
            r.operators.insert(key);
        });
        Ok(())
    }

    /// Tells the room (every member: the actor and the target see it too).
    fn announce(ns: &Namespace, event: &Moderation) {
        ns.to(engine_room(&event.room)).push(event);
    }

    /// Takes out of `room` the members (on this node) a ban in `rules` matches, by nick or
    /// by address, telling the room with `kick` of those `announce` accepts.
    pub(crate) fn remove_banned(
        &self,
        ns: &Namespace,
        room: &str,
        kick: &Moderation,
        rules: &RoomRules,
        announce: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        self.remove_from_room(
            ns,
            room,
            Some(kick),
            |session, socket| {
                let ip = socket.conn().remote.ip();
                rules
                    .find(RestrictionKind::Ban, &session.nick(), Some(ip))
                    .is_some()
            },
            announce,
        )
    }

    /// Removes this node's sockets of the room that `is_target` picks: with an `event`, a
    /// `kick` (one per nick, for the nicks `announce` passes) to the room first, so the
    /// targets see why, then they leave. Returns the nicks removed.
    pub(crate) fn remove_from_room(
        &self,
        ns: &Namespace,
        room: &str,
        event: Option<&Moderation>,
        is_target: impl Fn(&Session, &Socket) -> bool,
        announce: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let targets: Vec<(Socket, String)> = room_sockets(ns, room)
            .into_iter()
            .filter_map(|s| {
                let session = s.extensions().get::<Session>()?;
                is_target(&session, &s).then(|| (s, session.nick()))
            })
            .collect();
        let mut removed: Vec<String> = Vec::new();
        for (_, nick) in &targets {
            if !removed.contains(nick) {
                if let Some(event) = event.filter(|_| announce(nick)) {
                    let kick = Moderation {
                        target: nick.clone(),
                        ..event.clone()
                    };
                    ChatApp::announce(ns, &kick);
                }
                removed.push(nick.clone());
            }
        }
        for (socket, nick) in targets {
            socket.leave(&engine_room(room));
            self.store.note_member(ns.name(), room, &nick, false);
        }
        removed
    }

    /// `kick`: takes `nick` (every device of it) out of the room, not out of the server;
    /// the room (the target included) sees a `moderation` event before the target leaves.
    pub async fn kick(
        &self,
        ns: &Namespace,
        actor: &Actor,
        room: &str,
        nick: &str,
        why: Option<String>,
    ) -> Outcome<Moderation> {
        valid_nick(nick)?;
        let why = reason(why)?;
        self.moderator(ns.name(), room, actor, "kick").await?;
        self.not_on_an_admin(actor, nick, room, "kick")?;
        let key = names::nick_key(nick);
        let event = Moderation {
            room: room.to_owned(),
            actor: actor.nick.clone(),
            action: ModerationAction::Kick,
            target: nick.to_owned(),
            reason: why,
            until: None,
        };
        let removed = self.remove_from_room(
            ns,
            room,
            Some(&event),
            |session, _| names::nick_key(&session.nick()) == key,
            |_| true,
        );
        let target = match removed.into_iter().next() {
            Some(target) => Some(target),
            // Not here: a member on another node (cluster mode) is told here, once.
            None if self.has_peers() => {
                let remote = self
                    .store
                    .remote_members(ns.name(), room)
                    .await
                    .map_err(internal)?;
                let shown = remote.into_iter().find(|n| names::nick_key(n) == key);
                if let Some(shown) = &shown {
                    ChatApp::announce(
                        ns,
                        &Moderation {
                            target: shown.clone(),
                            ..event.clone()
                        },
                    );
                }
                shown
            }
            None => None,
        };
        let Some(target) = target else {
            return Err(Failure(
                ErrorCode::NotFound,
                format!("{nick} is not in {room}"),
            ));
        };
        // Its devices on other nodes leave too (after the announcement, on one channel).
        self.tell_kick(ns.name(), room, key);
        Ok(Moderation { target, ..event })
    }

    /// `ban`: keeps a nick (and its look-alikes) or, for admins, an address out of the room
    /// (for a while, or until lifted); members it matches are removed (a `kick` each).
    pub async fn ban(
        &self,
        ns: &Namespace,
        actor: &Actor,
        room: &str,
        target: &str,
        duration_secs: Option<u64>,
        why: Option<String>,
    ) -> Outcome<Moderation> {
        let (key, shown) = ban_target(actor, target)?;
        let why = reason(why)?;
        self.moderator(ns.name(), room, actor, "ban").await?;
        if !key.starts_with("ip:") {
            self.not_on_an_admin(actor, target, room, "ban")?;
        }
        let restriction = Restriction {
            kind: RestrictionKind::Ban,
            target: key,
            by: actor.nick.clone(),
            reason: why.clone(),
            until: until(duration_secs),
        };
        self.restrict(ns.name(), room, restriction.clone()).await?;
        let event = Moderation {
            room: room.to_owned(),
            actor: actor.nick.clone(),
            action: ModerationAction::Ban,
            target: shown,
            reason: why,
            until: restriction.until,
        };
        ChatApp::announce(ns, &event);
        let target = restriction.target.clone();
        let rules = RoomRules::of(vec![restriction]);
        let kick = Moderation {
            action: ModerationAction::Kick,
            until: None,
            ..event.clone()
        };
        let removed = self.remove_banned(ns, room, &kick, &rules, |_| true);
        if self.has_peers() {
            // Members on other nodes the ban matches by nick are told here, once; those it
            // matches by address only, by their node.
            let remote = self
                .store
                .remote_members(ns.name(), room)
                .await
                .unwrap_or_default();
            let mut told = removed;
            for nick in remote {
                if !told.contains(&nick) && rules.find(RestrictionKind::Ban, &nick, None).is_some()
                {
                    ChatApp::announce(
                        ns,
                        &Moderation {
                            target: nick.clone(),
                            ..kick.clone()
                        },
                    );
                    told.push(nick);
                }
            }
            self.tell_ban(ns.name(), room, target, kick);
        }
        Ok(event)
    }

    async fn restrict(&self, ns: &str, room: &str, restriction: Restriction) -> Outcome<()> {
        let _io = self.rules_io.lock().await;
        self.store
            .add_restriction(ns, room, restriction.clone())
            .await
            .map_err(internal)?;
        self.cached_change(ns, room, |r| {
            r.restrictions
                .retain(|x| (x.kind, &x.target) != (restriction.kind, &restriction.target));
            r.restrictions.push(restriction);
        });
        Ok(())
    }

    async fn lift(&self, ns: &str, room: &str, kind: RestrictionKind, key: &str) -> Outcome<bool> {
        let _io = self.rules_io.lock().await;
        let removed = self
            .store
            .remove_restriction(ns, room, kind, key)
            .await
            .map_err(internal)?;
        self.cached_change(ns, room, |r| {
            r.restrictions
                .retain(|x| (x.kind, x.target.as_str()) != (kind, key))
        });
        Ok(removed)
    }

    async fn set_operator(&self, ns: &str, room: &str, key: &str, operator: bool) -> Outcome<()> {
        let _io = self.rules_io.lock().await;
        self.store
            .set_operator(ns, room, key, operator)
            .await
            .map_err(internal)?;
        self.cached_change(ns, room, |r| {
            if operator {
                r.operators.insert(key.to_owned());
            } else {
                r.operators.remove(key);
            }
        });
        Ok(())
    }

    /// One moderation request from a client (`kick` ... `deop`): its reply is the event the
    /// room saw.
    pub(crate) async fn moderate(
        &self,
        socket: &Socket,
        session: &Session,
        request: &Event,
    ) -> Outcome<Moderation> {
        use chat_protocol::events::client;
        let actor = self.actor(session);
        let ns = socket.namespace();
        match request.name.as_str() {
            client::KICK => {
                let KickRequest { room, nick, reason } = parse(request)?;
                self.kick(ns, &actor, &room, &nick, reason).await
            }
            client::BAN => {
                let BanRequest {
                    room,
                    target,
                    duration_secs,
                    reason,
                } = parse(request)?;
                self.ban(ns, &actor, &room, &target, duration_secs, reason)
                    .await
            }
            client::UNBAN => {
                let UnbanRequest { room, target } = parse(request)?;
                let (key, shown) = ban_target(&actor, &target)?;
                self.moderator(ns.name(), &room, &actor, "unban").await?;
                self.lifted(ns, &actor, &room, RestrictionKind::Ban, &key, shown)
                    .await
            }
            client::MUTE => {
                let MuteRequest {
                    room,
                    nick,
                    duration_secs,
                    reason: why,
                } = parse(request)?;
                valid_nick(&nick)?;
                let why = reason(why)?;
                self.moderator(ns.name(), &room, &actor, "mute").await?;
                self.not_on_an_admin(&actor, &nick, &room, "mute")?;
                let restriction = Restriction {
                    kind: RestrictionKind::Mute,
                    target: names::nick_key(&nick),
                    by: actor.nick.clone(),
                    reason: why.clone(),
                    until: until(duration_secs),
                };
                let until = restriction.until;
                self.restrict(ns.name(), &room, restriction).await?;
                let event = Moderation {
                    room,
                    actor: actor.nick,
                    action: ModerationAction::Mute,
                    target: nick,
                    reason: why,
                    until,
                };
                ChatApp::announce(ns, &event);
                Ok(event)
            }
            client::UNMUTE => {
                let UnmuteRequest { room, nick } = parse(request)?;
                valid_nick(&nick)?;
                self.moderator(ns.name(), &room, &actor, "unmute").await?;
                let key = names::nick_key(&nick);
                self.lifted(ns, &actor, &room, RestrictionKind::Mute, &key, nick)
                    .await
            }
            client::OP => {
                let OpRequest { room, nick } = parse(request)?;
                valid_nick(&nick)?;
                self.moderator(ns.name(), &room, &actor, "op").await?;
                let key = names::nick_key(&nick);
                let Some(identity) = self.store.identity(&key).await.map_err(internal)? else {
                    return Err(Failure(
                        ErrorCode::NotRegistered,
                        format!(
                            "{nick} is not a registered nick: only registered nicks can be operators"
                        ),
                    ));
                };
                self.set_operator(ns.name(), &room, &key, true).await?;
                let event = Moderation {
                    room,
                    actor: actor.nick,
                    action: ModerationAction::Op,
                    target: identity.nick,
                    reason: None,
                    until: None,
                };
                ChatApp::announce(ns, &event);
                Ok(event)
            }
            client::DEOP => {
                let DeopRequest { room, nick } = parse(request)?;
                valid_nick(&nick)?;
                self.moderator(ns.name(), &room, &actor, "deop").await?;
                self.not_on_an_admin(&actor, &nick, &room, "deop")?;
                let key = names::nick_key(&nick);
                let is_op = self
                    .with_rules(ns.name(), &room, false, |r| r.operators.contains(&key))
                    .await?;
                if !is_op {
                    return Err(Failure(
                        ErrorCode::NotFound,
                        format!("{nick} is not an operator of {room}"),
                    ));
                }
                self.set_operator(ns.name(), &room, &key, false).await?;
                let event = Moderation {
                    room,
                    actor: actor.nick,
                    action: ModerationAction::Deop,
                    target: nick,
                    reason: None,
                    until: None,
                };
                ChatApp::announce(ns, &event);
                Ok(event)
            }
            other => Err(Failure(
                ErrorCode::UnknownEvent,
                format!("unknown event '{other}'"),
            )),
        }
    }

    /// An `unban` or `unmute`: lifts it and tells the room.
    async fn lifted(
        &self,
        ns: &Namespace,
        actor: &Actor,
        room: &str,
        kind: RestrictionKind,
        key: &str,
        shown: String,
    ) -> Outcome<Moderation> {
        if !self.lift(ns.name(), room, kind, key).await? {
            return Err(Failure(
                ErrorCode::NotFound,
                format!(
                    "{shown} is not {} in {room}",
                    match kind {
                        RestrictionKind::Ban => "banned",
                        RestrictionKind::Mute => "muted",
                    }
                ),
            ));
        }
        let event = Moderation {
            room: room.to_owned(),
            actor: actor.nick.clone(),
            action: match kind {
                RestrictionKind::Ban => ModerationAction::Unban,
                RestrictionKind::Mute => ModerationAction::Unmute,
            },
            target: shown,
            reason: None,
            until: None,
        };
        ChatApp::announce(ns, &event);
        Ok(event)
    }

    /// `delete` (admins): removes a message from the room's history; the room sees `deleted`.
    pub async fn delete_message(
        &self,
        ns: &Namespace,
        actor: &Actor,
        room: &str,
        seq: u64,
    ) -> Outcome<MessageDeleted> {
        valid_room(room)?;
        if !actor.admin {
            return Err(not_admin("delete messages"));
        }
        let Some(message) = self
            .store
            .delete_message(ns.name(), room, seq)
            .await
            .map_err(internal)?
        else {
            return Err(Failure(
                ErrorCode::NotFound,
                format!("{room} has no message #{seq}"),
            ));
        };
        let event = MessageDeleted {
            room: room.to_owned(),
            seq,
            id: message.id,
            by: actor.nick.clone(),
        };
        ns.to(engine_room(room)).push(&event);
        Ok(event)
    }

    pub(crate) async fn delete(
        &self,
        socket: &Socket,
        session: &Session,
        request: &Event,
    ) -> Outcome<MessageDeleted> {
        let DeleteRequest { room, seq } = parse(request)?;
        let actor = self.actor(session);
        self.delete_message(socket.namespace(), &actor, &room, seq)
            .await
    }

    /// `unregister` (admins): the nick's identity, waiting messages and operator status go;
    /// its connected users become guests.
    pub async fn unregister(&self, actor: &Actor, nick: &str) -> Outcome<UnregisterReply> {
        if !actor.admin {
            return Err(not_admin("unregister nicks"));
        }
        valid_nick(nick)?;
        let key = names::nick_key(nick);
        let identity = self.store.identity(&key).await.map_err(internal)?;
        let _io = self.rules_io.lock().await;
        if identity.is_none() || !self.store.delete_identity(&key).await.map_err(internal)? {
            return Err(Failure(
                ErrorCode::NotRegistered,
                format!("{nick} is not registered"),
            ));
        }
        self.rules.change_all(|rules| {
            rules.operators.remove(&key);
        });
        drop(_io);
        if let Some(registered) = self.registered_nicks.get() {
            let shown = identity.as_ref().map_or(nick, |i| i.nick.as_str());
            lock(registered).remove(shown);
        }
        for session in self.sessions(nick) {
            session
                .authenticated
                .store(false, std::sync::atomic::Ordering::Release);
        }
        Ok(UnregisterReply {
            nick: identity.map_or(nick.to_owned(), |i| i.nick),
        })
    }

    /// `reset_password` (admins): a new password for a registered nick, hashed on the
    /// password pool (counted against the admin's address, as a registration would be).
    pub async fn reset_password(
        &self,
        actor: &Actor,
        ip: IpAddr,
        nick: &str,
        password: String,
    ) -> Outcome<ResetPasswordReply> {
        if !actor.admin {
            return Err(not_admin("reset passwords"));
        }
        valid_nick(nick)?;
        if password.is_empty() || password.len() > 1024 {
            return Err(Failure(
                ErrorCode::BadRequest,
                "a password has 1 to 1024 bytes".into(),
            ));
        }
        let key = names::nick_key(nick);
        let Some(identity) = self.store.identity(&key).await.map_err(internal)? else {
            return Err(Failure(
                ErrorCode::NotRegistered,
                format!("{nick} is not registered"),
            ));
        };
        let hashed = self
            .passwords
            .hash_new(ip, password)
            .await
            .map_err(|r| match r {
                super::auth::Refusal::Busy => Failure(
                    ErrorCode::Busy,
                    "the server is busy checking passwords: retry in a moment".into(),
                ),
                super::auth::Refusal::Registrations => Failure(
                    ErrorCode::RateLimited,
                    "too many passwords were set from your address lately: try again later".into(),
                ),
            })?;
        if !self
            .store
            .set_password(&key, hashed.hash.clone())
            .await
            .map_err(internal)?
        {
            return Err(Failure(
                ErrorCode::NotRegistered,
                format!("{nick} is not registered"),
            ));
        }
        Ok(ResetPasswordReply {
            nick: identity.nick,
        })
    }

    pub(crate) async fn unregister_request(
        &self,
        session: &Session,
        request: &Event,
    ) -> Outcome<UnregisterReply> {
        let UnregisterRequest { nick } = parse(request)?;
        self.unregister(&self.actor(session), &nick).await
    }

    pub(crate) async fn reset_password_request(
        &self,
        socket: &Socket,
        session: &Session,
        request: &Event,
    ) -> Outcome<ResetPasswordReply> {
        let ResetPasswordRequest { nick, password } = parse(request)?;
        let ip = socket.conn().remote.ip();
        self.reset_password(&self.actor(session), ip, &nick, password)
            .await
    }
}

/// The config's admin nicks as keys.
pub(crate) fn admin_keys(admins: &[String]) -> HashSet<String> {
    admins.iter().map(|n| names::nick_key(n)).collect()
}

/// The rules of the rooms with members: namespace -> room -> rules. Read on every
/// `message` (its room's mutes), so behind a read-write lock and looked up by `&str`.
#[derive(Debug, Default)]
pub(crate) struct RulesCache(RwLock<HashMap<String, HashMap<String, RoomRules>>>);

impl RulesCache {
    /// `f` on the cached rules of a room; `None` when not cached.
    fn read<T>(&self, ns: &str, room: &str, f: impl FnOnce(&RoomRules) -> T) -> Option<T> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        map.get(ns).and_then(|rooms| rooms.get(room)).map(f)
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, HashMap<String, RoomRules>>> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, ns: &str, room: &str, rules: RoomRules) {
        let mut map = self.write();
        if map.values().map(HashMap::len).sum::<usize>() >= CACHED_ROOMS_MAX {
            map.clear();
        }
        map.entry(ns.to_owned())
            .or_default()
            .insert(room.to_owned(), rules);
    }

    fn remove(&self, ns: &str, room: &str) {
        let mut map = self.write();
        if let Some(rooms) = map.get_mut(ns) {
            rooms.remove(room);
            if rooms.is_empty() {
                map.remove(ns);
            }
        }
    }

    fn change(&self, ns: &str, room: &str, f: impl FnOnce(&mut RoomRules)) {
        if let Some(rules) = self.write().get_mut(ns).and_then(|r| r.get_mut(room)) {
            f(rules);
        }
    }

    /// Forgets every room's rules (they are read from the store again when next needed).
    fn clear(&self) {
        self.write().clear();
    }

    fn change_all(&self, mut f: impl FnMut(&mut RoomRules)) {
        for rooms in self.write().values_mut() {
            rooms.values_mut().for_each(&mut f);
        }
    }
}
