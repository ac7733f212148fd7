//! The dispatcher thread: the one owner of the chat state and of the
//! database. Workers and the admin console send it [`Event`]s, the password
//! hashers their verdicts, the file thread its results; it applies a batch
//! of them to [`ChatState`], commits the store ops they produced (one
//! transaction, one fsync), applies the store's replies, and routes the
//! resulting frames to connections in per-worker batches.
//!
//! The database used to have a thread of its own; handing each message to
//! it and back cost two wake-ups, which on two shared cores was more
//! latency than the commit (docs/performance.md, history item 14).

use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_common::{Frame, Request};
use crossbeam_channel::{select, Receiver, Sender};
use tracing::{error, info, warn};

use crate::chat::auth::{Check, Verdict};
use crate::chat::clock::now_ms;
use crate::chat::flood::Ledger;
use crate::chat::state::Op;
use crate::chat::state::{ChatState, Deliver, GroupSummary, Keepalive, SessionRow, Stats};
use crate::framework::{Admission, AdmissionStats, ConnId, ConnInfo, Router};
use crate::store::{Backend, Heard, Renewed, SanctionKind, UserId};

/// Everything the dispatcher reacts to. Closed: this is the whole list.
pub enum Event {
    Connected(ConnInfo),
    Request {
        conn: ConnId,
        request: Request,
    },
    /// The peer closed its side; answer what came before, then close.
    PeerClosed {
        conn: ConnId,
    },
    Disconnected {
        conn: ConnId,
        reason: String,
    },
    /// Flood control began slowing a connection down, or cut it off.
    Flood {
        conn: ConnId,
        cut: bool,
    },
    Admin(Admin, Sender<AdminReply>),
    Shutdown {
        reason: String,
    },
}

/// What clients are told when the operator stops the server (`/quit`,
/// Ctrl-C, SIGTERM); they show it as "server is shutting down: …".
pub const SHUTDOWN_REASON: &str = "stopped by the operator";

/// An admin console command, already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    List,
    /// Every group with its owner and member counts.
    Groups,
    Kick {
        nick: String,
        reason: String,
    },
    Announce(String),
    /// Ban or mute an account, for `duration` or until lifted.
    Sanction {
        kind: SanctionKind,
        nick: String,
        duration: Option<Duration>,
    },
    Lift {
        kind: SanctionKind,
        nick: String,
    },
    /// Refuse an address's connections (and close those open).
    BanAddress {
        ip: IpAddr,
        duration: Option<Duration>,
    },
    UnbanAddress(IpAddr),
    /// Create an account with a password chosen by the console (`hash` is
    /// its argon2id hash), for `--registration closed`.
    Register {
        nick: String,
        password: String,
        hash: String,
    },
    Stats,
    /// Nicknames online, for the console's completion.
    Nicks,
}

#[derive(Debug)]
pub enum AdminReply {
    List(Vec<SessionRow>),
    Groups(Vec<GroupSummary>),
    Stats {
        stats: Stats,
        connections: AdmissionStats,
        uptime: Duration,
    },
    Nicks(Vec<String>),
    Done(String),
    /// Done, and to be said once the store has committed it.
    Saved {
        text: String,
        saved: Receiver<bool>,
    },
    Failed(String),
}

/// Events handled before the store commits and the router is flushed:
/// large enough that a burst shares one fsync and one hand-over per worker
/// (private pairs: 256 gave 86-97k messages/s, 1,024 gave 105-115k), small
/// enough to keep latency low. A light load never fills it.
const BATCH: usize = 1024;

/// How long committed messages wait before they are indexed for search:
/// then one step of the index (250 messages, no fsync of its own), and more
/// while nothing else waits. Every 100 ms put a step and its fsync in front
/// of 1 % of the messages at 1,000 a second, which showed at p99; a search
/// indexes a step itself, so it finds what this leaves.
const INDEX_AFTER: Duration = Duration::from_secs(1);

/// The next step's delay while a step still leaves messages unindexed (a
/// backlog after a flood): a few percent of the dispatcher's time, so the
/// index catches up at over ten thousand messages a second even while the
/// chat goes on (and step after step when it pauses).
const INDEX_CATCH_UP: Duration = Duration::from_millis(20);

/// Handles `first`, then whatever else `rx` holds, up to [`BATCH`] in all,
/// until `handle` says stop (false, which it returns).
fn drain<T>(rx: &Receiver<T>, first: T, mut handle: impl FnMut(T) -> bool) -> bool {
    if !handle(first) {
        return false;
    }
    for _ in 1..BATCH {
        let Ok(item) = rx.try_recv() else { break };
        if !handle(item) {
            return false;
        }
    }
    true
}

