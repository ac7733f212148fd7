//! The network thread: owns the connection, writes the requests the user
//! interface sends it, reads, decodes and reports the server's frames, and
//! when the connection is lost, connects and logs in again by itself.
//!
//! ```text
//!   repl / pipe ──Command──▶ (crossbeam channel + mio Waker) ──▶ net thread ◀──▶ server
//!        ▲                                                          │   ▲
//!        └────────────Status (logged in, refused, finished)─────────┤   └─ dial thread
//!                    Output (lines to print) ◀──────────────────────┘     (reconnects)
//! ```
//!
//! The completer holds a [`NetHandle`] too, to ask for a stale roster.
//!
//! The thread sleeps in `Poll::poll` until the socket or the waker is ready
//! (or, while disconnected, until the next try), so an idle client uses no
//! CPU. A reconnect dials on a thread of its own, since connecting and the
//! TLS handshake block: meanwhile what is typed goes on into the outbox.

use std::io::{self, Read, Write};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chat_common::codec::{self, FrameError, FrameReader};
use chat_common::{ErrorCode, Request, ServerFrame};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::command::Command;
use crate::files::{Hashed, Transfers};
use crate::reconnect::Backoff;
use crate::roster::SharedRoster;
use crate::session::{Ending, Notice, Session, Update};
use crate::tls::Stream;

/// What the network thread tells the user interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    LoggedIn(String),
    LoginRefused {
        code: ErrorCode,
        reason: String,
    },
    /// The thread is done; always the last status.
    Finished(Ending),
}

/// Where the network thread's lines go: the terminal above the prompt, or
/// stdout in pipe mode.
pub trait Output: Send {
    /// A frame arrived: the line as received, and what it means for people.
    fn frame(&mut self, raw: &str, notices: &[Notice]);
    /// Something the client did rather than the server said: the echo of a
    /// message typed, with its number. Shown like a frame's notices.
    fn local(&mut self, notice: &Notice) {
        self.frame("", std::slice::from_ref(notice));
    }
    /// Something about the connection rather than a frame (it broke, it is
    /// being re-established).
    fn connection(&mut self, notice: &Notice);
    /// Called once, just before [`Status::Finished`] is sent.
    fn finishing(&mut self) {}
    /// A transfer moved on (interactive mode draws a bar; pipe mode none).
    fn progress(&mut self, _progress: &crate::files::Progress) {}
}

/// Opens a new connection to the same server, the same way; called on the
/// dial thread.
pub type Dial = Arc<dyn Fn() -> anyhow::Result<Stream> + Send + Sync>;

/// How the thread behaves when the connection is lost, and where files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How long to keep trying to reconnect before giving up: `None`
    /// forever, zero not at all.
    pub reconnect_for: Option<Duration>,
    /// After this long without a byte from the server, send a `ping`; with
    /// no byte for half as long again, the connection is dead (a network
    /// that dropped without a word): reconnect.
    pub keepalive: Duration,
    /// Where an accepted file lands unless `!accept` names a directory
    /// (`--downloads`).
    pub downloads: std::path::PathBuf,
}

/// The default of [`Options::keepalive`].
pub const KEEPALIVE: Duration = Duration::from_secs(30);

/// The handle the user interface keeps.
pub struct Net {
    handle: NetHandle,
    status: Receiver<Status>,
}

/// A way to send the network thread commands, for whoever besides the user
/// interface's main loop needs one (the completer); cheap to clone.
#[derive(Clone)]
pub struct NetHandle {
    commands: Sender<Command>,
    /// Wakes the thread from `Poll::poll` to read the channel.
    waker: Arc<Waker>,
}

impl NetHandle {
    pub fn new(commands: Sender<Command>, waker: Arc<Waker>) -> Self {
        NetHandle { commands, waker }
    }

