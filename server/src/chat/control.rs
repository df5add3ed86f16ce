//! In cluster mode, what one node asks the others to do to their own sockets: take a nick
//! out of a room (an operator's `kick`, the admin API's kick), take out the members a new
//! ban matches, disconnect a nick. The node that handled the request acts on its sockets
//! and tells the room; it then sends a [`Control`] through [`Peers`] (the cluster adapter
//! publishes it on the namespace's channel, after the room's announcement, so a member on
//! another node sees why before it leaves), and every other node applies it to its sockets
//! ([`ChatApp::apply_control`]). Without a cluster no [`Peers`] is set and nothing is sent.
//!
//! Only moderators and the admin API send these (a client's `kick` is rate-limited like any
//! event); each is a few short names, so what a node publishes per request is bounded.

use std::collections::HashSet;
use std::sync::Arc;

use chat_protocol::events::{Moderation, Presence, PresenceAction};
use chat_protocol::names;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::moderation::RoomRules;
use super::reply::Push;
use super::store::{Restriction, RestrictionKind};
use super::{ChatApp, engine_room};
use crate::engine::{Engine, Socket};

/// Sends a command to every other node: (namespace whose channel carries it, JSON).
pub type Peers = Arc<dyn Fn(&str, String) + Send + Sync>;

/// A command to the other nodes, about their own sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Control {
    /// An operator's kick: the nick's sockets leave the room, quietly (the room was told).
    Kick {
        namespace: String,
        room: String,
        nick_key: String,
    },
    /// A new ban's removals: the members it matches leave the room. The room was told of
    /// those it matches by nick; each node tells it of those it matches by address only
    /// (`kick` is the event to show, its target filled in per nick).
    Ban {
        namespace: String,
        room: String,
        target: String,
        kick: Moderation,
    },
    /// The admin API's kick out of a room: the nick's sockets leave it, quietly (the room
    /// was told, as a `presence` `leave` with the reason).
    RoomKick {
        namespace: String,
        room: String,
        nick_key: String,
    },
    /// The admin API's kick off the server: the nick's sockets (of `namespace`, when named)
    /// are disconnected.
    Disconnect {
        namespace: Option<String>,
        nick_key: String,
    },
    /// A user of `node` quit a room because that node is gone (another node reaped it), or
    /// is in it again because the node is back: for this node's members of the room, unless
    /// this node is `node` (its users, there all along, are not told they left and came back).
    NodePresence {
        namespace: String,
        node: String,
        presence: Presence,
    },
}

impl ChatApp {
    /// Where this node (`node`, its id in the cluster) sends its [`Control`]s (cluster
    /// mode). Set once.
    pub fn set_peers(&self, node: &str, peers: Peers) {
        let _ = self.node.set(node.to_owned());
        let _ = self.peers.set(peers);
    }

    /// A user of `node` quit `room` of `namespace` (its node is gone: `back` false) or is in
    /// it again (its node is back): told to the room's members on every node but `node`.
    pub fn node_presence(
        &self,
        engine: &Engine,
        namespace: &str,
        room: &str,
        nick: &str,
        node: &str,
        back: bool,
    ) {
        let (action, reason) = if back {
            (PresenceAction::Join, "its server is back")
        } else {
            (PresenceAction::Quit, "its server is gone")
        };
        let presence = Presence {
            room: room.to_owned(),
            nick: nick.to_owned(),
            action,
            previous: None,
            reason: Some(reason.to_owned()),
        };
        if self.node.get().is_none_or(|me| me != node)
            && let Some(ns) = engine.get_namespace(namespace)
        {
            ns.to(engine_room(room)).local().push(&presence);
        }
        self.tell_peers(
            namespace,
            &Control::NodePresence {
                namespace: namespace.to_owned(),
                node: node.to_owned(),
                presence,
            },
        );
    }

    /// Whether there are other nodes to tell (cluster mode).
    pub(crate) fn has_peers(&self) -> bool {
        self.peers.get().is_some()
    }

    /// Sends a command to the other nodes on `namespace`'s channel (none without a cluster).
    pub(crate) fn tell_peers(&self, namespace: &str, control: &Control) {
        if let Some(peers) = self.peers.get() {
            match serde_json::to_string(control) {
                Ok(json) => peers(namespace, json),
                Err(e) => warn!(error = %e, "a cluster command does not encode"),
            }
        }
    }

    /// An operator's kick of `nick_key` out of `room`, for the other nodes' sockets.
    pub(crate) fn tell_kick(&self, namespace: &str, room: &str, nick_key: String) {
        self.tell_peers(
            namespace,
            &Control::Kick {
                namespace: namespace.to_owned(),
                room: room.to_owned(),
                nick_key,
            },
        );
    }