/// The store as the dispatcher drives it: whichever backend.
pub type Store = Box<dyn Backend<Frame>>;

/// What the dispatcher talks to besides the router: the database and the
/// channels to and from the other threads.
pub struct Queues {
    pub store: Store,
    pub events: Receiver<Event>,
    pub jobs: Sender<Check>,
    pub verdicts: Receiver<(Check, Verdict)>,
    pub files: Sender<crate::files::Job>,
    pub files_done: Receiver<crate::files::Done>,
    /// Flood control's buckets, shared with the handlers.
    pub ledger: Arc<Ledger>,
    /// What the cluster listener hears (`never()` on one node).
    pub heard: Receiver<Heard>,
    /// A cluster node's last lease renewal, and how old it may grow
    /// before the node fences itself (`None` on one node).
    pub fence: Option<(Renewed, Duration)>,
}

/// Everything the chat state's output goes to.
struct Output {
    router: Router,
    /// Ops for the store, committed at the end of the batch.
    ops: Vec<Op>,
    jobs: Sender<Check>,
    files: Sender<crate::files::Job>,
    ledger: Arc<Ledger>,
}

impl Deliver for Output {
    fn send(&mut self, conn: ConnId, frame: Frame) {
        self.router.send(conn, frame)
    }
    fn close(&mut self, conn: ConnId) {
        self.router.close(conn)
    }
    fn subscribe(&mut self, conn: ConnId) {
        self.router.subscribe(conn)
    }
    fn unsubscribe(&mut self, conn: ConnId) {
        self.router.unsubscribe(conn)
    }
    fn bind(&mut self, conn: ConnId, user: Option<UserId>) {
        self.ledger.bind(conn, user)
    }
    fn broadcast(&mut self, frame: Frame) {
        self.router.broadcast(frame)
    }
    fn store(&mut self, op: Op) {
        self.ops.push(op);
    }
    fn auth(&mut self, job: Check) {
        let _ = self.jobs.send(job);
    }
    fn files(&mut self, job: crate::files::Job) {
        let _ = self.files.send(job);
    }
}

pub struct Dispatcher {
    state: ChatState,
    out: Output,
    events: Receiver<Event>,
    store: Store,
    /// When to take the next step of the search index, if messages may
    /// wait (at start: to find out).
    index_due: Option<Instant>,
    verdicts: Receiver<(Check, Verdict)>,
    files_done: Receiver<crate::files::Done>,
    heard: Receiver<Heard>,
    fence: Option<(Renewed, Duration)>,
    login_timeout: Duration,
    keepalive: Keepalive,
    /// Least time between two presence frames.
    presence_interval: Duration,
    last_presence: Option<Instant>,
    started: Instant,
    /// The framework's caps and address bans: `/ban <ip>`, `/stats`.
    admission: Arc<Admission>,
}

/// The answer to a console command whose change the store must keep: the
/// console says it once it is committed.
fn saved(result: Result<String, String>, out: &mut Output) -> AdminReply {
    match result {
        Ok(text) => {
            warn!("{text}");
            let (tx, saved) = crossbeam_channel::bounded(1);
            out.store(Op::Notify(tx));
            AdminReply::Saved { text, saved }
        }
        Err(why) => AdminReply::Failed(why),
    }
}

impl Dispatcher {
    pub fn new(
        state: ChatState,
        router: Router,
        queues: Queues,
        login_timeout: Duration,
        keepalive: Keepalive,
        presence_interval: Duration,
        admission: Arc<Admission>,
    ) -> Self {
        Dispatcher {
            state,
            out: Output {
                router,
                ops: Vec::new(),
                jobs: queues.jobs,
                files: queues.files,
                ledger: queues.ledger,
            },
            events: queues.events,
            store: queues.store,
            index_due: Some(Instant::now() + INDEX_AFTER),
            verdicts: queues.verdicts,
            files_done: queues.files_done,
            heard: queues.heard,
            fence: queues.fence,
            login_timeout,
            keepalive,
            presence_interval,
            last_presence: None,
            started: Instant::now(),
            admission,
        }
    }

    /// When the pending presence changes may be announced, if there are any.
    fn presence_due(&self) -> Option<Instant> {
        if !self.state.has_presence() {
            return None;
        }
        Some(
            self.last_presence
                .map_or_else(Instant::now, |t| t + self.presence_interval),
        )
    }

