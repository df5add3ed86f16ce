//! Connecting: one Redis server (a [`ConnectionManager`], which reconnects by itself) or a
//! Redis Cluster (found with `INFO cluster`, then the cluster connection, seeded with the
//! same URL). Both speak RESP3 so that subscriptions arrive as pushes on a channel of ours
//! and are made again after a reconnect. Also the start-up check of `appendfsync`, and the
//! one-line errors that name the URL without its password.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo, RedisFuture, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::chat::store::StoreError;
use crate::config::RedisUrl;

/// How long a command may wait for its answer before it fails (Redis down or stalled).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to the cluster's Redis, cheap to clone (the clones share it).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The connections a node needs: commands, and subscriptions whose messages go to `pushes`
/// (the same cluster connection on a Redis Cluster).
pub(crate) struct Connections {
    pub commands: Conn,
    pub subscriptions: Conn,
}

/// A Redis failure as the chat sees it: unavailable (retry later), naming no password.
pub(crate) fn unavailable(url: &RedisUrl, e: &redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis at {url}: {}", hide(url, &e.to_string())))
}

/// Removes the URL's password from a message that might quote it.
fn hide(url: &RedisUrl, text: &str) -> String {
    let secret = url.secret();
    match secret
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(user_info, _)| user_info.split_once(':').map(|(_, pw)| pw))
    {
        Some(pw) if !pw.is_empty() => text.replace(pw, "***"),
        _ => text.to_owned(),
    }
}

/// Connects to the Redis at `url` (a server or a cluster); fails at once, with a message
/// naming the URL (without its password), when it cannot be reached.
pub(crate) async fn connect(
    url: &RedisUrl,
    pushes: UnboundedSender<PushInfo>,
) -> Result<Connections, StoreError> {
    let fail = |e: redis::RedisError| {
        StoreError::Backend(format!(
            "cannot connect to redis at {url}: {}",
            hide(url, &e.to_string())
        ))
    };
    let info = url.secret().into_connection_info().map_err(fail)?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(settings);
    let client = redis::Client::open(info.clone()).map_err(fail)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    let mut commands = client
        .get_connection_manager_with_config(config.clone())
        .await
        .map_err(fail)?;
    let cluster_info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut commands)
        .await
        .map_err(fail)?;
    if cluster_info.contains("cluster_enabled:1") {
        let cluster = ClusterClientBuilder::new(vec![info])
            .use_protocol(ProtocolVersion::RESP3)
            .push_sender(pushes)
            .connection_timeout(CONNECTION_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .build()
            .map_err(fail)?
            .get_async_connection()
            .await
            .map_err(fail)?;
        let conn = Conn::Cluster(cluster);
        return Ok(Connections {
            commands: conn.clone(),
            subscriptions: conn,
        });
    }
    let subscriptions = client
        .get_connection_manager_with_config(
            config
                .set_push_sender(pushes)
                .set_automatic_resubscription(),
        )
        .await
        .map_err(fail)?;
    Ok(Connections {
        commands: Conn::Single(commands),
        subscriptions: Conn::Single(subscriptions),
    })
}

/// What an acknowledgement means with this Redis, from `CONFIG GET appendfsync`: `Ok` when
/// it is `always` (an acked message is on Redis's disk), else a plain sentence for the log.
pub(crate) async fn check_appendfsync(conn: &mut Conn) -> Result<(), String> {
    // A map in RESP3 (pairs in RESP2): read as one either way.
    let reply: redis::RedisResult<HashMap<String, String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync")
        .query_async(conn)
        .await;
    let appendonly: redis::RedisResult<HashMap<String, String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(conn)
        .await;
    match (reply, appendonly) {
        (Ok(fsync), Ok(aof)) => {
            let aof_on = aof.get("appendonly").is_some_and(|v| v == "yes");
            match fsync.get("appendfsync").map(String::as_str) {
                Some("always") if aof_on => Ok(()),
                _ if !aof_on => Err(
                    "redis has appendonly off: an acknowledged message is only in Redis's memory (and its snapshots) and is lost if Redis stops; run Redis with --appendonly yes --appendfsync always for durable acknowledgements".into(),
                ),
                Some(other) => Err(format!(
                    "redis has appendfsync {other}: an acknowledged message is written to Redis's log but may not be on its disk yet, and can be lost if Redis's machine fails within about a second (everysec) or more (no); set appendfsync always for durable acknowledgements"
                )),
                None => Err("redis did not say its appendfsync setting: acknowledgements are as durable as Redis's persistence makes them".into()),
            }
        }
        _ => Err("cannot read redis's appendfsync (CONFIG is disabled or renamed there): acknowledgements are as durable as that Redis's persistence makes them, which this server cannot check".into()),
    }
}
