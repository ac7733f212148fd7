//! The network thread's I/O: the mio loop, the connection's bytes, and the
//! threads it starts (dialing, hashing files). What to do with them is the
//! [`Engine`]'s to say.

use std::io::{self, Read, Write};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chat_common::codec::{self, FrameReader};
use chat_common::{Request, ServerFrame};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::{Events, Interest, Poll, Token, Waker};

use super::engine::{AfterLoss, Connection, Engine, Leave, Outage, Stop, Taken};
use super::keepalive::{Keepalive, Probe};
use super::{is_changed_certificate, Dial, SERVER_MAX_FRAME};
use crate::command::Command;
use crate::files::Hashed;
use crate::session::Ending;
use crate::tls::Stream;

const WAKE: Token = Token(0);
const SERVER: Token = Token(1);

/// One connection.
struct Conn {
    stream: Stream,
    reader: FrameReader<ServerFrame>,
    /// Encoded requests not yet written; `written` bytes of it are.
    out: Vec<u8>,
    written: usize,
    bye_sent: bool,
    keepalive: Keepalive,
}

/// The state of the link to the server.
enum Link {
    Up(Box<Conn>),
    /// Lost; the next try is at `at`.
    Waiting {
        outage: Outage,
        at: Instant,
    },
    /// A dial thread is connecting; its result comes on `result`.
    Dialing {
        outage: Outage,
        result: Receiver<Dialed>,
    },
    /// Between two states (never seen by the loop).
    Closed,
}

/// What a dial thread found: the connection or why not, and what it had
/// to tell the user meanwhile.
type Dialed = (anyhow::Result<Stream>, Vec<String>);

/// The network thread's state.
pub(super) struct Worker {
    poll: Poll,
    waker: Arc<Waker>,
    dial: Dial,
    /// [`super::Options::keepalive`].
    keepalive: Duration,
    link: Link,
    engine: Engine,
    commands: Receiver<Command>,
    /// Files hashed by their threads, to offer (see `files::hashing`).
    hashed: (Sender<Hashed>, Receiver<Hashed>),
}