    fn announce_presence_if_due(&mut self) {
        if self.presence_due().is_some_and(|due| due <= Instant::now()) {
            self.state.flush_presence(&mut self.out);
            self.last_presence = Some(Instant::now());
        }
    }

    /// Runs until a shutdown event (or until every sender is gone).
    pub fn run(mut self) {
        let ticker = crossbeam_channel::tick(Duration::from_secs(1));
        // The same channels as `self`'s, so that draining one may call
        // `&mut self`.
        let (events, verdicts, files_done, heard) = (
            self.events.clone(),
            self.verdicts.clone(),
            self.files_done.clone(),
            self.heard.clone(),
        );
        let mut running = true;
        while running {
            // A lone arrival is announced at once; a crowd, once per interval.
            let presence = match self.presence_due() {
                Some(due) => crossbeam_channel::at(due),
                None => crossbeam_channel::never(),
            };
            // Ops the last round's replies produced: commit them without
            // waiting, together with whatever has arrived meanwhile.
            let pending = if self.out.ops.is_empty() {
                crossbeam_channel::never()
            } else {
                crossbeam_channel::after(Duration::ZERO)
            };
            let index = match self.index_due {
                Some(due) => crossbeam_channel::at(due),
                None => crossbeam_channel::never(),
            };
            select! {
                recv(files_done) -> done => if let Ok(done) = done {
                    drain(&files_done, done, |done| {
                        self.guarded(|d| d.state.file_done(done, &mut d.out));
                        true
                    });
                },
                // Many logins at once share one commit.
                recv(verdicts) -> verdict => if let Ok(verdict) = verdict {
                    drain(&verdicts, verdict, |(check, verdict)| {
                        self.guarded(|d| d.state.authenticated(check, verdict, now_ms(), &mut d.out));
                        true
                    });
                },
                recv(events) -> event => match event {
                    Ok(event) => running = drain(&events, event, |event| self.handle_guarded(event)),
                    Err(_) => running = false,
                },
                // Other nodes' commits: before the clients' new requests.
                recv(heard) -> h => if let Ok(h) = h {
                    drain(&heard, h, |h| {
                        self.guarded(|d| d.state.heard(h, now_ms(), &mut d.out));
                        true
                    });
                },
                recv(ticker) -> _ => self.tick(),
                recv(presence) -> _ => {}
                recv(pending) -> _ => {}
                recv(index) -> _ => self.index(),
            }
            if running {
                self.announce_presence_if_due();
            }
            self.commit();
            self.out.router.flush();
        }
        // What the last rounds' replies asked for is committed too.
        while !self.out.ops.is_empty() {
            self.commit();
        }
        self.out.router.flush();
        self.out.router.shutdown();
    }

    /// Commits the ops produced so far and applies their replies. Those may
    /// produce more ops (a session's queued requests run once its reply is
    /// in): they wait for the next round, so that a client with a long
    /// chain of requests cannot keep the dispatcher from everyone else.
    fn commit(&mut self) {
        if self.out.ops.is_empty() {
            return;
        }
        let ops = std::mem::take(&mut self.out.ops);
        for reply in self.store.commit(ops) {
            self.guarded(|d| d.state.stored(reply, now_ms(), &mut d.out));
        }
        if self.index_due.is_none() && self.store.unindexed() {
            self.index_due = Some(Instant::now() + INDEX_AFTER);
        }
    }

    /// Indexes messages for search: one step, and more while nothing else
    /// waits, so that a search rarely finds much left to index. What is
    /// left waits [`INDEX_CATCH_UP`]; a step that failed, [`INDEX_AFTER`].
    fn index(&mut self) {
        let failed = loop {
            if !self.store.index_step() {
                break true;
            }
            let idle = self.events.is_empty()
                && self.verdicts.is_empty()
                && self.files_done.is_empty()
                && self.out.ops.is_empty();
            if !idle || !self.store.unindexed() {
                break false;
            }
        };
        self.index_due = match (self.store.unindexed(), failed) {
            (false, _) => None,
            (true, false) => Some(Instant::now() + INDEX_CATCH_UP),
            (true, true) => Some(Instant::now() + INDEX_AFTER),
        };
    }

    /// Once a second: the login and keepalive deadlines, and in a cluster
    /// the poll of the streams' heads (a lost doorbell costs at most this).
    fn tick(&mut self) {
        if let Some((renewed, after)) = &self.fence {
            let fenced = renewed.at().elapsed() >= *after;
            self.state.set_fenced(fenced, &mut self.out);
        }
        self.state.poll(&mut self.out);
        let timeout = self.login_timeout.as_millis() as u64;
        self.state.expire_logins(now_ms(), timeout, &mut self.out);
        self.state.expire_files(now_ms(), &mut self.out);
        for conn in self
            .state
            .keep_alive(now_ms(), self.keepalive, &mut self.out)
        {
            info!(
                conn,
                "cut by the keepalive: nothing heard for {:?}", self.keepalive.idle_timeout
            );
        }
    }

