//! The client's side of the conversation, without I/O: numbering requests,
//! remembering what each was for, turning server frames into notices, and
//! what must survive a lost connection — the credentials, the last `seq`
//! shown in each stream ([`Streams`]) and the messages not yet acknowledged
//! ([`Outbox`]).
//!
//! The network thread owns one [`Session`] for the whole process, across
//! connections; keeping it free of sockets lets the tests below play both
//! sides.

use std::collections::HashMap;

use chat_common::protocol::GROUP_PREFIX;
use chat_common::{Departure, ErrorCode, Request, ServerFrame, Stored, EVERYONE};

use crate::command::GroupOp;
use crate::outbox::Outbox;
use crate::roster::SharedRoster;
use crate::streams::Streams;

mod notice;

pub use notice::{Notice, Query};

/// Why the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// We said bye and the server agreed (or closed), or we left while
    /// disconnected.
    Left,
    /// The operator removed us, or flood control did; never reconnected.
    Kicked,
    /// The server is going down (ends the session only when reconnecting
    /// is off).
    Shutdown,
    /// The connection broke or the server closed it unasked, and it could
    /// not be (or may not be) established again.
    Lost,
    /// Someone logged in to this account elsewhere; never reconnected, or
    /// the two clients would take turns forever.
    TakenOver,
    /// Logging in again after a lost connection was refused (the password
    /// no longer matches, say).
    Refused,
}

/// What a frame meant for the user interface and the network thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Something to show.
    Show(Notice),
    /// The login the user asked for was accepted under this nickname.
    LoggedIn(String),
    /// The login the user asked for was refused; the server's reason.
    LoginRefused { code: ErrorCode, reason: String },
    /// A request to write now: what waited for the welcome of a new
    /// connection (the outbox, questions not yet answered).
    Send(Request),
    /// The frame repeats a message already shown: show nothing, not even
    /// the raw line.
    Duplicate,
    /// The session is over, or (for [`Ending::Lost`] and
    /// [`Ending::Shutdown`]) this connection is.
    Ended(Ending),
}

/// A nickname and password, kept to log in again after a lost connection.
#[derive(Clone, PartialEq, Eq)]
struct Credentials {
    nick: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, <password>)", self.nick)
    }
}

/// What a request was, kept until its answer arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    /// `again`: an automatic login after a lost connection, not the user's.
    Login {
        again: bool,
    },
    /// A message in the outbox, by its `cid`.
    Message {
        cid: String,
    },
    Online,
    /// `online` asked for the roster, not by the user: answered silently.
    Refresh,
    History {
        query: Query,
        limit: Option<u32>,
    },
    /// A `!group` subcommand.
    Group(GroupOp),
    /// The next page of what we missed.
    More,
    /// A keepalive.
    Ping,
    Bye,
}

impl Pending {
    /// A question asked again after a reconnect if it was not answered.
    fn is_question(&self) -> bool {
        matches!(
            self,
            Pending::Online
                | Pending::History { .. }
                | Pending::Group(GroupOp::List | GroupOp::Members { .. })
        )
    }
}

/// Request numbering and the state the answers need.
#[derive(Debug)]
pub struct Session {
    next_id: u64,
    pending: HashMap<u64, Pending>,
    /// Questions asked while disconnected, or lost with a connection: asked
    /// after the next welcome, in order.
    questions: Vec<Pending>,
    /// Our nickname as the server spells it.
    me: Option<String>,
    /// The last login accepted: a lost connection logs in with these.
    credentials: Option<Credentials>,
    /// The login on its way.
    trying: Option<Credentials>,
    /// Logged in on the current connection.
    online: bool,
    roster: SharedRoster,
    streams: Streams,
    outbox: Outbox,
    /// Catching up page by page (`docs/protocol.md`, "Reliable delivery"):
    /// the missed messages still to read in this page, and how many wait
    /// after it (asked for with `more` once this page is read).
    page_frames: u32,
    page_left: u32,
}

impl Session {
    pub fn new(roster: SharedRoster) -> Self {
        Session::with_outbox(roster, Outbox::random())
    }

    /// A session whose message ids are predictable, for tests.
    pub fn with_outbox(roster: SharedRoster, outbox: Outbox) -> Self {
        Session {
            next_id: 1,
            pending: HashMap::new(),
            questions: Vec::new(),
            me: None,
            credentials: None,
            trying: None,
            online: false,
            roster,
            streams: Streams::default(),
            outbox,
            page_frames: 0,
            page_left: 0,
        }
    }

    /// Logged in on the current connection.
    /// The file offers waiting for an answer, for completion.
    pub fn set_offers(&self, offers: Vec<u64>) {
        self.roster.lock().offers = offers;
    }

    pub fn is_logged_in(&self) -> bool {
        self.online
    }

    /// A login was accepted once in this process, so a lost connection is
    /// worth reconnecting.
    pub fn has_logged_in(&self) -> bool {
        self.credentials.is_some()
    }

    /// Whether something has not been answered yet: a request on its way,
    /// a message not acknowledged, a question waiting for a connection.
    pub fn is_waiting(&self) -> bool {
        !self.pending.is_empty() || !self.outbox.is_empty() || !self.questions.is_empty()
    }

    /// Whether some typed message has not been stored by the server yet.
    pub fn has_unacknowledged(&self) -> bool {
        !self.outbox.is_empty()
    }

