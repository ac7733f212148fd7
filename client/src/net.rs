//! The network thread: owns the connection, writes the requests the user
//! interface sends it, and reads, decodes and reports the server's frames.
//!
//! ```text
//!   repl / pipe ──Command──▶ (crossbeam channel + mio Waker) ──▶ net thread ◀──▶ server
//!        ▲                                                          │
//!        └────────────Status (logged in, refused, finished)─────────┤
//!                    Output (lines to print) ◀──────────────────────┘
//! ```
//!
//! The completer holds a [`NetHandle`] too, to ask for a stale roster.
//!
//! The thread sleeps in `Poll::poll` until the socket or the waker is ready,
//! so an idle client uses no CPU.

use std::io::{self, Read, Write};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chat_common::codec::{self, LineReader};
use chat_common::{ErrorCode, Request, ServerFrame, EVERYONE};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::render::Notice;
use crate::roster::SharedRoster;
use crate::session::{Ending, Session, Update};
use crate::tls::Stream;

/// What the user interface asks of the network thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Login(String),
    /// A message; `receiver` is `*` for everyone.
    Say {
        receiver: String,
        text: String,
    },
    Online,
    /// Fetch who is online quietly, into the roster, if it is stale and no
    /// such request is on its way already (completion needs nicknames).
    RefreshRoster,
    /// Leave cleanly: once every request has been answered, say bye and wait
    /// for its answer (or the server closing).
    Leave,
}

