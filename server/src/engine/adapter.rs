//! The fan-out seam. Every broadcast reaches an [`Adapter`] as encoded bytes plus the target
//! rooms and the except set ([`BroadcastOptions`]), never as socket handles, so an adapter
//! that spans several processes (Redis pub/sub, later) can forward it as it is.
//!
//! [`LocalAdapter`] keeps rooms in memory as a two-way index (room -> sockets, socket ->
//! rooms), so leaving every room on disconnect is one call and empty rooms vanish. It reports
//! room lifecycle changes ([`RoomEvent`]) to the namespace's listeners.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

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
    map: RwLock<HashMap<Sid, Outbox>>,
}

impl LocalSockets {
    pub(crate) fn insert(&self, sid: Sid, outbox: Outbox) {
        write(&self.map).insert(sid, outbox);
    }

    pub(crate) fn remove(&self, sid: &str) {
        write(&self.map).remove(sid);
    }

    /// Queues `packet` for each of `sids` that is connected here; returns how many took it.
    pub fn deliver<'a>(
        &self,
        sids: impl IntoIterator<Item = &'a Sid>,
        packet: &EncodedPacket,
        volatile: bool,
    ) -> usize {
        let map = read(&self.map);
        sids.into_iter()
            .filter_map(|sid| map.get(sid.as_str()))
            .filter(|outbox| outbox.send(packet.clone(), volatile).is_ok())
            .count()
    }

    pub fn sids(&self) -> Vec<Sid> {
        read(&self.map).keys().cloned().collect()
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

#[derive(Default)]
struct Rooms {
    members: HashMap<Room, HashSet<Sid>>,
    of_socket: HashMap<Sid, HashSet<Room>>,
}

impl Rooms {
    /// Applies `f` to each target socket once (union of rooms, minus the except set).
    fn for_each_target(&self, opts: &BroadcastOptions, all: &[Sid], mut f: impl FnMut(&Sid)) {
        let excluded: HashSet<&Sid> = opts
            .except
            .iter()
            .filter_map(|r| self.members.get(r))
            .flatten()
            .collect();
        let mut emit = |sid: &Sid| {
            if !excluded.contains(sid) {
                f(sid)
            }
        };
        match opts.rooms.as_slice() {
            [] => all.iter().for_each(emit),
            [one] => self.members.get(one).into_iter().flatten().for_each(emit),
            many => {
                let mut seen = HashSet::new();
                for sid in many.iter().filter_map(|r| self.members.get(r)).flatten() {
                    if seen.insert(sid) {
                        emit(sid);
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
        if !members.remove(sid) {
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
            for room in new_rooms {
                let members = rooms.members.entry(room.clone()).or_default();
                let created = members.is_empty();
                if members.insert(sid.clone()) {
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
        v.sort();
        v
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        let all = if opts.rooms.is_empty() {
            self.ctx.sockets.sids()
        } else {
            Vec::new()
        };
        let mut out = Vec::new();
        read(&self.rooms).for_each_target(opts, &all, |sid| out.push(sid.clone()));
        out
    }

    fn rooms(&self) -> Vec<(Room, usize)> {
        let mut v: Vec<_> = read(&self.rooms)
            .members
            .iter()
            .map(|(r, m)| (r.clone(), m.len()))
            .collect();
        v.sort();
        v
    }

    fn broadcast(&self, packet: EncodedPacket, opts: &BroadcastOptions) -> usize {
        let all = if opts.rooms.is_empty() {
            self.ctx.sockets.sids()
        } else {
            Vec::new()
        };
        let mut targets = Vec::new();
        // Deliver under the rooms lock: a `leave` that returns has either seen this broadcast
        // delivered or keeps the socket out of it; none arrives after a leave is acked.
        // Delivery only queues (`try_send`), so the lock is held briefly and never awaits.
        let rooms = read(&self.rooms);
        rooms.for_each_target(opts, &all, |sid| targets.push(sid.clone()));
        let delivered = self.ctx.sockets.deliver(&targets, &packet, opts.volatile);
        drop(rooms);
        delivered
    }
}
