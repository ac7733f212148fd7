//! An event thread: one mio `Poll` multiplexing a share of the simulated
//! clients. It connects and logs them in (a bounded number at a time),
//! sends for the senders among them (a window of unacknowledged messages,
//! or a schedule of absolute send times), and receives for all of them.
//!
//! The main thread steers it with a closed [`Command`] enum over a channel
//! plus a mio `Waker`, watches its [`Progress`] counters, and collects its
//! [`Stats`] when it stops.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::conn::{self, Connector, Stream};
use crate::frames;
use crate::histogram::Histogram;
use crate::platform;
use crate::resp;
use crate::scan::{self, Line, LineScanner, Payload};
use crate::ws::{self, Piece, Upgraded};
use mio::{Events, Interest, Poll, Token, Waker};

/// Nanoseconds since the process-wide epoch: the clock of every payload's
/// send time and every receipt.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

const WAKER: Token = Token(usize::MAX);
const READ_BUF: usize = 64 * 1024;

/// What every event thread shares.
pub struct Settings {
    /// The servers (cluster nodes); a client connects to `addrs[node]`.
    pub addrs: Vec<SocketAddr>,
    /// The node each sender id is on, to tell a cross-node delivery.
    pub sender_nodes: Vec<usize>,
    pub tls: Option<Connector>,
    /// Payload text size in bytes.
    pub size: usize,
    /// Most messages a sender may have sent but not yet seen answered.
    pub window: u64,
    /// Most clients of one thread between `connect` and `welcome`.
    pub concurrency: usize,
}

/// One simulated client (for Redis: one connection of one).
pub struct Client {
    pub nick: String,
    pub sender: Option<SenderRole>,
    pub wire: Wire,
    /// Speaks the chat protocol over a WebSocket, as the browser's page
    /// does, instead of lines over TCP.
    pub websocket: bool,
    /// Which of `Settings::addrs` it connects to.
    pub node: usize,
}

pub struct SenderRole {
    /// The number in this sender's payloads.
    pub id: u32,
    /// Private messages to this nickname; public when `None`. For a Redis
    /// publisher: the channel.
    pub to: Option<String>,
}

/// What a connection speaks (`resp.rs` for Redis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// The chat protocol: logs in, receives, and sends if a sender.
    Chat,
    /// Redis: subscribes to this channel and receives.
    Subscriber(String),
    /// Redis: a sender's second connection, which only publishes.
    Publisher,
}

/// How senders pace themselves.
#[derive(Debug, Clone, Copy)]
pub enum Pacing {
    /// As fast as the window allows.
    Window,
    /// `rate` messages/s in total over `senders` senders, on a fixed
    /// schedule of absolute times: message n (of all senders) is due at
    /// start + n / rate and belongs to sender n mod `senders`.
    Rate { rate: f64, senders: u32 },
}

pub enum Command {
    /// Send from `start_ns` until `end_ns` (epoch nanoseconds).
    Send {
        start_ns: u64,
        end_ns: u64,
        pacing: Pacing,
    },
    /// Every sender sends one message now.
    SendOne,
    /// Give up on clients that have not logged in yet.
    Abandon,
    /// Return the statistics and end the thread.
    Stop,
}

/// Counters the thread publishes after every loop turn, for the main thread
/// to watch (each written by one thread only).
#[derive(Default)]
pub struct Progress {
    pub logged_in: AtomicU64,
    /// Logged in and receiving (all but Redis publishers).
    pub listening: AtomicU64,
    pub failed: AtomicU64,
    pub bytes_in: AtomicU64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    pub disconnected: AtomicU64,
    pub last_login_ns: AtomicU64,
    pub last_receipt_ns: AtomicU64,
}

