//! A small socketserver-style framework: an [`acceptor`] thread, a fixed
//! pool of [`worker`] threads multiplexing connections with mio, one
//! [`RequestHandler`] per connection, and a [`Router`] through which the
//! owner of the application state (the dispatcher) writes to connections.
//!
//! It knows nothing about chat: the application supplies a handler factory.

mod acceptor;
pub mod admission;
mod connection;
mod router;
pub mod tls;
pub mod web;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use chat_common::{Frame, RequestHandler};
use crossbeam_channel::Sender;
use mio::Waker;

pub use admission::{Admission, AdmissionStats, Ban, Caps, Refusal};
pub use router::Router;
pub use tls::TlsAcceptor;
pub use web::{Asset, Site};

/// A connection's id: unique for the server's lifetime, never reused, so a
/// late frame for a closed connection cannot reach a new one.
pub type ConnId = u64;

/// Why a connection that does not read is dropped (its queue passed
/// `Limits::queue_limit`, or its socket took nothing for `stall_timeout`).
pub const SLOW_CONSUMER: &str = "send queue exceeded";

/// What a handler factory learns about a new connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub id: ConnId,
    pub peer: SocketAddr,
    pub tls: bool,
}

/// Per-connection limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest request line, in bytes.
    pub max_frame: usize,
    /// Most bytes waiting to be written to one connection before it is
    /// dropped as a slow consumer.
    pub queue_limit: usize,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed to write out what is queued once a close is requested.
    pub close_grace: Duration,
    /// Time a connection's socket may take nothing while frames wait for it.
    pub stall_timeout: Duration,
    /// The kernel's send buffer per connection (`SO_SNDBUF`), or `None` to
    /// leave it to the OS. On Linux it grows to 4 MiB on its own, which
    /// would hide a peer that stopped reading behind megabytes the queue
    /// limit never sees.
    pub send_buffer: Option<usize>,
}

/// One operation routed to a worker.
pub enum Op {
    Send(ConnId, Frame),
    Close(ConnId),
    /// From now on `Broadcast` reaches this connection.
    Subscribe(ConnId),
    Unsubscribe(ConnId),
    /// One frame for every subscribed connection of the worker: a message to
    /// a room of thousands costs the dispatcher one operation per worker.
    Broadcast(Frame),
}

/// Messages into a worker's inbox.
pub enum ToWorker {
    Accept {
        id: ConnId,
        tcp: mio::net::TcpStream,
        peer: SocketAddr,
        /// Its place under the connection caps, held until it closes.
        slot: admission::Slot,
        /// Whether it may speak HTTP (its listener's kind).
        speech: web::Speech,
    },
    Batch(Vec<Op>),
    Shutdown,
}

/// How to reach a worker: its inbox and the waker that interrupts its poll.
#[derive(Clone)]
pub struct WorkerHandle {
    tx: Sender<ToWorker>,
    waker: Arc<Waker>,
}

/// What the framework serves to browsers, and where.
pub struct Web {
    pub site: &'static Site,
    /// A listener of the web's own (`--web-bind`); without one, HTTP is
    /// told from the line protocol on the main listener by its first bytes.
    pub listener: Option<std::net::TcpListener>,
}

/// The running framework threads.
pub struct Running {
    pub local_addr: SocketAddr,
    /// The web's own listener's address, when it has one.
    pub web_addr: Option<SocketAddr>,
    admission: Arc<Admission>,
    stop_accepting: Vec<Arc<Waker>>,
    acceptors: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// The connection caps, their counters and the ban list.
    pub fn admission(&self) -> Arc<Admission> {
        self.admission.clone()
    }

    /// Stops taking new connections.
    pub fn stop_accepting(&mut self) {
        for waker in &self.stop_accepting {
            let _ = waker.wake();
        }
        for acceptor in self.acceptors.drain(..) {
            let _ = acceptor.join();
        }
    }

    /// Waits for the workers to finish (after [`Router::shutdown`]).
    pub fn join(mut self) {
        self.stop_accepting();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Starts the acceptor and `workers` I/O threads on `listener` (and an
/// acceptor on the web's own listener, if any), admitting connections as
/// `admission` allows. Returns the router for the application's
/// dispatcher and the threads' handle.
pub fn start<H, F>(
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    workers: usize,
    limits: Limits,
    admission: Arc<Admission>,
    web: Option<Web>,
    make_handler: F,
) -> anyhow::Result<(Router, Running)>
where
    H: RequestHandler + 'static,
    F: Fn(ConnInfo) -> H + Send + Sync + 'static,
{
    let local_addr = listener.local_addr()?;
    let site = web.as_ref().map(|web| web.site);
    let make_handler = Arc::new(make_handler);
    let mut handles = Vec::new();
    let mut threads = Vec::new();
    for index in 0..workers.max(1) {
        let (poll, waker) = worker::poller().context("creating a worker's poller")?;
        let (tx, rx) = crossbeam_channel::unbounded();
        handles.push(WorkerHandle {
            tx,
            waker: waker.clone(),
        });
        let (make_handler, tls, limits) = (make_handler.clone(), tls.clone(), limits.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("worker-{index}"))
                .spawn(move || {
                    worker::Worker::new(index, (poll, waker), rx, make_handler, (tls, site), limits)
                        .run()
                })?,
        );
    }
    let mut listeners = vec![(
        listener,
        match &web {
            Some(Web { listener: None, .. }) => web::Speech::Either,
            _ => web::Speech::Lines,
        },
    )];
    let mut web_addr = None;
    if let Some(listener) = web.and_then(|web| web.listener) {
        web_addr = Some(listener.local_addr()?);
        listeners.push((listener, web::Speech::Http));
    }
    // One sequence of ids for every listener: an id is never reused.
    let next_id = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let (mut acceptors, mut stop_accepting) = (Vec::new(), Vec::new());
    for (listener, speech) in listeners {
        listener.set_nonblocking(true)?;
        let (acceptor, stop) = acceptor::Acceptor::new(
            mio::net::TcpListener::from_std(listener),
            handles.clone(),
            admission.clone(),
            (tls.is_none(), speech),
            next_id.clone(),
        )?;
        stop_accepting.push(stop);
        acceptors.push(
            std::thread::Builder::new()
                .name("acceptor".into())
                .spawn(move || acceptor.run())?,
        );
    }
    let running = Running {
        local_addr,
        web_addr,
        admission,
        stop_accepting,
        acceptors,
        workers: threads,
    };
    Ok((Router::new(handles), running))
}
