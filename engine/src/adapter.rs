//! The fan-out seam. Every broadcast reaches an [`Adapter`] as encoded bytes plus the target
//! rooms and the except set ([`BroadcastOptions`]), never as socket handles, so an adapter
//! that spans several processes (Redis pub/sub, later) can forward it as it is.
//!
//! [`LocalAdapter`] keeps rooms in memory as a two-way index (room -> sockets, socket ->
//! rooms), so leaving every room on disconnect is one call and empty rooms vanish. Every
//! socket is in the room named by its id (Socket.IO's rule); that room is implicit, read from
//! the namespace's socket map, not stored in the index: a socket that joined nothing else has
//! no entry there (two tables, ~500 bytes a connection, fewer). It reports
//! room lifecycle changes ([`RoomEvent`]) to the namespace's listeners. A room's members are
//! kept with their outboxes, so a broadcast queues straight from the room (one hash lookup
//! per member for the except set at most; foldhash, seeded per process, for these maps).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use foldhash::fast::RandomState;

use super::outbox::{EncodedPacket, Outbox};
use super::{Room, Sid, read, write};

/// Who a broadcast goes to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastOptions {
    /// The union of these rooms; empty means every socket of the namespace.
    pub rooms: Vec<Room>,
    /// Sockets in any of these rooms are left out (a sender leaves itself out through its
    /// own-id room).
    pub except: Vec<Room>,
    /// May be dropped for a client whose queue is full.
    pub volatile: bool,
    /// Only this process's sockets (an adapter spanning several processes does not forward
    /// it; Socket.IO's `local` flag). For what reaches the other processes another way,
    /// such as a shared store's messages.
    pub local: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomEventKind {
    /// The room got its first member.
    Created,
    /// The room lost its last member.
    Deleted,
    Joined,
    Left,
}

/// A room lifecycle change, delivered to the namespace's room listeners after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEvent {
    pub kind: RoomEventKind,
    pub room: Room,
    pub sid: Sid,
}

/// The sockets of one namespace on this process, by sid: where local delivery goes.
#[derive(Debug, Default)]
pub struct LocalSockets {
    map: RwLock<HashMap<Sid, Outbox, RandomState>>,
}

impl LocalSockets {
    fn outbox(&self, sid: &str) -> Option<Outbox> {
        read(&self.map).get(sid).cloned()
    }

    pub(crate) fn insert(&self, sid: Sid, outbox: Outbox) {
        write(&self.map).insert(sid, outbox);
    }

    pub(crate) fn remove(&self, sid: &str) {
        write(&self.map).remove(sid);
    }

    pub fn len(&self) -> usize {
        read(&self.map).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type RoomListener = Arc<dyn Fn(&RoomEvent) + Send + Sync>;

/// What an adapter is given when its namespace is created.
#[derive(Clone)]
pub struct AdapterContext {
    pub namespace: String,
    pub sockets: Arc<LocalSockets>,
    room_listener: Option<RoomListener>,
}

impl AdapterContext {
    pub(crate) fn new(
        namespace: &str,
        sockets: Arc<LocalSockets>,
        room_listener: Option<RoomListener>,
    ) -> Self {
        AdapterContext {
            namespace: namespace.to_owned(),
            sockets,
            room_listener,
        }
    }

    /// Tells the namespace's listener about room changes (call with no lock held).
    pub fn emit_room_events(&self, events: &[RoomEvent]) {
        if let Some(listener) = &self.room_listener {
            events.iter().for_each(|e| listener(e));
        }
    }
}

/// Rooms and fan-out for one namespace.
pub trait Adapter: Send + Sync + 'static {
    /// Adds the socket to each room.
    fn join(&self, sid: &Sid, rooms: &[Room]);
    /// Removes the socket from one room.
    fn leave(&self, sid: &Sid, room: &str);
    /// Removes the socket from every room (on disconnect).
    fn leave_all(&self, sid: &Sid);
    /// The rooms the socket is in (its own-id room included).
    fn rooms_of(&self, sid: &Sid) -> Vec<Room>;
    /// The sockets a broadcast with these options would reach (volatile ignored).
    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid>;
    /// Every room with its member count.
    fn rooms(&self) -> Vec<(Room, usize)>;
    /// Delivers an encoded packet; returns how many sockets took it here.
    fn broadcast(&self, packet: EncodedPacket, opts: &BroadcastOptions) -> usize;
}

/// A room's members with their outboxes (only sockets connected here are members).
type Members = HashMap<Sid, Outbox, RandomState>;

#[derive(Default)]
struct Rooms {
    members: HashMap<Room, Members, RandomState>,
    of_socket: HashMap<Sid, HashSet<Room>, RandomState>,
}

/// The sockets a broadcast leaves out: the members of its except rooms, by [`Sid::addr`]
/// (every sid in [`Rooms`] is a clone of its socket's own, so the address is the identity and
/// checking a member does not read its bytes).
enum Excluded {
    None,
    /// Few (typically the sender's own-id room): a linear scan beats hashing.
    Few(Vec<usize>),
    Many(HashSet<usize, RandomState>),
}

impl Excluded {
    const FEW: usize = 8;