    /// Hands `command` to the thread. If the thread has finished this does
    /// nothing: its last [`Status`] says why.
    pub fn send(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// The longest line accepted from the server. Not the request limit
/// ([`codec::DEFAULT_MAX_FRAME`]): what the server sends is not bounded by
/// what a client may send. An `online` answer in a room of 10,000 people
/// with nicknames of 32 four-byte characters is over 1 MiB, and an
/// announcement may be as long as the server's `--max-frame` allows. The
/// limit only guards against a server that never ends its line.
pub const SERVER_MAX_FRAME: usize = 16 * 1024 * 1024;

const WAKE: Token = Token(0);
const SERVER: Token = Token(1);

impl Net {
    /// Starts the thread on `stream` (non-blocking); `dial` opens the next
    /// connection when this one is lost.
    pub fn spawn(
        stream: Stream,
        dial: Dial,
        options: Options,
        roster: SharedRoster,
        output: Box<dyn Output>,
    ) -> io::Result<Net> {
        Net::spawn_with(stream, dial, options, Session::new(roster), output)
    }

    /// Like [`Net::spawn`] with a session made by the caller (tests).
    pub fn spawn_with(
        stream: Stream,
        dial: Dial,
        options: Options,
        session: Session,
        output: Box<dyn Output>,
    ) -> io::Result<Net> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (status_tx, status) = crossbeam_channel::unbounded();
        let mut worker = Worker {
            poll,
            waker: waker.clone(),
            dial,
            options,
            link: Link::Closed,
            session,
            commands: command_rx,
            status: status_tx,
            output,
            leaving: false,
            plaintext: !stream.is_tls(),
            transfers: Transfers::new(),
            hashed: crossbeam_channel::unbounded(),
        };
        worker.up(stream)?;
        thread::Builder::new()
            .name("net".into())
            .spawn(move || worker.run())?;
        Ok(Net {
            handle: NetHandle::new(commands, waker),
            status,
        })
    }

    /// Hands `command` to the thread. If the thread has finished this does
    /// nothing: its last [`Status`] says why.
    pub fn send(&self, command: Command) {
        self.handle.send(command);
    }

    /// Another way to send commands, for the completer.
    pub fn handle(&self) -> NetHandle {
        self.handle.clone()
    }

    pub fn status(&self) -> &Receiver<Status> {
        &self.status
    }

    /// Like [`Net::wait`], but gives up after `limit`.
    pub fn wait_for(&self, limit: Duration) -> Option<Ending> {
        let deadline = Instant::now() + limit;
        loop {
            match self.status.recv_deadline(deadline) {
                Ok(Status::Finished(ending)) => return Some(ending),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => return Some(Ending::Lost),
            }
        }
    }

    /// Waits for the thread to finish, skipping other statuses.
    pub fn wait(&self) -> Ending {
        while let Ok(status) = self.status.recv() {
            if let Status::Finished(ending) = status {
                return ending;
            }
        }
        // Only if the thread panicked.
        Ending::Lost
    }
}

/// One connection.
struct Conn {
    stream: Stream,
    reader: FrameReader<ServerFrame>,
    /// Encoded requests not yet written; `written` bytes of it are.
    out: Vec<u8>,
    written: usize,
    bye_sent: bool,
    /// When the server was last heard from (any bytes: the server's own
    /// keepalive `ping` too, which the session answers with `pong` at once),
    /// and when our keepalive `ping` went out unanswered (nothing heard since).
    heard: Instant,
    probed: Option<Instant>,
}

/// The state of the link to the server.
enum Link {
    Up(Box<Conn>),
    /// Lost; the next try is at `at`. `said` is the last failure shown, so
    /// the same one is not repeated at every try.
    Waiting {
        backoff: Backoff,
        at: Instant,
        said: Option<String>,
    },
    /// A dial thread is connecting; its result comes on `result`.
    Dialing {
        backoff: Backoff,
        result: Receiver<anyhow::Result<Stream>>,
        said: Option<String>,
    },
    /// Between two states (never seen by the loop).
    Closed,
}

/// Why reading stopped.
enum Stop {
    /// The connection broke, with the reason for people.
    Broken(String),
    /// The session said it ended (or, for lost and shutdown, the connection).
    Ended(Ending),
}

/// The network thread's state.
struct Worker {
    poll: Poll,
    waker: Arc<Waker>,
    dial: Dial,
    options: Options,
    link: Link,
    session: Session,
    commands: Receiver<Command>,
    status: Sender<Status>,
    output: Box<dyn Output>,
    leaving: bool,
    /// The connection is plain TCP (`--no-tls`).
    plaintext: bool,
    /// Uploads and downloads under way.
    transfers: Transfers,
    /// Files hashed by their threads, to offer (see `files::hashing`).
    hashed: (Sender<Hashed>, Receiver<Hashed>),
}

impl Worker {
    fn run(mut self) {
        let ending = self.serve();
        if let Link::Up(conn) = &mut self.link {
            conn.stream.shutdown();
        }
        self.output.finishing();
        let _ = self.status.send(Status::Finished(ending));
    }

