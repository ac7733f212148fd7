//! The chat state: who is connected, under which account, and what each
//! request, store reply or admin command produces. Pure: no I/O, no locks,
//! no clock — the dispatcher owns it, passes the time in, and carries out
//! what it asks through [`Deliver`] (frames for connections, ops for the
//! store, jobs for the password hashers).
//!
//! Here: sessions, requests and their order, departures, kicks. A login
//! goes New → Authenticating → Resuming → (CatchingUp →) Online
//! (`login.rs`); requests that arrive meanwhile wait in the session and run,
//! in order, once it is online. A message is accepted in two steps
//! (`delivery.rs`): [`ChatState::request`] sends it to the store, and
//! [`ChatState::stored`] acknowledges and delivers it once it is durable.
//! `stats.rs` holds what the console shows; `keepalive.rs` pings the silent
//! and cuts the lost.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chat_common::codec::encode;
use chat_common::{ErrorCode, Frame, Request, ServerFrame};

use crate::chat::auth::Check;
use crate::chat::state::accounts::Accounts;
use crate::chat::state::policy::LoginPolicy;
use crate::chat::state::presence::Presence;
use crate::chat::state::throttle::{Registrations, Throttle};
use crate::framework::{ConnId, ConnInfo};
use crate::store::{self, Origin, UserId};

pub mod accounts;
mod cluster;
mod delivery;
mod fence;
mod files;
mod groups;
pub mod identity;
mod keepalive;
mod login;
mod moderation;
pub mod policy;
pub mod presence;
mod remote;
mod stats;
#[cfg(test)]
mod tests;
pub mod throttle;

/// What the chat asks of the store; what it gets back untouched (`Echo`,
/// `Group`) is an answer for the client.
pub type Op = store::Op<Frame>;
/// What the store answers the chat.
pub type Reply = store::Reply<Frame>;

pub use files::FileLimits;
pub use groups::GroupSummary;
use groups::Groups;
pub use keepalive::Keepalive;
use moderation::Sanctions;
use stats::RateWindow;
pub use stats::{NodeUsers, SessionRow, Stats, RATE_WINDOW_SECS};

/// Where the state's output goes: the dispatcher's router and queues, or a
/// recorder in tests.
pub trait Deliver {
    fn send(&mut self, conn: ConnId, frame: Frame);
    /// Close `conn` once what was sent to it is written.
    fn close(&mut self, conn: ConnId);
    /// `conn` is in the room: broadcasts reach it from now on.
    fn subscribe(&mut self, conn: ConnId);
    fn unsubscribe(&mut self, conn: ConnId);
    /// `conn` speaks for `user` (`None`: no longer): flood control counts
    /// its messages against the account, across connections.
    fn bind(&mut self, conn: ConnId, user: Option<UserId>);
    /// `frame` for everyone subscribed.
    fn broadcast(&mut self, frame: Frame);
    /// Work for the store, committed at the end of the dispatcher's batch;
    /// its reply comes back through [`ChatState::stored`], after the
    /// replies to every earlier op.
    fn store(&mut self, op: Op);
    /// A password to check; the verdict comes back through
    /// [`ChatState::authenticated`].
    fn auth(&mut self, job: Check);
    /// Work for the file thread; what it did comes back through
    /// [`ChatState::file_done`], in order.
    fn files(&mut self, job: crate::files::Job);
}

/// `history` and `search` requests of one connection at the store at once:
/// each reads up to 500 messages, so more wait in the session (and the
/// requests behind them, to keep the answers in order); one client cannot
/// keep the store reading for everyone else. Messages are not limited here:
/// appending is cheap, and the dispatcher stops reading from everyone when
/// the store falls far behind.
const MAX_READS: u32 = 4;

fn is_read(request: &Request) -> bool {
    matches!(request, Request::History { .. } | Request::Search { .. })
}

/// Words in one search: each is a term FTS5 must intersect, and thousands
/// of them keep the store (and so everyone's acks) busy for seconds.
const MAX_SEARCH_WORDS: usize = 16;

/// Requests a session may queue while its login completes; the ones beyond
/// are refused (in their turn, after the welcome)…
const MAX_QUEUED: usize = 256;
/// …up to this many; a client that sends even more before its welcome is
/// disconnected, so a flood cannot grow the queue without bound.
const MAX_REFUSED: usize = 64 * 1024;

