//! An I/O worker: one thread, one mio poller, many connections. It reads
//! requests into each connection's handler and writes what the dispatcher
//! routes to it, so thousands of connections need no thread each.

use std::collections::{HashMap, HashSet};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_common::{Connection as _, Frame, RequestHandler};
use crossbeam_channel::Receiver;
use mio::{Events, Interest, Poll, Token, Waker};
use tracing::{debug, error, info, warn};

use super::admission::Slot;
use super::connection::{Conn, Status};
use super::tls::{Stream, TlsAcceptor};
use super::web::{Site, Speech};
use super::{ConnId, ConnInfo, Limits, Op, ToWorker};

/// The waker's token; connection tokens are their ids, which never reach it.
pub const WAKER: Token = Token(usize::MAX);

/// How often deadlines are checked while any are pending.
const TICK: Duration = Duration::from_millis(250);

pub struct Worker<H: RequestHandler, F> {
    index: usize,
    poll: Poll,
    /// Kept so the waker's eventfd lives as long as the poller: if the last
    /// handle to it closed first, a wake-up already sent but not yet read
    /// would vanish with it (the kernel drops a closed fd's pending events).
    _waker: Arc<Waker>,
    inbox: Receiver<ToWorker>,
    conns: HashMap<ConnId, Conn<H>>,
    /// Each connection's place under the caps: dropped, it frees the place
    /// (also when `accept` gives up on a connection, or the worker ends).
    slots: HashMap<ConnId, Slot>,
    make_handler: Arc<F>,
    tls: Option<TlsAcceptor>,
    /// What HTTP requests are answered with, if the server has a web side.
    site: Option<&'static Site>,
    limits: Limits,
    /// Connections with new frames or a new close request, flushed once per
    /// poll round so that frames arriving together leave in one write.
    dirty: Vec<ConnId>,
    /// Connections with a deadline (handshaking, closing, stalled or paused
    /// by flood control), so that timers
    /// cost nothing for the thousands of connections that have none.
    watched: HashSet<ConnId>,
    read_buf: Vec<u8>,
    /// Connections whose last read stopped at its budget (`more_to_read`).
    again: Vec<ConnId>,
    shutting_down: bool,
    last_tick: Instant,
}