    /// Runs `f`; a panic is logged and the server goes on.
    fn guarded(&mut self, f: impl FnOnce(&mut Self)) {
        if catch_unwind(AssertUnwindSafe(|| f(self))).is_err() {
            error!("dispatcher panicked while handling a reply; continuing");
        }
    }

    /// Handles one event; a panic is logged and the server goes on.
    fn handle_guarded(&mut self, event: Event) -> bool {
        match catch_unwind(AssertUnwindSafe(|| self.handle(event))) {
            Ok(go_on) => go_on,
            Err(_) => {
                error!("dispatcher panicked while handling an event; continuing");
                true
            }
        }
    }

    fn handle(&mut self, event: Event) -> bool {
        let out = &mut self.out;
        match event {
            Event::Connected(info) => self.state.connect(info, now_ms()),
            Event::Request { conn, request } => {
                let registering =
                    matches!(request, Request::Login { .. }) && self.state.nick_of(conn).is_none();
                self.state.request(conn, request, now_ms(), out);
                if let Some(nick) = self.state.nick_of(conn).filter(|_| registering) {
                    info!(conn, "registered as {nick}");
                }
            }
            Event::PeerClosed { conn } => self.state.peer_closed(conn, out),
            Event::Disconnected { conn, reason } => self.state.disconnect(conn, &reason, out),
            Event::Flood { conn, cut } => self.state.flood(conn, cut),
            Event::Admin(command, reply) => {
                let answer = self.admin(command);
                let _ = reply.send(answer);
            }
            Event::Shutdown { reason } => {
                info!("shutting down: {reason}");
                self.state.shutdown(&reason, out);
                return false;
            }
        }
        true
    }

    fn admin(&mut self, command: Admin) -> AdminReply {
        let out = &mut self.out;
        match command {
            Admin::List => AdminReply::List(self.state.list()),
            Admin::Groups => AdminReply::Groups(self.state.group_summaries()),
            Admin::Nicks => AdminReply::Nicks(self.state.online()),
            Admin::Stats => AdminReply::Stats {
                stats: self.state.stats(now_ms()),
                connections: self.admission.stats(),
                uptime: self.started.elapsed(),
            },
            Admin::Announce(text) => {
                let n = self.state.announce(&text, now_ms(), out);
                info!("announced to {n} users: {text}");
                AdminReply::Done(format!("announced to {n} users"))
            }
            Admin::Register {
                nick,
                password,
                hash,
            } => {
                let result = self.state.register(&nick, hash, now_ms(), out).map(|nick| {
                    format!(
                        "registered {nick}; password: {password} \
                         (tell them; they change it with !password)"
                    )
                });
                saved(result, out)
            }
            Admin::Sanction {
                kind,
                nick,
                duration,
            } => {
                let now = now_ms();
                let until = duration.map(|d| now + d.as_millis() as u64);
                let result = self.state.sanction(kind, &nick, until, now, out);
                saved(result, out)
            }
            Admin::BanAddress { ip, duration } => {
                self.admission.ban(ip, duration.map(|d| Instant::now() + d));
                let how = match duration {
                    Some(d) => format!("for {} s", d.as_secs()),
                    None => "until /unban".into(),
                };
                let closed = self.state.drop_address(
                    |peer| Admission::same_address(peer, ip),
                    &format!("address banned {how}"),
                    out,
                );
                let done = format!("banned {ip} {how}; {closed} connections closed");
                warn!("{done}");
                AdminReply::Done(done)
            }
            Admin::UnbanAddress(ip) => {
                if self.admission.unban(ip) {
                    warn!("unbanned {ip}");
                    AdminReply::Done(format!("{ip} is no longer banned"))
                } else {
                    AdminReply::Failed(format!("{ip} is not banned"))
                }
            }
            Admin::Lift { kind, nick } => {
                let result = self.state.lift(kind, &nick, out);
                saved(result, out)
            }
            Admin::Kick { nick, reason } => match self.state.kick(&nick, &reason, out) {
                Ok(nick) => {
                    warn!("kicked {nick}: {reason}");
                    AdminReply::Done(format!("kicked {nick}"))
                }
                Err(why) => AdminReply::Failed(why),
            },
        }
    }
}