/// A request that arrived while logging in: to run, or (over
/// [`MAX_QUEUED`]) to refuse when its turn comes.
#[derive(Debug)]
enum Waiting {
    Run(Request),
    Refuse(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connected, not logged in.
    New,
    /// The password is being checked.
    Authenticating,
    /// Logged in; the store is reading what the user missed. `quiet`: it
    /// took over another connection, so nobody is told it arrived.
    Resuming {
        id: u64,
        new_account: bool,
        quiet: bool,
    },
    /// Welcomed, with more missed messages than one page: the client asks
    /// for each next page with `more`; live messages wait until the last.
    CatchingUp {
        quiet: bool,
        last_seq: u64,
        last_public: Option<u64>,
    },
    Online,
    /// Said bye, was kicked, taken over or timed out: further requests are
    /// ignored and its departure has been announced already.
    Leaving,
}

/// How a session ends once its requests in flight are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Bye(u64),
    PeerClosed,
}

/// One connection, logged in or not.
#[derive(Debug)]
struct Session {
    info: ConnInfo,
    connected_at: u64,
    /// When the peer's last request arrived (the keepalive's clock), and
    /// whether it has been pinged since.
    heard: u64,
    pinged: bool,
    phase: Phase,
    user: Option<UserId>,
    nick: Option<String>,
    /// What the user said when going away (`away`); `None`: here.
    away: Option<String>,
    messages_sent: u64,
    /// Requests sent to the store or the hashers and not answered yet:
    /// answers after them must wait their turn.
    in_flight: u32,
    /// Of those, `history` and `search` (see [`MAX_READS`]).
    reads: u32,
    /// Requests that arrived while logging in.
    queued: VecDeque<Waiting>,
    ending: Option<Ending>,
    /// Its own stream's delivery, once live (`--cluster` only).
    cursor: cluster::Cursor,
}

impl Session {
    fn logging_in(&self) -> bool {
        matches!(
            self.phase,
            Phase::Authenticating | Phase::Resuming { .. } | Phase::CatchingUp { .. }
        )
    }

    /// Whether everyone else believes this user is online: they were told
    /// of the arrival, or it took over from a connection they were told of.
    fn announced(&self) -> bool {
        matches!(
            self.phase,
            Phase::Online
                | Phase::Resuming { quiet: true, .. }
                | Phase::CatchingUp { quiet: true, .. }
        )
    }
}

/// Nicknames in lower case: the order of lists of names, and the database's
/// older uniqueness column. (Who a name *is* goes by [`crate::chat::state::identity`].)
pub(crate) fn fold(nick: &str) -> String {
    nick.to_lowercase()
}

/// The answer to a request that needs a login, before one.
fn not_logged_in() -> Rejection {
    (
        ErrorCode::NotLoggedIn,
        "log in first: {\"type\":\"login\",\"id\":1,\"nick\":\"yourname\",\"password\":\"…\"}"
            .to_string(),
    )
}

/// A failed request: its error code and a reason for people.
type Rejection = (ErrorCode, String);

pub struct ChatState {
    sessions: HashMap<ConnId, Session>,
    accounts: Accounts,
    groups: Groups,
    /// Joins and departures not yet announced.
    presence: Presence,
    /// Folded nickname → the session logged in with it (resuming or online).
    nicks: BTreeMap<String, ConnId>,
    /// The same, by account.
    online: HashMap<UserId, ConnId>,
    max_text: usize,
    messages: u64,
    private_messages: u64,
    stored_offline: u64,
    redelivered: u64,
    duplicates: u64,
    floods_throttled: u64,
    flooders_cut: u64,
    slow_consumers_cut: u64,
    rate: RateWindow,
    sanctions: Sanctions,
    /// What a login must pass before its password is hashed.
    policy: LoginPolicy,
    /// Failed logins per account and address; logins waiting for a slot.
    throttle: Throttle<Check>,
    registrations: Registrations,
    /// Logins at the hashers or parked in the throttle: at most
    /// `policy.max_pending`, so the hashers' queue is bounded.
    pending_logins: usize,
    /// File offers and the transfers under way (`files.rs`).
    files: files::Files,
    /// Other nodes share the store (`cluster.rs`): deliveries go by cursor.
    cluster: bool,
    /// The public stream's delivery to this node's room (`--cluster`).
    room: cluster::Cursor,
    /// Who is online on the other nodes, by folded name (`remote.rs`).
    remote: BTreeMap<String, store::Remote>,
    /// This node's id and the cluster's live nodes, for `/stats`
    /// (`stats.rs`; empty until the listener says).
    nodes: stats::Nodes,
    /// The lease could not be renewed in time: no one is served (`fence.rs`).
    fenced: bool,
}

