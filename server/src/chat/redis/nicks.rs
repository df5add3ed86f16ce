//! Who holds which nick across the cluster, and each node's heartbeat. A connected nick
//! (and its two look-alike skeletons) is a key naming the node that holds it; every node
//! refreshes its heartbeat key every [`HEARTBEAT`] with a time to live of [`NODE_TTL`], and
//! a claim held by a node whose heartbeat is gone counts as free. So a guest nick held on
//! node A is refused on node B, a nick that passes for another online user's is refused on
//! every node, a registered nick proved with its password may be connected on several, and
//! the nicks of a node that died are free again within [`NODE_TTL`]. All keys share the hash
//! tag `{nicks}` (one shard), so one script sees them all.

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use redis::AsyncCommands;
use tokio::task::JoinHandle;
use tracing::warn;

use super::RedisStore;
use super::keys::node_key;
use crate::chat::store::StoreFuture;

/// How often a node says it is alive.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a node counts as alive after its last heartbeat.
pub(super) const NODE_TTL: Duration = Duration::from_secs(6);

fn nick_key(key: &str) -> String {
    format!("chat:{{nicks}}:nick:{key}")
}

fn skeleton_key(skeleton: &str) -> String {
    format!("chat:{{nicks}}:skel:{skeleton}")
}

/// A registered nick's skeleton: `<nick key>` (never expires, like the identity).
fn registered_skeleton_key(skeleton: &str) -> String {
    format!("chat:{{nicks}}:registered:{skeleton}")
}

/// KEYS: the nick's key, its three skeleton keys, its three registered-skeleton keys. ARGV:
/// node, nick key, login (`1`/`0`). Values are `<node> <nick key>` (the registered ones: the
/// nick key). Returns 1 when claimed (or already this node's); 0 when held elsewhere or when
/// it passes for an online nick or, unless it is itself registered, for a registered one.
static CLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local function holder(k)
  local v = redis.call('GET', k)
  if not v then return nil end
  local node, key = string.match(v, '^(%S+) (.*)$')
  if not node or redis.call('EXISTS', 'chat:{nicks}:node:' .. node) == 0 then
    redis.call('DEL', k)
    return nil
  end
  return {node, key}
end
local login = ARGV[3] == '1'
if not login then
  for i = 5, 7 do
    local r = redis.call('GET', KEYS[i])
    if r and r ~= ARGV[2] then return 0 end
  end
end
local held = {}
for i = 1, 4 do
  held[i] = holder(KEYS[i])
  if held[i] and not login then
    if i == 1 and held[i][1] ~= ARGV[1] then return 0 end
    if i > 1 and held[i][2] ~= ARGV[2] then return 0 end
  end
end
for i = 1, 4 do
  if not held[i] then redis.call('SET', KEYS[i], ARGV[1] .. ' ' .. ARGV[2]) end
end
return 1
"#,
    )
});

/// KEYS as for CLAIM. ARGV: node. Deletes the keys this node holds.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then redis.call('DEL', KEYS[i]) end
end
return 1
"#,
    )
});

fn keys_of(nick: &str) -> [String; 4] {
    let [a, b, c] = chat_protocol::names::nick_skeletons(nick);
    [
        nick_key(&chat_protocol::names::nick_key(nick)),
        skeleton_key(&a),
        skeleton_key(&b),
        skeleton_key(&c),
    ]
}

fn registered_keys_of(nick: &str) -> [String; 3] {
    chat_protocol::names::nick_skeletons(nick).map(|s| registered_skeleton_key(&s))
}