impl<H, F> Worker<H, F>
where
    H: RequestHandler,
    F: Fn(ConnInfo) -> H,
{
    pub fn new(
        index: usize,
        (poll, waker): (Poll, Arc<Waker>),
        inbox: Receiver<ToWorker>,
        make_handler: Arc<F>,
        (tls, site): (Option<TlsAcceptor>, Option<&'static Site>),
        limits: Limits,
    ) -> Self {
        Worker {
            index,
            poll,
            _waker: waker,
            inbox,
            conns: HashMap::new(),
            slots: HashMap::new(),
            make_handler,
            tls,
            site,
            limits,
            dirty: Vec::new(),
            watched: HashSet::new(),
            read_buf: vec![0; 64 * 1024],
            again: Vec::new(),
            shutting_down: false,
            last_tick: Instant::now(),
        }
    }

    /// Runs until shut down and every connection is closed.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            // Sleep without a timeout unless a deadline could expire: an idle
            // server uses no CPU.
            let timeout = if !self.again.is_empty() {
                Some(Duration::ZERO)
            } else {
                (!self.watched.is_empty()).then_some(TICK)
            };
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                error!(worker = self.index, "poll failed: {err}");
                break;
            }
            for event in events.iter() {
                if event.token() == WAKER {
                    self.drain_inbox();
                } else {
                    self.on_ready(event.token().0 as ConnId);
                }
            }
            // Connections that had more to read than one turn's share.
            for id in std::mem::take(&mut self.again) {
                self.on_ready(id);
            }
            self.flush_dirty();
            if self.last_tick.elapsed() >= TICK {
                self.last_tick = Instant::now();
                self.expire_deadlines();
            }
            if self.shutting_down && self.conns.is_empty() {
                break;
            }
        }
        // Whatever is left (poll failure) still gets its `finish`.
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id, "server shutdown");
        }
        debug!(worker = self.index, "worker stopped");
    }

    fn drain_inbox(&mut self) {
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                ToWorker::Accept {
                    id,
                    tcp,
                    peer,
                    slot,
                    speech,
                } => self.accept(id, tcp, peer, slot, speech),
                ToWorker::Batch(ops) => {
                    for op in ops {
                        match op {
                            Op::Send(id, frame) => {
                                if let Some(conn) = self.conns.get_mut(&id) {
                                    queue(id, conn, frame, &mut self.dirty);
                                }
                            }
                            Op::Broadcast(frame) => {
                                let local: Rc<[u8]> = Rc::from(&frame[..]);
                                for (&id, conn) in self.conns.iter_mut() {
                                    if conn.subscribed {
                                        let was_empty = conn.outbox.is_empty();
                                        conn.send_local(local.clone());
                                        mark_dirty(id, conn, was_empty, &mut self.dirty);
                                    }
                                }
                            }
                            Op::Subscribe(id) => {
                                if let Some(conn) = self.conns.get_mut(&id) {
                                    conn.subscribed = true;
                                }
                            }
                            Op::Unsubscribe(id) => {
                                if let Some(conn) = self.conns.get_mut(&id) {
                                    conn.subscribed = false;
                                }
                            }
                            Op::Close(id) => {
                                if let Some(conn) = self.conns.get_mut(&id) {
                                    conn.outbox.close("closed by server");
                                    conn.closing_since.get_or_insert_with(Instant::now);
                                    self.watched.insert(id);
                                    self.dirty.push(id);
                                }
                            }
                        }
                    }
                }
                ToWorker::Shutdown => {
                    self.shutting_down = true;
                    for (id, conn) in self.conns.iter_mut() {
                        conn.outbox.close("server shutdown");
                        conn.closing_since.get_or_insert_with(Instant::now);
                        self.watched.insert(*id);
                        self.dirty.push(*id);
                    }
                }
            }
        }
    }

    /// Takes a new connection on. Dropped here, `slot` frees its place.
    fn accept(
        &mut self,
        id: ConnId,
        mut tcp: mio::net::TcpStream,
        peer: std::net::SocketAddr,
        slot: Slot,
        speech: Speech,
    ) {
        if self.shutting_down {
            return;
        }
        if let Some(size) = self.limits.send_buffer {
            if let Err(err) = socket2::SockRef::from(&tcp).set_send_buffer_size(size) {
                debug!(%peer, "cannot set the send buffer: {err}");
            }
        }
        let token = Token(id as usize);
        if let Err(err) =
            self.poll
                .registry()
                .register(&mut tcp, token, Interest::READABLE | Interest::WRITABLE)
        {
            warn!(%peer, "cannot register connection: {err}");
            return;
        }
        let stream = match Stream::new(tcp, self.tls.as_ref()) {
            Ok(stream) => stream,
            Err(err) => {
                info!(%peer, "TLS handshake failed: {err}");
                return;
            }
        };
        let info = ConnInfo {
            id,
            peer,
            tls: stream.is_tls(),
        };
        let handler = (self.make_handler)(info);
        let conn = Conn::new(
            stream,
            peer,
            handler,
            (self.limits.max_frame, self.limits.queue_limit),
            self.site,
            speech,
        );
        self.conns.insert(id, conn);
        self.slots.insert(id, slot);
        self.watched.insert(id);
        // A plain stream is ready at once; a TLS one may already have bytes.
        self.on_ready(id);
    }

    /// Handles readiness for one connection: handshake, reads, writes.
    fn on_ready(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        // Banned while it shook hands: it must not be set up now.
        if !conn.is_set_up() && self.slots.get(&id).is_some_and(Slot::is_banned) {
            self.close(id, "address banned");
            return;
        }
        let buf = &mut self.read_buf;
        // A panic in a handler ends its connection, never the worker.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if !conn.is_set_up() {
                if let Err(err) = conn.advance_handshake() {
                    debug!(peer = %conn.outbox.peer_addr(), "TLS handshake failed: {err}");
                    return Status::Closed("TLS handshake failed".into());
                }
                if !conn.is_set_up() {
                    return Status::Open;
                }
            }
            if let Status::Closed(why) = conn.read(buf) {
                // Write what the last requests produced before going.
                let _ = conn.flush();
                return Status::Closed(why);
            }
            conn.flush()
        }));
        if conn.more_to_read {
            self.again.push(id);
        }
        match outcome {
            Ok(Status::Open) => {
                // A half-closed peer gets the same grace as a closing one to
                // receive its last answers.
                if conn.outbox.is_closing() || conn.read_closed {
                    conn.closing_since.get_or_insert_with(Instant::now);
                    self.watched.insert(id);
                } else if conn.stalled_since.is_some() || conn.paused_until().is_some() {
                    self.watched.insert(id);
                } else if !conn.is_ready() {
                    // Reading an HTTP request head: the handshake's deadline.
                    self.watched.insert(id);
                } else if conn.closing_since.is_none() {
                    self.watched.remove(&id);
                }
            }
            Ok(Status::Closed(why)) => self.close(id, &why),
            Err(_) => {
                error!(conn = id, "handler panicked; closing its connection");
                self.close(id, "internal error");
            }
        }
    }

    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &id in &dirty {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            if let Status::Closed(why) = conn.flush() {
                self.close(id, &why);
            } else if conn.stalled_since.is_some() {
                self.watched.insert(id);
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    fn expire_deadlines(&mut self) {
        let limits = &self.limits;
        let grace = if self.shutting_down {
            limits.close_grace.min(Duration::from_secs(2))
        } else {
            limits.close_grace
        };
        let conns = &self.conns;
        let mut expired = Vec::new();
        let mut resumed = Vec::new();
        let now = Instant::now();
        // Forget connections whose deadline no longer applies.
        self.watched.retain(|id| {
            let Some(c) = conns.get(id) else {
                return false;
            };
            if !c.is_ready() && c.accepted.elapsed() > limits.handshake_timeout {
                expired.push((*id, "handshake timed out"));
            } else if c.closing_since.is_some_and(|t| t.elapsed() > grace) {
                expired.push((*id, "closed by server"));
            } else if c
                .stalled_since
                .is_some_and(|t| t.elapsed() > limits.stall_timeout)
            {
                // Its unread messages stay stored for its account.
                expired.push((*id, super::SLOW_CONSUMER));
            } else if c.paused_until().is_some_and(|t| t <= now) {
                resumed.push(*id);
            }
            !c.is_ready()
                || c.closing_since.is_some()
                || c.stalled_since.is_some()
                || c.paused_until().is_some()
        });
        for (id, why) in expired {
            self.close(id, why);
        }
        for id in resumed {
            if let Some(conn) = self.conns.get_mut(&id) {
                if catch_unwind(AssertUnwindSafe(|| conn.resume())).is_err() {
                    error!(conn = id, "handler panicked; closing its connection");
                    self.close(id, "internal error");
                    continue;
                }
            }
            // Then read what waited in the socket (its readiness event was
            // used up while paused) and write the answers.
            self.on_ready(id);
        }
    }

    /// Removes a connection: deregisters, shuts the socket, tells the handler.
    fn close(&mut self, id: ConnId, why: &str) {
        self.watched.remove(&id);
        // Freed before the socket closes: a peer that sees the close may
        // connect again at once.
        self.slots.remove(&id);
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        debug!(conn = id, peer = %conn.outbox.peer_addr(), "closing: {why}");
        if let Some(tcp) = conn.stream.tcp() {
            let _ = self.poll.registry().deregister(tcp);
        }
        conn.stream.shutdown();
        if catch_unwind(AssertUnwindSafe(|| conn.finish(why))).is_err() {
            error!(conn = id, "handler panicked in finish");
        }
    }
}

/// Queues a frame on a connection, noting it for the flush that follows.
fn queue<H: RequestHandler>(id: ConnId, conn: &mut Conn<H>, frame: Frame, dirty: &mut Vec<ConnId>) {
    let was_empty = conn.outbox.is_empty();
    conn.send(frame);
    mark_dirty(id, conn, was_empty, dirty);
}

/// An empty queue needs a flush to start writing; a full one needs it to
/// notice the overflow, since a peer that stopped reading sends no writable
/// event.
fn mark_dirty<H: RequestHandler>(
    id: ConnId,
    conn: &Conn<H>,
    was_empty: bool,
    dirty: &mut Vec<ConnId>,
) {
    if was_empty || conn.outbox.overflowed() {
        dirty.push(id);
    }
}

/// Creates a worker's poller and the waker others use to get its attention.
pub fn poller() -> io::Result<(Poll, Arc<Waker>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    Ok((poll, waker))
}
