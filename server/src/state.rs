//! The chat state: who is connected, under which account, and what each
//! request, store reply or admin command produces. Pure: no I/O, no locks,
//! no clock — the dispatcher owns it, passes the time in, and carries out
//! what it asks through [`Deliver`] (frames for connections, ops for the
//! store, jobs for the password hashers).
//!
//! A login goes New → Authenticating (password hashed off-thread) →
//! Resuming (the store reads what the user missed) → Online. Requests that
//! arrive meanwhile wait in the session and run, in order, once it is online.
//! A message is accepted in two steps: [`ChatState::request`] sends it to
//! the store, and [`ChatState::stored`] acknowledges and delivers it once
//! it is durable.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;

use chat_common::codec::encode;
use chat_common::protocol::{validate_nick, MAX_CID, MAX_HISTORY, MAX_PASSWORD, WELCOME_NAMES};
use chat_common::{ErrorCode, Frame, Request, ServerFrame, Stored, EVERYONE};

use crate::accounts::Accounts;
use crate::auth::{Job, Verdict};
use crate::framework::{ConnId, ConnInfo};
use crate::presence::Presence;
use crate::store::{Appended, Delivery, Loaded, NewMessage, Op, Origin, Page, Reply, To, UserId};

/// Where the state's output goes: the dispatcher's router and queues, or a
/// recorder in tests.
pub trait Deliver {
    fn send(&mut self, conn: ConnId, frame: Frame);
    /// Close `conn` once what was sent to it is written.
    fn close(&mut self, conn: ConnId);
    /// `conn` is in the room: broadcasts reach it from now on.
    fn subscribe(&mut self, conn: ConnId);
    fn unsubscribe(&mut self, conn: ConnId);
    /// `frame` for everyone subscribed.
    fn broadcast(&mut self, frame: Frame);
    /// Work for the store thread; its reply comes back through
    /// [`ChatState::stored`], after the replies to every earlier op.
    fn store(&mut self, op: Op);
    /// A password to check; the verdict comes back through
    /// [`ChatState::authenticated`].
    fn auth(&mut self, job: Job);
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

/// Requests a session may queue while its login completes; the ones beyond
/// are refused (in their turn, after the welcome)…
const MAX_QUEUED: usize = 256;
/// …up to this many; a client that sends even more before its welcome is
/// disconnected, so a flood cannot grow the queue without bound.
const MAX_REFUSED: usize = 64 * 1024;

/// A request that arrived while logging in: to run, or (over
/// [`MAX_QUEUED`]) to refuse when its turn comes.
#[derive(Debug)]
enum Queued {
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
    phase: Phase,
    user: Option<UserId>,
    nick: Option<String>,
    messages_sent: u64,
    /// Requests sent to the store or the hashers and not answered yet:
    /// answers after them must wait their turn.
    in_flight: u32,
    /// Of those, `history` and `search` (see [`MAX_READS`]).
    reads: u32,
    /// Requests that arrived while logging in.
    queued: VecDeque<Queued>,
    ending: Option<Ending>,
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

/// A row of the admin console's `/list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub nick: String,
    pub peer: SocketAddr,
    pub connected_at: u64,
    pub tls: bool,
    pub messages_sent: u64,
}

/// The figures behind `/stats`; counts are since the server started.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub connections: usize,
    pub users: usize,
    pub accounts: usize,
    pub messages: u64,
    pub private_messages: u64,
    /// Private messages stored for a receiver who was offline.
    pub stored_offline: u64,
    /// Messages sent again at a login: missed while away or disconnected.
    pub redelivered: u64,
    /// Resends dropped because their `cid` had been accepted before.
    pub duplicates: u64,
    /// Messages per second over the last [`RATE_WINDOW_SECS`] seconds.
    pub rate: f64,
}

pub const RATE_WINDOW_SECS: u64 = 10;

/// Counts messages per second over a sliding window of whole seconds.
#[derive(Debug, Default)]
struct RateWindow {
    buckets: [(u64, u64); RATE_WINDOW_SECS as usize],
}

impl RateWindow {
    fn record(&mut self, now_ms: u64) {
        let sec = now_ms / 1000;
        let bucket = &mut self.buckets[(sec % RATE_WINDOW_SECS) as usize];
        if bucket.0 != sec {
            *bucket = (sec, 0);
        }
        bucket.1 += 1;
    }

    fn per_second(&self, now_ms: u64) -> f64 {
        let sec = now_ms / 1000;
        let total: u64 = self
            .buckets
            .iter()
            .filter(|(s, _)| *s + RATE_WINDOW_SECS > sec && *s <= sec)
            .map(|(_, n)| n)
            .sum();
        total as f64 / RATE_WINDOW_SECS as f64
    }
}

/// Nicknames are unique regardless of case: "Alice" and "alice" are one person.
pub(crate) fn fold(nick: &str) -> String {
    nick.to_lowercase()
}