impl ChatState {
    pub fn new(max_text: usize, accounts: Accounts) -> Self {
        ChatState {
            sessions: HashMap::new(),
            accounts,
            groups: Groups::default(),
            presence: Presence::default(),
            nicks: BTreeMap::new(),
            online: HashMap::new(),
            max_text,
            messages: 0,
            private_messages: 0,
            stored_offline: 0,
            redelivered: 0,
            duplicates: 0,
            floods_throttled: 0,
            flooders_cut: 0,
            slow_consumers_cut: 0,
            rate: RateWindow::default(),
            sanctions: Sanctions::default(),
            policy: LoginPolicy::default(),
            throttle: Throttle::new(3, 60_000),
            registrations: Registrations::default(),
            pending_logins: 0,
            files: files::Files::default(),
            cluster: false,
            room: cluster::Cursor::default(),
            remote: BTreeMap::new(),
            nodes: stats::Nodes::default(),
            fenced: false,
        }
    }

    /// Starts with the bans and mutes the store kept.
    pub fn with_sanctions(mut self, list: Vec<crate::store::Sanction>) -> Self {
        self.sanctions = Sanctions::new(list);
        self
    }

    /// Logins follow `policy` instead of the defaults.
    pub fn with_login_policy(mut self, policy: LoginPolicy) -> Self {
        self.throttle = Throttle::new(policy.max_failures, policy.failure_window_ms);
        self.policy = policy;
        self
    }

    pub fn connect(&mut self, info: ConnInfo, now: u64) {
        self.sessions.insert(
            info.id,
            Session {
                info,
                connected_at: now,
                heard: now,
                pinged: false,
                phase: Phase::New,
                user: None,
                nick: None,
                away: None,
                messages_sent: 0,
                in_flight: 0,
                reads: 0,
                queued: VecDeque::new(),
                ending: None,
                cursor: cluster::Cursor::default(),
            },
        );
    }

    /// The connection is gone; if it was a user who had not left yet,
    /// everyone is told why.
    pub fn disconnect(&mut self, conn: ConnId, reason: &str, out: &mut impl Deliver) {
        let Some(session) = self.sessions.remove(&conn) else {
            return;
        };
        out.bind(conn, None);
        if reason == crate::framework::SLOW_CONSUMER {
            self.slow_consumers_cut += 1;
        }
        if session.phase == Phase::Leaving {
            return;
        }
        self.forget(conn, &session, Some(reason), out);
        if let (true, Some(nick)) = (session.announced(), session.nick.clone()) {
            self.presence.left(nick, reason);
        }
    }

    /// Removes a session's user from who is online (not from `sessions`).
    /// In a cluster its `online` row goes too, and the other nodes' presence
    /// lines say `reason` (`None`: a takeover, whose new session takes the
    /// row over instead).
    fn forget(
        &mut self,
        conn: ConnId,
        session: &Session,
        reason: Option<&str>,
        out: &mut impl Deliver,
    ) {
        out.bind(conn, None);
        if let (Some(user), Some(nick)) = (session.user, &session.nick) {
            if self.online.get(&user) == Some(&conn) {
                self.online.remove(&user);
                self.nicks.remove(&fold(nick));
                if let (true, Some(reason)) = (self.cluster, reason) {
                    out.store(Op::Offline {
                        user,
                        conn,
                        reason: reason.to_string(),
                    });
                }
            }
            out.unsubscribe(conn);
        }
        self.files_gone(conn, out);
    }

