//! The state beside the room logs, each a plain Redis command: topics (a string per room,
//! on the room's shard), identities (one hash: nick key -> JSON with the Argon2 hash, claimed
//! with HSETNX so two nodes cannot both claim a nick) and waiting direct messages (a list
//! per recipient). Moderation and search are `moderation`'s and `search`'s.

use chat_protocol::events::DirectMessage;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::RedisStore;
use super::keys;
use chat_protocol::events::ChatMessage;

use crate::chat::store::{
    Identity, RemoteUser, Restriction, RestrictionKind, SearchPage, SearchQuery, Store, StoreError,
    StoreFuture,
};

#[derive(Serialize, Deserialize)]
struct StoredIdentity {
    nick: String,
    password_hash: String,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what} does not decode: {e}"))
}

impl Store for RedisStore {
    fn topic(&self, namespace: &str, room: &str) -> StoreFuture<'_, Option<String>> {
        let key = keys::room(namespace, room).topic;
        Box::pin(async move { self.conn().get(key).await.map_err(|e| self.unavailable(&e)) })
    }

    fn set_topic(&self, namespace: &str, room: &str, topic: Option<String>) -> StoreFuture<'_, ()> {
        let key = keys::room(namespace, room).topic;
        Box::pin(async move {
            let mut conn = self.conn();
            let r: redis::RedisResult<()> = match topic {
                Some(t) => conn.set(key, t).await,
                None => conn.del(key).await,
            };
            r.map_err(|e| self.unavailable(&e))
        })
    }

    fn identity(&self, nick_key: &str) -> StoreFuture<'_, Option<Identity>> {
        let field = nick_key.to_owned();
        Box::pin(async move {
            let found: Option<String> = self
                .conn()
                .hget(keys::IDENTITIES, field)
                .await
                .map_err(|e| self.unavailable(&e))?;
            found
                .map(|json| {
                    let s: StoredIdentity =
                        serde_json::from_str(&json).map_err(|e| corrupt("an identity", e))?;
                    Ok(Identity {
                        nick: s.nick,
                        password_hash: s.password_hash,
                    })
                })
                .transpose()
        })
    }

    fn create_identity(&self, nick_key: &str, identity: Identity) -> StoreFuture<'_, bool> {
        let field = nick_key.to_owned();
        Box::pin(async move {
            let json = serde_json::to_string(&StoredIdentity {
                nick: identity.nick,
                password_hash: identity.password_hash,
            })
            .map_err(|e| corrupt("an identity", e))?;
            let nick = serde_json::from_str::<StoredIdentity>(&json)
                .map(|s| s.nick)
                .unwrap_or_default();
            let claimed: bool = self
                .conn()
                .hset_nx(keys::IDENTITIES, field, json)
                .await
                .map_err(|e| self.unavailable(&e))?;
            if claimed {
                self.file_registered(&nick).await?;
            }
            Ok(claimed)
        })
    }

    fn registered_nicks(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            let all: Vec<String> = self
                .conn()
                .hvals(keys::IDENTITIES)
                .await
                .map_err(|e| self.unavailable(&e))?;
            all.iter()
                .map(|json| {
                    serde_json::from_str::<StoredIdentity>(json)
                        .map(|s| s.nick)
                        .map_err(|e| corrupt("an identity", e))
                })
                .collect()
        })
    }

    fn queue_dm(&self, to_key: &str, message: DirectMessage) -> StoreFuture<'_, ()> {
        let key = keys::dms(to_key);
        Box::pin(async move {
            let json = serde_json::to_string(&message).map_err(|e| corrupt("a dm", e))?;
            self.conn()
                .rpush(key, json)
                .await
                .map_err(|e| self.unavailable(&e))
        })
    }

    fn queued_dms(&self, to_key: &str) -> StoreFuture<'_, Vec<DirectMessage>> {
        let key = keys::dms(to_key);
        Box::pin(async move {
            let all: Vec<String> = self
                .conn()
                .lrange(key, 0, -1)
                .await
                .map_err(|e| self.unavailable(&e))?;
            all.iter()
                .map(|j| serde_json::from_str(j).map_err(|e| corrupt("a dm", e)))
                .collect()
        })
    }

    fn queued_dm_count(&self, to_key: &str) -> StoreFuture<'_, usize> {
        let key = keys::dms(to_key);
        Box::pin(async move {
            self.conn()
                .llen(key)
                .await
                .map_err(|e| self.unavailable(&e))
        })
    }

    fn claim_online_nick(&self, nick: &str, login: bool) -> StoreFuture<'_, bool> {
        self.claim_nick(nick, login)
    }

    fn release_online_nick(&self, nick: &str) -> StoreFuture<'_, ()> {
        self.release_nick(nick)
    }

    fn note_member(&self, namespace: &str, room: &str, nick: &str, inside: bool) {
        self.note(super::roster::Change::Member(
            namespace.to_owned(),
            room.to_owned(),
            nick.to_owned(),
            inside,
        ));
    }

    fn remote_members(&self, namespace: &str, room: &str) -> StoreFuture<'_, Vec<String>> {
        let (namespace, room) = (namespace.to_owned(), room.to_owned());
        Box::pin(async move {
            super::roster::remote_members(&mut self.conn(), self.node(), &namespace, &room)
                .await
                .map_err(|e| self.unavailable(&e))
        })
    }

    fn remote_away(&self, namespace: &str, room: &str) -> StoreFuture<'_, Vec<String>> {
        let (namespace, room) = (namespace.to_owned(), room.to_owned());
        Box::pin(async move {
            super::presence::away(&mut self.conn(), self.node(), &namespace, &room)
                .await
                .map_err(|e| self.unavailable(&e))
        })
    }

    fn remote_user(
        &self,
        nick_key: &str,
        namespace: &str,
        rooms: &[String],
    ) -> StoreFuture<'_, Vec<RemoteUser>> {
        let (key, namespace, rooms) = (nick_key.to_owned(), namespace.to_owned(), rooms.to_vec());
        Box::pin(async move {
            super::presence::user(&mut self.conn(), self.node(), &key, &namespace, &rooms)
                .await
                .map_err(|e| self.unavailable(&e))
        })
    }

    fn remote_users(&self) -> StoreFuture<'_, Vec<RemoteUser>> {
        Box::pin(async move {
            super::presence::users(&mut self.conn(), self.node())
                .await
                .map_err(|e| self.unavailable(&e))
        })
    }

    fn remote_room_counts(&self, namespace: &str) -> StoreFuture<'_, Vec<(String, usize)>> {
        let namespace = namespace.to_owned();
        Box::pin(async move {
            self.remote_rooms
                .of(&mut self.conn(), self.node(), &namespace)
                .await
                .map_err(|e| self.unavailable(&e))
        })
    }

    fn node_id(&self) -> Option<&str> {
        Some(self.node())
    }

    fn remote_namespace_users(&self, namespace: &str) -> usize {
        crate::engine::lock(&self.remote_namespaces)
            .get(namespace)
            .copied()
            .unwrap_or(0)
    }

    fn operators(&self, namespace: &str, room: &str) -> StoreFuture<'_, Vec<String>> {
        let (namespace, room) = (namespace.to_owned(), room.to_owned());
        Box::pin(async move { self.operators_of(&namespace, &room).await })
    }

    fn set_operator(
        &self,
        namespace: &str,
        room: &str,
        nick_key: &str,
        operator: bool,
    ) -> StoreFuture<'_, ()> {
        let (namespace, room, key) = (namespace.to_owned(), room.to_owned(), nick_key.to_owned());
        Box::pin(async move { self.make_operator(&namespace, &room, &key, operator).await })
    }

    fn restrictions(&self, namespace: &str, room: &str) -> StoreFuture<'_, Vec<Restriction>> {
        let (namespace, room) = (namespace.to_owned(), room.to_owned());
        Box::pin(async move { self.restrictions_of(&namespace, &room).await })
    }

    fn add_restriction(
        &self,
        namespace: &str,
        room: &str,
        restriction: Restriction,
    ) -> StoreFuture<'_, ()> {
        let (namespace, room) = (namespace.to_owned(), room.to_owned());
        Box::pin(async move { self.restrict(&namespace, &room, restriction).await })
    }

    fn remove_restriction(
        &self,
        namespace: &str,
        room: &str,
        kind: RestrictionKind,
        target: &str,
    ) -> StoreFuture<'_, bool> {
        let (namespace, room, target) = (namespace.to_owned(), room.to_owned(), target.to_owned());
        Box::pin(async move { self.unrestrict(&namespace, &room, kind, &target).await })
    }

    fn delete_message(
        &self,
        namespace: &str,
        room: &str,
        seq: u64,
    ) -> StoreFuture<'_, Option<ChatMessage>> {
        let (namespace, room) = (namespace.to_owned(), room.to_owned());
        Box::pin(async move { self.delete_logged(&namespace, &room, seq).await })
    }

    fn delete_identity(&self, nick_key: &str) -> StoreFuture<'_, bool> {
        let key = nick_key.to_owned();
        Box::pin(async move { self.forget_identity(&key).await })
    }

    fn set_password(&self, nick_key: &str, password_hash: String) -> StoreFuture<'_, bool> {
        let key = nick_key.to_owned();
        Box::pin(async move { self.replace_password(&key, password_hash).await })
    }

    fn available(&self) -> bool {
        self.reachable()
    }

    fn search(&self, query: SearchQuery) -> StoreFuture<'_, SearchPage> {
        Box::pin(self.search_logs(query))
    }

    fn remove_dm(&self, to_key: &str, id: &str) -> StoreFuture<'_, ()> {
        let key = keys::dms(to_key);
        let id = id.to_owned();
        Box::pin(async move {
            let mut conn = self.conn();
            let all: Vec<String> = conn
                .lrange(&key, 0, -1)
                .await
                .map_err(|e| self.unavailable(&e))?;
            // LREM removes that exact value, wherever another node's changes moved it.
            for json in all {
                if serde_json::from_str::<DirectMessage>(&json).is_ok_and(|m| m.id == id) {
                    let _: () = conn
                        .lrem(&key, 1, json)
                        .await
                        .map_err(|e| self.unavailable(&e))?;
                }
            }
            Ok(())
        })
    }
}