    /// Starts using `stream`.
    fn up(&mut self, mut stream: Stream) -> io::Result<()> {
        // Readable and writable, edge-triggered: an event comes only when
        // the socket changes state, so both can stay registered for good.
        self.poll.registry().register(
            stream.source(),
            SERVER,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.link = Link::Up(Box::new(Conn {
            stream,
            reader: FrameReader::new(SERVER_MAX_FRAME),
            out: Vec::new(),
            written: 0,
            bye_sent: false,
            heard: Instant::now(),
            probed: None,
        }));
        Ok(())
    }

    fn serve(&mut self) -> Ending {
        let mut events = Events::with_capacity(8);
        loop {
            let timeout = match &self.link {
                Link::Waiting { at, .. } => Some(at.saturating_duration_since(Instant::now())),
                Link::Up(conn) => Some(
                    self.keepalive_due(conn)
                        .saturating_duration_since(Instant::now()),
                ),
                _ => None,
            };
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                // A signal (the repl interrupts its own readline) is no error.
                if err.kind() != io::ErrorKind::Interrupted {
                    return self.lost(format!("cannot wait for the server: {err}"));
                }
            }
            // Both sides are served whichever woke us: trying costs one
            // syscall that would block, and with TLS a read can be needed
            // before a write can go on, or the other way round.
            if let Some(ending) = self.take_commands() {
                return ending;
            }
            if let Some(ending) = self.step() {
                return ending;
            }
            if let Some(ending) = self.keep_alive() {
                return ending;
            }
            self.pump_files();
            if let Some(ending) = self.leave_if_done() {
                return ending;
            }
            if let Link::Up(conn) = &mut self.link {
                if let Err(err) = flush(conn) {
                    if let Some(ending) = self.broken(err.to_string()) {
                        return ending;
                    }
                }
            }
        }
    }

    /// Reads what came, or moves reconnecting along; the ending if the
    /// session is over.
    fn step(&mut self) -> Option<Ending> {
        match std::mem::replace(&mut self.link, Link::Closed) {
            Link::Up(conn) => {
                self.link = Link::Up(conn);
                match self.read() {
                    None => {
                        if let Some(received) = self.session.received() {
                            self.queue(&received);
                        }
                        None
                    }
                    Some(Stop::Broken(reason)) => self.broken(reason),
                    Some(Stop::Ended(Ending::Shutdown)) => {
                        self.reconnect_after(Ending::Shutdown, "the server shut down".into())
                    }
                    Some(Stop::Ended(ending)) => {
                        // Kicked or taken over: no reconnect will send what
                        // waits in the outbox, so say what was not stored.
                        if matches!(ending, Ending::Kicked | Ending::TakenOver) {
                            self.list_unsent();
                        }
                        Some(ending)
                    }
                }
            }
            Link::Waiting { backoff, at, said } => {
                if Instant::now() < at {
                    self.link = Link::Waiting { backoff, at, said };
                } else {
                    self.link = Link::Dialing {
                        result: self.start_dial(),
                        backoff,
                        said,
                    };
                }
                None
            }
            Link::Dialing {
                backoff,
                result,
                said,
            } => match result.try_recv() {
                Err(TryRecvError::Empty) => {
                    self.link = Link::Dialing {
                        backoff,
                        result,
                        said,
                    };
                    None
                }
                Ok(Ok(stream)) => {
                    if let Err(err) = self.up(stream) {
                        return self.retry(backoff, err.to_string(), said);
                    }
                    if let Some(login) = self.session.relogin() {
                        self.queue(&login);
                    }
                    // Readiness may have come before registering.
                    self.step()
                }
                Ok(Err(err)) => self.retry(backoff, format!("{err:#}"), said),
                Err(TryRecvError::Disconnected) => {
                    self.retry(backoff, "the dial thread failed".into(), said)
                }
            },
            Link::Closed => None,
        }
    }