    /// A new ban's removals (`target` as the store keeps it), for the other nodes' sockets.
    pub(crate) fn tell_ban(&self, namespace: &str, room: &str, target: String, kick: Moderation) {
        self.tell_peers(
            namespace,
            &Control::Ban {
                namespace: namespace.to_owned(),
                room: room.to_owned(),
                target,
                kick,
            },
        );
    }

    /// Applies another node's command to this node's sockets.
    pub fn apply_control(self: &Arc<Self>, engine: &Engine, json: &str) {
        let control: Control = match serde_json::from_str(json) {
            Ok(c) => c,
            Err(e) => return warn!(error = %e, "a cluster command does not decode"),
        };
        match control {
            Control::Kick {
                namespace,
                room,
                nick_key,
            }
            | Control::RoomKick {
                namespace,
                room,
                nick_key,
            } => {
                if let Some(ns) = engine.get_namespace(&namespace) {
                    self.remove_from_room(
                        &ns,
                        &room,
                        None,
                        |session, _| names::nick_key(&session.nick()) == nick_key,
                        |_| false,
                    );
                }
            }
            Control::Ban {
                namespace,
                room,
                target,
                kick,
            } => {
                let Some(ns) = engine.get_namespace(&namespace) else {
                    return;
                };
                let rules = RoomRules::of(vec![Restriction {
                    kind: RestrictionKind::Ban,
                    target,
                    by: kick.actor.clone(),
                    reason: kick.reason.clone(),
                    until: None,
                }]);
                // Announced: those matched by address only (the node that banned could not know).
                self.remove_banned(&ns, &room, &kick, &rules, |nick| {
                    rules.find(RestrictionKind::Ban, nick, None).is_none()
                });
            }
            Control::NodePresence {
                namespace,
                node,
                presence,
            } => {
                if self.node.get().is_some_and(|me| *me == node) {
                    return;
                }
                if let Some(ns) = engine.get_namespace(&namespace) {
                    ns.to(engine_room(&presence.room)).local().push(&presence);
                }
            }
            Control::Disconnect {
                namespace,
                nick_key,
            } => {
                let sockets: Vec<Socket> = self
                    .sessions(&nick_key)
                    .iter()
                    .flat_map(|s| s.sockets())
                    .filter(|s| s.is_connected())
                    .filter(|s| {
                        namespace
                            .as_deref()
                            .is_none_or(|n| s.namespace().name() == n)
                    })
                    .collect();
                tokio::spawn(async move {
                    for socket in sockets {
                        socket.disconnect().await;
                    }
                });
            }
        }
    }

    /// The admin API's kick of `nick` out of `room` on the other nodes, in each of
    /// `namespaces` where it is a member there: the room is told once (a `presence` `leave`
    /// with the reason, unless `told` names the namespace: this node told it already), and
    /// the other nodes take it out. Returns whether it was found elsewhere.
    pub(crate) async fn room_kick_elsewhere(
        &self,
        namespaces: &[crate::engine::Namespace],
        nick: &str,
        room: &str,
        reason: &str,
        told: &HashSet<String>,
    ) -> bool {
        if !self.has_peers() {
            return false;
        }
        let key = names::nick_key(nick);
        let mut found = false;
        for ns in namespaces {
            let Ok(remote) = self.store.remote_members(ns.name(), room).await else {
                continue;
            };
            let Some(shown) = remote.into_iter().find(|n| names::nick_key(n) == key) else {
                continue;
            };
            found = true;
            if !told.contains(ns.name()) {
                ns.to(engine_room(room)).push(&Presence {
                    room: room.to_owned(),
                    nick: shown,
                    action: PresenceAction::Leave,
                    previous: None,
                    reason: Some(format!("kicked by an admin: {reason}")),
                });
            }
            self.tell_peers(
                ns.name(),
                &Control::RoomKick {
                    namespace: ns.name().to_owned(),
                    room: room.to_owned(),
                    nick_key: key.clone(),
                },
            );
        }
        found
    }

    /// The admin API's kick of `nick` off the server on the other nodes: true when it is
    /// connected on one (then each disconnects its sockets of it).
    pub(crate) async fn disconnect_elsewhere(&self, nick: &str, namespace: Option<&str>) -> bool {
        if !self.has_peers() {
            return false;
        }
        let key = names::nick_key(nick);
        let online = self
            .store
            .remote_user(&key, namespace.unwrap_or("/"), &[])
            .await
            .is_ok_and(|r| !r.is_empty());
        if online {
            self.tell_peers(
                namespace.unwrap_or("/"),
                &Control::Disconnect {
                    namespace: namespace.map(str::to_owned),
                    nick_key: key,
                },
            );
        }
        online
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_round_trips_through_its_json() {
        let c = Control::Disconnect {
            namespace: None,
            nick_key: "bob".into(),
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"do":"disconnect","namespace":null,"nick_key":"bob"}"#
        );
        assert_eq!(serde_json::from_str::<Control>(&json).unwrap(), c);
    }
}
