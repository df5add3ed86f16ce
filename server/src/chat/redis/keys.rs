//! Key and channel names. Every key of a room carries the room's hash tag `{<ns> <room>}`
//! (a namespace and a room name hold no space), so Redis Cluster keeps a room's seq, log,
//! cids, order, topic, operators, bans and mutes, and channel on one shard, and the append
//! script may touch them all.

/// The keys of one room.
#[derive(Debug, Clone)]
pub(super) struct RoomKeys {
    /// The room's last seq (INCR: never reused, not after retention).
    pub seq: String,
    /// The messages: a sorted set scored by seq, each member an entry's JSON.
    pub log: String,
    /// `from \n cid` -> seq, for the re-send check (emptied with the log by retention).
    pub cids: String,
    pub topic: String,
    /// The store-wide order (microseconds, rising per room) of the room's newest message,
    /// which the append script gives each entry (`o`) for search's newest-first order.
    pub order: String,
    /// The operators' nick keys (a set).
    pub operators: String,
    /// Bans and mutes: a hash, `<kind>\n<target>` -> JSON (by, reason, until).
    pub restrictions: String,
    /// `<node>\n<nick>` of each member, on every node (`roster`).
    pub members: String,
    /// Where the append script publishes each new message.
    pub channel: String,
}

const PREFIX: &str = "chat:{";
const CHANNEL_SUFFIX: &str = "}:msg";

pub(super) fn room(namespace: &str, room: &str) -> RoomKeys {
    let tag = format!("{PREFIX}{namespace} {room}");
    RoomKeys {
        seq: format!("{tag}}}:seq"),
        log: format!("{tag}}}:log"),
        cids: format!("{tag}}}:cids"),
        topic: format!("{tag}}}:topic"),
        order: format!("{tag}}}:order"),
        operators: format!("{tag}}}:operators"),
        restrictions: format!("{tag}}}:restrictions"),
        members: format!("{tag}}}:members"),
        channel: format!("{tag}{CHANNEL_SUFFIX}"),
    }
}

/// The (namespace, room) of a room's channel.
pub(super) fn parse_channel(channel: &str) -> Option<(String, String)> {
    let inner = channel.strip_prefix(PREFIX)?.strip_suffix(CHANNEL_SUFFIX)?;
    let (ns, room) = inner.split_once(' ')?;
    Some((ns.to_owned(), room.to_owned()))
}

/// Every identity, in one hash (nick key -> JSON): `registered_nicks` reads it whole.
pub(super) const IDENTITIES: &str = "chat:{identities}";

/// The rooms (`<ns> <room>`) where a nick key is an operator (a set), so that forgetting
/// an identity reaches every room's operators on whichever shard.
pub(super) fn operator_of(nick_key: &str) -> String {
    format!("chat:{{op {nick_key}}}")
}

/// A recipient's waiting direct messages (a list of JSON, oldest first).
pub(super) fn dms(to_key: &str) -> String {
    format!("chat:{{dm {to_key}}}")
}

/// A node's heartbeat key (it lives while the node beats: see `nicks::NODE_TTL`).
pub(super) fn node_key(node: &str) -> String {
    format!("chat:{{nicks}}:node:{node}")
}

/// A node's users for the other nodes (`presence`): nick key -> JSON; it expires with the
/// node's heartbeat.
pub(super) fn users_key(node: &str) -> String {
    format!("chat:{{nicks}}:users:{node}")
}

/// A node's chat rooms' member counts (`presence`): `<ns>\n<room>` -> count; it expires
/// with the node's heartbeat.
pub(super) fn rooms_key(node: &str) -> String {
    format!("chat:{{nicks}}:rooms:{node}")
}

/// A node's users per namespace (`presence`): namespace -> users connected to it there.
pub(super) fn namespaces_key(node: &str) -> String {
    format!("chat:{{nicks}}:namespaces:{node}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_keys_share_its_hash_tag_and_its_channel_names_it() {
        let k = room("/a", "b}c");
        for key in [
            &k.seq,
            &k.log,
            &k.cids,
            &k.topic,
            &k.order,
            &k.operators,
            &k.restrictions,
            &k.members,
            &k.channel,
        ] {
            assert!(key.starts_with("chat:{/a b}"), "{key}");
        }
        assert_eq!(parse_channel(&k.channel), Some(("/a".into(), "b}c".into())));
        assert_eq!(parse_channel("chat:{x}:log"), None);
    }
}