/// A failed request: its error code and a reason for people.
type Refusal = (ErrorCode, String);

pub struct ChatState {
    sessions: HashMap<ConnId, Session>,
    accounts: Accounts,
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
    rate: RateWindow,
}

impl ChatState {
    pub fn new(max_text: usize, accounts: Accounts) -> Self {
        ChatState {
            sessions: HashMap::new(),
            accounts,
            presence: Presence::default(),
            nicks: BTreeMap::new(),
            online: HashMap::new(),
            max_text,
            messages: 0,
            private_messages: 0,
            stored_offline: 0,
            redelivered: 0,
            duplicates: 0,
            rate: RateWindow::default(),
        }
    }

    pub fn connect(&mut self, info: ConnInfo, now: u64) {
        self.sessions.insert(
            info.id,
            Session {
                info,
                connected_at: now,
                phase: Phase::New,
                user: None,
                nick: None,
                messages_sent: 0,
                in_flight: 0,
                reads: 0,
                queued: VecDeque::new(),
                ending: None,
            },
        );
    }

    /// The connection is gone; if it was a user who had not left yet,
    /// everyone is told why.
    pub fn disconnect(&mut self, conn: ConnId, reason: &str, out: &mut impl Deliver) {
        let Some(session) = self.sessions.remove(&conn) else {
            return;
        };
        if session.phase == Phase::Leaving {
            return;
        }
        self.forget(conn, &session, out);
        if let (true, Some(nick)) = (session.announced(), session.nick.clone()) {
            self.presence.left(nick, reason);
        }
    }