/// What a thread measured; merged over threads by the caller.
#[derive(Default)]
pub struct Stats {
    pub latency: Histogram,
    /// Deliveries whose sender is on another node than the receiver.
    pub cross_latency: Histogram,
    /// From sending a message to its ack (or error), per answer.
    pub ack_latency: Histogram,
    /// Receipts per sender id, per sequence number.
    pub receipts: Vec<Vec<u16>>,
    /// Messages sent, per sender id.
    pub sent_by: Vec<u64>,
    pub received: u64,
    /// Received no later than the end of the sending window.
    pub received_in_window: u64,
    /// A payload a receiver had already seen (its seq not above the last).
    pub duplicates: u64,
    /// A payload whose seq skipped ahead of the next expected one.
    pub gaps: u64,
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub logged_in: u64,
    pub failed: u64,
    pub disconnected: u64,
    pub first_problem: Option<String>,
    /// This thread's CPU time while the senders were sending, and in all.
    pub cpu_window: Option<Duration>,
    pub cpu_total: Option<Duration>,
    /// Sends a paced sender made later than 1 ms after their due time.
    pub late_sends: u64,
}

/// The main thread's end of one event thread.
pub struct Handle {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    pub progress: Arc<Progress>,
    thread: std::thread::JoinHandle<anyhow::Result<Stats>>,
}

impl Handle {
    pub fn send(&self, command: Command) {
        // A thread that already ended reports why from `join`.
        if self.commands.send(command).is_ok() {
            let _ = self.waker.wake();
        }
    }

    pub fn join(self) -> anyhow::Result<Stats> {
        self.send(Command::Stop);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("an event thread panicked"))?
    }
}