impl RedisStore {
    /// Starts this node's heartbeat (aborted with the store), which also reaps dead nodes and
    /// tells the others what changed in this node's users and rooms (`presence`).
    pub(super) fn heartbeat(
        conn: super::Conn,
        node: String,
        gone: Arc<OnceLock<super::roster::Gone>>,
        snapshot: Arc<OnceLock<crate::chat::presence::SnapshotFn>>,
        remote_namespaces: super::presence::RemoteNamespaces,
        roster: tokio::sync::mpsc::UnboundedSender<super::roster::Change>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut conn = conn;
            let mut published = super::presence::Published::default();
            // Whether this node has been listed: from then on, not finding itself listed
            // means another node reaped it (a reaper unlists a node last).
            let mut listed = false;
            let mut tick = tokio::time::interval(HEARTBEAT);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let r: redis::RedisResult<()> = conn
                    .pset_ex(node_key(&node), 1, NODE_TTL.as_millis() as u64)
                    .await;
                if let Err(e) = r {
                    warn!(error = %e, "cannot refresh this node's heartbeat");
                    continue;
                }
                // Listed after the heartbeat key exists (a node listed without one would be
                // reaped), and again on every beat (a reaper that took it for dead unlisted it:
                // then what the reaper removed is written again, and the rooms told).
                if listed {
                    let still: redis::RedisResult<bool> =
                        conn.sismember(super::roster::NODES, &node).await;
                    if matches!(still, Ok(false)) {
                        warn!(
                            "this node was taken for dead (its heartbeat stalled): telling the cluster its users again"
                        );
                        published = super::presence::Published::default();
                        let _ = roster.send(super::roster::Change::Rewrite);
                        // The reaper is done (it unlists last): its lock goes, so that this
                        // node's real death is reaped too.
                        let _: redis::RedisResult<()> =
                            conn.del(super::roster::reap_lock(&node)).await;
                    }
                }
                let added: redis::RedisResult<()> = conn.sadd(super::roster::NODES, &node).await;
                listed |= added.is_ok();
                super::roster::reap(&mut conn, &node, &gone).await;
                if let Some(take) = snapshot.get() {
                    super::presence::publish(&mut conn, &node, take(), &mut published, NODE_TTL)
                        .await;
                }
                super::presence::refresh_namespaces(&mut conn, &node, &remote_namespaces).await;
            }
        })
    }

    pub(super) fn claim_nick(&self, nick: &str, login: bool) -> StoreFuture<'_, bool> {
        let keys = keys_of(nick);
        let registered = registered_keys_of(nick);
        let key = chat_protocol::names::nick_key(nick);
        Box::pin(async move {
            let mut conn = self.conn();
            // The heartbeat may not have run yet: a claim needs this node alive.
            let _: () = conn
                .pset_ex(node_key(&self.node), 1, NODE_TTL.as_millis() as u64)
                .await
                .map_err(|e| self.unavailable(&e))?;
            let mut call = CLAIM.prepare_invoke();
            for k in keys.iter().chain(&registered) {
                call.key(k);
            }
            call.arg(&self.node)
                .arg(&key)
                .arg(if login { "1" } else { "0" });
            let claimed: i64 = call
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.unavailable(&e))?;
            Ok(claimed == 1)
        })
    }

    /// Files a newly registered nick's skeletons, so that every node refuses a guest nick
    /// that passes for it (each node's own index of registered nicks is read once).
    pub(super) async fn file_registered(
        &self,
        nick: &str,
    ) -> Result<(), crate::chat::store::StoreError> {
        let key = chat_protocol::names::nick_key(nick);
        let mut conn = self.conn();
        for k in registered_keys_of(nick) {
            let _: bool = conn
                .set_nx(k, &key)
                .await
                .map_err(|e| self.unavailable(&e))?;
        }
        Ok(())
    }

    /// Takes back what [`RedisStore::file_registered`] filed for `nick` (an identity
    /// forgotten): the skeletons it holds, not another nick's.
    pub(super) async fn unfile_registered(
        &self,
        nick: &str,
    ) -> Result<(), crate::chat::store::StoreError> {
        let key = chat_protocol::names::nick_key(nick);
        let mut conn = self.conn();
        for k in registered_keys_of(nick) {
            let holder: Option<String> = conn.get(&k).await.map_err(|e| self.unavailable(&e))?;
            if holder.as_deref() == Some(key.as_str()) {
                let _: () = conn.del(&k).await.map_err(|e| self.unavailable(&e))?;
            }
        }
        Ok(())
    }

    pub(super) fn release_nick(&self, nick: &str) -> StoreFuture<'_, ()> {
        let keys = keys_of(nick);
        Box::pin(async move {
            let mut call = RELEASE.prepare_invoke();
            for k in &keys {
                call.key(k);
            }
            call.arg(&self.node);
            let _: i64 = call
                .invoke_async(&mut self.conn())
                .await
                .map_err(|e| self.unavailable(&e))?;
            Ok(())
        })
    }
}