    fn new(rooms: &Rooms, all: &HashMap<Sid, Outbox, RandomState>, except: &[Room]) -> Excluded {
        let sids: Vec<usize> = except
            .iter()
            .flat_map(|r| room_members(rooms, all, r))
            .map(|(sid, _)| sid.addr())
            .collect();
        if sids.is_empty() {
            return Excluded::None;
        }
        if sids.len() <= Self::FEW {
            Excluded::Few(sids)
        } else {
            Excluded::Many(sids.into_iter().collect())
        }
    }

    fn contains(&self, sid: &Sid) -> bool {
        match self {
            Excluded::None => false,
            Excluded::Few(sids) => sids.contains(&sid.addr()),
            Excluded::Many(sids) => sids.contains(&sid.addr()),
        }
    }
}

/// The members of `room`: those that joined it, and the socket whose id it is (each socket
/// is in its own room without an entry in the index).
fn room_members<'a>(
    rooms: &'a Rooms,
    all: &'a HashMap<Sid, Outbox, RandomState>,
    room: &Room,
) -> impl Iterator<Item = (&'a Sid, &'a Outbox)> + use<'a> {
    let joined = rooms.members.get(room).into_iter().flatten();
    joined.chain(all.get_key_value(room.as_str()))
}

impl Rooms {
    /// Applies `f` to each target socket connected here once (union of rooms, minus the
    /// except set); `all` is every socket of the namespace, used when no room is given.
    fn for_each_target(
        &self,
        opts: &BroadcastOptions,
        all: &HashMap<Sid, Outbox, RandomState>,
        mut f: impl FnMut(&Sid, &Outbox),
    ) {
        let excluded = Excluded::new(self, all, &opts.except);
        let mut emit = |sid: &Sid, outbox: &Outbox| {
            if !excluded.contains(sid) {
                f(sid, outbox)
            }
        };
        let members = |room: &Room| room_members(self, all, room);
        match opts.rooms.as_slice() {
            [] => all.iter().for_each(|(sid, outbox)| emit(sid, outbox)),
            [one] => members(one).for_each(|(sid, outbox)| emit(sid, outbox)),
            many => {
                let mut seen = HashSet::with_hasher(RandomState::default());
                for (sid, outbox) in many.iter().flat_map(members) {
                    if seen.insert(sid) {
                        emit(sid, outbox);
                    }
                }
            }
        }
    }
}

/// The in-memory adapter.
pub struct LocalAdapter {
    ctx: AdapterContext,
    rooms: RwLock<Rooms>,
}

impl LocalAdapter {
    pub fn new(ctx: AdapterContext) -> LocalAdapter {
        LocalAdapter {
            ctx,
            rooms: RwLock::new(Rooms::default()),
        }
    }

    fn remove(&self, rooms: &mut Rooms, sid: &Sid, room: &str, events: &mut Vec<RoomEvent>) {
        let Some(members) = rooms.members.get_mut(room) else {
            return;
        };
        if members.remove(sid).is_none() {
            return;
        }
        events.push(RoomEvent {
            kind: RoomEventKind::Left,
            room: room.to_owned(),
            sid: sid.clone(),
        });
        if members.is_empty() {
            rooms.members.remove(room);
            events.push(RoomEvent {
                kind: RoomEventKind::Deleted,
                room: room.to_owned(),
                sid: sid.clone(),
            });
        }
    }
}

impl Adapter for LocalAdapter {
    fn join(&self, sid: &Sid, new_rooms: &[Room]) {
        let mut events = Vec::new();
        {
            let mut rooms = write(&self.rooms);
            // Looked up under the rooms lock: a socket that `remove_socket` already took out of
            // the local map (before it leaves every room) cannot be added back with a stale
            // outbox.
            let Some(outbox) = self.ctx.sockets.outbox(sid.as_str()) else {
                return;
            };
            // A socket's own room is implicit (see the module doc).
            for room in new_rooms.iter().filter(|r| r.as_str() != sid.as_str()) {
                let members = rooms.members.entry(room.clone()).or_default();
                let created = members.is_empty();
                if members.insert(sid.clone(), outbox.clone()).is_none() {
                    if created {
                        events.push(RoomEvent {
                            kind: RoomEventKind::Created,
                            room: room.clone(),
                            sid: sid.clone(),
                        });
                    }
                    events.push(RoomEvent {
                        kind: RoomEventKind::Joined,
                        room: room.clone(),
                        sid: sid.clone(),
                    });
                }
                rooms
                    .of_socket
                    .entry(sid.clone())
                    .or_default()
                    .insert(room.clone());
            }
        }
        self.ctx.emit_room_events(&events);
    }

