//! What the network actor reports: connection state, namespace answers, replies to
//! requests and the server's events.

use chat_protocol::events::{ErrorCode, ModerationAction};

use super::*;

impl App {
    pub(super) fn on_net(&mut self, ev: NetEvent) {
        match ev {
            // Every retry is the status line's to show, updated in place: the windows get
            // one line when the connection is lost (or cannot be made at first), and the
            // namespaces' "reconnected" lines when it is back.
            NetEvent::Connecting { attempt } => self.conn = ConnState::Connecting { attempt },
            NetEvent::Up => {
                self.conn = ConnState::Online;
                self.loss_reported = false;
            }
            NetEvent::Down {
                reason,
                ever_connected,
                retry_in,
            } => {
                let was_online = self.conn == ConnState::Online;
                self.conn = ConnState::Offline {
                    reason: reason.clone(),
                    retry_in,
                };
                self.lag = None;
                for ns in &mut self.namespaces {
                    if ns.status == NsStatus::Connected {
                        ns.status = NsStatus::Connecting;
                    }
                }
                if self.script && !ever_connected {
                    self.failure = Some(format!("cannot connect to {}: {reason}", self.server));
                }
                if was_online {
                    // News everywhere: the server windows and the one being read.
                    let text = format!("disconnected from the server ({reason}); reconnecting");
                    self.push_to_servers(LineKind::Error(text), true);
                    self.loss_reported = true;
                } else if !self.loss_reported {
                    let text = format!("no connection to {} ({reason}); retrying", self.server);
                    self.push_to_servers(LineKind::Error(text), false);
                    self.loss_reported = true;
                }
            }
            NetEvent::NsConnected { nsp, resumed } => {
                self.nick_refused = None;
                if let Some(ns) = self.namespaces.iter_mut().find(|n| n.name == nsp) {
                    ns.status = NsStatus::Connected;
                }
                let i = self.window(&nsp, WindowKind::Server);
                let text = if resumed {
                    format!("reconnected to {nsp} as {}", self.nick)
                } else {
                    format!("connected to {nsp} as {}", self.nick)
                };
                self.info(i, text.clone());
                if resumed && self.active != i && self.current_ns() == nsp {
                    // The journal already has this line once.
                    let before = self.journal.len();
                    self.info(self.active, text);
                    self.journal.truncate(before);
                }
                if resumed {
                    // Messages from here on, until each room's rejoin answer, are what we
                    // missed (a server honouring `since` sends them right after CONNECT).
                    for w in self.windows.iter_mut() {
                        if w.nsp == nsp && w.room().is_some() && !w.leaving {
                            w.catch_up_from = Some(w.lines.len());
                        }
                    }
                }
            }
            NetEvent::NsRefused { nsp, message, code } => {
                if let Some(ns) = self.namespaces.iter_mut().find(|n| n.name == nsp) {
                    ns.status = NsStatus::Refused(message.clone());
                }
                let i = self.window(&nsp, WindowKind::Server);
                if matches!(
                    code,
                    Some(
                        ErrorCode::NickTaken
                            | ErrorCode::NickClaimed
                            | ErrorCode::WrongPassword
                            | ErrorCode::InvalidName
                    )
                ) {
                    self.nick_refused = Some(message.clone());
                }
                let hint = match code {
                    Some(ErrorCode::NickTaken) => " (choose another with /nick <nick>)",
                    Some(ErrorCode::Forbidden) => " (a key: /ns <namespace> <key>)",
                    Some(ErrorCode::WrongPassword | ErrorCode::NickClaimed) => {
                        " (a registered nick: start with --password, or /nick <other>)"
                    }
                    Some(
                        ErrorCode::TokenRequired
                        | ErrorCode::TokenInvalid
                        | ErrorCode::TokenExpired,
                    ) => " (start with --token <token>)",
                    _ => "",
                };
                self.error(i, format!("{nsp} refused the connection: {message}{hint}"));
                if self.script && nsp == self.first_ns {
                    self.failure = Some(format!("{nsp} refused the connection: {message}"));
                }
            }
            NetEvent::NsClosed { nsp } => {
                if let Some(ns) = self.namespaces.iter_mut().find(|n| n.name == nsp) {
                    ns.status = NsStatus::Closed;
                }
                let i = self.window(&nsp, WindowKind::Server);
                self.error(i, format!("the server disconnected you from {nsp}"));
                // Its rooms are gone with it; a later /join asks the server again.
                let rooms: Vec<usize> = (0..self.windows.len())
                    .filter(|&r| self.windows[r].nsp == nsp && self.windows[r].room().is_some())
                    .collect();
                for r in rooms {
                    self.windows[r].leaving = true;
                    let title = self.windows[r].title();
                    self.error(
                        r,
                        format!("you are no longer in {title} ({nsp} was closed)"),
                    );
                }
            }
            NetEvent::Lag(rtt) => self.lag = Some(rtt),
            NetEvent::Reply {
                nsp,
                request,
                result,
                automatic,
            } => {
                if !automatic {
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
                match (result, &request) {
                    // Only the answer of the search listed (not of one it replaced).
                    (Ok(Reply::Search(page)), Request::Search(asked)) => {
                        self.on_search_reply(&nsp, asked, page);
                    }
                    (Ok(reply), _) => self.on_reply(&nsp, reply, automatic),
                    (Err(failure), _) => self.on_failure(&nsp, &request, &failure),
                }
            }
            NetEvent::Server { nsp, event } => self.on_server_event(&nsp, event),
        }
    }

    pub(super) fn on_failure(&mut self, nsp: &str, request: &Request, failure: &Failure) {
        if self.ns_info(nsp).is_none() {
            // A namespace the user closed: nothing of it is shown any more.
            return;
        }
        if let Request::Dm { to, text, .. } = request {
            // Never lost: back in the input line when it is empty, else shown in full.
            let i = self
                .find_window(nsp, &WindowKind::Dm(to.clone()))
                .unwrap_or(self.active);
            self.drop_pending(i, text);
            let kept = self.keep_unsent(text);
            self.error(i, format!("message to {to} not sent: {failure}{kept}"));
            return;
        }
        if let Request::Message { room, text, .. } = request {
            let i = self.target(nsp, Some(room));
            self.drop_pending(i, text);
            let kept = self.keep_unsent(text);
            self.error(i, format!("message to #{room} not sent: {failure}{kept}"));
            return;
        }
        let (what, room) = match request {
            Request::Join { room } => (format!("cannot join #{room}"), None),
            Request::Leave { room } => {
                if let Some(i) = self.find_window(nsp, &WindowKind::Room(room.clone())) {
                    self.windows[i].leaving = false;
                }
                (format!("cannot leave #{room}"), Some(room.as_str()))
            }
            Request::Message { .. } | Request::Dm { .. } => return,
            Request::Nick { nick } => (format!("cannot change nick to {nick}"), None),
            Request::Rooms => ("cannot list rooms".to_owned(), None),
            Request::Who { room } => (format!("cannot list #{room}"), Some(room.as_str())),
            Request::Topic { room, .. } => {
                (format!("topic of #{room} unchanged"), Some(room.as_str()))
            }
            Request::History { room, .. } => {
                if let Some(i) = self.find_window(nsp, &WindowKind::Room(room.clone())) {
                    self.windows[i].history_pending = false;
                    self.windows[i].jump_to = None;
                }
                (format!("no older messages of #{room}"), Some(room.as_str()))
            }
            Request::Ping => return,
            Request::Whois { nick } => (format!("no whois for {nick}"), None),
            Request::Away { .. } => ("away unchanged".to_owned(), None),
            Request::Moderate { room, action } => (
                format!("{} refused", moderation_words(action)),
                Some(room.as_str()),
            ),
            Request::Delete { room, seq } => (
                format!("message #{seq} of #{room} not deleted"),
                Some(room.as_str()),
            ),
            Request::Unregister { nick } => (format!("{nick} not unregistered"), None),
            // The password is never shown.
            Request::ResetPassword { nick, .. } => (format!("password of {nick} not reset"), None),
            Request::Search(asked) => return self.on_search_failed(nsp, asked, failure),
        };
        let i = self.target(nsp, room);
        self.error(i, format!("{what}: {failure}"));
    }

    /// Puts the text of a message that was not sent back in the input line when that is
    /// empty (so it can be edited and sent again); otherwise says what it was. The words to
    /// add to the error line.
    pub(super) fn keep_unsent(&mut self, text: &str) -> String {
        if self.input.is_empty() {
            self.input.set(text);
            " (it is back in the input line)".to_owned()
        } else {
            format!(" (it was: {text})")
        }
    }

    pub(super) fn on_reply(&mut self, nsp: &str, reply: Reply, automatic: bool) {
        match reply {
            Reply::Join(j) => self.on_joined(nsp, j, automatic),
            Reply::Leave(l) => {
                if let Some(i) = self.find_window(nsp, &WindowKind::Room(l.room.clone())) {
                    self.remove_window(i);
                }
                let i = self.window(nsp, WindowKind::Server);
                self.info(i, format!("you left #{}", l.room));
            }
            Reply::Message(m) => {
                let i = self.window(nsp, WindowKind::Room(m.message.room.clone()));
                self.drop_pending(i, &m.message.text);
                self.show_message(i, m.message.into_owned());
            }
            Reply::Dm(d) => {
                let i = self.window(nsp, WindowKind::Dm(d.message.to.clone()));
                self.drop_pending(i, &d.message.text);
                let ts = d.message.ts;
                self.push_line(
                    i,
                    LineKind::Message {
                        from: d.message.from,
                        text: d.message.text,
                        action: d.message.action,
                        seq: None,
                        mention: false,
                    },
                    ts,
                );
                if d.queued {
                    let text = format!("{} is offline; it will wait for them", d.message.to);
                    self.info(i, text);
                } else if !d.delivered {
                    let text = format!("{} did not get it (not connected)", d.message.to);
                    self.info(i, text);
                }
            }
            Reply::Nick(n) => {
                self.nick_refused = None;
                let old = std::mem::replace(&mut self.nick, n.nick.clone());
                self.info_active(format!("you are now known as {} (was {old})", n.nick));
            }
            Reply::Rooms(r) => {
                let i = self.target(nsp, None);
                if let Some(ns) = self.namespaces.iter_mut().find(|n| n.name == nsp) {
                    ns.rooms = r.rooms.iter().map(|r| r.room.clone()).collect();
                }
                if r.rooms.is_empty() {
                    self.info(i, format!("no rooms in {nsp} yet"));
                }
                for room in r.rooms {
                    let topic = room.topic.map(|t| format!(": {t}")).unwrap_or_default();
                    self.info(
                        i,
                        format!(
                            "#{} ({}){topic}",
                            room.room,
                            crate::layout::members(room.members)
                        ),
                    );
                }
            }
            Reply::Whois(w) => {
                let mut parts = vec![if w.registered {
                    "registered".to_owned()
                } else {
                    "a guest".to_owned()
                }];
                if w.online {
                    if let Some(idle) = w.idle_secs {
                        parts.push(format!("idle {}", idle_words(idle)));
                    }
                    if !w.rooms.is_empty() {
                        let rooms: Vec<String> = w.rooms.iter().map(|r| format!("#{r}")).collect();
                        parts.push(format!("in {} with you", rooms.join(", ")));
                    }
                    if let Some(reason) = &w.away {
                        parts.push(format!("away: {reason}"));
                    }
                } else {
                    parts.push("offline".to_owned());
                }
                self.info_active(format!("{}: {}", w.nick, parts.join("; ")));
            }
            Reply::Away(a) => match a.away {
                Some(reason) => self.info_active(format!("you are away: {reason}")),
                None => self.info_active("you are back"),
            },
            Reply::Who(w) => {
                if let Some(r) = self.find_window(nsp, &WindowKind::Room(w.room.clone())) {
                    self.windows[r].members = w.members.clone();
                    self.windows[r].away = w.away.iter().cloned().collect();
                    self.windows[r].operators = w.operators.iter().cloned().collect();
                }
                let i = self.answer_window(nsp, &w.room);
                self.info(
                    i,
                    format!(
                        "#{} has {} member{}: {}",
                        w.room,
                        w.members.len(),
                        if w.members.len() == 1 { "" } else { "s" },
                        w.members.join(", ")
                    ),
                );
            }
            Reply::Topic(t) => {
                if let Some(r) = self.find_window(nsp, &WindowKind::Room(t.room.clone())) {
                    self.windows[r].topic = t.topic.clone();
                }
                let i = self.answer_window(nsp, &t.room);
                let text = match &t.topic {
                    Some(topic) if !topic.is_empty() => {
                        format!("topic of #{}: {topic}", t.room)
                    }
                    _ => format!("#{} has no topic", t.room),
                };
                self.info(i, text);
            }
            Reply::History(h) => self.prepend_history(nsp, h),
            // The room shows the event when we are in it; otherwise this is the only word.
            Reply::Moderation(m) => {
                let in_room = self
                    .find_window(nsp, &WindowKind::Room(m.room.clone()))
                    .is_some_and(|i| !self.windows[i].leaving);
                if !in_room {
                    let text = moderation_line(&m, &self.nick, self.clock.now_ms());
                    self.info_active(text);
                }
            }
            // The room's `deleted` event says it when we are in the room.
            Reply::Deleted(d) => {
                let in_room = self
                    .find_window(nsp, &WindowKind::Room(d.room.clone()))
                    .is_some_and(|i| !self.windows[i].leaving);
                if !in_room {
                    self.info_active(format!("message #{} of #{} deleted", d.seq, d.room));
                }
            }
            Reply::Unregistered(u) => {
                self.info_active(format!("{} is no longer registered", u.nick));
            }
            Reply::PasswordReset(r) => self.info_active(format!("password of {} reset", r.nick)),
            // Answered with its request (`on_net`).
            Reply::Search(_) => {}
            Reply::Pong { rtt } => self.lag = Some(rtt),
        }
    }

    pub(super) fn on_joined(&mut self, nsp: &str, j: events::JoinReply, automatic: bool) {
        let kind = WindowKind::Room(j.room.clone());
        // A window we are still a member of: this is a rejoin (after a reconnect). A window
        // we had left (or lost with its namespace) is joined afresh.
        let existed = self
            .find_window(nsp, &kind)
            .is_some_and(|i| !self.windows[i].leaving);
        let i = self.window(nsp, kind);
        self.windows[i].leaving = false;
        if let Some(ns) = self.namespaces.iter_mut().find(|n| n.name == nsp) {
            ns.rooms.insert(j.room.clone());
        }
        if let Some(w) = self.windows.get_mut(i) {
            w.members = j.members.clone();
            w.operators = j.operators.iter().cloned().collect();
            w.topic = j.topic.clone();
        }
        let fresh: Vec<events::ChatMessage> = {
            let w = &self.windows[i];
            j.history
                .into_iter()
                .filter(|m| w.seen.get(&m.seq) != Some(&m.id))
                .collect()
        };
        if automatic || existed {
            let from = self.windows[i].catch_up_from.take();
            let fresh_count = fresh.len();
            for m in fresh {
                self.show_message(i, m);
            }
            self.announce_missed(i, from, fresh_count);
            return;
        } else {
            // A room the user asked for becomes the active window before its history is
            // shown, so that history does not count as unread.
            self.switch_to(i);
            self.info(
                i,
                format!(
                    "you joined #{} ({})",
                    j.room,
                    crate::layout::members(j.members.len())
                ),
            );
            if let Some(topic) = &j.topic {
                self.info(i, format!("topic: {topic}"));
            }
        }
        for m in fresh {
            self.show_message(i, m);
        }
    }

    /// Puts "N new message(s) while you were away" above the messages that arrived since
    /// the reconnect (`from`) or came with the rejoin.
    fn announce_missed(&mut self, i: usize, from: Option<usize>, fresh: usize) {
        let Some(w) = self.windows.get(i) else {
            return;
        };
        let at = from.unwrap_or(w.lines.len() - fresh.min(w.lines.len()));
        let at = at.min(w.lines.len());
        let missed = w.lines[at..]
            .iter()
            .filter(|l| matches!(l.kind, LineKind::Message { .. }))
            .count();
        if missed == 0 {
            return;
        }
        let kind = LineKind::Info(format!("{missed} new message(s) while you were away"));
        let journal = self.journal_line(i, &kind);
        self.journal.push(journal);
        let ts = self.clock.now_ms();
        let w = &mut self.windows[i];
        w.lines.insert(at, Line { ts, kind });
        if w.read_upto > at && w.read_upto < w.lines.len() {
            w.read_upto += 1;
        }
        if let Some(m) = w.marker.as_mut()
            && *m >= at
        {
            *m += 1;
        }
    }

    /// Shows a room message once: a (namespace, room, seq) already shown is skipped.
    pub(super) fn show_message(&mut self, i: usize, m: events::ChatMessage) {
        let Some(w) = self.windows.get_mut(i) else {
            return;
        };
        if w.seen.get(&m.seq) == Some(&m.id) {
            return;
        }
        w.seen.insert(m.seq, m.id.clone());
        let mention = m.from != self.nick && self.mentions_us(&m.text);
        self.push_line(
            i,
            LineKind::Message {
                from: m.from,
                text: m.text,
                action: m.action,
                seq: Some(m.seq),
                mention,
            },
            m.ts,
        );
    }

    pub(super) fn on_server_event(&mut self, nsp: &str, event: ServerEvent) {
        match event {
            ServerEvent::Message(m) => {
                self.typing
                    .retain(|t| !(t.nsp == nsp && t.room == m.room && t.nick == m.from));
                let i = self.window(nsp, WindowKind::Room(m.room.clone()));
                self.show_message(i, m);
            }
            ServerEvent::Dm(d) => {
                let i = self.window(nsp, WindowKind::Dm(d.from.clone()));
                self.push_line(
                    i,
                    LineKind::Message {
                        from: d.from,
                        text: d.text,
                        action: d.action,
                        seq: None,
                        mention: true,
                    },
                    d.ts,
                );
            }
            ServerEvent::Presence(p) => {
                if let (PresenceAction::Nick, Some(old)) = (p.action, &p.previous) {
                    // Once per change, whichever shared room tells it first.
                    self.rename_dm(old, &p.nick);
                }
                let Some(i) = self.find_window(nsp, &WindowKind::Room(p.room.clone())) else {
                    return;
                };
                let w = &mut self.windows[i];
                let text = match p.action {
                    PresenceAction::Join => {
                        if !w.members.contains(&p.nick) {
                            w.members.push(p.nick.clone());
                            w.members.sort();
                        }
                        format!("{} joined #{}", p.nick, p.room)
                    }
                    PresenceAction::Away => {
                        w.away.insert(p.nick.clone());
                        match &p.reason {
                            Some(reason) => format!("{} is away: {reason}", p.nick),
                            None => format!("{} is away", p.nick),
                        }
                    }
                    PresenceAction::Back => {
                        w.away.remove(&p.nick);
                        format!("{} is back", p.nick)
                    }
                    PresenceAction::Leave | PresenceAction::Quit => {
                        w.away.remove(&p.nick);
                        w.members.retain(|m| m != &p.nick);
                        if p.action == PresenceAction::Leave {
                            format!("{} left #{}", p.nick, p.room)
                        } else {
                            format!("{} quit", p.nick)
                        }
                    }
                    PresenceAction::Nick => {
                        let old = p.previous.clone().unwrap_or_default();
                        if w.away.remove(&old) {
                            w.away.insert(p.nick.clone());
                        }
                        w.members.retain(|m| m != &old);
                        if !w.members.contains(&p.nick) {
                            w.members.push(p.nick.clone());
                            w.members.sort();
                        }
                        format!("{old} is now known as {}", p.nick)
                    }
                };
                self.info(i, text);
            }
            ServerEvent::Room(r) => {
                if let Some(ns) = self.namespaces.iter_mut().find(|n| n.name == nsp) {
                    match r.action {
                        RoomAction::Created => {
                            ns.rooms.insert(r.room.clone());
                        }
                        RoomAction::Deleted => {
                            ns.rooms.remove(&r.room);
                        }
                    }
                }
                // No line: a room "created" after a restart existed all along, and one whose
                // last member left keeps its history. The event only keeps the namespace's
                // room list (completion) current.
            }
            ServerEvent::Topic(t) => {
                let i = self.window(nsp, WindowKind::Room(t.room.clone()));
                self.windows[i].topic = t.topic.clone();
                let text = match &t.topic {
                    Some(topic) if !topic.is_empty() => {
                        format!("{} set the topic of #{}: {topic}", t.by, t.room)
                    }
                    _ => format!("{} cleared the topic of #{}", t.by, t.room),
                };
                self.info(i, text);
            }
            ServerEvent::Moderation(m) => self.on_moderation(nsp, *m),
            ServerEvent::Deleted(d) => {
                let Some(i) = self.find_window(nsp, &WindowKind::Room(d.room.clone())) else {
                    return;
                };
                // The message's line (if shown) keeps its place, its text gone.
                let w = &mut self.windows[i];
                for line in &mut w.lines {
                    if let LineKind::Message { seq, text, .. } = &mut line.kind
                        && *seq == Some(d.seq)
                    {
                        *text = format!("(message deleted by {})", d.by);
                    }
                }
                self.info(
                    i,
                    format!("{} deleted message #{} of #{}", d.by, d.seq, d.room),
                );
            }
            ServerEvent::Notice(n) => {
                let i = self.target(nsp, None);
                self.info(i, format!("notice: {}", n.text));
            }
            ServerEvent::Typing(t) => {
                if t.nick != self.nick {
                    let until = self.clock.now_ms() + TYPING_SHOWN_MS;
                    self.typing
                        .retain(|x| !(x.nsp == nsp && x.room == t.room && x.nick == t.nick));
                    self.typing.push(Typist {
                        nsp: nsp.to_owned(),
                        room: t.room,
                        nick: t.nick,
                        until,
                    });
                }
            }
            ServerEvent::Limits(l) => {
                // The same server for every namespace: the last word holds.
                self.max_text_len = Some(l.max_text_len.min(names::TEXT_MAX));
            }
            ServerEvent::Unknown(what) => {
                let i = self.window(nsp, WindowKind::Server);
                self.info(i, format!("unknown event: {what}"));
            }
        }
    }
}

impl App {
    /// A `moderation` event: one line in the room, and the nick list kept in step (a kick
    /// removes its target; a kick of us leaves the room).
    fn on_moderation(&mut self, nsp: &str, m: events::Moderation) {
        let Some(i) = self.find_window(nsp, &WindowKind::Room(m.room.clone())) else {
            return;
        };
        let us =
            chat_protocol::names::nick_key(&m.target) == chat_protocol::names::nick_key(&self.nick);
        let w = &mut self.windows[i];
        match m.action {
            ModerationAction::Kick => {
                w.members.retain(|n| n != &m.target);
                w.away.remove(&m.target);
                w.operators.remove(&m.target);
                if us {
                    w.leaving = true;
                }
            }
            ModerationAction::Op => {
                w.operators.insert(m.target.clone());
            }
            ModerationAction::Deop => {
                w.operators.remove(&m.target);
            }
            _ => {}
        }
        let text = moderation_line(&m, &self.nick, self.clock.now_ms());
        if us && m.action == ModerationAction::Kick {
            self.error(i, text);
        } else {
            self.info(i, text);
        }
    }
}

/// What a moderation command is called, for its refusal.
fn moderation_words(action: &crate::command::Moderate) -> String {
    use crate::command::Moderate as M;
    match action {
        M::Kick { nick, .. } => format!("kick of {nick}"),
        M::Ban { target, .. } => format!("ban of {target}"),
        M::Unban(t) => format!("unban of {t}"),
        M::Mute { nick, .. } => format!("mute of {nick}"),
        M::Unmute(n) => format!("unmute of {n}"),
        M::Op(n) => format!("op of {n}"),
        M::Deop(n) => format!("deop of {n}"),
    }
}

/// The line a `moderation` event shows: "ada kicked bob from #r (spam)", "you were kicked
/// from #r by ada", "ada banned bob from #r for 2 h (spam)".
pub(crate) fn moderation_line(m: &events::Moderation, own_nick: &str, now_ms: i64) -> String {
    let us = chat_protocol::names::nick_key(&m.target) == chat_protocol::names::nick_key(own_nick);
    let (actor, target, room) = (&m.actor, &m.target, &m.room);
    let mut text = match m.action {
        ModerationAction::Kick if us => format!("you were kicked from #{room} by {actor}"),
        ModerationAction::Kick => format!("{actor} kicked {target} from #{room}"),
        ModerationAction::Ban => format!("{actor} banned {target} from #{room}"),
        ModerationAction::Unban => format!("{actor} lifted the ban on {target} in #{room}"),
        ModerationAction::Mute => format!("{actor} muted {target} in #{room}"),
        ModerationAction::Unmute => format!("{actor} unmuted {target} in #{room}"),
        ModerationAction::Op => format!("{actor} made {target} an operator of #{room}"),
        ModerationAction::Deop => format!("{actor} took operator status from {target} in #{room}"),
        ModerationAction::Unknown => format!("{actor} moderated {target} in #{room}"),
    };
    if let Some(until) = m.until {
        // `until` and `now_ms` are milliseconds; rounded up to the second.
        let secs = ((until - now_ms).max(0) as u64).div_ceil(1000);
        text.push_str(&format!(" for {}", idle_words(secs.max(1))));
    }
    if let Some(reason) = &m.reason {
        text.push_str(&format!(" ({reason})"));
    }
    text
}

/// "3 s", "5 min", "2 h 10 min", "3 days".
fn idle_words(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: ModerationAction, until: Option<i64>) -> events::Moderation {
        events::Moderation {
            room: "ops".into(),
            actor: "alice".into(),
            action,
            target: "bob".into(),
            reason: Some("spam".into()),
            until,
        }
    }

    /// A ban's end is milliseconds since the epoch: ten minutes from now reads "10 min".
    #[test]
    fn a_timed_ban_or_mute_says_how_long() {
        let now = 1_800_000_000_000;
        let ban = event(ModerationAction::Ban, Some(now + 10 * 60 * 1000));
        assert_eq!(
            moderation_line(&ban, "carol", now),
            "alice banned bob from #ops for 10 min (spam)"
        );
        let mute = event(ModerationAction::Mute, Some(now + 2 * 3600 * 1000));
        assert_eq!(
            moderation_line(&mute, "carol", now),
            "alice muted bob in #ops for 2 h 0 min (spam)"
        );
        let forever = event(ModerationAction::Ban, None);
        assert_eq!(
            moderation_line(&forever, "carol", now),
            "alice banned bob from #ops (spam)"
        );
    }
}