    /// Removes a session's user from who is online (not from `sessions`).
    fn forget(&mut self, conn: ConnId, session: &Session, out: &mut impl Deliver) {
        if let (Some(user), Some(nick)) = (session.user, &session.nick) {
            if self.online.get(&user) == Some(&conn) {
                self.online.remove(&user);
                self.nicks.remove(&fold(nick));
            }
            out.unsubscribe(conn);
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
        // `received` is idempotent and unanswered: recorded whenever the
        // connection has a user, even after its bye.
        if let Request::Received { seq } = request {
            if let Some(user) = session.user {
                out.store(Op::Received { user, seq });
            }
            return;
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
                session.queued.push_back(Queued::Run(request));
            } else if queued < MAX_REFUSED {
                if let Some(id) = request.id() {
                    session.queued.push_back(Queued::Refuse(id));
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
    fn handle(&mut self, conn: ConnId, request: Request, now: u64, out: &mut impl Deliver) {
        let Some(session) = self.sessions.get(&conn) else {
            return;
        };
        if session.phase == Phase::Leaving || matches!(session.ending, Some(Ending::Bye(_))) {
            return;
        }
        let online = session.phase == Phase::Online;
        let Some(id) = request.id() else {
            return;
        };
        let result = match request {
            Request::Ping { id } => Ok(ServerFrame::Pong { id }),
            Request::Login { .. } if online => Err((
                ErrorCode::AlreadyLoggedIn,
                "you are already logged in".to_string(),
            )),
            Request::Login {
                nick,
                password,
                last_seq,
                last_public,
                ..
            } => {
                let job = Job {
                    origin: Origin { conn, id },
                    nick,
                    password,
                    hash: None,
                    last_seq,
                    last_public,
                };
                match self.login(job, out) {
                    Ok(()) => return,
                    Err(refusal) => Err(refusal),
                }
            }
            _ if !online => Err((
                ErrorCode::NotLoggedIn,
                "log in first: {\"type\":\"login\",\"id\":1,\"nick\":\"yourname\",\"password\":\"…\"}"
                    .to_string(),
            )),
            Request::Message {
                receiver, text, cid, ..
            } => match self.message(conn, id, receiver, text, cid, now, out) {
                Ok(()) => return,
                Err(refusal) => Err(refusal),
            },
            Request::Online { id } => Ok(ServerFrame::Online {
                id,
                users: self.online(),
            }),
            // Nothing more to catch up on.
            Request::More { id } => Ok(ServerFrame::Replay {
                id,
                count: 0,
                left: 0,
            }),
            Request::History { with, limit, .. } => {
                let op = |user, with, limit| Op::History {
                    origin: Origin { conn, id },
                    user,
                    with,
                    limit,
                };
                match self.query(conn, with, limit, op, out) {
                    Ok(()) => return,
                    Err(refusal) => Err(refusal),
                }
            }
            Request::Search {
                words, from, limit, ..
            } => {
                if words.split_whitespace().next().is_none() {
                    Err((ErrorCode::BadRequest, "search for what? give some words".into()))
                } else {
                    let op = |user, from, limit| Op::Search {
                        origin: Origin { conn, id },
                        user,
                        words,
                        from,
                        limit,
                    };
                    match self.query(conn, from, limit, op, out) {
                        Ok(()) => return,
                        Err(refusal) => Err(refusal),
                    }
                }
            }
            Request::Bye { id } => {
                if let Some(session) = self.sessions.get_mut(&conn) {
                    session.ending = Some(Ending::Bye(id));
                }
                self.settle(conn, out);
                return;
            }
            Request::Received { .. } => return,
        };
        self.answer(conn, id, result, out);
    }

    /// Sends an answer, after the answers still in flight for this
    /// connection (through the store, which replies in order).
    fn answer(
        &mut self,
        conn: ConnId,
        id: u64,
        result: Result<ServerFrame, Refusal>,
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
                frame,
            });
        }
    }

    fn login(&mut self, mut job: Job, out: &mut impl Deliver) -> Result<(), Refusal> {
        validate_nick(&job.nick).map_err(|why| (ErrorCode::NickInvalid, why))?;
        if job.password.is_empty() || job.password.len() > MAX_PASSWORD {
            return Err((
                ErrorCode::PasswordInvalid,
                format!("a password has 1 to {MAX_PASSWORD} bytes"),
            ));
        }
        let session = self
            .sessions
            .get_mut(&job.origin.conn)
            .expect("checked by request");
        session.phase = Phase::Authenticating;
        session.in_flight += 1;
        job.hash = self.accounts.find(&job.nick).map(|a| a.hash.clone());
        out.auth(job);
        Ok(())
    }

    /// The hashers' verdict on a login.
    pub fn authenticated(&mut self, job: Job, verdict: Verdict, now: u64, out: &mut impl Deliver) {
        let conn = job.origin.conn;
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        session.in_flight -= 1;
        if session.phase != Phase::Authenticating {
            return self.settle(conn, out);
        }
        let refusal = match verdict {
            Verdict::Verified => match self.accounts.find(&job.nick) {
                Some(account) => return self.attach(job, account.id, false, out),
                None => (ErrorCode::Other, "the account vanished; try again".into()),
            },
            Verdict::Hashed(hash) => {
                if let Some(account) = self.accounts.find(&job.nick) {
                    // Someone registered this nickname while we hashed:
                    // the password must now match theirs.
                    let hash = Some(account.hash.clone());
                    let session = self.sessions.get_mut(&conn).expect("present");
                    session.in_flight += 1;
                    return out.auth(Job { hash, ..job });
                }
                let user = self.accounts.create(&job.nick, hash.clone());
                out.store(Op::CreateAccount {
                    user,
                    nick: job.nick.clone(),
                    hash,
                    time: now,
                });
                return self.attach(job, user, true, out);
            }
            Verdict::WrongPassword => (
                ErrorCode::BadPassword,
                format!("wrong password for {}", job.nick),
            ),
            Verdict::Failed(why) => {
                tracing::error!("checking the password of {}: {why}", job.nick);
                (ErrorCode::Other, "could not check the password".into())
            }
        };
        let session = self.sessions.get_mut(&conn).expect("present");
        session.phase = Phase::New;
        self.answer(conn, job.origin.id, Err(refusal), out);
        self.run_queued(conn, out);
    }

    /// The login succeeded: take the nickname (from another connection if
    /// need be) and ask the store for what the user missed.
    fn attach(&mut self, job: Job, user: UserId, new_account: bool, out: &mut impl Deliver) {
        let conn = job.origin.conn;
        let quiet = self
            .online
            .get(&user)
            .and_then(|old| self.sessions.get(old))
            .is_some_and(Session::announced);
        if let Some(&old) = self.online.get(&user) {
            self.take_over(old, out);
        }
        let nick = self.accounts.nick(user).to_string();
        self.nicks.insert(fold(&nick), conn);
        self.online.insert(user, conn);
        let session = self.sessions.get_mut(&conn).expect("present");
        session.user = Some(user);
        session.nick = Some(nick);
        session.phase = Phase::Resuming {
            id: job.origin.id,
            new_account,
            quiet,
        };
        session.in_flight += 1;
        out.store(Op::Backlog {
            origin: job.origin,
            user,
            last_seq: job.last_seq,
            last_public: job.last_public,
            first: true,
        });
    }

    /// The client asks for the next page of what it missed.
    fn more(&mut self, conn: ConnId, id: u64, out: &mut impl Deliver) {
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        let (
            Phase::CatchingUp {
                last_seq,
                last_public,
                ..
            },
            Some(user),
        ) = (session.phase, session.user)
        else {
            return;
        };
        session.in_flight += 1;
        out.store(Op::Backlog {
            origin: Origin { conn, id },
            user,
            last_seq: Some(last_seq),
            last_public,
            first: false,
        });
    }

    /// Closes `old`, whose user just logged in elsewhere; nobody else is
    /// told (the user has not left).
    fn take_over(&mut self, old: ConnId, out: &mut impl Deliver) {
        let Some(session) = self.sessions.remove(&old) else {
            return;
        };
        self.forget(old, &session, out);
        let frame = ServerFrame::Error {
            id: None,
            code: ErrorCode::TakenOver,
            reason: "you logged in from somewhere else; this connection is closed".into(),
        };
        out.send(old, encode(&frame));
        out.close(old);
        self.sessions.insert(
            old,
            Session {
                phase: Phase::Leaving,
                ..session
            },
        );
    }

    /// A reply from the store.
    pub fn stored(&mut self, reply: Reply, now: u64, out: &mut impl Deliver) {
        let origin = match reply {
            Reply::Delivered(deliveries) => return self.delivered(deliveries, out),
            Reply::Echo { origin, frame } => {
                out.send(origin.conn, frame);
                origin
            }
            Reply::Appended {
                origin,
                message,
                outcome,
            } => {
                self.appended(origin, message, outcome, now, out);
                origin
            }
            Reply::Backlog {
                origin,
                user,
                result,
            } => {
                self.resumed(origin, user, result, out);
                origin
            }
            Reply::Found { origin, result } => {
                if let Some(session) = self.sessions.get_mut(&origin.conn) {
                    session.reads -= 1;
                }
                let frame = match result {
                    Ok(found) => ServerFrame::History {
                        id: origin.id,
                        messages: found.into_iter().map(stored_of).collect(),
                    },
                    Err(why) => store_failed(origin.id, &why),
                };
                out.send(origin.conn, encode(&frame));
                origin
            }
        };
        if let Some(session) = self.sessions.get_mut(&origin.conn) {
            session.in_flight -= 1;
            self.run_queued(origin.conn, out);
        }
    }

    fn appended(
        &mut self,
        origin: Origin,
        message: NewMessage,
        outcome: Appended,
        now: u64,
        out: &mut impl Deliver,
    ) {
        let seq = match outcome {
            Appended::New { seq } => seq,
            Appended::Duplicate => {
                self.duplicates += 1;
                let ack = ServerFrame::Ack {
                    id: origin.id,
                    offline: false,
                    duplicate: true,
                };
                return out.send(origin.conn, encode(&ack));
            }
            Appended::Failed(why) => {
                tracing::error!("storing a message: {why}");
                return out.send(origin.conn, encode(&store_failed(origin.id, &why)));
            }
        };
        self.messages += 1;
        self.rate.record(now);
        if let Some(session) = self.sessions.get_mut(&origin.conn) {
            session.messages_sent += 1;
        }
        // Acknowledge first, so a sender's ack never waits behind the fan-out.
        let ack = ServerFrame::Ack {
            id: origin.id,
            offline: message.away,
            duplicate: false,
        };
        out.send(origin.conn, encode(&ack));
        let sender = self.accounts.nick(message.sender).to_string();
        match message.to {
            To::Public => out.broadcast(encode(&ServerFrame::Message {
                seq,
                sender,
                receiver: EVERYONE.into(),
                text: message.text,
                time: message.time,
                away: false,
            })),
            To::User(to) => {
                self.private_messages += 1;
                if message.away {
                    self.stored_offline += 1;
                }
                // Someone still resuming gets it with their backlog, which
                // the store reads after this commit.
                let Some(&conn) = self.online.get(&to) else {
                    return;
                };
                if self.sessions.get(&conn).map(|s| s.phase) != Some(Phase::Online) {
                    return;
                }
                let frame = ServerFrame::Message {
                    seq,
                    sender,
                    receiver: self.accounts.nick(to).to_string(),
                    text: message.text,
                    time: message.time,
                    away: false,
                };
                out.send(conn, encode(&frame));
            }
        }
    }

    /// The store has read a page of what the user missed: the first comes
    /// after the welcome, the others after the `replay` answering `more`.
    /// Live messages start once the last page is out.
    fn resumed(
        &mut self,
        origin: Origin,
        user: UserId,
        result: Result<Page, String>,
        out: &mut impl Deliver,
    ) {
        let conn = origin.conn;
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        if session.user != Some(user) {
            return;
        }
        let page = match result {
            Ok(page) => page,
            Err(why) => {
                tracing::error!("reading the backlog of {:?}: {why}", session.nick);
                out.send(conn, encode(&store_failed(origin.id, &why)));
                self.leave(conn, "internal error", out);
                return;
            }
        };
        let quiet = match session.phase {
            Phase::Resuming {
                id,
                new_account,
                quiet,
            } => {
                let nick = session.nick.clone().expect("resuming has a nick");
                let online: Vec<String> = self.online_iter().take(WELCOME_NAMES).collect();
                let welcome = ServerFrame::Welcome {
                    id,
                    nick,
                    online_more: (self.nicks.len() - online.len()) as u32,
                    online,
                    new_account,
                    replay: page.messages.len() as u32,
                    replay_left: page.left,
                    public_seq: page.public_head,
                };
                out.send(conn, encode(&welcome));
                quiet
            }
            Phase::CatchingUp { quiet, .. } => {
                let replay = ServerFrame::Replay {
                    id: origin.id,
                    count: page.messages.len() as u32,
                    left: page.left,
                };
                out.send(conn, encode(&replay));
                quiet
            }
            _ => return,
        };
        self.redelivered += page.messages.len() as u64;
        for m in page.messages {
            let frame = ServerFrame::Message {
                seq: m.seq,
                sender: m.sender,
                receiver: m.receiver,
                text: m.text,
                time: m.time,
                away: m.away,
            };
            out.send(conn, encode(&frame));
        }
        let session = self.sessions.get_mut(&conn).expect("present");
        if page.left > 0 {
            session.phase = Phase::CatchingUp {
                quiet,
                last_seq: page.last_seq,
                last_public: page.last_public,
            };
            return;
        }
        session.phase = Phase::Online;
        let nick = session.nick.clone().expect("resuming has a nick");
        out.subscribe(conn);
        if !quiet {
            self.presence.joined(&nick);
        }
        self.run_queued(conn, out);
    }

    /// Tells the senders of private messages that their receiver has them.
    fn delivered(&mut self, deliveries: Vec<Delivery>, out: &mut impl Deliver) {
        for d in deliveries {
            let Some(&conn) = self.online.get(&d.sender) else {
                continue;
            };
            // Not before the welcome: a session still resuming misses it.
            let welcomed = self
                .sessions
                .get(&conn)
                .is_some_and(|s| matches!(s.phase, Phase::Online | Phase::CatchingUp { .. }));
            if welcomed {
                let frame = ServerFrame::Delivered {
                    cid: d.cid,
                    to: d.to,
                };
                out.send(conn, encode(&frame));
            }
        }
    }

    /// Runs the requests that waited for the login to finish, or for the
    /// connection's reads at the store to drop under [`MAX_READS`].
    fn run_queued(&mut self, conn: ConnId, out: &mut impl Deliver) {
        while let Some(session) = self.sessions.get_mut(&conn) {
            let read_waits = matches!(session.queued.front(), Some(Queued::Run(r)) if is_read(r))
                && session.reads >= MAX_READS;
            if session.logging_in() || read_waits {
                return;
            }
            match session.queued.pop_front() {
                None => break,
                Some(Queued::Run(request)) => {
                    // The time of a queued message is when it is accepted.
                    let now = crate::dispatcher::now_ms();
                    self.handle(conn, request, now, out);
                }
                Some(Queued::Refuse(_)) if matches!(session.ending, Some(Ending::Bye(_))) => {}
                Some(Queued::Refuse(id)) => {
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
    fn user_named(&self, nick: &str) -> Result<UserId, Refusal> {
        self.accounts
            .find(nick)
            .map(|a| a.id)
            .ok_or_else(|| (ErrorCode::NoSuchUser, format!("no such user: {nick}")))
    }

    #[allow(clippy::too_many_arguments)]
    fn message(
        &mut self,
        conn: ConnId,
        id: u64,
        receiver: String,
        text: String,
        cid: Option<String>,
        now: u64,
        out: &mut impl Deliver,
    ) -> Result<(), Refusal> {
        if text.trim().is_empty() {
            return Err((ErrorCode::BadText, "empty message".into()));
        }
        if text.len() > self.max_text {
            return Err((
                ErrorCode::BadText,
                format!(
                    "message too long: {} bytes, the limit is {}",
                    text.len(),
                    self.max_text
                ),
            ));
        }
        if cid.as_ref().is_some_and(|c| c.len() > MAX_CID) {
            return Err((
                ErrorCode::BadRequest,
                format!("a cid has at most {MAX_CID} bytes"),
            ));
        }
        let to = if receiver == EVERYONE {
            To::Public
        } else {
            To::User(self.user_named(&receiver)?)
        };
        let away = matches!(to, To::User(user) if !self.online.contains_key(&user));
        let session = self.sessions.get_mut(&conn).expect("checked by request");
        session.in_flight += 1;
        out.store(Op::Append {
            origin: Origin { conn, id },
            message: NewMessage {
                sender: session.user.expect("online"),
                cid,
                to,
                text,
                time: now,
                away,
            },
        });
        Ok(())
    }

    /// Sends a `history` or `search` to the store, naming someone or not.
    fn query(
        &mut self,
        conn: ConnId,
        nick: Option<String>,
        limit: u32,
        op: impl FnOnce(UserId, Option<UserId>, u32) -> Op,
        out: &mut impl Deliver,
    ) -> Result<(), Refusal> {
        let other = nick.map(|n| self.user_named(&n)).transpose()?;
        let session = self.sessions.get_mut(&conn).expect("checked by request");
        session.in_flight += 1;
        session.reads += 1;
        let user = session.user.expect("online");
        out.store(op(user, other, limit.clamp(1, MAX_HISTORY)));
        Ok(())
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
        self.forget(conn, &session, out);
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

    /// Nicknames online, sorted without regard to case.
    pub fn online(&self) -> Vec<String> {
        self.online_iter().collect()
    }

    /// Nicknames online as their users spelled them, in folded order: the
    /// map is kept sorted, so nothing is sorted per request.
    fn online_iter(&self) -> impl Iterator<Item = String> + '_ {
        self.nicks
            .values()
            .filter_map(|c| self.sessions.get(c)?.nick.clone())
    }

    /// The operator removes `nick`; everyone, the user included, is told why.
    /// Returns the nickname as the user spelled it.
    pub fn kick(
        &mut self,
        nick: &str,
        reason: &str,
        out: &mut impl Deliver,
    ) -> Result<String, String> {
        let conn = *self
            .nicks
            .get(&fold(nick))
            .ok_or_else(|| format!("{nick} is not online"))?;
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
        self.forget(conn, &session, out);
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

    /// Drops connections that have not logged in within `timeout_ms`.
    pub fn expire_logins(&mut self, now: u64, timeout_ms: u64, out: &mut impl Deliver) {
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
                    peer: s.info.peer,
                    connected_at: s.connected_at,
                    tls: s.info.tls,
                    messages_sent: s.messages_sent,
                })
            })
            .collect();
        rows.sort_by_key(|r| fold(&r.nick));
        rows
    }

    pub fn stats(&self, now: u64) -> Stats {
        Stats {
            connections: self.sessions.len(),
            users: self.nicks.len(),
            accounts: self.accounts.len(),
            messages: self.messages,
            private_messages: self.private_messages,
            stored_offline: self.stored_offline,
            redelivered: self.redelivered,
            duplicates: self.duplicates,
            rate: self.rate.per_second(now),
        }
    }
}

fn stored_of(m: Loaded) -> Stored {
    Stored {
        sender: m.sender,
        receiver: m.receiver,
        text: m.text,
        time: m.time,
    }
}

fn store_failed(id: u64, why: &str) -> ServerFrame {
    ServerFrame::Error {
        id: Some(id),
        code: ErrorCode::StoreFailed,
        reason: format!("the server could not store or read this: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Account;

    /// Records what the state asks for; a broadcast reaches the
    /// connections subscribed at that moment, as the workers do it.
    #[derive(Default)]
    struct Recorder {
        sent: Vec<(ConnId, ServerFrame)>,
        closed: Vec<ConnId>,
        subscribed: std::collections::BTreeSet<ConnId>,
        ops: VecDeque<Op>,
        jobs: VecDeque<Job>,
    }

    impl Deliver for Recorder {
        fn send(&mut self, conn: ConnId, frame: Frame) {
            let frame = chat_common::codec::decode(&frame[..frame.len() - 1]).unwrap();
            self.sent.push((conn, frame));
        }
        fn close(&mut self, conn: ConnId) {
            self.closed.push(conn);
        }
        fn subscribe(&mut self, conn: ConnId) {
            self.subscribed.insert(conn);
        }
        fn unsubscribe(&mut self, conn: ConnId) {
            self.subscribed.remove(&conn);
        }
        fn broadcast(&mut self, frame: Frame) {
            for conn in self.subscribed.clone() {
                self.send(conn, frame.clone());
            }
        }
        fn store(&mut self, op: Op) {
            self.ops.push_back(op);
        }
        fn auth(&mut self, job: Job) {
            self.jobs.push_back(job);
        }
    }

    impl Recorder {
        fn take(&mut self) -> Vec<(ConnId, ServerFrame)> {
            std::mem::take(&mut self.sent)
        }
    }

    /// A fake store and hashers: passwords are "pw-" + nick; messages get
    /// consecutive numbers; backlogs are empty unless `backlog` says.
    struct World {
        state: ChatState,
        out: Recorder,
        seq: u64,
    }

    impl World {
        fn new(accounts: &[&str]) -> World {
            let accounts = accounts
                .iter()
                .enumerate()
                .map(|(i, nick)| Account {
                    id: i as UserId + 1,
                    nick: nick.to_string(),
                    hash: format!("pw-{nick}"),
                })
                .collect();
            World {
                state: ChatState::new(100, Accounts::new(accounts)),
                out: Recorder::default(),
                seq: 0,
            }
        }

        /// Answers every pending job and op, in order, until none is left.
        fn settle(&mut self) {
            loop {
                if let Some(job) = self.out.jobs.pop_front() {
                    let verdict = match &job.hash {
                        None => Verdict::Hashed(job.password.clone()),
                        Some(hash) if *hash == job.password => Verdict::Verified,
                        Some(_) => Verdict::WrongPassword,
                    };
                    self.state.authenticated(job, verdict, 0, &mut self.out);
                } else if let Some(op) = self.out.ops.pop_front() {
                    let reply = match op {
                        Op::Append { origin, message } => {
                            self.seq += 1;
                            Reply::Appended {
                                origin,
                                message,
                                outcome: Appended::New { seq: self.seq },
                            }
                        }
                        Op::Backlog { origin, user, .. } => Reply::Backlog {
                            origin,
                            user,
                            result: Ok(Page {
                                messages: Vec::new(),
                                public_head: self.seq,
                                last_seq: 0,
                                last_public: None,
                                left: 0,
                            }),
                        },
                        Op::Echo { origin, frame } => Reply::Echo { origin, frame },
                        Op::History { origin, .. } | Op::Search { origin, .. } => Reply::Found {
                            origin,
                            result: Ok(Vec::new()),
                        },
                        Op::CreateAccount { .. } | Op::Received { .. } => continue,
                    };
                    self.state.stored(reply, 0, &mut self.out);
                } else {
                    return;
                }
            }
        }

        fn connect(&mut self, conn: ConnId) {
            let info = ConnInfo {
                id: conn,
                peer: format!("127.0.0.1:{}", 1000 + conn).parse().unwrap(),
                tls: false,
            };
            self.state.connect(info, 0);
        }

        fn request(&mut self, conn: ConnId, request: Request) {
            self.state.request(conn, request, 0, &mut self.out);
        }

        fn login(&mut self, conn: ConnId, nick: &str, password: &str) {
            self.connect(conn);
            self.request(conn, login(nick, password));
            self.settle();
        }
    }

    fn login(nick: &str, password: &str) -> Request {
        Request::Login {
            id: 1,
            nick: nick.into(),
            password: password.into(),
            last_seq: None,
            last_public: None,
        }
    }

    fn message(id: u64, receiver: &str, text: &str) -> Request {
        Request::Message {
            id,
            receiver: receiver.into(),
            text: text.into(),
            cid: None,
        }
    }

    fn kinds(frames: &[(ConnId, ServerFrame)], conn: ConnId) -> Vec<String> {
        frames
            .iter()
            .filter(|(c, _)| *c == conn)
            .map(|(_, f)| match f {
                ServerFrame::Error { code, .. } => format!("error:{code:?}"),
                other => serde_json::to_value(other).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            })
            .collect()
    }

    #[test]
    fn first_login_registers_and_later_ones_need_the_password() {
        let mut w = World::new(&["alice"]);
        w.login(1, "newbie", "secret");
        let sent = w.out.take();
        assert!(matches!(
            &sent[0].1,
            ServerFrame::Welcome { new_account: true, nick, .. } if nick == "newbie"
        ));
        assert!(w.state.stats(0).accounts == 2);
        w.login(2, "ALICE", "wrong");
        assert_eq!(kinds(&w.out.take(), 2), ["error:BadPassword"]);
        w.request(2, login("ALICE", "pw-alice"));
        w.settle();
        let sent = w.out.take();
        assert!(
            matches!(&sent[0].1, ServerFrame::Welcome { nick, new_account: false, .. } if nick == "alice"),
            "the account's spelling: {sent:?}"
        );
    }

    #[test]
    fn requests_sent_with_the_login_wait_for_it_and_keep_their_order() {
        let mut w = World::new(&["alice"]);
        w.connect(1);
        w.request(1, login("alice", "pw-alice"));
        w.request(1, message(2, "*", "hi"));
        w.request(1, Request::Ping { id: 3 });
        w.settle();
        assert_eq!(
            kinds(&w.out.take(), 1),
            ["welcome", "ack", "message", "pong"],
            "not refused as not_logged_in, and the pong after the ack"
        );
    }

    #[test]
    fn private_messages_are_acked_when_stored_and_offline_ones_say_so() {
        let mut w = World::new(&["alice", "bob", "carol"]);
        w.login(1, "alice", "pw-alice");
        w.login(2, "bob", "pw-bob");
        w.out.take();
        w.request(1, message(5, "bob", "psst"));
        assert!(w.out.take().is_empty(), "nothing before the store replies");
        w.settle();
        let sent = w.out.take();
        assert_eq!(kinds(&sent, 1), ["ack"]);
        assert_eq!(kinds(&sent, 2), ["message"]);
        w.request(1, message(6, "carol", "later"));
        w.request(1, message(7, "nobody", "x"));
        w.settle();
        let sent = w.out.take();
        assert!(
            matches!(
                sent[0].1,
                ServerFrame::Ack {
                    id: 6,
                    offline: true,
                    ..
                }
            ),
            "{sent:?}"
        );
        assert!(
            matches!(
                sent[1].1,
                ServerFrame::Error {
                    code: ErrorCode::NoSuchUser,
                    ..
                }
            ),
            "{sent:?}"
        );
        assert_eq!(w.state.stats(0).stored_offline, 1);
    }

    #[test]
    fn a_second_login_takes_over_quietly() {
        let mut w = World::new(&["alice", "bob"]);
        w.login(1, "alice", "pw-alice");
        w.login(2, "bob", "pw-bob");
        w.state.flush_presence(&mut w.out);
        w.out.take();
        w.login(3, "bob", "pw-bob");
        let sent = w.out.take();
        assert_eq!(kinds(&sent, 2), ["error:TakenOver"]);
        assert!(w.out.closed.contains(&2));
        assert_eq!(kinds(&sent, 3)[0], "welcome");
        assert!(
            !w.state.has_presence(),
            "nobody is told bob left and came back"
        );
        w.request(1, message(9, "bob", "still there?"));
        w.settle();
        assert_eq!(
            kinds(&w.out.take(), 3),
            ["message"],
            "the new connection gets it"
        );
    }

    #[test]
    fn bye_is_answered_after_what_is_in_flight() {
        let mut w = World::new(&["alice"]);
        w.login(1, "alice", "pw-alice");
        w.out.take();
        w.request(1, message(2, "*", "last words"));
        w.request(1, Request::Bye { id: 3 });
        w.request(1, Request::Ping { id: 4 });
        w.settle();
        let sent = w.out.take();
        assert_eq!(
            kinds(&sent, 1),
            ["ack", "message", "ack"],
            "no pong after bye"
        );
        assert!(matches!(
            sent.last().unwrap().1,
            ServerFrame::Ack { id: 3, .. }
        ));
        assert_eq!(w.out.closed, [1]);
    }

    #[test]
    fn a_half_close_behind_a_login_still_gets_every_answer() {
        let mut w = World::new(&["alice"]);
        w.connect(1);
        w.request(1, login("alice", "pw-alice"));
        w.request(1, message(2, "*", "built"));
        w.request(1, Request::Bye { id: 3 });
        w.state.peer_closed(1, &mut w.out);
        w.settle();
        assert_eq!(
            kinds(&w.out.take(), 1),
            ["welcome", "ack", "message", "ack"]
        );
        assert_eq!(w.out.closed, [1]);
    }

    #[test]
    fn too_many_requests_before_the_welcome_are_refused_in_their_turn() {
        let mut w = World::new(&["alice"]);
        w.connect(1);
        w.request(1, login("alice", "pw-alice"));
        for id in 2..(MAX_QUEUED as u64 + 4) {
            w.request(1, Request::Ping { id });
        }
        assert!(w.out.take().is_empty(), "nothing before the welcome");
        w.settle();
        let kinds = kinds(&w.out.take(), 1);
        assert_eq!(kinds[0], "welcome");
        assert_eq!(
            kinds[1..=MAX_QUEUED]
                .iter()
                .filter(|k| *k == "pong")
                .count(),
            MAX_QUEUED
        );
        assert_eq!(
            kinds[MAX_QUEUED + 1..],
            ["error:BadRequest", "error:BadRequest"]
        );
    }

    #[test]
    fn one_connection_has_at_most_4_reads_at_the_store() {
        let mut w = World::new(&["alice"]);
        w.login(1, "alice", "pw-alice");
        w.out.take();
        for id in 1..=100 {
            let history = Request::History {
                id,
                with: None,
                limit: 500,
            };
            w.request(1, history);
        }
        w.request(1, Request::Ping { id: 101 });
        assert_eq!(w.out.ops.len(), MAX_READS as usize, "the rest wait");
        w.settle();
        let ids: Vec<u64> = w
            .out
            .take()
            .into_iter()
            .map(|(_, f)| match f {
                ServerFrame::History { id, .. } | ServerFrame::Pong { id } => id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, (1..=101).collect::<Vec<_>>(), "all answered, in order");
    }

    #[test]
    fn received_counts_even_after_bye() {
        let mut w = World::new(&["alice"]);
        w.login(1, "alice", "pw-alice");
        w.request(1, Request::Bye { id: 5 });
        w.request(1, Request::Received { seq: 3 });
        assert!(
            w.out
                .ops
                .iter()
                .any(|op| matches!(op, Op::Received { seq: 3, .. })),
            "{:?}",
            w.out.ops
        );
    }

    #[test]
    fn refusals_keep_the_connection_usable() {
        let cases = [
            (login("", "pw"), ErrorCode::NickInvalid),
            (login("two words", "pw"), ErrorCode::NickInvalid),
            (login("zed", ""), ErrorCode::PasswordInvalid),
            (
                login("zed", &"x".repeat(MAX_PASSWORD + 1)),
                ErrorCode::PasswordInvalid,
            ),
            (message(1, "*", "before login"), ErrorCode::NotLoggedIn),
        ];
        for (request, code) in cases {
            let mut w = World::new(&[]);
            w.connect(1);
            w.request(1, request);
            w.settle();
            assert_eq!(kinds(&w.out.take(), 1), [format!("error:{code:?}")]);
            w.request(1, login("zed", "pw"));
            w.settle();
            assert_eq!(kinds(&w.out.take(), 1)[0], "welcome");
        }
    }
}