    fn leave(&self, sid: &Sid, room: &str) {
        let mut events = Vec::new();
        {
            let mut rooms = write(&self.rooms);
            self.remove(&mut rooms, sid, room, &mut events);
            if let Some(set) = rooms.of_socket.get_mut(sid) {
                set.remove(room);
                if set.is_empty() {
                    rooms.of_socket.remove(sid);
                }
            }
        }
        self.ctx.emit_room_events(&events);
    }

    fn leave_all(&self, sid: &Sid) {
        let mut events = Vec::new();
        {
            let mut rooms = write(&self.rooms);
            let mine = rooms.of_socket.remove(sid).unwrap_or_default();
            let mut mine: Vec<_> = mine.into_iter().collect();
            mine.sort();
            for room in mine {
                self.remove(&mut rooms, sid, &room, &mut events);
            }
        }
        self.ctx.emit_room_events(&events);
    }

    fn rooms_of(&self, sid: &Sid) -> Vec<Room> {
        let mut v: Vec<Room> = read(&self.rooms)
            .of_socket
            .get(sid)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if self.ctx.sockets.outbox(sid.as_str()).is_some() {
            v.push(sid.as_str().to_owned());
        }
        v.sort();
        v
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        let mut out = Vec::new();
        let rooms = read(&self.rooms);
        let all = read(&self.ctx.sockets.map);
        rooms.for_each_target(opts, &all, |sid, _| out.push(sid.clone()));
        out
    }

    fn rooms(&self) -> Vec<(Room, usize)> {
        let rooms = read(&self.rooms);
        let all = read(&self.ctx.sockets.map);
        // The joined rooms (one named like a socket's id also holds that socket), then each
        // socket's own room that nobody joined.
        let mut v: Vec<_> = rooms
            .members
            .iter()
            .map(|(r, m)| {
                (
                    r.clone(),
                    m.len() + usize::from(all.contains_key(r.as_str())),
                )
            })
            .collect();
        v.extend(
            all.keys()
                .filter(|sid| !rooms.members.contains_key(sid.as_str()))
                .map(|sid| (sid.as_str().to_owned(), 1)),
        );
        v.sort();
        v
    }