/// Starts an event thread for `clients`; it begins connecting at once.
pub fn spawn(name: String, settings: Arc<Settings>, clients: Vec<Client>) -> io::Result<Handle> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (tx, rx) = std::sync::mpsc::channel();
    let progress = Arc::new(Progress::default());
    let mut worker = Worker::new(poll, rx, settings, clients, progress.clone());
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || worker.run())?;
    Ok(Handle {
        commands: tx,
        waker,
        progress,
        thread,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Connecting,
    LoggingIn,
    Ready,
    Closed,
}

struct Conn {
    stream: Stream,
    wire: Wire,
    phase: Phase,
    scan: LineScanner,
    out: Vec<u8>,
    out_pos: usize,
    dirty: bool,
    /// Per sender id seen by this receiver: the next sequence number expected.
    next_seq: Vec<(u32, u32)>,
    sender: Option<SendState>,
    /// To speak over a WebSocket once connected.
    websocket: bool,
    /// The WebSocket, from the upgrade request on.
    ws: Option<ws::Client>,
    node: usize,
}

struct SendState {
    id: u32,
    /// Its `message` requests (or `PUBLISH` commands), to its receiver.
    message: Encoder,
    next_seq: u32,
    /// Answers (acks or errors) to messages.
    answered: u64,
    next_request: u64,
    /// Send times of the messages not yet answered, oldest first (the
    /// server answers one connection's requests in order).
    unanswered: std::collections::VecDeque<u64>,
}

enum Encoder {
    Chat(frames::MessageTemplate),
    Redis(resp::PublishTemplate),
}

impl SendState {
    fn in_flight(&self) -> u64 {
        u64::from(self.next_seq) - self.answered
    }
}

struct Sending {
    start_ns: u64,
    end_ns: u64,
    pacing: Pacing,
}

struct Worker {
    poll: Poll,
    commands: Receiver<Command>,
    settings: Arc<Settings>,
    progress: Arc<Progress>,
    nicks: Vec<String>,
    conns: Vec<Conn>,
    /// Clients not yet connecting, in order.
    waiting: std::collections::VecDeque<usize>,
    in_progress: usize,
    abandoned: bool,
    senders: Vec<usize>,
    dirty: Vec<usize>,
    sending: Option<Sending>,
    cpu_at_start: Option<Duration>,
    buf: Vec<u8>,
    /// A WebSocket client's frame, before it goes out as a message.
    frame: Vec<u8>,
    bytes_in: u64,
    last_login_ns: u64,
    last_receipt_ns: u64,
    /// Clients that got their `welcome` (including any closed since).
    logins: u64,
    /// Those of them that receive.
    listening: u64,
    stats: Stats,
}

impl Worker {
    fn new(
        poll: Poll,
        commands: Receiver<Command>,
        settings: Arc<Settings>,
        clients: Vec<Client>,
        progress: Arc<Progress>,
    ) -> Worker {
        let mut nicks = Vec::with_capacity(clients.len());
        let mut conns = Vec::with_capacity(clients.len());
        let mut senders = Vec::new();
        for (i, client) in clients.into_iter().enumerate() {
            nicks.push(client.nick);
            let wire = client.wire;
            let node = client.node;
            let websocket = client.websocket && wire == Wire::Chat;
            let sender = client.sender.map(|role| {
                senders.push(i);
                let message = match wire {
                    Wire::Chat => Encoder::Chat(frames::MessageTemplate::new(role.to.as_deref())),
                    _ => Encoder::Redis(resp::PublishTemplate::new(
                        role.to.as_deref().unwrap_or(resp::ROOM),
                    )),
                };
                SendState {
                    id: role.id,
                    message,
                    next_seq: 0,
                    answered: 0,
                    next_request: 2,
                    unanswered: std::collections::VecDeque::new(),
                }
            });
            conns.push(Conn {
                stream: Stream::Gone,
                wire,
                phase: Phase::Waiting,
                scan: LineScanner::default(),
                out: Vec::new(),
                out_pos: 0,
                dirty: false,
                next_seq: Vec::new(),
                sender,
                websocket,
                ws: None,
                node,
            });
        }
        Worker {
            poll,
            commands,
            settings,
            progress,
            waiting: (0..conns.len()).collect(),
            nicks,
            conns,
            in_progress: 0,
            abandoned: false,
            senders,
            dirty: Vec::new(),
            sending: None,
            cpu_at_start: None,
            buf: vec![0; READ_BUF],
            frame: Vec::new(),
            bytes_in: 0,
            last_login_ns: 0,
            last_receipt_ns: 0,
            logins: 0,
            listening: 0,
            stats: Stats::default(),
        }
    }

    fn run(&mut self) -> anyhow::Result<Stats> {
        let mut events = Events::with_capacity(1024);
        self.start_connects();
        loop {
            let timeout = self.timeout();
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            let mut woken = false;
            for event in events.iter() {
                match event.token() {
                    WAKER => woken = true,
                    Token(i) => self.on_ready(i),
                }
            }
            if woken && self.take_commands() {
                break;
            }
            self.pace();
            self.flush_dirty();
            self.start_connects();
            self.publish();
        }
        // A stop right at the end of the window can come before the timer.
        self.end_cpu_window();
        self.stats.cpu_total = platform::thread_cpu();
        self.stats.logged_in = self
            .conns
            .iter()
            .filter(|c| c.phase == Phase::Ready)
            .count() as u64;
        for conn in &self.conns {
            if let Some(s) = &conn.sender {
                let id = s.id as usize;
                if self.stats.sent_by.len() <= id {
                    self.stats.sent_by.resize(id + 1, 0);
                }
                self.stats.sent_by[id] += u64::from(s.next_seq);
            }
        }
        Ok(std::mem::take(&mut self.stats))
    }

    /// Until the next paced send is due, or the sending window ends; else
    /// until something happens.
    fn timeout(&self) -> Option<Duration> {
        let sending = self.sending.as_ref()?;
        let now = now_ns();
        if now >= sending.end_ns {
            return None;
        }
        let mut next = sending.end_ns;
        if let Pacing::Rate { rate, senders } = sending.pacing {
            for &i in &self.senders {
                let s = self.conns[i].sender.as_ref().expect("a sender");
                if self.conns[i].phase == Phase::Ready && s.in_flight() < self.settings.window {
                    next = next.min(due_ns(sending.start_ns, rate, senders, s.id, s.next_seq));
                }
            }
        }
        Some(Duration::from_nanos(next.saturating_sub(now)))
    }

    /// Handles the commands waiting; true on `Stop`.
    fn take_commands(&mut self) -> bool {
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Send {
                    start_ns,
                    end_ns,
                    pacing,
                } => {
                    self.cpu_at_start = platform::thread_cpu();
                    self.sending = Some(Sending {
                        start_ns,
                        end_ns,
                        pacing,
                    });
                    if let Pacing::Window = pacing {
                        for k in 0..self.senders.len() {
                            self.refill(self.senders[k]);
                        }
                    }
                }
                Command::SendOne => {
                    for k in 0..self.senders.len() {
                        let i = self.senders[k];
                        if self.conns[i].phase == Phase::Ready {
                            self.send_message(i, now_ns());
                        }
                    }
                }
                Command::Abandon => {
                    self.abandoned = true;
                    self.waiting.clear();
                    for i in 0..self.conns.len() {
                        if matches!(self.conns[i].phase, Phase::Connecting | Phase::LoggingIn) {
                            self.fail(i, None);
                        }
                    }
                }
                Command::Stop => return true,
            }
        }
        false
    }

    fn start_connects(&mut self) {
        while self.in_progress < self.settings.concurrency && !self.abandoned {
            let Some(i) = self.waiting.pop_front() else {
                return;
            };
            let conn = &mut self.conns[i];
            conn.phase = Phase::Connecting;
            self.in_progress += 1;
            let registered =
                Stream::connect(self.settings.addrs[conn.node]).and_then(|mut stream| {
                    let tcp = stream.tcp().expect("a socket");
                    self.poll.registry().register(
                        tcp,
                        Token(i),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    Ok(stream)
                });
            match registered {
                Ok(stream) => conn.stream = stream,
                Err(e) => self.fail(i, Some(format!("connect: {e}"))),
            }
        }
    }

    /// A client that will not log in: closes it and counts it.
    fn fail(&mut self, i: usize, why: Option<String>) {
        let conn = &mut self.conns[i];
        let before = conn.phase;
        conn.phase = Phase::Closed;
        conn.stream = Stream::Gone;
        match before {
            Phase::Connecting | Phase::LoggingIn => {
                self.in_progress -= 1;
                self.stats.failed += 1;
            }
            Phase::Ready => self.stats.disconnected += 1,
            Phase::Waiting | Phase::Closed => {}
        }
        if let Some(why) = why {
            self.stats.first_problem.get_or_insert(why);
        }
    }

    fn on_ready(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i) else {
            return;
        };
        if conn.phase == Phase::Connecting {
            match conn.stream.advance(self.settings.tls.as_ref()) {
                Ok(conn::Progress::Pending) => return,
                Ok(conn::Progress::Ready) => {
                    conn.phase = Phase::LoggingIn;
                    match &conn.wire {
                        // The login follows the upgrade's 101 (`receive`).
                        Wire::Chat if conn.websocket => {
                            let seed = now_ns() ^ (i as u64) << 32;
                            conn.ws = Some(ws::Client::start(
                                &mut conn.out,
                                self.settings.addrs[conn.node],
                                seed,
                            ));
                        }
                        Wire::Chat => frames::encode_login(&mut conn.out, &self.nicks[i], "bench"),
                        Wire::Subscriber(channel) => resp::encode_subscribe(&mut conn.out, channel),
                        Wire::Publisher => resp::encode_ping(&mut conn.out),
                    }
                }
                Err(e) => return self.fail(i, Some(format!("connecting {}: {e}", self.nicks[i]))),
            }
        }
        if matches!(conn.phase, Phase::Closed | Phase::Waiting) {
            return;
        }
        if let Err(e) = self.flush(i) {
            return self.fail(i, Some(format!("writing for {}: {e}", self.nicks[i])));
        }
        self.receive(i);
    }

    /// Reads until the socket would block, handling every complete line
    /// (for a WebSocket: every text message, as a line).
    fn receive(&mut self, i: usize) {
        let mut acks = 0u64;
        let mut errors = 0u64;
        let mut welcome = false;
        let mut error_line = None;
        let mut closed = None;
        // A WebSocket's login after the 101, or a pong: to flush.
        let mut queued = false;
        let window_end = self.sending.as_ref().map_or(u64::MAX, |s| s.end_ns);
        {
            let Worker {
                conns,
                buf,
                stats,
                bytes_in,
                last_receipt_ns,
                nicks,
                settings,
                ..
            } = self;
            let Conn {
                stream,
                wire,
                scan,
                out,
                next_seq,
                ws,
                sender,
                node,
                ..
            } = &mut conns[i];
            let node = *node;
            let classify: fn(&[u8]) -> Line = match wire {
                Wire::Chat => scan::classify,
                Wire::Subscriber(_) => resp::classify_subscriber,
                Wire::Publisher => resp::classify_publisher,
            };
            loop {
                let n = match stream.read(buf) {
                    Ok(0) => {
                        closed = Some("the server closed the connection".to_string());
                        break;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        closed = Some(e.to_string());
                        break;
                    }
                };
                *bytes_in += n as u64;
                let now = now_ns();
                let mut payloads = 0;
                let mut on_line = |line: &[u8]| match classify(line) {
                    Line::Payload(p) => {
                        payloads += 1;
                        let cross = settings
                            .sender_nodes
                            .get(p.sender as usize)
                            .is_some_and(|&n| n != node);
                        receipt(stats, next_seq, p, now, cross);
                    }
                    Line::Ack => {
                        acks += 1;
                        answer(stats, sender.as_mut(), now);
                    }
                    Line::Welcome => welcome = true,
                    Line::Error => {
                        errors += 1;
                        answer(stats, sender.as_mut(), now);
                        if error_line.is_none() {
                            error_line = Some(String::from_utf8_lossy(line).into_owned());
                        }
                    }
                    Line::Other => {}
                };
                match ws {
                    None => scan.feed(&buf[..n], &mut on_line),
                    Some(socket) => {
                        let mut data = &buf[..n];
                        let rest;
                        if !socket.is_open() {
                            match socket.upgrade(data) {
                                Ok(Upgraded::Pending) => data = &[],
                                Ok(Upgraded::Open { rest: after }) => {
                                    rest = after;
                                    data = &rest;
                                    let mut login = Vec::new();
                                    frames::encode_login(&mut login, &nicks[i], "bench");
                                    socket.send(out, &login);
                                    queued = true;
                                }
                                Err(e) => {
                                    closed = Some(format!("{e:#}"));
                                    break;
                                }
                            }
                        }
                        let mut pongs = Vec::new();
                        let mut ws_closed = false;
                        if let Some(deframer) = socket.deframer() {
                            let fed = deframer.feed(data, |piece| match piece {
                                Piece::Text(text) => scan.feed(text, &mut on_line),
                                Piece::TextEnd => scan.feed(b"\n", &mut on_line),
                                // No chat scenario downloads a file.
                                Piece::Binary(_) | Piece::BinaryEnd => {}
                                Piece::Ping(payload) => pongs.push(payload.to_vec()),
                                Piece::Close => ws_closed = true,
                            });
                            if let Err(e) = fed {
                                closed = Some(format!("a broken WebSocket frame: {e:#}"));
                            }
                        }
                        for payload in &pongs {
                            socket.pong(out, payload);
                            queued = true;
                        }
                        if ws_closed {
                            closed.get_or_insert_with(|| "the server closed the WebSocket".into());
                        }
                    }
                }
                if payloads > 0 {
                    *last_receipt_ns = now;
                    if now <= window_end {
                        stats.received_in_window += payloads;
                    }
                }
                if closed.is_some() {
                    break;
                }
                // A short read emptied the socket's receive queue, and data
                // arriving later raises a new edge: the read that would only
                // say `WouldBlock` can be saved (half the reads in a big
                // room). Not for TLS, which may hold decrypted bytes back.
                if n < buf.len() && stream.is_plain() {
                    break;
                }
            }
        }
        if queued && !self.conns[i].dirty {
            self.conns[i].dirty = true;
            self.dirty.push(i);
        }
        if let Some(line) = error_line {
            let nick = &self.nicks[i];
            self.stats
                .first_problem
                .get_or_insert(format!("{nick} got {line}"));
        }
        let conn = &mut self.conns[i];
        if conn.phase == Phase::LoggingIn {
            if welcome {
                conn.phase = Phase::Ready;
                self.in_progress -= 1;
                self.logins += 1;
                if conn.wire != Wire::Publisher {
                    self.listening += 1;
                }
                self.last_login_ns = now_ns();
            } else if errors > 0 {
                return self.fail(i, None);
            }
        } else {
            self.stats.acked += acks;
            self.stats.errors += errors;
            if let Some(s) = &mut conn.sender {
                if acks + errors > 0 {
                    s.answered += acks + errors;
                    self.refill(i);
                }
            }
        }
        if let Some(why) = closed {
            self.fail(i, Some(format!("{}: {why}", self.nicks[i])));
        }
    }

    /// Tops a sender's window up when sending unpaced.
    fn refill(&mut self, i: usize) {
        let Some(sending) = &self.sending else {
            return;
        };
        if !matches!(sending.pacing, Pacing::Window) || self.conns[i].phase != Phase::Ready {
            return;
        }
        let now = now_ns();
        if now >= sending.end_ns {
            return;
        }
        while self.conns[i].sender.as_ref().expect("a sender").in_flight() < self.settings.window {
            self.send_message(i, now);
        }
    }

    /// Sends what paced senders have due.
    fn pace(&mut self) {
        let Some(sending) = &self.sending else {
            return;
        };
        let Pacing::Rate { rate, senders } = sending.pacing else {
            return;
        };
        let (start_ns, end_ns) = (sending.start_ns, sending.end_ns);
        let now = now_ns();
        for k in 0..self.senders.len() {
            let i = self.senders[k];
            if self.conns[i].phase != Phase::Ready {
                continue;
            }
            loop {
                let s = self.conns[i].sender.as_ref().expect("a sender");
                let due = due_ns(start_ns, rate, senders, s.id, s.next_seq);
                if due > now || due >= end_ns || s.in_flight() >= self.settings.window {
                    break;
                }
                if now > due + 1_000_000 {
                    self.stats.late_sends += 1;
                }
                self.send_message(i, now_ns());
            }
        }
    }

    /// Queues one message from sender `i`, stamped `now`.
    fn send_message(&mut self, i: usize, now: u64) {
        let Worker {
            conns,
            frame,
            settings,
            stats,
            dirty,
            ..
        } = self;
        let conn = &mut conns[i];
        let s = conn.sender.as_mut().expect("a sender");
        let payload = Payload {
            sender: s.id,
            seq: s.next_seq,
            sent_ns: now,
        };
        // A WebSocket's line is encoded aside, then sent as a message.
        let out = match conn.ws {
            Some(_) => {
                frame.clear();
                &mut *frame
            }
            None => &mut conn.out,
        };
        match &s.message {
            Encoder::Chat(m) => m.encode(out, s.next_request, payload, settings.size),
            Encoder::Redis(m) => m.encode(out, payload, settings.size),
        }
        if let Some(socket) = &mut conn.ws {
            socket.send(&mut conn.out, frame);
        }
        s.next_seq += 1;
        s.next_request += 1;
        s.unanswered.push_back(now);
        stats.sent += 1;
        if !conn.dirty {
            conn.dirty = true;
            dirty.push(i);
        }
    }

    fn flush_dirty(&mut self) {
        while let Some(i) = self.dirty.pop() {
            self.conns[i].dirty = false;
            if let Err(e) = self.flush(i) {
                self.fail(i, Some(format!("writing for {}: {e}", self.nicks[i])));
            }
        }
        if self.sending.as_ref().is_some_and(|s| now_ns() >= s.end_ns) {
            self.end_cpu_window();
        }
    }

    /// Takes this thread's CPU time over the sending window, once.
    fn end_cpu_window(&mut self) {
        if let Some(start) = self.cpu_at_start.take() {
            self.stats.cpu_window = platform::thread_cpu().map(|end| end.saturating_sub(start));
        }
    }

    /// Writes what is queued until done or the socket would block (then the
    /// next writable event calls this again).
    fn flush(&mut self, i: usize) -> io::Result<()> {
        let conn = &mut self.conns[i];
        while conn.out_pos < conn.out.len() {
            match conn.stream.write(&conn.out[conn.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => conn.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        conn.out.clear();
        conn.out_pos = 0;
        Ok(())
    }

    fn publish(&self) {
        let p = &self.progress;
        p.logged_in.store(self.logins, Relaxed);
        p.listening.store(self.listening, Relaxed);
        p.failed.store(self.stats.failed, Relaxed);
        p.bytes_in.store(self.bytes_in, Relaxed);
        p.received.store(self.stats.received, Relaxed);
        p.sent.store(self.stats.sent, Relaxed);
        p.answered
            .store(self.stats.acked + self.stats.errors, Relaxed);
        p.disconnected.store(self.stats.disconnected, Relaxed);
        p.last_login_ns.store(self.last_login_ns, Relaxed);
        p.last_receipt_ns.store(self.last_receipt_ns, Relaxed);
    }
}

/// Times the answer (ack or error) to a sender's oldest unanswered message.
fn answer(stats: &mut Stats, sender: Option<&mut SendState>, now: u64) {
    if let Some(sent_ns) = sender.and_then(|s| s.unanswered.pop_front()) {
        stats.ack_latency.record(now.saturating_sub(sent_ns));
    }
}

/// When sender `id`'s message `seq` is due under `Pacing::Rate`.
fn due_ns(start_ns: u64, rate: f64, senders: u32, id: u32, seq: u32) -> u64 {
    let n = u64::from(seq) * u64::from(senders) + u64::from(id);
    start_ns + (n as f64 * 1e9 / rate) as u64
}

/// Records one payload received by a client whose per-sender expectations
/// are `next_seq`.
/// `cross`: its sender is on another node.
fn receipt(stats: &mut Stats, next_seq: &mut Vec<(u32, u32)>, p: Payload, now: u64, cross: bool) {
    stats.received += 1;
    stats.latency.record(now.saturating_sub(p.sent_ns));
    if cross {
        stats.cross_latency.record(now.saturating_sub(p.sent_ns));
    }
    let sender = p.sender as usize;
    if stats.receipts.len() <= sender {
        stats.receipts.resize_with(sender + 1, Vec::new);
    }
    let counts = &mut stats.receipts[sender];
    let seq = p.seq as usize;
    if counts.len() <= seq {
        counts.resize((seq + 1).next_power_of_two(), 0);
    }
    counts[seq] = counts[seq].saturating_add(1);
    let entry = match next_seq.iter_mut().find(|(s, _)| *s == p.sender) {
        Some(entry) => entry,
        None => {
            next_seq.push((p.sender, 0));
            next_seq.last_mut().expect("just pushed")
        }
    };
    if p.seq < entry.1 {
        stats.duplicates += 1;
    } else {
        if p.seq > entry.1 {
            stats.gaps += 1;
        }
        entry.1 = p.seq + 1;
    }
}
