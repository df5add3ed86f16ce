//! What a typed (or scripted) line does: messages, commands, and Tab completion.

use super::*;

impl App {
    pub(super) fn open_namespace(&mut self, name: &str, key: Option<String>) {
        if self.ns_info(name).is_none() {
            self.namespaces.push(NsInfo {
                name: name.to_owned(),
                status: NsStatus::Connecting,
                rooms: BTreeSet::new(),
            });
        } else if let Some(ns) = self.namespaces.iter_mut().find(|n| n.name == name) {
            ns.status = NsStatus::Connecting;
        }
        self.window(name, WindowKind::Server);
        self.outbox.push(NetCommand::Connect {
            nsp: name.to_owned(),
            key,
        });
    }

    pub(super) fn request(&mut self, nsp: &str, request: Request) {
        self.in_flight += 1;
        self.outbox.push(NetCommand::Request {
            nsp: nsp.to_owned(),
            request,
        });
    }

    /// Handles one line as typed: a command or a message for the active window.
    pub fn submit(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        match command::parse(line) {
            Err(e) => self.error_active(e.to_string()),
            Ok(Input::Message(text)) => self.send_text(&text, false),
            Ok(Input::Command(cmd)) => self.run_command(cmd),
        }
    }

    /// Sends text to the active room or DM partner.
    pub(super) fn send_text(&mut self, text: &str, action: bool) {
        // As the server stores it (a pasted CR LF is a newline), so its answer matches the
        // line shown while it is on its way.
        let text = &*names::normalize_newlines(text);
        // Over the server's limit (its `limits` event): several messages, cut between words.
        let max = self.max_text_len.unwrap_or(names::TEXT_MAX);
        let pieces = if text.chars().count() > max {
            match crate::split::split_at_words(text, max) {
                Some(pieces) => pieces,
                None => {
                    // Never lost: back to the input line to be shortened.
                    let kept = self.keep_unsent(text);
                    self.error_active(format!(
                        "a word is longer than the server's limit of {max} characters{kept}"
                    ));
                    return;
                }
            }
        } else {
            vec![text.to_owned()]
        };
        for piece in &pieces {
            if let Err(e) = names::validate_text(piece) {
                // Never lost: a text the server would refuse goes back to the input line.
                let kept = self.keep_unsent(text);
                self.error_active(format!("{e}{kept}"));
                return;
            }
        }
        for piece in &pieces {
            self.send_piece(piece, action);
        }
    }

    /// Sends one message (within the limits) to the active room or DM partner.
    fn send_piece(&mut self, text: &str, action: bool) {
        let Some(w) = self.active_window() else {
            return;
        };
        let nsp = w.nsp.clone();
        match w.kind.clone() {
            WindowKind::Room(room) => {
                self.request(
                    &nsp,
                    Request::Message {
                        room,
                        text: text.to_owned(),
                        action,
                    },
                );
                self.push_pending(self.active, text, action);
            }
            WindowKind::Dm(to) => {
                self.request(
                    &nsp,
                    Request::Dm {
                        to,
                        text: text.to_owned(),
                        action,
                    },
                );
                self.push_pending(self.active, text, action);
            }
            WindowKind::Server => {
                self.error_active("this window is not a room: /join <room> first (or /help)");
            }
        }
    }