    /// Flood control slowed a connection down (`cut`: disconnected it). The
    /// worker acted already; this is for `/stats`.
    pub fn flood(&mut self, _conn: ConnId, cut: bool) {
        if cut {
            self.flooders_cut += 1;
        } else {
            self.floods_throttled += 1;
        }
    }

    /// The peer will send nothing more: it leaves once everything it sent
    /// is answered.
    pub fn peer_closed(&mut self, conn: ConnId, out: &mut impl Deliver) {
        if let Some(session) = self.sessions.get_mut(&conn) {
            if session.phase != Phase::Leaving && session.ending.is_none() {
                session.ending = Some(Ending::PeerClosed);
                self.settle(conn, out);
            }
        }
    }

    pub fn request(&mut self, conn: ConnId, request: Request, now: u64, out: &mut impl Deliver) {
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        // Any request shows the peer is there; `pong` says only that.
        session.heard = now;
        session.pinged = false;
        if request == Request::Pong {
            return;
        }
        // `received` is idempotent and unanswered: recorded whenever the
        // connection has a user, even after its bye.
        if let Request::Received { seq } = request {
            if let Some(user) = session.user {
                out.store(Op::Received { user, seq });
            }
            return;
        }
        // File bytes and their flow control are not answered and keep no
        // order with other requests: they only feed transfers under way
        // (before a login there is none, and the peer is told so).
        if matches!(request, Request::Chunk { .. } | Request::FileAck { .. })
            && session.user.is_none()
        {
            let (code, reason) = not_logged_in();
            let error = ServerFrame::Error {
                id: None,
                code,
                reason,
            };
            return out.send(conn, encode(&error));
        }
        match request {
            Request::Chunk { file, offset, data } => {
                return self.chunk(conn, file, offset, data.into_vec(), out);
            }
            Request::FileAck { file, bytes } => return self.file_ack(conn, file, bytes, out),
            _ => {}
        }
        // After a bye nothing more is answered. (A half-close stops new
        // requests by itself; those queued before it still run.)
        if session.phase == Phase::Leaving || matches!(session.ending, Some(Ending::Bye(_))) {
            return;
        }
        if let (Request::More { id }, Phase::CatchingUp { .. }) = (&request, session.phase) {
            let id = *id;
            return self.more(conn, id, out);
        }
        if session.logging_in()
            || !session.queued.is_empty()
            || (is_read(&request) && session.reads >= MAX_READS)
        {
            let queued = session.queued.len();
            if queued < MAX_QUEUED {
                session.queued.push_back(Waiting::Run(request));
            } else if queued < MAX_REFUSED {
                if let Some(id) = request.id() {
                    session.queued.push_back(Waiting::Refuse(id));
                }
            } else {
                let frame = ServerFrame::Error {
                    id: request.id(),
                    code: ErrorCode::BadRequest,
                    reason: format!(
                        "more than {MAX_REFUSED} requests before the login finished; closing"
                    ),
                };
                out.send(conn, encode(&frame));
                self.leave(conn, "too many requests", out);
            }
            return;
        }
        self.handle(conn, request, now, out);
    }

