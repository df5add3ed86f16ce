//! Moderation in Redis: a room's operators (a set) and its bans and mutes (a hash, one
//! field per kind and target), both under the room's hash tag; deleting a message (a script
//! on the room's log and cids); unregistering and password resets. Each nick key also has
//! the set of rooms it operates (`keys::operator_of`), so that forgetting an identity reaches
//! every room, on whichever shard.

use chat_protocol::events::ChatMessage;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::{RedisStore, entry, keys, script};
use crate::chat::store::{Restriction, RestrictionKind, Store, StoreError};

/// A ban or mute as its field's value (the kind and target are the field).
#[derive(Serialize, Deserialize)]
struct Stored {
    by: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    until: Option<i64>,
}

fn field(kind: RestrictionKind, target: &str) -> String {
    format!("{}\n{target}", kind.as_str())
}

/// The operator index's member for a room (a namespace and a room hold no space).
fn room_member(namespace: &str, room: &str) -> String {
    format!("{namespace} {room}")
}

impl RedisStore {
    pub(super) async fn operators_of(
        &self,
        namespace: &str,
        room: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.conn()
            .smembers(keys::room(namespace, room).operators)
            .await
            .map_err(|e| self.unavailable(&e))
    }

    pub(super) async fn make_operator(
        &self,
        namespace: &str,
        room: &str,
        nick_key: &str,
        operator: bool,
    ) -> Result<(), StoreError> {
        let ops = keys::room(namespace, room).operators;
        let index = keys::operator_of(nick_key);
        let member = room_member(namespace, room);
        let mut conn = self.conn();
        // The index first when adding, last when removing: it never misses a room.
        let r: redis::RedisResult<()> = if operator {
            match conn.sadd::<_, _, ()>(&index, &member).await {
                Ok(()) => conn.sadd(&ops, nick_key).await,
                Err(e) => Err(e),
            }
        } else {
            match conn.srem::<_, _, ()>(&ops, nick_key).await {
                Ok(()) => conn.srem(&index, &member).await,
                Err(e) => Err(e),
            }
        };
        r.map_err(|e| self.unavailable(&e))
    }

    pub(super) async fn restrictions_of(
        &self,
        namespace: &str,
        room: &str,
    ) -> Result<Vec<Restriction>, StoreError> {
        let all: Vec<(String, String)> = self
            .conn()
            .hgetall(keys::room(namespace, room).restrictions)
            .await
            .map_err(|e| self.unavailable(&e))?;
        all.into_iter()
            .map(|(f, json)| {
                let bad = || StoreError::Backend(format!("a ban or mute does not decode: {f:?}"));
                let (kind, target) = f.split_once('\n').ok_or_else(bad)?;
                let kind = RestrictionKind::parse(kind).ok_or_else(bad)?;
                let s: Stored = serde_json::from_str(&json).map_err(|_| bad())?;
                Ok(Restriction {
                    kind,
                    target: target.to_owned(),
                    by: s.by,
                    reason: s.reason,
                    until: s.until,
                })
            })
            .collect()
    }

    pub(super) async fn restrict(
        &self,
        namespace: &str,
        room: &str,
        r: Restriction,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(&Stored {
            by: r.by,
            reason: r.reason,
            until: r.until,
        })
        .map_err(|e| StoreError::Backend(format!("a ban or mute does not encode: {e}")))?;
        self.conn()
            .hset(
                keys::room(namespace, room).restrictions,
                field(r.kind, &r.target),
                json,
            )
            .await
            .map_err(|e| self.unavailable(&e))
    }

    pub(super) async fn unrestrict(
        &self,
        namespace: &str,
        room: &str,
        kind: RestrictionKind,
        target: &str,
    ) -> Result<bool, StoreError> {
        let removed: u64 = self
            .conn()
            .hdel(
                keys::room(namespace, room).restrictions,
                field(kind, target),
            )
            .await
            .map_err(|e| self.unavailable(&e))?;
        Ok(removed > 0)
    }

    pub(super) async fn delete_logged(
        &self,
        namespace: &str,
        room: &str,
        seq: u64,
    ) -> Result<Option<ChatMessage>, StoreError> {
        let k = keys::room(namespace, room);
        let found: Option<Vec<u8>> = script::DELETE
            .key(&k.log)
            .key(&k.cids)
            .arg(seq)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.unavailable(&e))?;
        found.map(|e| entry::decode(room, &e)).transpose()
    }

    pub(super) async fn forget_identity(&self, nick_key: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let fail = |e: redis::RedisError| self.unavailable(&e);
        let nick = self.identity(nick_key).await?.map(|i| i.nick);
        let removed: u64 = conn.hdel(keys::IDENTITIES, nick_key).await.map_err(fail)?;
        let _: () = conn.del(keys::dms(nick_key)).await.map_err(fail)?;
        let index = keys::operator_of(nick_key);
        let rooms: Vec<String> = conn.smembers(&index).await.map_err(fail)?;
        for member in rooms {
            if let Some((namespace, room)) = member.split_once(' ') {
                let _: () = conn
                    .srem(keys::room(namespace, room).operators, nick_key)
                    .await
                    .map_err(fail)?;
            }
        }
        let _: () = conn.del(&index).await.map_err(fail)?;
        if let Some(nick) = nick {
            // Its look-alikes are no longer kept out for it.
            self.unfile_registered(&nick).await?;
        }
        Ok(removed > 0)
    }

    pub(super) async fn replace_password(
        &self,
        nick_key: &str,
        password_hash: String,
    ) -> Result<bool, StoreError> {
        let replaced: i64 = script::SET_PASSWORD
            .key(keys::IDENTITIES)
            .arg(nick_key)
            .arg(password_hash)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.unavailable(&e))?;
        Ok(replaced == 1)
    }
}