    /// When the keepalive must act next: send a ping, or give up on one.
    fn keepalive_due(&self, conn: &Conn) -> Instant {
        match conn.probed {
            Some(sent) => sent + self.options.keepalive / 2,
            None => conn.heard + self.options.keepalive,
        }
    }

    /// Pings a silent server, and treats one that stays silent as a lost
    /// connection: without this a network that dropped without a word
    /// (no FIN, no RST) would leave the client waiting for ever.
    fn keep_alive(&mut self) -> Option<Ending> {
        let Link::Up(conn) = &self.link else {
            return None;
        };
        let now = Instant::now();
        if now < self.keepalive_due(conn) {
            return None;
        }
        if conn.probed.is_some() {
            let silent = now.duration_since(conn.heard).as_secs_f64();
            return self.broken(format!("no answer from the server for {silent:.0} s"));
        }
        let ping = self.session.ping();
        self.queue(&ping);
        if let Link::Up(conn) = &mut self.link {
            conn.probed = Some(now);
        }
        None
    }

    /// Connects on a thread of its own, which wakes us when done.
    fn start_dial(&mut self) -> Receiver<anyhow::Result<Stream>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let dial = self.dial.clone();
        let waker = self.waker.clone();
        let spawned = thread::Builder::new().name("dial".into()).spawn(move || {
            let _ = tx.send(dial());
            let _ = waker.wake();
        });
        if spawned.is_err() {
            // The sender is gone with the closure: the loop sees
            // `Disconnected` and counts it as a failed try.
            let _ = self.waker.wake();
        }
        rx
    }

    /// A try failed: wait and try again, or give up.
    fn retry(
        &mut self,
        mut backoff: Backoff,
        reason: String,
        said: Option<String>,
    ) -> Option<Ending> {
        let now = Instant::now();
        let Some(at) = backoff.next_try(now) else {
            return Some(self.give_up(&backoff));
        };
        if said.as_deref() != Some(reason.as_str()) {
            let retry_in = at.saturating_duration_since(now).as_secs_f64().round() as u64;
            self.output.connection(&Notice::RetryFailed {
                reason: reason.clone(),
                retry_in: retry_in.max(1),
            });
        }
        self.link = Link::Waiting {
            backoff,
            at,
            said: Some(reason),
        };
        None
    }

    fn give_up(&mut self, backoff: &Backoff) -> Ending {
        let after = backoff.elapsed(Instant::now()).as_secs();
        self.output.connection(&Notice::GaveUp { after });
        self.list_unsent();
        Ending::Lost
    }

    fn list_unsent(&mut self) {
        for notice in self.session.unsent() {
            self.output.connection(&notice);
        }
    }

    /// The connection broke: reconnect, or end.
    fn broken(&mut self, reason: String) -> Option<Ending> {
        if let Link::Up(conn) = &self.link {
            if conn.bye_sent {
                return Some(Ending::Left);
            }
        }
        self.reconnect_after(Ending::Lost, reason)
    }

    /// Closes the connection, which ended as `ending` (lost or shut down),
    /// and reconnects if that is allowed; else the ending.
    fn reconnect_after(&mut self, ending: Ending, reason: String) -> Option<Ending> {
        if let Link::Up(mut conn) = std::mem::replace(&mut self.link, Link::Closed) {
            let _ = self.poll.registry().deregister(conn.stream.source());
            conn.stream.shutdown();
        }
        let ever = self.session.has_logged_in();
        self.session.disconnected();
        let allowed = self.options.reconnect_for != Some(Duration::ZERO);
        if !ever || !allowed {
            if ending == Ending::Lost {
                self.say_lost(reason);
            }
            return Some(ending);
        }
        if self.leaving && !self.session.has_unacknowledged() {
            // Nothing left to deliver: no need to come back to say bye.
            return Some(Ending::Left);
        }
        self.output.connection(&Notice::Reconnecting { reason });
        let now = Instant::now();
        let mut backoff = Backoff::new(now, self.options.reconnect_for);
        match backoff.next_try(now) {
            Some(at) => {
                self.link = Link::Waiting {
                    backoff,
                    at,
                    said: None,
                };
                None
            }
            None => Some(self.give_up(&backoff)),
        }
    }

