//! Moderation over real sockets: room operators (the registered creator, and those it
//! `op`s), server admins (the config's `admins`), and what they do: kick (out of the room,
//! not out of the server), ban (by nick and its look-alikes, by address, for a while),
//! mute, op and deop, topics reserved to operators, message deletion, unregistering and
//! resetting passwords. Guests never moderate. Each action is a `moderation` event to the
//! room. On SQLite, operators, bans and deletions survive a restart.
//!
//! A real server on `127.0.0.1:0` in this process, driven by the raw Socket.IO client of
//! `tests/common`; every receive has a timeout.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use chat_protocol::events::{
    ErrorCode, HistoryReply, MessageDeleted, Moderation, ModerationAction, WhoReply,
};
use chat_protocol::socket_io::PacketKind;
use chat_server::ServerConfig;
use chat_server::config::StoreConfig;
use common::chat::{
    call, code, config, decode, join, notices, ok, pending, say, serve, start, user,
};
use common::{Client, RECV_TIMEOUT};
use serde_json::{Value, json};

/// A registered user (its password is `pw-<nick>`), past its welcome notice.
async fn registered(addr: SocketAddr, nick: &str) -> Client {
    registered_from(addr, nick, None).await
}

async fn registered_from(addr: SocketAddr, nick: &str, from: Option<IpAddr>) -> Client {
    let mut c = match from {
        Some(ip) => Client::connect_from(addr, ip).await,
        None => Client::connect(addr).await,
    };
    let auth = json!({ "nick": nick, "password": format!("pw-{nick}") });
    let p = c.connect_namespace("/", Some(auth)).await;
    assert_eq!(p.kind, PacketKind::Connect, "{nick} refused: {p:?}");
    c.wait_event("notice").await;
    c
}

/// A guest connected from another loopback address.
async fn guest_from(addr: SocketAddr, nick: &str, ip: IpAddr) -> Client {
    let mut c = Client::connect_from(addr, ip).await;
    c.join_namespace("/", Some(json!({ "nick": nick }))).await;
    c.wait_event("notice").await;
    c
}

fn with_admins(admins: &[&str]) -> ServerConfig {
    ServerConfig {
        admins: admins.iter().map(|a| a.to_string()).collect(),
        ..config()
    }
}

/// The `moderation` events among these.
fn moderation(events: &[(String, Value)]) -> Vec<Moderation> {
    events
        .iter()
        .filter(|(n, _)| n == "moderation")
        .map(|(_, v)| decode(v))
        .collect()
}

/// A moderation request that must succeed; its reply, and the moderation events the actor
/// saw before it.
async fn moderate(c: &mut Client, event: &str, arg: Value) -> (Moderation, Vec<Moderation>) {
    let (reply, events) = call(c, "/", event, arg).await;
    (ok(&reply), moderation(&events))
}

async fn refused_with(c: &mut Client, event: &str, arg: Value) -> ErrorCode {
    code(&c.request("/", event, arg).await)
}

async fn who(c: &mut Client, room: &str) -> WhoReply {
    ok(&c.request("/", "who", json!({ "room": room })).await)
}

fn action(m: &Moderation) -> (ModerationAction, &str, &str) {
    (m.action, m.actor.as_str(), m.target.as_str())
}