impl Command {
    pub fn public(text: String) -> Self {
        Command::Say {
            receiver: EVERYONE.to_string(),
            text,
        }
    }
}

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
    /// Something about the connection rather than a frame (it broke).
    fn connection(&mut self, notice: &Notice);
    /// Called once, just before [`Status::Finished`] is sent.
    fn finishing(&mut self) {}
}

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
    /// Starts the thread; `stream` must be non-blocking.
    pub fn spawn(
        mut stream: Stream,
        roster: SharedRoster,
        output: Box<dyn Output>,
    ) -> io::Result<Net> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        // Readable and writable, edge-triggered: an event comes only when
        // the socket changes state, so both can stay registered for good.
        poll.registry().register(
            stream.source(),
            SERVER,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (status_tx, status) = crossbeam_channel::unbounded();
        let worker = Worker {
            stream,
            reader: LineReader::new(SERVER_MAX_FRAME),
            out: Vec::new(),
            written: 0,
            session: Session::new(roster),
            commands: command_rx,
            status: status_tx,
            output,
            leaving: false,
            bye_sent: false,
        };
        thread::Builder::new()
            .name("net".into())
            .spawn(move || worker.run(poll))?;
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

/// The network thread's state.
struct Worker {
    stream: Stream,
    reader: LineReader,
    /// Encoded requests not yet written; `written` bytes of it are.
    out: Vec<u8>,
    written: usize,
    session: Session,
    commands: Receiver<Command>,
    status: Sender<Status>,
    output: Box<dyn Output>,
    leaving: bool,
    bye_sent: bool,
}

impl Worker {
    fn run(mut self, mut poll: Poll) {
        let ending = self.serve(&mut poll);
        self.stream.shutdown();
        self.output.finishing();
        let _ = self.status.send(Status::Finished(ending));
    }

    fn serve(&mut self, poll: &mut Poll) -> Ending {
        let mut events = Events::with_capacity(8);
        loop {
            if let Err(err) = poll.poll(&mut events, None) {
                // A signal (the repl interrupts its own readline) is no error.
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return self.lost(format!("cannot wait for the server: {err}"));
            }
            // Both sides are served whichever woke us: trying costs one
            // syscall that would block, and with TLS a read can be needed
            // before a write can go on, or the other way round.
            self.take_commands();
            if let Some(ending) = self.read() {
                return ending;
            }
            if self.leaving && !self.bye_sent && !self.session.is_waiting() {
                if !self.session.is_logged_in() {
                    return Ending::Left;
                }
                let bye = self.session.bye();
                self.queue(&bye);
                self.bye_sent = true;
            }
            if let Err(err) = self.flush() {
                return self.lost(err.to_string());
            }
        }
    }

    fn take_commands(&mut self) {
        loop {
            let request = match self.commands.try_recv() {
                Ok(Command::Login(nick)) => self.session.login(nick),
                Ok(Command::Say { receiver, text }) => self.session.say(receiver, text),
                Ok(Command::Online) => self.session.online(),
                Ok(Command::RefreshRoster) => match self.session.refresh() {
                    Some(request) => request,
                    None => continue,
                },
                // A user interface that went away without a word leaves too.
                Ok(Command::Leave) | Err(TryRecvError::Disconnected) => {
                    self.leaving = true;
                    return;
                }
                Err(TryRecvError::Empty) => return,
            };
            self.queue(&request);
        }
    }

    fn queue(&mut self, request: &Request) {
        self.out.extend_from_slice(&codec::encode(request));
    }

    /// Writes queued bytes until done or the socket is full; the rest goes
    /// when the socket says it is writable again.
    fn flush(&mut self) -> io::Result<()> {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        self.out.clear();
        self.written = 0;
        Ok(())
    }

    /// Reads until the socket would block, which edge-triggered polling
    /// requires (and TLS too: OpenSSL may hold decrypted bytes the socket no
    /// longer signals). Returns how the session ended, if it did.
    fn read(&mut self) -> Option<Ending> {
        let mut buf = [0; 16 * 1024];
        loop {
            let n = match self.stream.read(&mut buf) {
                Ok(0) if self.bye_sent => return Some(Ending::Left),
                Ok(0) => return Some(self.lost("the server closed the connection".into())),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return None,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) if self.bye_sent => return Some(Ending::Left),
                Err(err) => return Some(self.lost(err.to_string())),
            };
            let mut ended = None;
            let (session, output, status) = (&mut self.session, &mut self.output, &self.status);
            let fed = self.reader.feed(&buf[..n], |line| {
                ended = on_line(line, session, output.as_mut(), status);
                if ended.is_some() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            if let Err(too_large) = fed {
                return Some(self.lost(format!("the server sent a {too_large}")));
            }
            if ended.is_some() {
                return ended;
            }
        }
    }

    fn lost(&mut self, mut reason: String) -> Ending {
        // A TLS server drops a plaintext client's first line: say so.
        if !self.session.is_logged_in() && !self.stream.is_tls() {
            reason += " (if the server uses TLS, the default, leave out --no-tls)";
        }
        self.output.connection(&Notice::Lost { reason });
        Ending::Lost
    }
}

/// Handles one line from the server.
fn on_line(
    line: &[u8],
    session: &mut Session,
    output: &mut dyn Output,
    status: &Sender<Status>,
) -> Option<Ending> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let raw = String::from_utf8_lossy(line);
    let frame = match codec::decode::<ServerFrame>(line) {
        Ok(frame) => frame,
        Err(err) => {
            // A newer server may send frames we do not know: say so, go on.
            let reason = format!("unreadable frame from the server: {err}");
            output.frame(&raw, &[Notice::Error { reason }]);
            return None;
        }
    };
    let mut notices = Vec::new();
    let mut statuses = Vec::new();
    let mut ended = None;
    for update in session.on_frame(frame) {
        match update {
            Update::Show(notice) => notices.push(notice),
            Update::LoggedIn(nick) => statuses.push(Status::LoggedIn(nick)),
            Update::LoginRefused { code, reason } => {
                statuses.push(Status::LoginRefused { code, reason })
            }
            Update::Ended(ending) => ended = Some(ending),
        }
    }
    // Printed first, so the welcome line is up before the prompt.
    output.frame(&raw, &notices);
    for s in statuses {
        let _ = status.send(s);
    }
    ended
}