    pub(super) fn run_command(&mut self, cmd: Command) {
        let nsp = self.current_ns().to_owned();
        let current_room = self
            .active_window()
            .and_then(|w| w.room())
            .map(str::to_owned);
        match cmd {
            Command::Join(room) => match names::validate_room(&room) {
                Err(e) => self.error_active(e.to_string()),
                Ok(()) => match self.find_window(&nsp, &WindowKind::Room(room.clone())) {
                    Some(i) if !self.windows[i].leaving => self.switch_to(i),
                    _ => self.request(&nsp, Request::Join { room }),
                },
            },
            Command::Leave(room) => match room.or(current_room) {
                Some(room) => {
                    if let Some(i) = self.find_window(&nsp, &WindowKind::Room(room.clone())) {
                        self.windows[i].leaving = true;
                    }
                    self.request(&nsp, Request::Leave { room });
                }
                None => {
                    if matches!(
                        self.active_window().map(|w| &w.kind),
                        Some(WindowKind::Dm(_))
                    ) {
                        // Closing a conversation is local.
                        self.remove_window(self.active);
                    } else {
                        self.error_active("which room? /leave <room>");
                    }
                }
            },
            Command::Namespace { name, key } => {
                if let Err(e) = names::validate_namespace(&name) {
                    self.error_active(e.to_string());
                    return;
                }
                let status = self.ns_info(&name).map(|n| n.status.clone());
                match status {
                    Some(NsStatus::Connected | NsStatus::Connecting) => {}
                    _ => {
                        self.open_namespace(&name, key);
                        let i = self.window(&name, WindowKind::Server);
                        self.info(i, format!("connecting to {name}..."));
                    }
                }
                let i = self.window(&name, WindowKind::Server);
                self.switch_to(i);
            }
            Command::Nick(nick) => {
                if let Err(e) = names::validate_nick(&nick) {
                    self.error_active(e.to_string());
                    return;
                }
                let connected = self
                    .namespaces
                    .iter()
                    .find(|n| n.status == NsStatus::Connected)
                    .map(|n| n.name.clone());
                match connected {
                    Some(c) => {
                        let on = if self.ns_info(&nsp).map(|n| &n.status)
                            == Some(&NsStatus::Connected)
                        {
                            nsp
                        } else {
                            c
                        };
                        self.request(&on, Request::Nick { nick });
                    }
                    None => {
                        // Not connected anywhere: use it for the next CONNECT.
                        self.info_active(format!("you will connect as {nick}"));
                        self.nick = nick.clone();
                        for ns in &mut self.namespaces {
                            if matches!(ns.status, NsStatus::Refused(_)) {
                                ns.status = NsStatus::Connecting;
                            }
                        }
                        self.outbox.push(NetCommand::SetNick(nick));
                    }
                }
            }
            Command::Msg { to, text } => {
                if let Err(e) = names::validate_nick(&to).and(names::validate_text(&text)) {
                    self.error_active(e.to_string());
                    return;
                }
                self.request(
                    &nsp,
                    Request::Dm {
                        to,
                        text,
                        action: false,
                    },
                );
            }
            Command::Query { to, text } => {
                if let Err(e) = names::validate_nick(&to) {
                    self.error_active(e.to_string());
                    return;
                }
                let i = self.window(&nsp, WindowKind::Dm(to.clone()));
                self.switch_to(i);
                if let Some(text) = text {
                    self.send_text(&text, false);
                }
            }
            Command::Close => self.close_window(),
            Command::Whois(nick) => match names::validate_nick(&nick) {
                Ok(()) => self.request(&nsp, Request::Whois { nick }),
                Err(e) => self.error_active(e.to_string()),
            },
            // Away is the connection's, in every namespace: asked once, in the first.
            Command::Away(reason) => {
                let first = self
                    .namespaces
                    .first()
                    .map_or_else(|| nsp.clone(), |n| n.name.clone());
                self.request(&first, Request::Away { reason });
            }
            Command::Clear => {
                if let Some(w) = self.windows.get_mut(self.active) {
                    w.lines.clear();
                    w.scroll = 0;
                    w.read_upto = 0;
                    w.marker = None;
                }
            }
            Command::Me(text) => self.send_text(&text, true),
            Command::Who(room) => match room.or(current_room) {
                Some(room) => self.request(&nsp, Request::Who { room }),
                None => self.error_active("which room? /who <room>"),
            },
            Command::Rooms => self.request(&nsp, Request::Rooms),
            Command::Topic(topic) => match current_room {
                Some(room) => self.request(&nsp, Request::Topic { room, topic }),
                None => self.error_active("/topic works in a room window"),
            },
            Command::Moderate(action) => match current_room {
                Some(room) => self.request(
                    &nsp,
                    Request::Moderate {
                        room,
                        action: Box::new(action),
                    },
                ),
                None => self.error_active("moderation works in a room window"),
            },
            Command::Search(text) => self.start_search(&text),
            Command::Help => self.show_help(),
            Command::Quit => self.request_quit(),
            Command::Wait(_) | Command::Expect(_) => {
                self.error_active("/wait and /expect only work in --script mode");
            }
        }
    }

