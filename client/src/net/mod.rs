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
//!
//! Inside: `worker` has the sockets, the poll loop and the threads it
//! starts; every decision — what a command or a frame calls for, whether
//! and when to reconnect, when to say bye — is the `engine`'s, which
//! never touches a socket, so its tests play the server without one;
//! `keepalive` and `backoff` time the pings and the tries, and `servers`
//! says which server of the list (`--server a,b,c`) each try goes to.

mod backoff;
mod engine;
mod keepalive;
pub mod servers;
mod worker;

use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chat_common::ErrorCode;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use mio::Waker;

use crate::command::Command;
use crate::known_hosts::KnownHostsError;
use crate::roster::SharedRoster;
use crate::session::{Ending, Notice, Session};
use crate::tls::Stream;
pub use servers::Servers;

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
    /// When the output wants [`Output::tick`] called (it holds lines back
    /// for a moment: interactive mode's private messages), if it does.
    fn due(&self) -> Option<Instant> {
        None
    }
    /// Called once [`Output::due`] has passed.
    fn tick(&mut self) {}
}

/// Opens a new connection to a server (`host:port`) of the list, the way
/// the first was opened; called on the dial thread. What the user should
/// know (a certificate pinned on first use) goes to the callback, to be
/// shown as a [`Notice::Pinned`].
pub type Dial = Arc<dyn Fn(&str, &mut dyn FnMut(String)) -> anyhow::Result<Stream> + Send + Sync>;

/// How the thread behaves when the connection is lost, and where files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where to reconnect (`--server`), standing at the server the first
    /// connection is to (see [`connect`]).
    pub servers: Servers,
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

/// The longest line accepted from the server. Not the request limit
/// ([`chat_common::codec::DEFAULT_MAX_FRAME`]): what the server sends is
/// not bounded by what a client may send. An `online` answer in a room of
/// 10,000 people with nicknames of 32 four-byte characters is over 1 MiB,
/// and an announcement may be as long as the server's `--max-frame`
/// allows. The limit only guards against a server that never ends its
/// line.
pub const SERVER_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The first connection: each server of the list in turn, the next at
/// once when one cannot be reached, until one answers; `servers` is left
/// at that one, and `say` is told each server passed over, the one that
/// answered and any certificate pinned. The last failure if none did. A
/// changed certificate is no failure to move on from: it is returned at
/// once, as a warning must be.
pub fn connect(
    servers: &mut Servers,
    dial: &Dial,
    say: &mut dyn FnMut(&Notice),
) -> anyhow::Result<Stream> {
    loop {
        let server = servers.current().to_string();
        match dial(&server, &mut |text| say(&Notice::Pinned { text })) {
            Ok(stream) => {
                servers.connected();
                if servers.is_list() {
                    say(&Notice::Connected { server });
                }
                return Ok(stream);
            }
            Err(err) if is_changed_certificate(&err) => return Err(err),
            Err(err) => match servers.failed() {
                servers::Next::Now => say(&Notice::Unreachable {
                    next: servers.current().to_string(),
                    reason: without_server(&server, format!("{err:#}")),
                    server,
                    retry_in: None,
                }),
                servers::Next::AfterRound if servers.is_list() => {
                    let count = servers.len();
                    return Err(err.context(format!("none of the {count} servers answered")));
                }
                servers::Next::AfterRound => return Err(err),
            },
        }
    }
}

/// Whether a dial failed because the server's certificate is not the one
/// pinned.
fn is_changed_certificate(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<KnownHostsError>(),
        Some(KnownHostsError::Mismatch { .. })
    )
}

/// A dial's failure said after the server's name: without the name again.
fn without_server(server: &str, reason: String) -> String {
    match reason.strip_prefix(&format!("cannot connect to {server}: ")) {
        Some(rest) => rest.to_string(),
        None => reason,
    }
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
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (status_tx, status) = crossbeam_channel::unbounded();
        let keepalive = options.keepalive;
        let plaintext = !stream.is_tls();
        let engine = engine::Engine::new(session, options, output, status_tx, plaintext);
        let worker = worker::Worker::new(stream, dial, keepalive, engine, command_rx)?;
        let waker = worker.waker();
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