    /// Handles a request whose turn has come.
    /// What each request does: one arm per request type, most of them one
    /// call, kept in one match so that the table reads at a glance (hence
    /// its length).
    fn handle(&mut self, conn: ConnId, request: Request, now: u64, out: &mut impl Deliver) {
        let Some(session) = self.sessions.get(&conn) else {
            return;
        };
        if session.phase == Phase::Leaving || matches!(session.ending, Some(Ending::Bye(_))) {
            return;
        }
        let online = session.phase == Phase::Online;
        let peer = session.info.peer.ip();
        let Some(id) = request.id() else {
            return;
        };
        // `Ok(None)`: handed to the store or the hashers, answered later.
        let result: Result<Option<ServerFrame>, Rejection> = match request {
            Request::Ping { id } => Ok(Some(ServerFrame::Pong { id })),
            Request::Login { .. } if online => Err((
                ErrorCode::AlreadyLoggedIn,
                "you are already logged in".to_string(),
            )),
            Request::Login { ref nick, .. } if self.ban_refusal(nick, now).is_some() => {
                out.bind(conn, None);
                Err(self.ban_refusal(nick, now).expect("just checked"))
            }
            Request::Login {
                nick,
                password,
                last_seq,
                last_public,
                register,
                ..
            } => {
                let job = Check {
                    origin: Origin { conn, id },
                    peer,
                    nick,
                    password,
                    account: None,
                    hash: None,
                    last_seq,
                    last_public,
                    change: None,
                };
                self.login(job, register != Some(false), now, out)
                    .map(|()| None)
                    // What it sent with the login waits no longer.
                    .inspect_err(|_| out.bind(conn, None))
            }
            _ if !online => Err(not_logged_in()),
            Request::Message { .. } if self.muted(conn, now).is_some() => {
                Err(self.muted(conn, now).expect("just checked"))
            }
            Request::Message {
                receiver,
                text,
                cid,
                ..
            } => self
                .message(conn, id, receiver, text, cid, now, out)
                .map(|()| None),
            Request::Online { id } => Ok(Some(ServerFrame::Online {
                id,
                users: self.online(),
                away: self.away(),
            })),
            Request::Away { text, .. } => self.set_away(conn, text, out).map(|()| {
                Some(ServerFrame::Ack {
                    id,
                    offline: false,
                    duplicate: false,
                })
            }),
            // Nothing more to catch up on.
            Request::More { id } => Ok(Some(ServerFrame::Replay {
                id,
                count: 0,
                left: 0,
            })),
            Request::GroupCreate { .. }
            | Request::GroupAdd { .. }
            | Request::GroupRemove { .. }
            | Request::GroupJoin { .. }
            | Request::GroupLeave { .. }
            | Request::GroupList { .. }
            | Request::GroupMembers { .. } => self.group_request(conn, request, now, out),
            Request::History {
                with: Some(name),
                limit,
                ..
            } if self.names_group(&name) => self
                .group_query(Origin { conn, id }, &name, limit, out)
                .map(|()| None),
            Request::History { with, limit, .. } => {
                let op = |user, with, limit| Op::History {
                    origin: Origin { conn, id },
                    user,
                    with,
                    limit,
                };
                self.query(conn, with, limit, op, out).map(|()| None)
            }
            Request::Search {
                words, from, limit, ..
            } => self
                .search(Origin { conn, id }, words, from, limit, out)
                .map(|()| None),
            Request::Password { old, new, .. } => self
                .change_password(Origin { conn, id }, old, new, now, out)
                .map(|()| None),
            Request::Bye { id } => {
                if let Some(session) = self.sessions.get_mut(&conn) {
                    session.ending = Some(Ending::Bye(id));
                }
                self.settle(conn, out);
                return;
            }
            Request::Offer {
                to,
                name,
                size,
                sha256,
                ..
            } => self.offer(conn, id, &to, name, size, sha256, now, out),
            Request::Accept { file, offset, .. } => self.accept(conn, id, file, offset, out),
            Request::Reject { file, .. } => self.reject(conn, id, file, out),
            Request::Downloaded { file, .. } => self.downloaded(conn, id, file, out),
            Request::Received { .. }
            | Request::Pong
            | Request::Chunk { .. }
            | Request::FileAck { .. } => return,
        };
        match result {
            Ok(None) => {}
            Ok(Some(frame)) => self.answer(conn, id, Ok(frame), out),
            Err(refusal) => self.answer(conn, id, Err(refusal), out),
        }
    }

    /// Whether `history`'s `with` names a group: `#name`, or a bare name
    /// that is a group's and no account's (group names are taken with or
    /// without the `#`; an account of that name wins).
    fn names_group(&self, name: &str) -> bool {
        name.starts_with(chat_common::protocol::GROUP_PREFIX)
            || (self.accounts.find(name).is_none() && self.groups.find(name).is_some())
    }

    /// A full-text search of what `origin`'s user may read.
    fn search(
        &mut self,
        origin: Origin,
        words: String,
        from: Option<String>,
        limit: u32,
        out: &mut impl Deliver,
    ) -> Result<(), Rejection> {
        let count = words.split_whitespace().count();
        if count == 0 {
            return Err((
                ErrorCode::BadRequest,
                "search for what? give some words".into(),
            ));
        }
        if count > MAX_SEARCH_WORDS {
            return Err((
                ErrorCode::BadRequest,
                format!("a search has at most {MAX_SEARCH_WORDS} words"),
            ));
        }
        let op = |user, from, limit| Op::Search {
            origin,
            user,
            words,
            from,
            limit,
        };
        self.query(origin.conn, from, limit, op, out)
    }

