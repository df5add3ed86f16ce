//! The append writer: one task per node takes appends in the order they were issued and
//! runs the append script for each, in that order, on one connection (a pipeline of up to
//! [`BATCH`] at a time on a single Redis; one at a time on a Redis Cluster, whose pipeline
//! would cross shards), then hands each outcome, in order, to the sequencer. So a node's
//! appends to a room take their seqs in the order issued, and an acknowledgement is sent
//! only once Redis has answered the script (with `appendfsync always`, once it is on
//! Redis's disk).

use chat_protocol::events::ChatMessage;
use redis::{RedisResult, Value};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::conn::{Conn, unavailable};
use super::events::Event;
use super::{entry, keys, script};
use crate::chat::store::{AppendDone, NewMessage, Publish, StoreError, new_id};
use crate::config::RedisUrl;

/// Appends sent to Redis at once, at most (one round trip, one fsync for all).
const BATCH: usize = 64;

/// One append, as issued.
pub(super) struct Job {
    pub message: NewMessage,
    pub publish: Publish,
    pub done: AppendDone,
}

pub(super) struct Writer {
    pub conn: Conn,
    pub url: RedisUrl,
    /// Messages kept per room (0: all).
    pub cap: u64,
    pub node: String,
    pub jobs: UnboundedReceiver<Job>,
    pub sequencer: UnboundedSender<Event>,
}

/// The script's arguments for one message.
struct Call {
    keys: keys::RoomKeys,
    args: Vec<Vec<u8>>,
}

impl Writer {
    fn call(&self, m: &NewMessage) -> Call {
        let keys = keys::room(&m.namespace, &m.room);
        let cid = m
            .cid
            .as_ref()
            .map(|c| format!("{}\n{c}", m.from))
            .unwrap_or_default();
        let publish = if self.conn.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let args = [
            m.from.as_str(),
            m.text.as_str(),
            if m.action { "1" } else { "0" },
            &cid,
            &new_id(),
            &self.cap.to_string(),
            publish,
            &self.node,
        ]
        .iter()
        .map(|a| a.as_bytes().to_vec())
        .collect();
        Call { keys, args }
    }

    pub(super) async fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(first) = self.jobs.recv().await {
            batch.push(first);
            while batch.len() < BATCH
                && let Ok(next) = self.jobs.try_recv()
            {
                batch.push(next);
            }
            let calls: Vec<Call> = batch.iter().map(|j| self.call(&j.message)).collect();
            let outcomes = if self.conn.is_cluster() {
                self.one_by_one(&calls).await
            } else {
                self.pipelined(&calls).await
            };
            for (job, outcome) in batch.drain(..).zip(outcomes) {
                let outcome = outcome
                    .map_err(|e| unavailable(&self.url, &e))
                    .and_then(|v| decode(&job.message.room, v));
                let _ = self.sequencer.send(Event::Own {
                    namespace: job.message.namespace,
                    room: job.message.room,
                    outcome,
                    publish: job.publish,
                    done: job.done,
                });
            }
        }
    }

    /// One EVALSHA per call in one pipeline; the script is loaded again if Redis lost it.
    async fn pipelined(&mut self, calls: &[Call]) -> Vec<RedisResult<Value>> {
        let pipe = |calls: &[Call]| {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for c in calls {
                pipe.cmd("EVALSHA")
                    .arg(script::APPEND.get_hash())
                    .arg(5)
                    .arg(&c.keys.seq)
                    .arg(&c.keys.log)
                    .arg(&c.keys.cids)
                    .arg(&c.keys.channel)
                    .arg(&c.keys.order)
                    .arg(&c.args);
            }
            pipe
        };
        let mut reply: RedisResult<Vec<RedisResult<Value>>> =
            pipe(calls).query_async(&mut self.conn).await;
        let noscript = |r: &RedisResult<Vec<RedisResult<Value>>>| matches!(r, Ok(v) if v.first().is_some_and(|f| matches!(f, Err(e) if e.code() == Some("NOSCRIPT"))));
        if noscript(&reply) {
            // Redis restarted (its script cache is empty): load it, then run the batch again
            // (no call of it ran: they all failed the same way).
            reply = match script::APPEND.load_async(&mut self.conn).await {
                Ok(_) => pipe(calls).query_async(&mut self.conn).await,
                Err(e) => Err(e),
            };
        }
        match reply {
            Ok(v) if v.len() == calls.len() => v,
            Ok(_) => calls
                .iter()
                .map(|_| {
                    Err(redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "short pipeline reply",
                    )))
                })
                .collect(),
            Err(e) => calls.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// The script for each call in turn (EVALSHA, with EVAL when the shard lost it).
    async fn one_by_one(&mut self, calls: &[Call]) -> Vec<RedisResult<Value>> {
        let mut out = Vec::with_capacity(calls.len());
        for c in calls {
            let mut invocation = script::APPEND.prepare_invoke();
            invocation
                .key(&c.keys.seq)
                .key(&c.keys.log)
                .key(&c.keys.cids)
                .key(&c.keys.channel)
                .key(&c.keys.order);
            for a in &c.args {
                invocation.arg(a);
            }
            out.push(invocation.invoke_async(&mut self.conn).await);
        }
        out
    }
}

/// The script's answer: `{duplicate, entry}`.
fn decode(room: &str, v: Value) -> Result<(bool, ChatMessage), StoreError> {
    let (dup, json): (i64, Vec<u8>) = redis::from_redis_value(v)
        .map_err(|e| StoreError::Backend(format!("the append script's answer: {e}")))?;
    Ok((dup == 1, entry::decode(room, &json)?))
}