    fn track(&mut self, what: Pending) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, what);
        id
    }

    /// The user's login.
    pub fn login(&mut self, nick: String, password: String) -> Request {
        let (last_seq, last_public) = self.streams.resume();
        self.trying = Some(Credentials {
            nick: nick.clone(),
            password: password.clone(),
        });
        Request::Login {
            id: self.track(Pending::Login { again: false }),
            nick,
            password,
            last_seq,
            last_public,
        }
    }

    /// Logging in again on a new connection, resuming each stream after
    /// the last message shown; `None` if no login was ever accepted.
    pub fn relogin(&mut self) -> Option<Request> {
        let Credentials { nick, password } = self.credentials.clone()?;
        let (last_seq, last_public) = self.streams.resume();
        Some(Request::Login {
            id: self.track(Pending::Login { again: true }),
            nick,
            password,
            last_seq,
            last_public,
        })
    }

    /// A message to everyone (`receiver` is `*`) or to one person. It goes
    /// into the outbox; it is sent at once if logged in (the returned
    /// [`Update::Send`]), else after the next welcome.
    pub fn say(&mut self, receiver: String, text: String) -> Vec<Update> {
        let entry = self.outbox.push(receiver, text).clone();
        let mut updates = Vec::new();
        let group = entry.receiver.starts_with(GROUP_PREFIX);
        if entry.receiver != EVERYONE && !group {
            self.roster.lock().saw(&entry.receiver);
            updates.push(Update::Show(Notice::PrivateTo {
                receiver: entry.receiver.clone(),
                text: entry.text.clone(),
                number: entry.number,
            }));
        } else if !self.online {
            // Typed while connected, a public or group message is shown by
            // its echo.
            updates.push(Update::Show(Notice::PublicPending {
                text: entry.text.clone(),
                number: entry.number,
            }));
        }
        if self.online {
            updates.push(Update::Send(self.send_entry(&entry.cid)));
        }
        updates
    }

    /// The request carrying the outbox entry `cid`, tracked.
    fn send_entry(&mut self, cid: &str) -> Request {
        let entry = self
            .outbox
            .entries()
            .find(|e| e.cid == cid)
            .expect("an entry of the outbox")
            .clone();
        let id = self.track(Pending::Message {
            cid: entry.cid.clone(),
        });
        self.outbox.sent(&entry.cid, id);
        Request::Message {
            id,
            receiver: entry.receiver,
            text: entry.text,
            cid: Some(entry.cid),
        }
    }

    /// A question (`online`, `history`, `search`): asked now if logged in,
    /// else after the next welcome.
    fn ask(&mut self, what: Pending) -> Option<Request> {
        if !self.online {
            self.questions.push(what);
            return None;
        }
        Some(self.question(what))
    }

    fn question(&mut self, what: Pending) -> Request {
        let request = |id| match &what {
            Pending::History {
                query: Query::Search { words, from },
                limit,
            } => Request::Search {
                id,
                words: words.clone(),
                from: from.clone(),
                limit: limit.unwrap_or(chat_common::protocol::DEFAULT_HISTORY),
            },
            Pending::History { query, limit } => Request::History {
                id,
                with: match query {
                    Query::With(nick) => Some(nick.clone()),
                    _ => None,
                },
                limit: limit.unwrap_or(chat_common::protocol::DEFAULT_HISTORY),
            },
            Pending::Group(op) => op.request(id),
            _ => Request::Online { id },
        };
        let id = self.track(what.clone());
        request(id)
    }

    /// A keepalive `ping` (answered by a `pong`, shown nowhere).
    pub fn ping(&mut self) -> Request {
        Request::Ping {
            id: self.track(Pending::Ping),
        }
    }

    pub fn online(&mut self) -> Option<Request> {
        self.ask(Pending::Online)
    }

    /// `!history [nick] [N]`.
    pub fn history(&mut self, with: Option<String>, limit: Option<u32>) -> Option<Request> {
        if let Some(nick) = &with {
            self.roster.lock().saw(nick);
        }
        let query = with.map_or(Query::Public, Query::With);
        self.ask(Pending::History { query, limit })
    }

    /// `!search <words> [from:nick]`.
    pub fn search(&mut self, words: String, from: Option<String>) -> Option<Request> {
        self.ask(Pending::History {
            query: Query::Search { words, from },
            limit: None,
        })
    }

    /// `!group …` (posting goes through [`Session::say`]).
    pub fn group(&mut self, op: GroupOp) -> Option<Request> {
        self.ask(Pending::Group(op))
    }

    /// The answer to a `!group` subcommand: the group as it is now.
    fn on_group(
        &mut self,
        what: Option<Pending>,
        group: chat_common::protocol::GroupInfo,
        members: Vec<String>,
        online: Vec<String>,
    ) -> Vec<Update> {
        if group.member {
            self.roster.lock().add_group(&group.name);
        }
        let verb = match what {
            Some(Pending::Group(GroupOp::Create { .. })) => "created",
            Some(Pending::Group(GroupOp::Add { .. } | GroupOp::Remove { .. })) => "changed",
            Some(Pending::Group(GroupOp::Join { .. })) => "joined",
            _ => "members of",
        };
        vec![Update::Show(Notice::GroupInfo {
            verb: verb.to_string(),
            group,
            members,
            online,
        })]
    }

    /// A quiet `online` request, answered silently into the roster, if the
    /// roster is stale and no such request is already on its way.
    pub fn refresh(&mut self) -> Option<Request> {
        let refreshing = self.pending.values().any(|p| *p == Pending::Refresh);
        if !self.online || refreshing || !self.roster.lock().stale {
            return None;
        }
        Some(Request::Online {
            id: self.track(Pending::Refresh),
        })
    }

    pub fn bye(&mut self) -> Request {
        Request::Bye {
            id: self.track(Pending::Bye),
        }
    }

    /// The `received` to send after a batch of frames, if private messages
    /// were shown since the last one.
    pub fn received(&mut self) -> Option<Request> {
        if !self.online {
            return None;
        }
        self.streams.received().map(|seq| Request::Received { seq })
    }

    /// The connection is gone: nothing pending on it will be answered.
    /// Messages stay in the outbox and questions are asked again after the
    /// next welcome; the rest is forgotten.
    pub fn disconnected(&mut self) {
        self.online = false;
        let mut lost: Vec<(u64, Pending)> = self.pending.drain().collect();
        lost.sort_by_key(|(id, _)| *id);
        let mut questions: Vec<Pending> = lost
            .into_iter()
            .map(|(_, what)| what)
            .filter(Pending::is_question)
            .collect();
        questions.append(&mut self.questions);
        self.questions = questions;
        self.outbox.disconnected();
        self.streams.disconnected();
        // The next welcome says afresh what is missed.
        self.page_frames = 0;
        self.page_left = 0;
    }

    /// Starts a page of `frames` missed messages with `left` after it; asks
    /// for the next page at once if this one is empty.
    fn start_page(&mut self, frames: u32, left: u32) -> Vec<Update> {
        self.page_frames = frames;
        self.page_left = left;
        self.next_page_if_due()
    }

    /// After each missed message read: at the end of a page with more
    /// after it, ask for the next (so no more than one page waits in the
    /// server's send queue).
    fn next_page_if_due(&mut self) -> Vec<Update> {
        if self.page_frames > 0 || self.page_left == 0 {
            return Vec::new();
        }
        self.page_left = 0;
        let id = self.track(Pending::More);
        vec![Update::Send(Request::More { id })]
    }

    /// The messages never stored, for when we stop trying.
    pub fn unsent(&self) -> Vec<Notice> {
        self.outbox
            .entries()
            .map(|e| Notice::Unsent {
                number: e.number,
                receiver: e.receiver.clone(),
                text: e.text.clone(),
            })
            .collect()
    }

    /// Who came and went: keeps the roster current and says it.
    fn on_presence(
        &mut self,
        mut joined: Vec<String>,
        joined_more: u32,
        left: Vec<Departure>,
        left_more: u32,
    ) -> Vec<Update> {
        {
            let mut roster = self.roster.lock();
            for departure in &left {
                roster.remove(&departure.nick);
            }
            for nick in &joined {
                roster.add(nick);
            }
            // A crowd is only counted: completion will ask for the list.
            if joined_more > 0 || left_more > 0 {
                roster.stale = true;
            }
        }
        let mut updates = Vec::new();
        // Our own arrival was the welcome.
        joined.retain(|nick| Some(nick) != self.me.as_ref());
        if !joined.is_empty() || joined_more > 0 {
            updates.push(Update::Show(Notice::Joined {
                nicks: joined,
                more: joined_more,
            }));
        }
        if !left.is_empty() || left_more > 0 {
            updates.push(Update::Show(Notice::Left {
                departures: left,
                more: left_more,
            }));
        }
        updates
    }

    /// Logged in on this connection: say so, then send what waited for it —
    /// the outbox first, in the order typed, then the questions.
    #[allow(clippy::too_many_arguments)]
    fn on_welcome(
        &mut self,
        again: bool,
        nick: String,
        online: Vec<String>,
        online_more: u32,
        new_account: bool,
        replay: u32,
        groups: Vec<String>,
    ) -> Vec<Update> {
        use Update::Show;
        self.online = true;
        self.me = Some(nick.clone());
        if let Some(credentials) = self.trying.take() {
            self.credentials = Some(credentials);
        }
        {
            let mut roster = self.roster.lock();
            roster.set_groups(&groups);
            roster.me = Some(nick.clone());
            roster.set(&online);
            roster.stale = online_more > 0;
        }
        let mut updates = Vec::new();
        if new_account {
            // Logging in again, a new account means a server that lost
            // its store: its numbers start again, so ours must too.
            self.streams = Streams::default();
            updates.push(Show(Notice::AccountCreated { nick: nick.clone() }));
        }
        if again {
            updates.push(Show(Notice::Reconnected { count: replay }));
        } else {
            updates.push(Show(Notice::Welcome {
                nick: nick.clone(),
                online,
                more: online_more,
            }));
            if replay > 0 {
                updates.push(Show(Notice::CaughtUp { count: replay }));
            }
            updates.push(Update::LoggedIn(nick));
        }
        for entry in self.outbox.unsent() {
            updates.push(Update::Send(self.send_entry(&entry.cid)));
        }
        for question in std::mem::take(&mut self.questions) {
            updates.push(Update::Send(self.question(question)));
        }
        updates
    }

    /// A chat message, unless its `seq` was shown already.
    fn on_message(
        &mut self,
        seq: u64,
        sender: String,
        receiver: String,
        text: String,
        time: u64,
        away: bool,
    ) -> Vec<Update> {
        let public = receiver == EVERYONE;
        if !self.streams.fresh(public, seq) {
            return vec![Update::Duplicate];
        }
        let own = self.me.as_deref() == Some(sender.as_str());
        if receiver.starts_with(GROUP_PREFIX) {
            self.roster.lock().add_group(&receiver);
            return vec![Update::Show(Notice::Group {
                group: receiver,
                sender,
                text,
                own,
                time,
                away,
            })];
        }
        if public {
            return vec![Update::Show(Notice::Public {
                sender,
                text,
                own,
                time,
                away,
            })];
        }
        if own && self.me.as_deref() != Some(receiver.as_str()) {
            // A copy of our own private message: it was shown as typed.
            return vec![];
        }
        self.roster.lock().saw(&sender);
        vec![Update::Show(Notice::PrivateFrom {
            sender,
            text,
            time,
            away,
        })]
    }

    /// The answer to `!history` or `!search`: a title, then one line each.
    fn on_history(&mut self, what: Option<Pending>, messages: Vec<Stored>) -> Vec<Update> {
        let query = match what {
            Some(Pending::History { query, .. }) => query,
            _ => Query::Public,
        };
        let me = self.me.clone().unwrap_or_default();
        let mut updates = vec![Update::Show(Notice::HistoryStart {
            query,
            count: messages.len(),
        })];
        updates.extend(messages.into_iter().map(|m| {
            Update::Show(Notice::Past {
                sender: m.sender,
                receiver: m.receiver,
                text: m.text,
                time: m.time,
                me: me.clone(),
            })
        }));
        updates
    }

    fn on_error(&mut self, id: Option<u64>, code: ErrorCode, reason: String) -> Vec<Update> {
        use Update::Show;
        if code == ErrorCode::Flooding {
            // Cut off by flood control: reconnecting would only resend the
            // flood. What was not stored is listed, as after a kick.
            if let Some(id) = id {
                self.pending.remove(&id);
            }
            return vec![
                Show(Notice::Error { reason }),
                Update::Ended(Ending::Kicked),
            ];
        }
        match id.and_then(|id| self.pending.remove(&id)) {
            Some(Pending::Login { again: false }) => {
                self.trying = None;
                vec![Update::LoginRefused { code, reason }]
            }
            Some(Pending::Login { again: true }) => vec![
                Show(Notice::Error { reason }),
                Update::Ended(Ending::Refused),
            ],
            // The server will close anyway; nothing is lost by going.
            Some(Pending::Bye) => vec![Update::Ended(Ending::Left)],
            Some(Pending::Message { cid }) => match self.outbox.refused(&cid) {
                Some(entry) => vec![Show(Notice::Refused {
                    number: entry.number,
                    receiver: entry.receiver,
                    reason,
                })],
                None => vec![Show(Notice::Error { reason })],
            },
            _ if code == ErrorCode::TakenOver => vec![
                Show(Notice::Error { reason }),
                Update::Ended(Ending::TakenOver),
            ],
            _ => vec![Show(Notice::Error { reason })],
        }
    }

    /// Reads one frame from the server.
    pub fn on_frame(&mut self, frame: ServerFrame) -> Vec<Update> {
        use Update::Show;
        match frame {
            ServerFrame::Welcome {
                id,
                nick,
                online,
                online_more,
                new_account,
                replay,
                replay_left,
                public_seq,
                groups,
            } => {
                let again = self.pending.remove(&id) == Some(Pending::Login { again: true });
                let missed = replay.saturating_add(replay_left);
                let mut updates = self.on_welcome(
                    again,
                    nick,
                    online,
                    online_more,
                    new_account,
                    missed,
                    groups,
                );
                self.streams.public_from(public_seq);
                updates.extend(self.start_page(replay, replay_left));
                updates
            }
            ServerFrame::Ack { id, offline, .. } => match self.pending.remove(&id) {
                // A duplicate is stored too: the first ack was lost.
                Some(Pending::Message { cid }) => match self.outbox.acked(&cid) {
                    // A group message, like a public one, shows by its echo.
                    Some(entry)
                        if entry.receiver != EVERYONE
                            && !entry.receiver.starts_with(GROUP_PREFIX)
                            && !entry.delivered =>
                    {
                        vec![Show(Notice::Stored {
                            number: entry.number,
                            receiver: entry.receiver,
                            offline,
                        })]
                    }
                    _ => vec![],
                },
                Some(Pending::Bye) => vec![Update::Ended(Ending::Left)],
                Some(Pending::Group(GroupOp::Leave { name })) => {
                    let group = crate::command::group_tag(&name);
                    self.roster.lock().remove_group(&group);
                    vec![Show(Notice::GroupLeft { group })]
                }
                _ => vec![],
            },
            ServerFrame::Group {
                id,
                group,
                members,
                online,
            } => {
                let what = self.pending.remove(&id);
                self.on_group(what, group, members, online)
            }
            ServerFrame::GroupChanged { group, by, added } => {
                {
                    let mut roster = self.roster.lock();
                    if added {
                        roster.add_group(&group);
                    } else {
                        roster.remove_group(&group);
                    }
                }
                vec![Show(Notice::GroupChanged { group, by, added })]
            }
            ServerFrame::Groups { id, groups } => {
                self.pending.remove(&id);
                let mine: Vec<String> = groups
                    .iter()
                    .filter(|g| g.member)
                    .map(|g| g.name.clone())
                    .collect();
                self.roster.lock().set_groups(&mine);
                vec![Show(Notice::GroupList { groups })]
            }
            ServerFrame::Online { id, users } => {
                let silent = self.pending.remove(&id) == Some(Pending::Refresh);
                {
                    // The whole list, whoever asked: the roster is current.
                    let mut roster = self.roster.lock();
                    roster.set(&users);
                    roster.stale = false;
                }
                if silent {
                    vec![]
                } else {
                    vec![Show(Notice::Online { users })]
                }
            }
            ServerFrame::History { id, messages } => {
                let what = self.pending.remove(&id);
                self.on_history(what, messages)
            }
            ServerFrame::Pong { id } => {
                self.pending.remove(&id);
                vec![]
            }
            // The server has not heard from us for a while: answer at once,
            // whatever else is going on (a page of backlog, a login).
            ServerFrame::Ping => vec![Update::Send(Request::Pong)],
            ServerFrame::Error { id, code, reason } => self.on_error(id, code, reason),
            ServerFrame::Message {
                seq,
                sender,
                receiver,
                text,
                time,
                away,
            } => {
                let mut updates = self.on_message(seq, sender, receiver, text, time, away);
                if self.page_frames > 0 {
                    self.page_frames -= 1;
                    updates.extend(self.next_page_if_due());
                }
                updates
            }
            ServerFrame::Replay { id, count, left } => {
                self.pending.remove(&id);
                self.start_page(count, left)
            }
            ServerFrame::Delivered { cid, to } => {
                let number = self.outbox.delivered(&cid).map(|s| s.number);
                vec![Show(Notice::Delivered {
                    number,
                    receiver: to,
                })]
            }
            ServerFrame::Presence {
                joined,
                joined_more,
                left,
                left_more,
            } => self.on_presence(joined, joined_more, left, left_more),
            ServerFrame::Kicked { nick, reason } => {
                self.roster.lock().remove(&nick);
                let me = self.me.as_deref() == Some(nick.as_str());
                let mut updates = vec![Show(Notice::Kicked { nick, reason })];
                if me {
                    updates.push(Update::Ended(Ending::Kicked));
                }
                updates
            }
            ServerFrame::Announce { text, time } => vec![Show(Notice::Announce { text, time })],
            // File transfers are the network thread's `Transfers`.
            ServerFrame::Upload { .. }
            | ServerFrame::FileAck { .. }
            | ServerFrame::FileOffer { .. }
            | ServerFrame::Download { .. }
            | ServerFrame::Chunk { .. }
            | ServerFrame::FileAnswer { .. } => vec![],
            ServerFrame::Shutdown { reason } => vec![
                Show(Notice::Shutdown { reason }),
                Update::Ended(Ending::Shutdown),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::Roster;

    fn s(text: &str) -> String {
        text.to_string()
    }

    fn session() -> (Session, SharedRoster) {
        let roster = SharedRoster::default();
        let session = Session::with_outbox(roster.clone(), Outbox::new("t"));
        (session, roster)
    }

    fn welcome(id: u64, nick: &str, online: &[&str]) -> ServerFrame {
        ServerFrame::Welcome {
            id,
            nick: s(nick),
            online: online.iter().map(|n| s(n)).collect(),
            online_more: 0,
            new_account: false,
            replay: 0,
            public_seq: 0,
            groups: vec![],
            replay_left: 0,
        }
    }

    fn logged_in(nick: &str, online: &[&str]) -> (Session, SharedRoster) {
        let (mut session, roster) = session();
        let id = session.login(s(nick), s("pw")).id().unwrap();
        let updates = session.on_frame(welcome(id, nick, online));
        assert_eq!(updates.last(), Some(&Update::LoggedIn(s(nick))));
        assert!(!session.is_waiting());
        (session, roster)
    }

    fn message(seq: u64, sender: &str, receiver: &str, text: &str) -> ServerFrame {
        ServerFrame::Message {
            seq,
            sender: s(sender),
            receiver: s(receiver),
            text: s(text),
            time: 5,
            away: false,
        }
    }

    fn ack(id: u64) -> ServerFrame {
        ServerFrame::Ack {
            id,
            offline: false,
            duplicate: false,
        }
    }

    /// The requests among `updates`.
    fn sent(updates: &[Update]) -> Vec<Request> {
        updates
            .iter()
            .filter_map(|u| match u {
                Update::Send(request) => Some(request.clone()),
                _ => None,
            })
            .collect()
    }

    /// The one request `say` made.
    fn say(session: &mut Session, to: &str, text: &str) -> Request {
        let requests = sent(&session.say(s(to), s(text)));
        assert_eq!(requests.len(), 1, "{requests:?}");
        requests[0].clone()
    }

    #[test]
    fn login_refused_then_accepted() {
        let (mut session, _) = session();
        let first = session.login(s("bob"), s("wrong"));
        assert_eq!(
            first,
            Request::Login {
                id: 1,
                nick: s("bob"),
                password: s("wrong"),
                last_seq: None,
                last_public: None
            }
        );
        let updates = session.on_frame(ServerFrame::Error {
            id: Some(1),
            code: ErrorCode::BadPassword,
            reason: s("wrong password"),
        });
        assert_eq!(
            updates,
            [Update::LoginRefused {
                code: ErrorCode::BadPassword,
                reason: s("wrong password")
            }]
        );
        assert!(!session.has_logged_in());
        assert_eq!(session.relogin(), None, "nothing accepted to log in with");
        let id = session.login(s("bob"), s("right")).id().unwrap();
        session.on_frame(welcome(id, "bob", &["bob"]));
        assert!(session.is_logged_in() && session.has_logged_in());
        let Some(Request::Login { nick, password, .. }) = session.relogin() else {
            panic!("a relogin")
        };
        assert_eq!((nick, password), (s("bob"), s("right")));
    }

    /// A new account and messages that came while away are both said.
    #[test]
    fn welcome_says_new_account_and_what_was_missed() {
        let (mut session, _) = session();
        let id = session.login(s("bob"), s("pw")).id().unwrap();
        let updates = session.on_frame(ServerFrame::Welcome {
            id,
            nick: s("bob"),
            online: vec![s("bob")],
            online_more: 0,
            new_account: true,
            replay: 2,
            public_seq: 0,
            groups: vec![],
            replay_left: 0,
        });
        assert_eq!(
            updates,
            [
                Update::Show(Notice::AccountCreated { nick: s("bob") }),
                Update::Show(Notice::Welcome {
                    nick: s("bob"),
                    online: vec![s("bob")],
                    more: 0
                }),
                Update::Show(Notice::CaughtUp { count: 2 }),
                Update::LoggedIn(s("bob")),
            ]
        );
        let away = ServerFrame::Message {
            seq: 4,
            sender: s("alice"),
            receiver: s("bob"),
            text: s("hi"),
            time: 7,
            away: true,
        };
        assert_eq!(
            session.on_frame(away),
            [Update::Show(Notice::PrivateFrom {
                sender: s("alice"),
                text: s("hi"),
                time: 7,
                away: true
            })]
        );
        assert_eq!(session.received(), Some(Request::Received { seq: 4 }));
    }

    /// A message whose `seq` was shown is not shown again, in either
    /// stream; one `received` covers a batch of private messages.
    #[test]
    fn each_seq_is_shown_once_and_received_once() {
        let (mut session, _) = logged_in("bob", &["alice", "bob"]);
        for seq in 1..=3 {
            let updates = session.on_frame(message(seq, "alice", "bob", "p"));
            assert!(matches!(
                updates[..],
                [Update::Show(Notice::PrivateFrom { .. })]
            ));
        }
        let public = session.on_frame(message(10, "alice", "*", "all"));
        assert!(matches!(public[..], [Update::Show(Notice::Public { .. })]));
        assert_eq!(session.received(), Some(Request::Received { seq: 3 }));
        assert_eq!(session.received(), None);
        // A reconnect whose `received` was lost replays some of them.
        session.disconnected();
        let Some(Request::Login {
            id,
            last_seq,
            last_public,
            ..
        }) = session.relogin()
        else {
            panic!("a relogin")
        };
        assert_eq!((last_seq, last_public), (Some(3), Some(10)));
        session.on_frame(welcome(id, "bob", &["bob"]));
        for frame in [
            message(2, "alice", "bob", "p"),
            message(3, "alice", "bob", "p"),
            message(9, "alice", "*", "old"),
            message(10, "alice", "*", "all"),
        ] {
            assert_eq!(session.on_frame(frame), [Update::Duplicate]);
        }
        assert_eq!(
            session.received(),
            Some(Request::Received { seq: 3 }),
            "the last received may have been lost with the connection"
        );
        assert_eq!(session.received(), None);
        assert!(matches!(
            session.on_frame(message(4, "alice", "bob", "new"))[..],
            [Update::Show(_)]
        ));
        assert!(matches!(
            session.on_frame(message(11, "alice", "*", "new"))[..],
            [Update::Show(_)]
        ));
        assert_eq!(session.received(), Some(Request::Received { seq: 4 }));
    }

    /// A server that lost its store numbers from 1 again: after a welcome
    /// that says the account is new, its messages are not taken for ones
    /// already shown.
    #[test]
    fn a_new_account_on_a_reconnect_starts_the_numbers_again() {
        let (mut session, _) = logged_in("bob", &["bob"]);
        session.on_frame(message(7, "alice", "bob", "old"));
        session.on_frame(message(9, "alice", "*", "old"));
        session.disconnected();
        let login = session.relogin().unwrap();
        session.on_frame(ServerFrame::Welcome {
            id: login.id().unwrap(),
            nick: s("bob"),
            online: vec![s("bob")],
            online_more: 0,
            new_account: true,
            replay: 0,
            public_seq: 0,
            groups: vec![],
            replay_left: 0,
        });
        for frame in [
            message(1, "alice", "bob", "new"),
            message(1, "alice", "*", "new"),
        ] {
            assert!(matches!(session.on_frame(frame)[..], [Update::Show(_)]));
        }
    }

    /// Disconnected, nothing is acknowledged or asked: no `received`.
    #[test]
    fn no_received_while_disconnected() {
        let (mut session, _) = logged_in("bob", &["bob"]);
        session.on_frame(message(1, "alice", "bob", "p"));
        session.disconnected();
        assert_eq!(session.received(), None);
    }

    /// Private: pending as typed, stored at the ack (for someone offline),
    /// delivered when the receiver's client has it.
    #[test]
    fn private_message_states() {
        let (mut session, roster) = logged_in("alice", &["alice"]);
        let updates = session.say(s("bob"), s("hi"));
        assert_eq!(
            updates[0],
            Update::Show(Notice::PrivateTo {
                receiver: s("bob"),
                text: s("hi"),
                number: 1
            })
        );
        let Request::Message { id, cid, .. } = sent(&updates)[0].clone() else {
            panic!("a message")
        };
        assert_eq!(cid.as_deref(), Some("t-1"));
        assert!(session.is_waiting() && session.has_unacknowledged());
        let stored = session.on_frame(ServerFrame::Ack {
            id,
            offline: true,
            duplicate: false,
        });
        assert_eq!(
            stored,
            [Update::Show(Notice::Stored {
                number: 1,
                receiver: s("bob"),
                offline: true
            })]
        );
        assert!(!session.is_waiting());
        let delivered = ServerFrame::Delivered {
            cid: s("t-1"),
            to: s("bob"),
        };
        assert_eq!(
            session.on_frame(delivered.clone()),
            [Update::Show(Notice::Delivered {
                number: Some(1),
                receiver: s("bob")
            })]
        );
        // Told again (another session's), it is no longer ours to number.
        assert_eq!(
            session.on_frame(delivered),
            [Update::Show(Notice::Delivered {
                number: None,
                receiver: s("bob")
            })]
        );
        assert!(roster.lock().known().contains(&&s("bob")), "completable");
    }

    /// Public messages typed while connected show by their echo; an ack
    /// says nothing.
    #[test]
    fn public_messages_show_by_their_echo() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let updates = session.say(s("*"), s("hello"));
        assert_eq!(updates.len(), 1, "only the request: {updates:?}");
        let id = sent(&updates)[0].id().unwrap();
        assert_eq!(session.on_frame(ack(id)), []);
        assert_eq!(
            session.on_frame(message(1, "alice", "*", "hello")),
            [Update::Show(Notice::Public {
                sender: s("alice"),
                text: s("hello"),
                own: true,
                time: 5,
                away: false
            })]
        );
    }

    /// Everything not acknowledged when the connection drops is sent again
    /// after the next welcome, in the order typed, with the same ids;
    /// what is typed while disconnected waits, shown as pending.
    #[test]
    fn the_outbox_is_resent_in_order_after_a_reconnect() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let first = say(&mut session, "*", "one");
        say(&mut session, "bob", "two");
        say(&mut session, "*", "three");
        session.on_frame(ack(first.id().unwrap()));
        session.disconnected();
        assert!(!session.is_logged_in());
        let waiting = session.say(s("*"), s("four"));
        assert_eq!(
            waiting,
            [Update::Show(Notice::PublicPending {
                text: s("four"),
                number: 4
            })],
            "nothing is sent while disconnected"
        );
        let private = session.say(s("bob"), s("five"));
        assert_eq!(private.len(), 1);
        assert!(session.is_waiting());
        let login = session.relogin().unwrap();
        let updates = session.on_frame(ServerFrame::Welcome {
            id: login.id().unwrap(),
            nick: s("alice"),
            online: vec![s("alice")],
            online_more: 0,
            new_account: false,
            replay: 3,
            public_seq: 0,
            groups: vec![],
            replay_left: 0,
        });
        assert_eq!(
            updates[0],
            Update::Show(Notice::Reconnected { count: 3 }),
            "no welcome line, no LoggedIn status: {updates:?}"
        );
        assert!(!updates.iter().any(|u| matches!(u, Update::LoggedIn(_))));
        let resent: Vec<(Option<String>, String)> = sent(&updates)
            .into_iter()
            .map(|r| match r {
                Request::Message { cid, text, .. } => (cid, text),
                other => panic!("{other:?}"),
            })
            .collect();
        let want = [
            ("t-2", "two"),
            ("t-3", "three"),
            ("t-4", "four"),
            ("t-5", "five"),
        ]
        .map(|(cid, text)| (Some(s(cid)), s(text)));
        assert_eq!(resent, want);
        // Lost again during the resend: the same ones, again in order.
        session.disconnected();
        let login = session.relogin().unwrap();
        let updates = session.on_frame(welcome(login.id().unwrap(), "alice", &["alice"]));
        let cids: Vec<_> = sent(&updates)
            .into_iter()
            .map(|r| match r {
                Request::Message { cid, .. } => cid.unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(cids, ["t-2", "t-3", "t-4", "t-5"]);
    }

    /// A resend the server already had is acknowledged as a duplicate:
    /// stored all the same, and shown once.
    #[test]
    fn a_duplicate_ack_marks_it_stored() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        say(&mut session, "bob", "hi");
        session.disconnected();
        let login = session.relogin().unwrap();
        let updates = session.on_frame(welcome(login.id().unwrap(), "alice", &["alice"]));
        let resend = sent(&updates)[0].id().unwrap();
        let stored = session.on_frame(ServerFrame::Ack {
            id: resend,
            offline: false,
            duplicate: true,
        });
        assert_eq!(
            stored,
            [Update::Show(Notice::Stored {
                number: 1,
                receiver: s("bob"),
                offline: false
            })]
        );
        assert!(!session.is_waiting());
    }

    /// States only move forward: a `delivered` before the resend's ack
    /// leaves that ack nothing to say.
    #[test]
    fn delivered_before_the_resend_ack() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        say(&mut session, "bob", "hi");
        session.disconnected();
        let login = session.relogin().unwrap();
        let updates = session.on_frame(welcome(login.id().unwrap(), "alice", &["alice"]));
        let resend = sent(&updates)[0].id().unwrap();
        let delivered = session.on_frame(ServerFrame::Delivered {
            cid: s("t-1"),
            to: s("bob"),
        });
        assert_eq!(
            delivered,
            [Update::Show(Notice::Delivered {
                number: Some(1),
                receiver: s("bob")
            })]
        );
        assert_eq!(session.on_frame(ack(resend)), []);
        assert!(!session.is_waiting());
    }

    #[test]
    fn a_refused_message_leaves_the_outbox() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let sent = say(&mut session, "zed", "hi");
        assert_eq!(
            session.on_frame(ServerFrame::Error {
                id: sent.id(),
                code: ErrorCode::NoSuchUser,
                reason: s("no such user: zed")
            }),
            [Update::Show(Notice::Refused {
                number: 1,
                receiver: s("zed"),
                reason: s("no such user: zed")
            })]
        );
        assert!(!session.is_waiting());
        assert!(session.unsent().is_empty());
    }

    /// Questions lost with a connection, or asked without one, are asked
    /// after the next welcome, after the outbox.
    #[test]
    fn questions_are_asked_again_after_a_reconnect() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        assert!(session.history(Some(s("bob")), Some(5)).is_some());
        say(&mut session, "*", "hi");
        session.disconnected();
        assert_eq!(session.search(s("exam"), Some(s("prof"))), None);
        assert_eq!(session.online(), None);
        let login = session.relogin().unwrap();
        let updates = session.on_frame(welcome(login.id().unwrap(), "alice", &["alice"]));
        let requests = sent(&updates);
        assert!(
            matches!(requests[0], Request::Message { .. }),
            "{requests:?}"
        );
        assert!(
            matches!(&requests[1], Request::History { with: Some(w), limit: 5, .. } if w == "bob"),
            "{requests:?}"
        );
        assert!(
            matches!(&requests[2], Request::Search { words, from: Some(f), limit: 20, .. } if words == "exam" && f == "prof"),
            "{requests:?}"
        );
        assert!(matches!(requests[3], Request::Online { .. }));
        assert_eq!(requests.len(), 4);
    }

    #[test]
    fn history_answers_are_titled_and_listed() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let id = session.search(s("exam"), None).unwrap().id().unwrap();
        let stored = Stored {
            sender: s("prof"),
            receiver: s("*"),
            text: s("exam on monday"),
            time: 9,
        };
        let updates = session.on_frame(ServerFrame::History {
            id,
            messages: vec![stored],
        });
        assert_eq!(
            updates,
            [
                Update::Show(Notice::HistoryStart {
                    query: Query::Search {
                        words: s("exam"),
                        from: None
                    },
                    count: 1
                }),
                Update::Show(Notice::Past {
                    sender: s("prof"),
                    receiver: s("*"),
                    text: s("exam on monday"),
                    time: 9,
                    me: s("alice")
                })
            ]
        );
        assert!(!session.is_waiting());
    }

    /// After a lost connection, a refused login ends the session; being
    /// taken over too. Neither is reconnected.
    #[test]
    fn endings_that_are_not_reconnected() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        session.disconnected();
        let login = session.relogin().unwrap();
        let updates = session.on_frame(ServerFrame::Error {
            id: login.id(),
            code: ErrorCode::BadPassword,
            reason: s("wrong password"),
        });
        assert_eq!(updates.last(), Some(&Update::Ended(Ending::Refused)));
        let (mut session, _) = logged_in("alice", &["alice"]);
        let updates = session.on_frame(ServerFrame::Error {
            id: None,
            code: ErrorCode::TakenOver,
            reason: s("logged in elsewhere"),
        });
        assert_eq!(updates.last(), Some(&Update::Ended(Ending::TakenOver)));
        let (mut session, _) = logged_in("alice", &["alice"]);
        let updates = session.on_frame(ServerFrame::Error {
            id: Some(42),
            code: ErrorCode::Flooding,
            reason: s("disconnected for flooding"),
        });
        assert_eq!(updates.last(), Some(&Update::Ended(Ending::Kicked)));
    }

    #[test]
    fn messages_are_told_apart() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let public = |sender: &str, own| {
            vec![Update::Show(Notice::Public {
                sender: s(sender),
                text: s("t"),
                own,
                time: 5,
                away: false,
            })]
        };
        let cases = vec![
            (message(1, "alice", "*", "t"), public("alice", true)),
            (message(2, "bob", "*", "t"), public("bob", false)),
            (
                message(1, "bob", "alice", "t"),
                vec![Update::Show(Notice::PrivateFrom {
                    sender: s("bob"),
                    text: s("t"),
                    time: 5,
                    away: false,
                })],
            ),
            (message(2, "alice", "bob", "t"), vec![]),
            // No seq (an older server): shown, never deduplicated.
            (message(0, "bob", "*", "t"), public("bob", false)),
            (message(0, "bob", "*", "t"), public("bob", false)),
        ];
        for (frame, want) in cases {
            assert_eq!(session.on_frame(frame.clone()), want, "{frame:?}");
        }
    }

    #[test]
    fn roster_follows_events() {
        let (mut session, roster) = logged_in("alice", &["bob", "alice"]);
        let updates = session.on_frame(ServerFrame::Presence {
            joined: vec![s("carol"), s("alice")],
            joined_more: 0,
            left: vec![Departure {
                nick: s("bob"),
                reason: s("quit"),
            }],
            left_more: 0,
        });
        // Our own name is not news to us.
        assert_eq!(
            updates[0],
            Update::Show(Notice::Joined {
                nicks: vec![s("carol")],
                more: 0
            })
        );
        let mut want = Roster::default();
        want.me = Some(s("alice"));
        want.set(&[s("alice"), s("carol")]);
        assert_eq!(*roster.lock(), want);
        let updates = session.on_frame(ServerFrame::Kicked {
            nick: s("carol"),
            reason: s("spam"),
        });
        assert_eq!(updates.len(), 1);
        assert_eq!(roster.lock().online(), [s("alice")]);
    }

    #[test]
    fn a_crowd_makes_the_roster_stale_and_one_quiet_refresh_fixes_it() {
        let (mut session, roster) = logged_in("alice", &["alice"]);
        assert_eq!(session.refresh(), None, "a complete roster needs none");
        let crowd = ServerFrame::Presence {
            joined: vec![s("bob")],
            joined_more: 30,
            left: vec![],
            left_more: 0,
        };
        // Nothing is asked on the crowd's account: only completion asks.
        session.on_frame(crowd.clone());
        assert!(!session.is_waiting());
        assert!(roster.lock().stale);
        let Some(Request::Online { id }) = session.refresh() else {
            panic!("expected a refresh");
        };
        assert_eq!(session.refresh(), None, "one at a time");
        session.on_frame(crowd);
        assert_eq!(session.refresh(), None, "still one at a time");
        let everyone: Vec<String> = (0..32).map(|i| format!("u{i}")).collect();
        let answer = ServerFrame::Online {
            id,
            users: everyone.clone(),
        };
        assert_eq!(session.on_frame(answer), vec![], "answered silently");
        assert_eq!(roster.lock().online().len(), 32);
        assert!(!roster.lock().stale);
        assert_eq!(session.refresh(), None);
    }

    #[test]
    fn a_big_room_welcome_makes_the_roster_stale() {
        let (mut session, roster) = session();
        let id = session.login(s("alice"), s("pw")).id().unwrap();
        let updates = session.on_frame(ServerFrame::Welcome {
            id,
            nick: s("alice"),
            online: vec![s("alice")],
            online_more: 9_999,
            new_account: false,
            replay: 0,
            public_seq: 0,
            groups: vec![],
            replay_left: 0,
        });
        assert_eq!(updates.len(), 2, "no request of its own: {updates:?}");
        assert!(roster.lock().stale);
        assert!(matches!(session.refresh(), Some(Request::Online { .. })));
    }

    #[test]
    fn endings() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let kicked = session.on_frame(ServerFrame::Kicked {
            nick: s("alice"),
            reason: s("spam"),
        });
        assert_eq!(kicked.last(), Some(&Update::Ended(Ending::Kicked)));
        let down = session.on_frame(ServerFrame::Shutdown { reason: s("x") });
        assert_eq!(down.last(), Some(&Update::Ended(Ending::Shutdown)));
        let bye = session.bye();
        assert_eq!(
            session.on_frame(ack(bye.id().unwrap())),
            [Update::Ended(Ending::Left)]
        );
    }

    #[test]
    fn debug_never_shows_the_password() {
        let (mut session, _) = session();
        session.login(s("bob"), s("hunter2"));
        assert!(!format!("{session:?}").contains("hunter2"));
    }

    fn sends(updates: &[Update]) -> Vec<Request> {
        updates
            .iter()
            .filter_map(|u| match u {
                Update::Send(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn private(seq: u64) -> ServerFrame {
        ServerFrame::Message {
            seq,
            sender: "alice".into(),
            receiver: "bob".into(),
            text: format!("m{seq}"),
            time: 0,
            away: true,
        }
    }

    /// A long absence comes in pages: `more` goes out only once the page
    /// has been read, and not after the last one.
    #[test]
    fn the_next_page_is_asked_for_when_this_one_is_read() {
        let (mut session, _) = session();
        let id = session.login("bob".into(), "pw".into()).id().unwrap();
        let welcome = ServerFrame::Welcome {
            id,
            nick: "bob".into(),
            online: vec!["bob".into()],
            online_more: 0,
            new_account: false,
            replay: 2,
            replay_left: 3,
            public_seq: 0,
            groups: vec![],
        };
        let updates = session.on_frame(welcome);
        assert!(
            updates.contains(&Update::Show(Notice::CaughtUp { count: 5 })),
            "{updates:?}"
        );
        assert!(sends(&updates).is_empty(), "not before the page is read");
        assert!(sends(&session.on_frame(private(1))).is_empty());
        let more = sends(&session.on_frame(private(2)));
        let [Request::More { id }] = more[..] else {
            panic!("{more:?}");
        };
        let updates = session.on_frame(ServerFrame::Replay {
            id,
            count: 3,
            left: 0,
        });
        assert!(sends(&updates).is_empty());
        for seq in 3..=5 {
            assert!(
                sends(&session.on_frame(private(seq))).is_empty(),
                "last page"
            );
        }
    }
}