    /// Sends an answer, after the answers still in flight for this
    /// connection (through the store, which replies in order).
    fn answer(
        &mut self,
        conn: ConnId,
        id: u64,
        result: Result<ServerFrame, Rejection>,
        out: &mut impl Deliver,
    ) {
        let frame = encode(&result.unwrap_or_else(|(code, reason)| ServerFrame::Error {
            id: Some(id),
            code,
            reason,
        }));
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        if session.in_flight == 0 {
            out.send(conn, frame);
        } else {
            session.in_flight += 1;
            out.store(Op::Echo {
                origin: Origin { conn, id },
                then: frame,
            });
        }
    }

    /// Runs the requests that waited for the login to finish, or for the
    /// connection's reads at the store to drop under [`MAX_READS`].
    fn run_queued(&mut self, conn: ConnId, now: u64, out: &mut impl Deliver) {
        while let Some(session) = self.sessions.get_mut(&conn) {
            let read_waits = matches!(session.queued.front(), Some(Waiting::Run(r)) if is_read(r))
                && session.reads >= MAX_READS;
            if session.logging_in() || read_waits {
                return;
            }
            match session.queued.pop_front() {
                None => break,
                // A queued message's time is when it is accepted: `now`.
                Some(Waiting::Run(request)) => self.handle(conn, request, now, out),
                Some(Waiting::Refuse(_)) if matches!(session.ending, Some(Ending::Bye(_))) => {}
                Some(Waiting::Refuse(id)) => {
                    let reason = format!(
                        "more than {MAX_QUEUED} requests before the login finished; send fewer at once"
                    );
                    self.answer(conn, id, Err((ErrorCode::BadRequest, reason)), out);
                }
            }
        }
        self.settle(conn, out);
    }

    /// Ends a session that asked to (bye, half-close) once nothing it sent
    /// waits for an answer.
    fn settle(&mut self, conn: ConnId, out: &mut impl Deliver) {
        let Some(session) = self.sessions.get(&conn) else {
            return;
        };
        if session.in_flight > 0 || !session.queued.is_empty() || session.logging_in() {
            return;
        }
        match session.ending {
            Some(Ending::Bye(id)) => {
                let ack = ServerFrame::Ack {
                    id,
                    offline: false,
                    duplicate: false,
                };
                out.send(conn, encode(&ack));
                self.leave(conn, "quit", out);
            }
            Some(Ending::PeerClosed) if session.phase != Phase::Leaving => {
                self.leave(conn, "connection closed", out)
            }
            _ => {}
        }
    }

    /// Resolves a nickname given in a request to an account.
    fn user_named(&self, nick: &str) -> Result<UserId, Rejection> {
        self.accounts
            .find(nick)
            .map(|a| a.id)
            .ok_or_else(|| (ErrorCode::NoSuchUser, format!("no such user: {nick}")))
    }

    /// Whether joins or departures wait to be announced.
    pub fn has_presence(&self) -> bool {
        !self.presence.is_empty()
    }

    /// Announces, in one frame to everyone online, who came and went since
    /// the last call; the dispatcher calls it at most once per interval.
    pub fn flush_presence(&mut self, out: &mut impl Deliver) {
        if let Some(frame) = self.presence.take_frame() {
            out.broadcast(encode(&frame));
        }
    }

    /// Marks a user as gone, tells everyone, and closes the connection.
    fn leave(&mut self, conn: ConnId, reason: &str, out: &mut impl Deliver) {
        let Some(session) = self.sessions.remove(&conn) else {
            return;
        };
        self.forget(conn, &session, Some(reason), out);
        if let (true, Some(nick)) = (session.announced(), &session.nick) {
            self.presence.left(nick.clone(), reason);
        }
        out.close(conn);
        self.sessions.insert(
            conn,
            Session {
                phase: Phase::Leaving,
                ..session
            },
        );
    }

    /// The nickname a connection logged in with.
    pub fn nick_of(&self, conn: ConnId) -> Option<&str> {
        self.sessions.get(&conn)?.nick.as_deref()
    }