#[tokio::test]
async fn the_registered_creator_is_operator_and_kicks_out_of_the_room_not_the_server() {
    let (_server, addr) = start().await;
    let mut ada = registered(addr, "ada").await;
    let joined = join(&mut ada, "/", "r").await;
    assert_eq!(joined.operators, ["ada"], "the creator is the operator");
    let mut bob = user(addr, "bob").await;
    let mut carol = registered(addr, "carol").await;
    assert_eq!(join(&mut bob, "/", "r").await.operators, ["ada"]);
    assert_eq!(join(&mut carol, "/", "r").await.operators, ["ada"]);
    assert_eq!(who(&mut carol, "r").await.operators, ["ada"]);

    let (reply, seen) = moderate(
        &mut ada,
        "kick",
        json!({"room": "r", "nick": "bob", "reason": "calm down"}),
    )
    .await;
    assert_eq!(action(&reply), (ModerationAction::Kick, "ada", "bob"));
    assert_eq!(reply.reason.as_deref(), Some("calm down"));
    assert_eq!(seen.len(), 1, "the actor sees the event too");
    assert_eq!(seen[0], reply);
    // The target and the room see it.
    let to_bob: Moderation = decode(&bob.wait_event("moderation").await);
    assert_eq!(to_bob, reply);
    let to_carol: Moderation = decode(&carol.wait_event("moderation").await);
    assert_eq!(to_carol, reply);
    // Bob is out of the room, but still connected: he may speak elsewhere and come back.
    assert_eq!(who(&mut carol, "r").await.members, ["ada", "carol"]);
    assert_eq!(
        refused_with(&mut bob, "message", json!({"room": "r", "text": "hey"})).await,
        ErrorCode::NotInRoom
    );
    assert!(
        pending(&mut bob)
            .await
            .iter()
            .all(|(n, _)| n != "disconnect"),
        "no DISCONNECT"
    );
    join(&mut bob, "/", "r").await;
    say(&mut bob, "/", "r", "sorry").await;
    // Kicking someone who is not there.
    assert_eq!(
        refused_with(&mut ada, "kick", json!({"room": "r", "nick": "zed"})).await,
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn guests_and_members_who_are_not_operators_cannot_moderate() {
    let (_server, addr) = start().await;
    let mut ada = registered(addr, "ada").await;
    join(&mut ada, "/", "r").await;
    let mut bob = user(addr, "bob").await;
    let mut carol = registered(addr, "carol").await;
    join(&mut bob, "/", "r").await;
    join(&mut carol, "/", "r").await;
    for c in [&mut bob, &mut carol] {
        for (event, arg) in [
            ("kick", json!({"room": "r", "nick": "ada"})),
            ("ban", json!({"room": "r", "target": "ada"})),
            ("mute", json!({"room": "r", "nick": "ada"})),
            ("op", json!({"room": "r", "nick": "carol"})),
            ("deop", json!({"room": "r", "nick": "ada"})),
            ("unban", json!({"room": "r", "target": "x"})),
        ] {
            assert_eq!(
                refused_with(c, event, arg).await,
                ErrorCode::NotOperator,
                "{event}"
            );
        }
        assert_eq!(
            refused_with(c, "delete", json!({"room": "r", "seq": 1})).await,
            ErrorCode::NotAdmin
        );
    }
    // A guest who creates a room gets no operator status: nobody can moderate it.
    let mut dan = user(addr, "dan").await;
    assert!(join(&mut dan, "/", "g").await.operators.is_empty());
    join(&mut ada, "/", "g").await;
    assert_eq!(
        refused_with(&mut dan, "kick", json!({"room": "g", "nick": "ada"})).await,
        ErrorCode::NotOperator
    );
    assert_eq!(
        refused_with(&mut ada, "kick", json!({"room": "g", "nick": "dan"})).await,
        ErrorCode::NotOperator,
        "a registered latecomer is no operator either"
    );
    assert_eq!(who(&mut ada, "r").await.members, ["ada", "bob", "carol"]);
}

#[tokio::test]
async fn a_banned_nick_is_removed_and_cannot_rejoin_nor_catch_up_with_since() {
    let (_server, addr) = start().await;
    let mut ada = registered(addr, "ada").await;
    join(&mut ada, "/", "r").await;
    let mut bob = user(addr, "bob").await;
    join(&mut bob, "/", "r").await;
    say(&mut ada, "/", "r", "one").await;
    bob.wait_event("message").await;

    let (ban, seen) = moderate(
        &mut ada,
        "ban",
        json!({"room": "r", "target": "bob", "reason": "spam"}),
    )
    .await;
    assert_eq!(action(&ban), (ModerationAction::Ban, "ada", "bob"));
    assert_eq!(ban.until, None);
    // The room sees the ban, then the removal of the member it matched.
    let kinds: Vec<_> = seen.iter().map(|m| m.action).collect();
    assert_eq!(kinds, [ModerationAction::Ban, ModerationAction::Kick]);
    assert_eq!(seen[1].target, "bob");
    assert_eq!(who(&mut ada, "r").await.members, ["ada"]);
    let err = bob.request("/", "join", json!({"room": "r"})).await;
    assert_eq!(code(&err), ErrorCode::Banned);
    assert!(
        err["error"]["message"].as_str().unwrap().contains("spam"),
        "{err}"
    );
    say(&mut ada, "/", "r", "two").await;

    // A reconnect naming the room in `since` is not rejoined, and replays nothing.
    drop(bob);
    let mut again = Client::connect(addr).await;
    again
        .join_namespace("/", Some(json!({"nick": "bob", "since": {"r": 0}})))
        .await;
    let events = pending(&mut again).await;
    assert!(
        events.iter().all(|(n, _)| n != "message"),
        "no catch-up: {events:?}"
    );
    let notices = notices(&events);
    assert!(
        notices
            .iter()
            .any(|t| t.contains("not rejoined: r") && t.contains("banned")),
        "{notices:?}"
    );
    assert_eq!(
        refused_with(&mut again, "message", json!({"room": "r", "text": "x"})).await,
        ErrorCode::NotInRoom
    );
    assert_eq!(who(&mut ada, "r").await.members, ["ada"]);

    // Lifted, bob comes back.
    let (unban, _) = moderate(&mut ada, "unban", json!({"room": "r", "target": "BOB"})).await;
    assert_eq!(action(&unban), (ModerationAction::Unban, "ada", "BOB"));
    join(&mut again, "/", "r").await;
    assert_eq!(
        refused_with(&mut ada, "unban", json!({"room": "r", "target": "bob"})).await,
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn a_ban_by_nick_covers_its_look_alikes_and_case() {
    let (_server, addr) = start().await;
    let mut ada = registered(addr, "ada").await;
    join(&mut ada, "/", "r").await;
    moderate(&mut ada, "ban", json!({"room": "r", "target": "bob"})).await;
    for nick in ["b0b", "BOB", "bob"] {
        let mut c = user(addr, nick).await;
        assert_eq!(
            refused_with(&mut c, "join", json!({"room": "r"})).await,
            ErrorCode::Banned,
            "{nick}"
        );
    }
    let mut bill = user(addr, "bill").await;
    join(&mut bill, "/", "r").await;
}

#[tokio::test]
async fn a_ban_with_a_duration_ends_by_itself() {
    let (_server, addr) = start().await;
    let mut ada = registered(addr, "ada").await;
    join(&mut ada, "/", "r").await;
    let (ban, _) = moderate(
        &mut ada,
        "ban",
        json!({"room": "r", "target": "bob", "duration_secs": 1}),
    )
    .await;
    let until = ban.until.expect("a ban with a duration has an end");
    let mut bob = user(addr, "bob").await;
    assert_eq!(
        refused_with(&mut bob, "join", json!({"room": "r"})).await,
        ErrorCode::Banned
    );
    // The ban ends at `until` (a second from now): no event marks it, so wait for the clock.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        until > now && until <= now + 1_500,
        "until {until}, now {now}"
    );
    tokio::time::sleep(Duration::from_millis((until - now + 50) as u64)).await;
    join(&mut bob, "/", "r").await;
}

#[tokio::test]
async fn an_admin_bans_an_address_whatever_the_nick_and_operators_cannot() {
    let (_server, addr) = serve(with_admins(&["root"])).await;
    let mut root = registered(addr, "root").await;
    let mut ada = registered(addr, "ada").await;
    join(&mut ada, "/", "r").await;
    join(&mut root, "/", "r").await;
    let elsewhere = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut bob = guest_from(addr, "bob", elsewhere).await;
    join(&mut bob, "/", "r").await;
    assert_eq!(
        refused_with(&mut ada, "ban", json!({"room": "r", "target": "127.0.0.2"})).await,
        ErrorCode::NotAdmin,
        "an operator bans nicks only"
    );
    let (ban, seen) = moderate(
        &mut root,
        "ban",
        json!({"room": "r", "target": "127.0.0.2"}),
    )
    .await;
    assert_eq!(action(&ban), (ModerationAction::Ban, "root", "127.0.0.2"));
    assert_eq!(
        seen.last().map(action),
        Some((ModerationAction::Kick, "root", "bob"))
    );
    assert_eq!(who(&mut ada, "r").await.members, ["ada", "root"]);
    drop(bob);
    let mut other = guest_from(addr, "someone", elsewhere).await;
    assert_eq!(
        refused_with(&mut other, "join", json!({"room": "r"})).await,
        ErrorCode::Banned
    );
    // Operators cannot act on an admin.
    assert_eq!(
        refused_with(&mut ada, "kick", json!({"room": "r", "nick": "root"})).await,
        ErrorCode::NotOperator
    );
}

#[tokio::test]
async fn a_muted_user_cannot_say_until_unmuted() {
    let (_server, addr) = start().await;
    let mut ada = registered(addr, "ada").await;
    join(&mut ada, "/", "r").await;
    let mut bob = user(addr, "bob").await;
    join(&mut bob, "/", "r").await;
    let (mute, _) = moderate(
        &mut ada,
        "mute",
        json!({"room": "r", "nick": "bob", "reason": "flood"}),
    )
    .await;
    assert_eq!(action(&mute), (ModerationAction::Mute, "ada", "bob"));
    assert_eq!(
        decode::<Moderation>(&bob.wait_event("moderation").await),
        mute
    );
    let err = bob
        .request("/", "message", json!({"room": "r", "text": "hello?"}))
        .await;
    assert_eq!(code(&err), ErrorCode::Muted);
    assert!(
        pending(&mut ada).await.iter().all(|(n, _)| n != "message"),
        "nothing was published"
    );
    assert_eq!(who(&mut ada, "r").await.members, ["ada", "bob"], "still in");
    moderate(&mut ada, "unmute", json!({"room": "r", "nick": "bob"})).await;
    say(&mut bob, "/", "r", "thanks").await;
    assert_eq!(
        refused_with(&mut ada, "unmute", json!({"room": "r", "nick": "bob"})).await,
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn op_gives_operator_powers_deop_takes_them_and_guests_cannot_be_opped() {
    let (_server, addr) = start().await;
    let mut ada = registered(addr, "ada").await;
    join(&mut ada, "/", "r").await;
    let mut carol = registered(addr, "carol").await;
    join(&mut carol, "/", "r").await;
    let mut bob = user(addr, "bob").await;
    join(&mut bob, "/", "r").await;
    assert_eq!(
        refused_with(&mut ada, "op", json!({"room": "r", "nick": "bob"})).await,
        ErrorCode::NotRegistered
    );
    let (op, _) = moderate(&mut ada, "op", json!({"room": "r", "nick": "CAROL"})).await;
    assert_eq!(action(&op), (ModerationAction::Op, "ada", "carol"));
    assert_eq!(
        decode::<Moderation>(&bob.wait_event("moderation").await),
        op
    );
    assert_eq!(who(&mut bob, "r").await.operators, ["ada", "carol"]);
    moderate(&mut carol, "mute", json!({"room": "r", "nick": "bob"})).await;
    moderate(&mut carol, "unmute", json!({"room": "r", "nick": "bob"})).await;
    let (deop, _) = moderate(&mut ada, "deop", json!({"room": "r", "nick": "carol"})).await;
    assert_eq!(action(&deop), (ModerationAction::Deop, "ada", "carol"));
    assert_eq!(
        refused_with(&mut carol, "kick", json!({"room": "r", "nick": "bob"})).await,
        ErrorCode::NotOperator
    );
    assert_eq!(who(&mut bob, "r").await.operators, ["ada"]);
}

#[tokio::test]
async fn the_topic_is_the_operators_where_a_room_has_any() {
    let (_server, addr) = start().await;
    let mut ada = registered(addr, "ada").await;
    join(&mut ada, "/", "r").await;
    let mut bob = user(addr, "bob").await;
    join(&mut bob, "/", "r").await;
    assert_eq!(
        refused_with(&mut bob, "topic", json!({"room": "r", "topic": "mine"})).await,
        ErrorCode::NotOperator
    );
    ok::<Value>(
        &ada.request("/", "topic", json!({"room": "r", "topic": "ours"}))
            .await,
    );
    // Reading stays open; a room without operators keeps an open topic.
    let read = bob.request("/", "topic", json!({"room": "r"})).await;
    assert_eq!(read["topic"], "ours");
    join(&mut bob, "/", "g").await;
    ok::<Value>(
        &bob.request("/", "topic", json!({"room": "g", "topic": "free"}))
            .await,
    );
}

#[tokio::test]
async fn an_admin_claims_a_room_a_guest_created() {
    let (_server, addr) = serve(with_admins(&["root"])).await;
    let mut dan = user(addr, "dan").await;
    assert!(join(&mut dan, "/", "g").await.operators.is_empty());
    let mut root = registered(addr, "root").await;
    assert!(join(&mut root, "/", "g").await.operators.is_empty());
    let (claim, _) = moderate(&mut root, "op", json!({"room": "g", "nick": "root"})).await;
    assert_eq!(action(&claim), (ModerationAction::Op, "root", "root"));
    assert_eq!(
        decode::<Moderation>(&dan.wait_event("moderation").await),
        claim
    );
    assert_eq!(who(&mut dan, "g").await.operators, ["root"]);
    assert_eq!(
        refused_with(&mut dan, "topic", json!({"room": "g", "topic": "x"})).await,
        ErrorCode::NotOperator,
        "the room has an operator now"
    );
    moderate(&mut root, "kick", json!({"room": "g", "nick": "dan"})).await;
    // A guest nick that names an admin is no admin: the admin's nick is registered.
    let mut c = Client::connect(addr).await;
    let p = c
        .connect_namespace("/", Some(json!({"nick": "root"})))
        .await;
    assert_eq!(p.kind, PacketKind::ConnectError);
}

#[tokio::test]
async fn an_admin_deletes_a_message_and_history_no_longer_has_it() {
    let (_server, addr) = serve(with_admins(&["root"])).await;
    let mut root = registered(addr, "root").await;
    let mut bob = user(addr, "bob").await;
    join(&mut bob, "/", "r").await;
    join(&mut root, "/", "r").await;
    for text in ["one", "two", "three"] {
        say(&mut bob, "/", "r", text).await;
    }
    let (reply, events) = call(&mut root, "/", "delete", json!({"room": "r", "seq": 2})).await;
    let deleted: MessageDeleted = ok(&reply);
    assert_eq!((deleted.seq, deleted.by.as_str()), (2, "root"));
    let to_bob: MessageDeleted = decode(&bob.wait_event("deleted").await);
    assert_eq!(to_bob, deleted);
    assert!(events.iter().any(|(n, _)| n == "deleted"));
    let history: HistoryReply = ok(&bob.request("/", "history", json!({"room": "r"})).await);
    let texts: Vec<&str> = history.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["one", "three"]);
    assert_eq!(say(&mut bob, "/", "r", "four").await.seq, 4);
    assert_eq!(
        refused_with(&mut root, "delete", json!({"room": "r", "seq": 2})).await,
        ErrorCode::NotFound
    );
    assert_eq!(
        refused_with(&mut bob, "delete", json!({"room": "r", "seq": 1})).await,
        ErrorCode::NotAdmin
    );
}

#[tokio::test]
async fn an_admin_resets_a_password_and_unregisters_a_nick() {
    let (_server, addr) = serve(with_admins(&["root"])).await;
    let mut root = registered(addr, "root").await;
    drop(registered(addr, "carol").await);
    let mut dave = registered(addr, "dave").await;
    let mut guest = user(addr, "guest").await;
    assert_eq!(
        refused_with(
            &mut guest,
            "reset_password",
            json!({"nick": "carol", "password": "x"})
        )
        .await,
        ErrorCode::NotAdmin
    );
    let reply = root
        .request(
            "/",
            "reset_password",
            json!({"nick": "carol", "password": "fresh"}),
        )
        .await;
    assert_eq!(ok::<Value>(&reply)["nick"], "carol");
    let mut c = Client::connect(addr).await;
    let p = c
        .connect_namespace("/", Some(json!({"nick": "carol", "password": "pw-carol"})))
        .await;
    assert_eq!(
        p.kind,
        PacketKind::ConnectError,
        "the old password is refused"
    );
    let p = c
        .connect_namespace("/", Some(json!({"nick": "carol", "password": "fresh"})))
        .await;
    assert_eq!(p.kind, PacketKind::Connect);

    assert_eq!(
        refused_with(&mut guest, "unregister", json!({"nick": "dave"})).await,
        ErrorCode::NotAdmin
    );
    ok::<Value>(
        &root
            .request("/", "unregister", json!({"nick": "dave"}))
            .await,
    );
    let whois = guest.request("/", "whois", json!({"nick": "dave"})).await;
    assert_eq!(whois["registered"], false, "{whois}");
    assert_eq!(
        refused_with(&mut root, "unregister", json!({"nick": "dave"})).await,
        ErrorCode::NotRegistered
    );
    // Dave is a guest now: he moderates nothing, even in a room he creates.
    assert!(join(&mut dave, "/", "d").await.operators.is_empty());
    let _ = tokio::time::timeout(RECV_TIMEOUT, pending(&mut dave)).await;
}

#[tokio::test]
async fn operators_bans_mutes_and_deletions_survive_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = || ServerConfig {
        store: StoreConfig::Sqlite(dir.path().join("chat.db")),
        admins: vec!["root".into()],
        ..config()
    };
    let (server, addr) = serve(sqlite()).await;
    let mut ada = registered(addr, "ada").await;
    join(&mut ada, "/", "r").await;
    for text in ["one", "two", "three"] {
        say(&mut ada, "/", "r", text).await;
    }
    let mut root = registered(addr, "root").await;
    join(&mut root, "/", "r").await;
    drop(registered(addr, "carol").await);
    moderate(&mut ada, "op", json!({"room": "r", "nick": "carol"})).await;
    moderate(&mut ada, "ban", json!({"room": "r", "target": "bob"})).await;
    moderate(&mut ada, "mute", json!({"room": "r", "nick": "eve"})).await;
    ok::<Value>(
        &root
            .request("/", "delete", json!({"room": "r", "seq": 3}))
            .await,
    );
    drop((ada, root));
    server.shutdown().await;

    let (_server, addr) = serve(sqlite()).await;
    let mut bob = user(addr, "bob").await;
    assert_eq!(
        refused_with(&mut bob, "join", json!({"room": "r"})).await,
        ErrorCode::Banned
    );
    let mut eve = user(addr, "eve").await;
    let joined = join(&mut eve, "/", "r").await;
    assert!(
        joined.operators.is_empty(),
        "eve (a guest) re-created the room: its operators are offline"
    );
    assert_eq!(
        joined.history.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2],
        "the deleted message stays deleted"
    );
    assert_eq!(
        refused_with(&mut eve, "message", json!({"room": "r", "text": "hi"})).await,
        ErrorCode::Muted
    );
    let mut carol = registered(addr, "carol").await;
    assert_eq!(join(&mut carol, "/", "r").await.operators, ["carol"]);
    moderate(&mut carol, "kick", json!({"room": "r", "nick": "eve"})).await;
    assert_eq!(
        say(&mut carol, "/", "r", "four").await.seq,
        4,
        "seq 3 is not reused"
    );
}