impl Worker {
    /// A worker on `stream` (non-blocking), not yet running.
    pub(super) fn new(
        stream: Stream,
        dial: Dial,
        keepalive: Duration,
        engine: Engine,
        commands: Receiver<Command>,
    ) -> io::Result<Worker> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let mut worker = Worker {
            poll,
            waker,
            dial,
            keepalive,
            link: Link::Closed,
            engine,
            commands,
            hashed: crossbeam_channel::unbounded(),
        };
        worker.up(stream)?;
        Ok(worker)
    }

    /// What wakes the thread to read its commands.
    pub(super) fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    pub(super) fn run(mut self) {
        let ending = self.serve();
        if let Link::Up(conn) = &mut self.link {
            conn.stream.shutdown();
        }
        self.engine.finish(ending);
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
            keepalive: Keepalive::new(self.keepalive, Instant::now()),
        }));
        Ok(())
    }

    fn serve(&mut self) -> Ending {
        let mut events = Events::with_capacity(8);
        loop {
            let timeout = match &self.link {
                Link::Waiting { at, .. } => Some(at.saturating_duration_since(Instant::now())),
                Link::Up(conn) => Some(
                    conn.keepalive
                        .due()
                        .saturating_duration_since(Instant::now()),
                ),
                _ => None,
            };
            // The output's own deadline, when it holds lines back.
            let timeout = match (timeout, self.engine.output_due()) {
                (t, None) => t,
                (None, Some(due)) => Some(due.saturating_duration_since(Instant::now())),
                (Some(t), Some(due)) => Some(t.min(due.saturating_duration_since(Instant::now()))),
            };
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                // A signal (the repl interrupts its own readline) is no error.
                if err.kind() != io::ErrorKind::Interrupted {
                    return self
                        .engine
                        .fail(format!("cannot wait for the server: {err}"));
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
            self.engine.output_tick();
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
                        if let Some(received) = self.engine.received() {
                            self.queue(&received);
                        }
                        None
                    }
                    Some(stop) => {
                        let bye_sent = self.close();
                        let after = self.engine.stopped(stop, bye_sent, Instant::now());
                        self.after_loss(after)
                    }
                }
            }
            Link::Waiting { outage, at } => {
                if Instant::now() < at {
                    self.link = Link::Waiting { outage, at };
                } else {
                    self.link = Link::Dialing {
                        result: self.start_dial(),
                        outage,
                    };
                }
                None
            }
            Link::Dialing { outage, result } => match result.try_recv() {
                Err(TryRecvError::Empty) => {
                    self.link = Link::Dialing { outage, result };
                    None
                }
                Ok((dialed, told)) => {
                    self.engine.pinned(told);
                    self.dialed(outage, dialed)
                }
                Err(TryRecvError::Disconnected) => {
                    self.retry(outage, "the dial thread failed".into())
                }
            },
            Link::Closed => None,
        }
    }

    /// A dial is done: use the connection, or try again.
    fn dialed(&mut self, outage: Outage, dialed: anyhow::Result<Stream>) -> Option<Ending> {
        match dialed {
            Ok(stream) => {
                if let Err(err) = self.up(stream) {
                    return self.retry(outage, err.to_string());
                }
                if let Some(login) = self.engine.reconnected() {
                    self.queue(&login);
                }
                // Readiness may have come before registering.
                self.step()
            }
            // A changed certificate is no outage: trying again would
            // only ask the same question, so end as at start-up.
            Err(err) if is_changed_certificate(&err) => {
                Some(self.engine.certificate_changed(format!("{err:#}")))
            }
            Err(err) => self.retry(outage, format!("{err:#}")),
        }
    }

    /// Pings a silent server, and treats one that stays silent as a lost
    /// connection.
    fn keep_alive(&mut self) -> Option<Ending> {
        let Link::Up(conn) = &mut self.link else {
            return None;
        };
        match conn.keepalive.check(Instant::now())? {
            Probe::Ping => {
                let ping = self.engine.ping();
                self.queue(&ping);
                None
            }
            Probe::Dead { silent } => {
                let silent = silent.as_secs_f64();
                self.broken(format!("no answer from the server for {silent:.0} s"))
            }
        }
    }

    /// Connects to the server the engine says on a thread of its own,
    /// which wakes us when done.
    fn start_dial(&mut self) -> Receiver<Dialed> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (dial, server) = (self.dial.clone(), self.engine.server().to_string());
        let waker = self.waker.clone();
        let spawned = thread::Builder::new().name("dial".into()).spawn(move || {
            let mut told = Vec::new();
            let dialed = dial(&server, &mut |text| told.push(text));
            let _ = tx.send((dialed, told));
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
    fn retry(&mut self, outage: Outage, reason: String) -> Option<Ending> {
        let after = self.engine.retry(outage, reason, Instant::now());
        self.after_loss(after)
    }

    /// The connection broke: reconnect, or end.
    fn broken(&mut self, reason: String) -> Option<Ending> {
        let bye_sent = self.close();
        let after = self.engine.broken(bye_sent, reason, Instant::now());
        self.after_loss(after)
    }

    /// Closes the connection, if there is one; whether our bye went out
    /// on it.
    fn close(&mut self) -> bool {
        let Link::Up(mut conn) = std::mem::replace(&mut self.link, Link::Closed) else {
            return false;
        };
        let _ = self.poll.registry().deregister(conn.stream.source());
        conn.stream.shutdown();
        conn.bye_sent
    }

    /// Waits for the next try, or ends.
    fn after_loss(&mut self, after: AfterLoss) -> Option<Ending> {
        match after {
            AfterLoss::Retry { outage, at } => {
                self.link = Link::Waiting { outage, at };
                None
            }
            AfterLoss::End(ending) => Some(ending),
        }
    }

    /// Says bye once everything is answered; or, disconnected with nothing
    /// left to deliver, just goes.
    fn leave_if_done(&mut self) -> Option<Ending> {
        let connection = match &self.link {
            Link::Up(conn) => Connection::Up {
                bye_sent: conn.bye_sent,
            },
            Link::Waiting { .. } | Link::Dialing { .. } | Link::Closed => Connection::Down,
        };
        match self.engine.leave_if_done(connection) {
            Leave::Stay => None,
            Leave::Bye(bye) => {
                if let Link::Up(conn) = &mut self.link {
                    conn.bye_sent = true;
                }
                self.queue(&bye);
                None
            }
            Leave::Gone => Some(Ending::Left),
        }
    }

    /// Hands the UI's commands to the engine; the ending if one was to
    /// leave at once.
    fn take_commands(&mut self) -> Option<Ending> {
        loop {
            let command = match self.commands.try_recv() {
                Ok(command) => command,
                // A user interface that went away without a word leaves too.
                Err(TryRecvError::Disconnected) => Command::Leave,
                Err(TryRecvError::Empty) => return None,
            };
            let mut requests = Vec::new();
            let taken = self.engine.command(command, &mut requests);
            for request in &requests {
                self.queue(request);
            }
            match taken {
                Taken::Next => {}
                Taken::Hash(job) => {
                    crate::files::spawn_hashing(job, self.hashed.0.clone(), self.waker.clone())
                }
                Taken::Leaving => return None,
                Taken::End(ending) => return Some(ending),
            }
        }
    }

    /// Queues the requests for the files: offers of the files hashed, and
    /// the chunks the upload windows allow.
    fn pump_files(&mut self) {
        while let Ok(hashed) = self.hashed.1.try_recv() {
            if let Some(offer) = self.engine.hashed(hashed) {
                self.queue(&offer);
            }
        }
        for request in self.engine.pump_files() {
            self.queue(&request);
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
                    conn.keepalive.heard(Instant::now());
                    n
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return None,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) if conn.bye_sent => return Some(Stop::Ended(Ending::Left)),
                Err(err) => return Some(Stop::Broken(err.to_string())),
            };
            let mut ended = None;
            let (engine, out) = (&mut self.engine, &mut conn.out);
            let fed = conn.reader.feed_until(&buf[..n], |line, frame| {
                let mut requests = Vec::new();
                ended = engine.frame(line, frame, &mut requests);
                for request in &requests {
                    out.extend_from_slice(&codec::encode(request));
                }
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