    /// `away`: the user is away (with why), or back (`None` or empty). In
    /// a cluster the text goes into the user's `online` row too, for the
    /// other nodes' `online` answers.
    fn set_away(
        &mut self,
        conn: ConnId,
        text: Option<String>,
        out: &mut impl Deliver,
    ) -> Result<(), Rejection> {
        let text = text.filter(|t| !t.trim().is_empty());
        if let Some(text) = &text {
            if text.len() > chat_common::protocol::MAX_AWAY {
                return Err((
                    ErrorCode::BadText,
                    format!(
                        "an away text has at most {} bytes",
                        chat_common::protocol::MAX_AWAY
                    ),
                ));
            }
            if text
                .chars()
                .any(|c| c.is_control() || chat_common::protocol::is_invisible(c))
            {
                return Err((
                    ErrorCode::BadText,
                    "an away text cannot have control or invisible characters".into(),
                ));
            }
        }
        let session = self.sessions.get_mut(&conn).expect("online");
        if self.cluster && session.away != text {
            if let Some(user) = session.user {
                out.store(Op::Away {
                    user,
                    conn,
                    text: text.clone(),
                });
            }
        }
        session.away = text;
        Ok(())
    }

    /// Who online is away, and why, by nickname: this node's users and, in
    /// a cluster, the other nodes' (the replica).
    fn away(&self) -> std::collections::BTreeMap<String, String> {
        let here = self.nicks.values().filter_map(|c| {
            let session = self.sessions.get(c)?;
            Some((session.nick.clone()?, session.away.clone()?))
        });
        let elsewhere = self
            .remote
            .iter()
            .filter(|(key, _)| !self.nicks.contains_key(*key))
            .filter_map(|(_, r)| Some((r.nick.clone(), r.away.clone()?)));
        here.chain(elsewhere).collect()
    }

    /// Nicknames online, sorted without regard to case.
    pub fn online(&self) -> Vec<String> {
        self.online_iter().collect()
    }

    /// The names a `welcome` lists: the first [`WELCOME_NAMES`] online in
    /// folded order, always including `me` (in its place) — with a crowd,
    /// the first ones but one, and me.
    ///
    /// [`WELCOME_NAMES`]: chat_common::protocol::WELCOME_NAMES
    fn welcome_names(&self, me: &str) -> Vec<String> {
        let key = fold(me);
        let mut names: Vec<String> = self
            .everyone()
            .filter(|(folded, _, _)| *folded != key)
            .map(|(_, nick, _)| nick)
            .take(chat_common::protocol::WELCOME_NAMES - 1)
            .collect();
        let at = names.partition_point(|n| fold(n) < key);
        names.insert(at, me.to_string());
        names
    }