    /// Says bye once everything is answered; or, disconnected with nothing
    /// left to deliver, just goes.
    fn leave_if_done(&mut self) -> Option<Ending> {
        if !self.leaving {
            return None;
        }
        if !self.session.has_logged_in() {
            return Some(Ending::Left);
        }
        let waiting = self.session.is_waiting() || self.transfers.busy();
        match &mut self.link {
            Link::Up(conn) if self.session.is_logged_in() && !waiting && !conn.bye_sent => {
                conn.bye_sent = true;
                let bye = self.session.bye();
                self.queue(&bye);
                None
            }
            Link::Waiting { .. } | Link::Dialing { .. } if !self.session.has_unacknowledged() => {
                Some(Ending::Left)
            }
            _ => None,
        }
    }

    /// Hands the UI's commands to the session; the ending if one was to
    /// leave at once.
    fn take_commands(&mut self) -> Option<Ending> {
        loop {
            let request = match self.commands.try_recv() {
                Ok(Command::Login { nick, password }) => Some(self.session.login(nick, password)),
                Ok(Command::Say { receiver, text }) => {
                    let updates = self.session.say(receiver, text);
                    let mut request = None;
                    for update in updates {
                        match update {
                            Update::Show(notice) => self.output.local(&notice),
                            Update::Send(send) => request = Some(send),
                            _ => {}
                        }
                    }
                    request
                }
                Ok(Command::Online) => self.session.online(),
                Ok(Command::History { with, limit }) => self.session.history(with, limit),
                Ok(Command::Search { words, from }) => self.session.search(words, from),
                Ok(Command::Group(op)) => self.session.group(op),
                Ok(Command::RefreshRoster) => self.session.refresh(),
                Ok(Command::SendFile { to, path }) => match self.transfers.prepare(to, path) {
                    Ok(job) => {
                        crate::files::spawn_hashing(job, self.hashed.0.clone(), self.waker.clone());
                        None
                    }
                    Err(reason) => {
                        self.output.local(&Notice::Error { reason });
                        None
                    }
                },
                Ok(Command::Accept { file, dir }) => {
                    let dir = dir.unwrap_or_else(|| self.options.downloads.clone());
                    Some(self.transfers.accept(file, dir))
                }
                Ok(Command::Reject { file }) => {
                    let request = self.transfers.reject(file);
                    let offers = self.transfers.offers.keys().copied().collect();
                    self.session.set_offers(offers);
                    Some(request)
                }
                Ok(Command::Abandon) => {
                    self.list_unsent();
                    return Some(Ending::Left);
                }
                // A user interface that went away without a word leaves too.
                Ok(Command::Leave) | Err(TryRecvError::Disconnected) => {
                    self.leaving = true;
                    return None;
                }
                Err(TryRecvError::Empty) => return None,
            };
            if let Some(request) = request {
                self.queue(&request);
            }
        }
    }

    /// Queues `request` on the connection, if there is one (the session
    /// only makes requests for a connection it is on).
    fn queue(&mut self, request: &Request) {
        if let Link::Up(conn) = &mut self.link {
            conn.out.extend_from_slice(&codec::encode(request));
        }
    }