    fn broadcast(&self, packet: EncodedPacket, opts: &BroadcastOptions) -> usize {
        // Deliver under the rooms lock: a `leave` that returns has either seen this broadcast
        // delivered or keeps the socket out of it; none arrives after a leave is acked.
        // Delivery only queues (never waits), so the lock is held briefly and never awaits.
        let rooms = read(&self.rooms);
        let all = read(&self.ctx.sockets.map);
        let mut delivered = 0;
        rooms.for_each_target(opts, &all, |_, outbox| {
            if outbox.send(packet.clone(), opts.volatile).is_ok() {
                delivered += 1;
            }
        });
        delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{OutboxReceiver, outbox};
    use std::collections::VecDeque;

    /// An adapter over `n` local sockets "s0".."s{n-1}", each also in its own-id room.
    fn adapter(n: usize) -> (LocalAdapter, Vec<(Sid, OutboxReceiver)>) {
        let sockets = Arc::new(LocalSockets::default());
        let adapter = LocalAdapter::new(AdapterContext::new("/", sockets.clone(), None));
        let mut receivers = Vec::new();
        for i in 0..n {
            let sid = Sid(format!("s{i}").into());
            let (tx, rx) = outbox(16);
            sockets.insert(sid.clone(), tx);
            adapter.join(&sid, &[sid.as_str().to_owned()]);
            receivers.push((sid, rx));
        }
        (adapter, receivers)
    }

    async fn got(rx: &mut OutboxReceiver) -> usize {
        let mut batch = VecDeque::new();
        let wait = rx.next_batch(&mut batch, 64);
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), wait).await;
        batch.len()
    }

    fn opts(rooms: &[&str], except: &[&str]) -> BroadcastOptions {
        BroadcastOptions {
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
            except: except.iter().map(|r| r.to_string()).collect(),
            volatile: false,
            local: false,
        }
    }

    #[tokio::test]
    async fn union_of_rooms_minus_a_large_except_set_reaches_each_socket_once() {
        let (adapter, mut receivers) = adapter(30);
        // a: s0..s19, b: s10..s29 (overlap s10..s19), quiet: s0..s14 (15 > the linear-scan size).
        for (i, (sid, _)) in receivers.iter().enumerate() {
            let mut rooms = Vec::new();
            if i < 20 {
                rooms.push("a".to_owned());
            }
            if i >= 10 {
                rooms.push("b".to_owned());
            }
            if i < 15 {
                rooms.push("quiet".to_owned());
            }
            adapter.join(sid, &rooms);
        }
        let packet = EncodedPacket::raw("42".into());
        let n = adapter.broadcast(packet, &opts(&["a", "b"], &["quiet"]));
        assert_eq!(n, 15);
        for (i, (_, rx)) in receivers.iter_mut().enumerate() {
            assert_eq!(got(rx).await, usize::from(i >= 15), "socket s{i}");
        }
        assert_eq!(adapter.sockets(&opts(&["a", "b"], &["quiet"])).len(), 15);
    }

    #[tokio::test]
    async fn a_socket_is_in_its_own_room_without_an_entry_in_the_index() {
        let (adapter, mut receivers) = adapter(3);
        // Nothing stored for the own-id rooms `adapter()` joined.
        {
            let rooms = read(&adapter.rooms);
            assert!(rooms.members.is_empty() && rooms.of_socket.is_empty());
        }
        let packet = EncodedPacket::raw("42".into());
        // To one socket by its id; to all but one by except its id; a room named like a
        // socket's id that another socket joined holds both.
        assert_eq!(adapter.broadcast(packet.clone(), &opts(&["s1"], &[])), 1);
        assert_eq!(got(&mut receivers[1].1).await, 1);
        assert_eq!(got(&mut receivers[0].1).await, 0);
        assert_eq!(adapter.broadcast(packet.clone(), &opts(&[], &["s0"])), 2);
        assert_eq!(got(&mut receivers[0].1).await, 0);
        assert_eq!(got(&mut receivers[2].1).await, 1);
        adapter.join(&receivers[2].0, &["s1".to_owned()]);
        assert_eq!(adapter.broadcast(packet, &opts(&["s1"], &["s0"])), 2);
        assert_eq!(adapter.rooms_of(&receivers[2].0), ["s1", "s2"]);
        assert_eq!(adapter.rooms_of(&receivers[0].0), ["s0"]);
        assert_eq!(
            adapter.rooms(),
            [("s0".into(), 1), ("s1".into(), 2), ("s2".into(), 1)]
        );
        // Leaving one's own room changes nothing: a socket is always in it.
        adapter.leave(&receivers[0].0, "s0");
        assert_eq!(adapter.rooms_of(&receivers[0].0), ["s0"]);
    }

    #[tokio::test]
    async fn namespace_wide_broadcast_leaves_out_the_sender() {
        let (adapter, mut receivers) = adapter(5);
        let n = adapter.broadcast(EncodedPacket::raw("42".into()), &opts(&[], &["s2"]));
        assert_eq!(n, 4);
        for (i, (_, rx)) in receivers.iter_mut().enumerate() {
            assert_eq!(got(rx).await, usize::from(i != 2), "socket s{i}");
        }
    }

    #[tokio::test]
    async fn a_socket_no_longer_connected_here_cannot_join() {
        let (adapter, mut receivers) = adapter(2);
        let gone = receivers[1].0.clone();
        adapter.ctx.sockets.remove(gone.as_str());
        adapter.leave_all(&gone);
        adapter.join(&gone, &["r".to_owned()]);
        adapter.join(&receivers[0].0, &["r".to_owned()]);
        assert_eq!(adapter.rooms_of(&gone), Vec::<Room>::new());
        assert_eq!(
            adapter.broadcast(EncodedPacket::raw("42".into()), &opts(&["r"], &[])),
            1
        );
        assert_eq!(got(&mut receivers[0].1).await, 1);
        assert_eq!(got(&mut receivers[1].1).await, 0);
    }

    #[tokio::test]
    async fn a_socket_that_left_gets_nothing() {
        let (adapter, mut receivers) = adapter(3);
        for (sid, _) in &receivers {
            adapter.join(sid, &["r".to_owned()]);
        }
        adapter.leave(&receivers[1].0, "r");
        // Gone from the namespace as `Namespace::remove_socket` does it: out of the local map
        // (and so out of its own room), then out of every room.
        adapter.ctx.sockets.remove(receivers[2].0.as_str());
        adapter.leave_all(&receivers[2].0);
        assert_eq!(
            adapter.broadcast(EncodedPacket::raw("42".into()), &opts(&["r"], &[])),
            1
        );
        assert_eq!(got(&mut receivers[0].1).await, 1);
        assert_eq!(got(&mut receivers[1].1).await, 0);
        assert_eq!(got(&mut receivers[2].1).await, 0);
        assert_eq!(adapter.rooms_of(&receivers[2].0), Vec::<Room>::new());
    }
}
