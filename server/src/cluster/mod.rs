//! Cluster mode's pieces outside the chat: [`adapter`], the engine's fan-out across nodes
//! through Redis pub/sub (the chat's room logs, which also cross nodes, are the Redis store's:
//! `chat::redis`).

pub mod adapter;