    /// Reads until the socket would block, which edge-triggered polling
    /// requires (and TLS too: OpenSSL may hold decrypted bytes the socket no
    /// longer signals).
    fn read(&mut self) -> Option<Stop> {
        let Link::Up(conn) = &mut self.link else {
            return None;
        };
        let conn = &mut **conn;
        let mut buf = [0; 16 * 1024];
        loop {
            let n = match conn.stream.read(&mut buf) {
                Ok(0) if conn.bye_sent => return Some(Stop::Ended(Ending::Left)),
                Ok(0) => return Some(Stop::Broken("the server closed the connection".into())),
                Ok(n) => {
                    conn.heard = Instant::now();
                    conn.probed = None;
                    n
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return None,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) if conn.bye_sent => return Some(Stop::Ended(Ending::Left)),
                Err(err) => return Some(Stop::Broken(err.to_string())),
            };
            let mut ended = None;
            let (session, output, status, out, transfers) = (
                &mut self.session,
                &mut self.output,
                &self.status,
                &mut conn.out,
                &mut self.transfers,
            );
            let fed = conn.reader.feed_until(&buf[..n], |line, frame| {
                ended = on_frame(
                    line,
                    frame,
                    session,
                    transfers,
                    output.as_mut(),
                    status,
                    out,
                );
                if ended.is_some() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            if let Err(too_large) = fed {
                return Some(Stop::Broken(format!("the server sent a {too_large}")));
            }
            if let Some(ending) = ended {
                return Some(Stop::Ended(ending));
            }
        }
    }

    /// Says the connection is lost for good.
    fn say_lost(&mut self, mut reason: String) {
        // A TLS server drops a plaintext client's first line: say so.
        if !self.session.has_logged_in() && self.plaintext {
            reason += " (if the server uses TLS, the default, leave out --no-tls)";
        }
        self.output.connection(&Notice::Lost { reason });
    }

    fn lost(&mut self, reason: String) -> Ending {
        self.say_lost(reason);
        Ending::Lost
    }
}

impl Worker {
    /// Queues the chunks the upload window allows, while logged in.
    fn pump_files(&mut self) {
        while let Ok(hashed) = self.hashed.1.try_recv() {
            match self.transfers.hashed(hashed) {
                Ok(offer) if self.session.is_logged_in() => self.queue(&offer),
                // Offered after the next welcome (`Transfers::resume`).
                Ok(_) => {}
                Err(reason) => self.output.local(&Notice::Error { reason }),
            }
        }
        if !self.session.is_logged_in() {
            return;
        }
        let (requests, says) = self.transfers.pump();
        for text in says {
            self.output.local(&Notice::File { text });
        }
        for request in &requests {
            self.queue(request);
        }
    }
}

/// Writes queued bytes until done or the socket is full; the rest goes
/// when the socket says it is writable again.
fn flush(conn: &mut Conn) -> io::Result<()> {
    while conn.written < conn.out.len() {
        match conn.stream.write(&conn.out[conn.written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => conn.written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    conn.out.clear();
    conn.written = 0;
    Ok(())
}

/// Handles one frame from the server (`line`, and what it decoded to);
/// requests it calls for go to `out`.
fn on_frame(
    line: &[u8],
    frame: Result<ServerFrame, FrameError>,
    session: &mut Session,
    transfers: &mut Transfers,
    output: &mut dyn Output,
    status: &Sender<Status>,
    out: &mut Vec<u8>,
) -> Option<Ending> {
    let raw = String::from_utf8_lossy(line);
    let frame = match frame {
        Ok(frame) => frame,
        Err(err) => {
            // A newer server may send frames we do not know: say so, go on.
            let reason = format!("unreadable frame from the server: {err}");
            output.frame(&raw, &[Notice::Error { reason }]);
            return None;
        }
    };
    let mut notices = Vec::new();
    // File frames feed the transfers; a welcome resumes the unfinished ones.
    let (requests, says) = transfers.on_frame(&frame);
    let mut file_requests = requests;
    if matches!(frame, ServerFrame::Welcome { .. }) {
        file_requests.extend(transfers.resume());
    }
    notices.extend(says.into_iter().map(|text| Notice::File { text }));
    for progress in transfers.take_progress() {
        output.progress(&progress);
    }
    session.set_offers(transfers.offers.keys().copied().collect());
    let mut statuses = Vec::new();
    let mut ended = None;
    let mut duplicate = false;
    for update in session.on_frame(frame) {
        match update {
            Update::Show(notice) => notices.push(notice),
            Update::LoggedIn(nick) => statuses.push(Status::LoggedIn(nick)),
            Update::LoginRefused { code, reason } => {
                statuses.push(Status::LoginRefused { code, reason })
            }
            Update::Send(request) => out.extend_from_slice(&codec::encode(&request)),
            Update::Duplicate => duplicate = true,
            Update::Ended(ending) => ended = Some(ending),
        }
    }
    for request in &file_requests {
        out.extend_from_slice(&codec::encode(request));
    }
    // Printed first, so the welcome line is up before the prompt.
    if !duplicate {
        output.frame(&raw, &notices);
    }
    for s in statuses {
        let _ = status.send(s);
    }
    ended
}