    /// Nicknames online as their users spelled them, in folded order: the
    /// map is kept sorted, so nothing is sorted per request.
    fn online_iter(&self) -> impl Iterator<Item = String> + '_ {
        self.everyone().map(|(_, nick, _)| nick)
    }

    /// Closes every connection from addresses `matches` (a ban): users are
    /// kicked with `reason`, the others just closed. Returns how many.
    pub fn drop_address(
        &mut self,
        matches: impl Fn(std::net::IpAddr) -> bool,
        reason: &str,
        out: &mut impl Deliver,
    ) -> usize {
        let hit: Vec<(ConnId, Option<String>)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.phase != Phase::Leaving && matches(s.info.peer.ip()))
            .map(|(&c, s)| (c, s.nick.clone().filter(|_| s.user.is_some())))
            .collect();
        for (conn, nick) in &hit {
            let kicked = nick
                .as_ref()
                .is_some_and(|nick| self.kick(nick, reason, out).is_ok());
            if !kicked {
                self.leave(*conn, reason, out);
            }
        }
        hit.len()
    }

    /// The operator removes `nick`; everyone, the user included, is told why.
    /// Returns the nickname as the user spelled it. A user online on
    /// another node of a cluster is kicked there (`Op::Kick`, its doorbell).
    pub fn kick(
        &mut self,
        nick: &str,
        reason: &str,
        out: &mut impl Deliver,
    ) -> Result<String, String> {
        let account = self.accounts.find(nick);
        let local = account.and_then(|account| self.online.get(&account.id));
        let conn = match (account, local) {
            (_, Some(&conn)) => conn,
            (Some(account), None) if self.is_online(account.id) => {
                let (user, nick) = (account.id, account.nick.clone());
                out.store(Op::Kick {
                    user,
                    reason: reason.to_string(),
                });
                return Ok(nick);
            }
            _ => return Err(format!("{nick} is not online")),
        };
        let session = self.sessions.remove(&conn).expect("session of a nick");
        let nick = session.nick.clone().expect("logged in");
        out.broadcast(encode(&ServerFrame::Kicked {
            nick: nick.clone(),
            reason: reason.to_string(),
        }));
        if session.phase != Phase::Online {
            // Still resuming: not subscribed, so the broadcast missed it.
            out.send(
                conn,
                encode(&ServerFrame::Kicked {
                    nick: nick.clone(),
                    reason: reason.to_string(),
                }),
            );
        }
        self.forget(conn, &session, Some(&format!("kicked: {reason}")), out);
        self.presence.kicked(&nick);
        out.close(conn);
        self.sessions.insert(
            conn,
            Session {
                phase: Phase::Leaving,
                ..session
            },
        );
        Ok(nick)
    }

    /// A message from the operator to everyone; returns how many received it.
    pub fn announce(&mut self, text: &str, now: u64, out: &mut impl Deliver) -> usize {
        out.broadcast(encode(&ServerFrame::Announce {
            text: text.to_string(),
            time: now,
        }));
        self.nicks.len()
    }

    /// Drops connections that have not logged in within `timeout_ms`, and
    /// login failures older than the throttle's window.
    pub fn expire_logins(&mut self, now: u64, timeout_ms: u64, out: &mut impl Deliver) {
        self.throttle.prune(now);
        self.registrations.prune(now);
        self.unpark(now, out);
        let frame = encode(&ServerFrame::Error {
            id: None,
            code: ErrorCode::Timeout,
            reason: format!("no login within {} s; closing", timeout_ms / 1000),
        });
        for (&conn, session) in self.sessions.iter_mut() {
            if matches!(session.phase, Phase::New | Phase::Authenticating)
                && now.saturating_sub(session.connected_at) >= timeout_ms
            {
                session.phase = Phase::Leaving;
                out.send(conn, frame.clone());
                out.close(conn);
            }
        }
    }

    /// Tells every connection the server is going down.
    pub fn shutdown(&mut self, reason: &str, out: &mut impl Deliver) {
        let frame = encode(&ServerFrame::Shutdown {
            reason: reason.to_string(),
        });
        for (&conn, session) in self.sessions.iter_mut() {
            session.phase = Phase::Leaving;
            out.send(conn, frame.clone());
        }
    }

    pub fn list(&self) -> Vec<SessionRow> {
        let mut rows: Vec<SessionRow> = self
            .sessions
            .values()
            .filter_map(|s| {
                Some(SessionRow {
                    nick: s.nick.clone().filter(|_| s.phase == Phase::Online)?,
                    node: None,
                    peer: s.info.peer,
                    connected_at: s.connected_at,
                    tls: s.info.tls,
                    messages_sent: s.messages_sent,
                })
            })
            .collect();
        rows.extend(
            self.remote
                .iter()
                .filter(|(key, _)| !self.nicks.contains_key(*key))
                .map(|(_, r)| SessionRow {
                    nick: r.nick.clone(),
                    node: Some(r.node.clone()),
                    peer: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
                    connected_at: 0,
                    tls: false,
                    messages_sent: 0,
                }),
        );
        rows.sort_by_key(|r| fold(&r.nick));
        rows
    }

    pub fn stats(&self, now: u64) -> Stats {
        Stats {
            connections: self.sessions.len(),
            users: self.online_count(),
            accounts: self.accounts.len(),
            messages: self.messages,
            private_messages: self.private_messages,
            stored_offline: self.stored_offline,
            redelivered: self.redelivered,
            duplicates: self.duplicates,
            floods_throttled: self.floods_throttled,
            flooders_cut: self.flooders_cut,
            slow_consumers_cut: self.slow_consumers_cut,
            rate: self.rate.per_second(now),
            nodes: self.node_users(),
        }
    }
}