    /// `/close`: a room is left (its window goes with the server's answer), a conversation
    /// closed, a namespace's window disconnects that namespace, unless it is the last.
    fn close_window(&mut self) {
        let Some(w) = self.active_window() else {
            return;
        };
        let nsp = w.nsp.clone();
        match w.kind.clone() {
            WindowKind::Room(room) => self.run_command(Command::Leave(Some(room))),
            WindowKind::Dm(_) => self.remove_window(self.active),
            WindowKind::Server => {
                if self.namespaces.len() <= 1 {
                    self.error_active("the last namespace stays open: /quit to leave the chat");
                    return;
                }
                self.outbox
                    .push(NetCommand::Disconnect { nsp: nsp.clone() });
                self.namespaces.retain(|n| n.name != nsp);
                self.typing.retain(|t| t.nsp != nsp);
                while let Some(i) = self.windows.iter().position(|w| w.nsp == nsp) {
                    self.remove_window(i);
                }
                self.active = self.active.min(self.windows.len().saturating_sub(1));
                let first = self.namespaces[0].name.clone();
                let i = self.window(&first, WindowKind::Server);
                self.switch_to(i);
                self.info(i, format!("you closed {nsp}"));
            }
        }
    }

    pub(super) fn show_help(&mut self) {
        self.info_active("commands:");
        for c in command::COMMANDS {
            let tail = if c.script_only { " (scripts)" } else { "" };
            self.info_active(format!("  {:<22} {}{tail}", c.usage, c.help));
        }
        self.info_active("keys:");
        for (key, what) in command::KEYS {
            self.info_active(format!("  {key:<22} {what}"));
        }
        self.info_active("  //text sends a line that starts with /");
    }

    pub(super) fn complete(&mut self, forward: bool) {
        if let Some(c) = &mut self.completion {
            let n = c.candidates.len();
            c.index = if forward {
                (c.index + 1) % n
            } else {
                (c.index + n - 1) % n
            };
            let (start, word) = (c.start, c.candidates[c.index].clone());
            self.input.replace_before_cursor(start, &word);
            return;
        }
        let before = self.input.before_cursor().to_owned();
        let start_byte = before.rfind(char::is_whitespace).map_or(0, |i| {
            i + before[i..].chars().next().map_or(1, char::len_utf8)
        });
        let word = &before[start_byte..];
        let start = before[..start_byte].chars().count();
        let first_word = start == 0;
        let candidates = self.candidates(word, first_word, &before);
        if candidates.is_empty() {
            return;
        }
        self.input.replace_before_cursor(start, &candidates[0]);
        if candidates.len() > 1 {
            self.completion = Some(Completion {
                start,
                candidates,
                index: 0,
            });
        }
    }

    pub(super) fn candidates(&self, word: &str, first_word: bool, line: &str) -> Vec<String> {
        let lower = word.to_lowercase();
        let mut out: Vec<String> = Vec::new();
        if first_word && word.starts_with('/') {
            for c in command::COMMANDS.iter().filter(|c| !c.script_only) {
                let full = format!("/{} ", c.name);
                if full.starts_with(&lower) {
                    out.push(full);
                }
            }
            return out;
        }
        let nsp = self.current_ns();
        let mut rooms: BTreeSet<String> = self
            .ns_info(nsp)
            .map(|n| n.rooms.clone())
            .unwrap_or_default();
        for w in self.windows.iter().filter(|w| w.nsp == nsp) {
            if let Some(r) = w.room() {
                rooms.insert(r.to_owned());
            }
        }
        let wants_room = word.starts_with('#')
            || line.starts_with("/join ")
            || line.starts_with("/leave ")
            || line.starts_with("/who ");
        if wants_room {
            let bare = lower.trim_start_matches('#');
            for r in &rooms {
                if r.to_lowercase().starts_with(bare) {
                    out.push(if word.starts_with('#') {
                        format!("#{r} ")
                    } else {
                        format!("{r} ")
                    });
                }
            }
            return out;
        }
        // Nicks seen anywhere in this namespace: members, DM partners, recent senders.
        let mut nicks: BTreeSet<String> = BTreeSet::new();
        for w in self.windows.iter().filter(|w| w.nsp == nsp) {
            nicks.extend(w.members.iter().cloned());
            if let WindowKind::Dm(n) = &w.kind {
                nicks.insert(n.clone());
            }
            for l in w.lines.iter().rev().take(200) {
                if let LineKind::Message { from, .. } = &l.kind {
                    nicks.insert(from.clone());
                }
            }
        }
        nicks.remove(&self.nick);
        for n in nicks {
            if n.to_lowercase().starts_with(&lower) {
                out.push(if first_word {
                    format!("{n}: ")
                } else {
                    format!("{n} ")
                });
            }
        }
        out
    }
}
