//! The chat server: a socketserver-style framework with the chat on top.
//!
//! ```text
//!                 accept()                       Event (bounded)
//!  clients ──▶ [acceptor] ──ToWorker::Accept──▶ [worker 0..N] ─────────────▶ [dispatcher]
//!     ▲                                          │ mio poll, one              │ owns ChatState
//!     │            frames (Arc<[u8]>), close     │ ChatHandler per            │ (no locks)
//!     └──────────── written by the worker ◀──────┴─ connection ◀─ Router ◀───┘ batches per worker
//!                                                                   ▲
//!                              admin console ── Event::Admin ───────┘ (via the dispatcher)
//! ```
//!
//! [`framework`] is generic (acceptor, workers, connections, TLS, router);
//! [`handler`], [`dispatcher`] and [`state`] are the chat; [`console`] is
//! the operator's prompt. [`Server`] starts and stops the whole.

pub mod certs;
pub mod chat;
pub mod config;
pub mod config_file;
pub mod console;
pub mod files;
pub mod framework;
pub mod logging;
pub mod platform;
pub mod store;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use chat_common::codec::encode;
use chat_common::{ErrorCode, Frame, ServerFrame};
use crossbeam_channel::Sender;

use chat::dispatcher::{self, Dispatcher, Event};
use chat::state::{self, accounts, policy};
use chat::{auth, handler};
pub use config::Config;
use framework::{Admission, Limits, Refusal, Running, TlsAcceptor};

/// Room for this many events between the workers and the dispatcher before
/// the workers wait (and so stop reading from their sockets).
const EVENT_QUEUE: usize = 64 * 1024;

/// Connections the kernel may hold for the acceptor: a class arriving at
/// once, or a benchmark's 10,000, should queue rather than be refused.
const BACKLOG: i32 = 4096;

/// Descriptors the server needs besides its connections' (the listener,
/// pollers, wakers, the database and its WAL, logs).
const SPARE_FDS: u64 = 64;

/// What a plaintext peer refused at accept reads before the connection
/// closes. A banned address is told nothing.
fn refusal_notice(refusal: Refusal) -> Option<Frame> {
    let reason = match refusal {
        Refusal::Banned => return None,
        Refusal::PerAddress => "too many connections from your address; close one and try again",
        Refusal::Total => "the server has as many connections as it takes; try again later",
    };
    Some(encode(&ServerFrame::Error {
        id: None,
        code: ErrorCode::TooManyConnections,
        reason: reason.to_string(),
    }))
}

/// Checks the open-file limit against `--max-connections`, raising it if it
/// can: running out of descriptors fails accepts, and worse, the database.
fn check_fd_limit(max_connections: u64) {
    match platform::raise_fd_limit() {
        Some(limit) if limit < max_connections.saturating_add(SPARE_FDS) => tracing::warn!(
            "the open-file limit ({limit}) is below --max-connections ({max_connections}) \
             plus {SPARE_FDS}: raise it (ulimit -n) or lower --max-connections"
        ),
        _ => {}
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    platform::reuse_address(&socket)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// A running server.
pub struct Server {
    pub local_addr: SocketAddr,
    /// Where a browser opens the chat, unless `--no-web`.
    pub web_url: Option<String>,
    /// SHA-256 of the TLS certificate, when serving TLS.
    pub fingerprint: Option<String>,
    events: Sender<Event>,
    dispatcher: JoinHandle<()>,
    running: Running,
    files: files::FileThread,
}

impl Server {
    /// Binds, loads or creates the TLS identity, and starts every thread.
    pub fn start(config: &Config) -> anyhow::Result<Server> {
        let keepalive = config.keepalive()?;
        check_fd_limit(config.max_connections);
        // Listening first: a busy port fails before anything is written
        // (a certificate created for a server that never started).
        let listener =
            listen(config.bind).with_context(|| format!("cannot listen on {}", config.bind))?;
        let web = match (config.no_web, config.web_bind) {
            (true, _) => None,
            (false, None) => Some(framework::Web {
                site: web::site(),
                listener: None,
            }),
            (false, Some(addr)) => Some(framework::Web {
                site: web::site(),
                listener: Some(listen(addr).with_context(|| format!("cannot listen on {addr}"))?),
            }),
        };
        let (tls, fingerprint) = if config.no_tls {
            (None, None)
        } else {
            let (cert, key) = match (&config.tls_cert, &config.tls_key) {
                (Some(cert), Some(key)) => (cert.clone(), key.clone()),
                _ => {
                    let dir = config.data_dir();
                    let (cert, key, created) = certs::ensure_self_signed(&dir)?;
                    if created {
                        tracing::info!("created a self-signed certificate in {}", dir.display());
                    }
                    (cert, key)
                }
            };
            let (acceptor, fingerprint) = TlsAcceptor::from_pem_files(&cert, &key)?;
            (Some(acceptor), Some(fingerprint))
        };
        let data_dir = config.data_dir();
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        // A page of a backlog must fit the send queue with room to spare.
        let page_bytes = (config.queue_limit / 4).clamp(1024, 64 * 1024);
        let location = match (&config.cluster, &config.node_id) {
            (Some(url), Some(node)) => store::Location::Cluster { url, node },
            _ => store::Location::Dir(&data_dir),
        };
        let (store, startup) = store::open(location, page_bytes, state::identity::key)
            .with_context(|| match location {
                store::Location::Dir(dir) => {
                    format!("cannot open the database in {}", dir.display())
                }
                store::Location::Cluster { node, .. } => {
                    format!("cannot open the --cluster database as node {node}")
                }
            })?;
        // Unbounded, yet never longer than --auth-queue: the chat state
        // refuses logins (busy) beyond it rather than queueing them.
        let (jobs, job_queue) = crossbeam_channel::unbounded();
        let (verdicts_tx, verdicts) = crossbeam_channel::unbounded();
        // Hashing is meant to be slow: leave a core for the chat.
        let hashers = config.workers().saturating_sub(1).max(1);
        auth::start(hashers, config.hash_cost(), job_queue, verdicts_tx)
            .context("starting the password hashers")?;
        let (events, inbox) = crossbeam_channel::bounded(EVENT_QUEUE);
        let limits = Limits {
            max_frame: config.max_frame,
            queue_limit: config.queue_limit,
            handshake_timeout: config.handshake_timeout(),
            close_grace: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(config.stall_timeout),
            send_buffer: (config.send_buffer > 0).then_some(config.send_buffer),
        };
        let to_dispatcher = events.clone();
        let flood = config.flood_policy();
        let ledger = Arc::new(chat::flood::Ledger::default());
        let handlers = ledger.clone();
        let admission = Admission::new(config.connection_caps(), refusal_notice);
        let (router, running) = framework::start(
            listener,
            tls,
            config.workers(),
            limits,
            admission,
            web,
            move |info| {
                handler::ChatHandler::new(info, to_dispatcher.clone(), flood, handlers.clone())
            },
        )?;
        let mut state =
            state::ChatState::new(config.max_text, accounts::Accounts::new(startup.accounts))
                .with_sanctions(startup.sanctions)
                .with_groups(startup.groups)
                .with_login_policy(config.login_policy())
                .with_files(startup.files, config.file_limits());
        let (heard, fence) = match startup.cluster {
            Some(cluster) => {
                state = state.with_cluster(cluster.first_id, startup.public_head);
                (cluster.heard, Some((cluster.renewed, cluster.fence_after)))
            }
            None => (crossbeam_channel::never(), None),
        };
        let spool = config
            .spool_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("spool"));
        let files = files::FileThread::start(spool.clone(), &state.file_ids())
            .with_context(|| format!("cannot open the spool in {}", spool.display()))?;
        if config.no_tls
            && config.plaintext_login == policy::PlaintextLogin::Auto
            && !config.bind.ip().is_loopback()
        {
            tracing::warn!(
                "plaintext on {}: logins are refused except from this machine \
                 (--plaintext-login allow to take passwords in clear from anywhere)",
                config.bind
            );
        }
        let queues = dispatcher::Queues {
            store,
            events: inbox,
            jobs,
            verdicts,
            files: files.jobs.clone(),
            files_done: files.done.clone(),
            ledger,
            heard,
            fence,
        };
        let dispatcher = Dispatcher::new(
            state,
            router,
            queues,
            config.login_timeout(),
            keepalive,
            config.presence_interval(),
            running.admission(),
        );
        let dispatcher = std::thread::Builder::new()
            .name("dispatcher".into())
            .spawn(move || dispatcher.run())?;
        let web_url = (!config.no_web).then(|| {
            let addr = running.web_addr.unwrap_or(running.local_addr);
            web::url(addr, !config.no_tls)
        });
        Ok(Server {
            local_addr: running.local_addr,
            web_url,
            fingerprint,
            events,
            dispatcher,
            running,
            files,
        })
    }

    /// The connection caps, their refusal counters and the ban list (for
    /// the console's `/ban`, `/unban` and `/stats`).
    pub fn admission(&self) -> Arc<Admission> {
        self.running.admission()
    }

    /// Where the console and signal handlers send their events.
    pub fn events(&self) -> Sender<Event> {
        self.events.clone()
    }

    /// Asks the server to tell everyone and close down; see [`Server::wait`].
    pub fn shutdown(&self, reason: &str) {
        let _ = self.events.send(Event::Shutdown {
            reason: reason.to_string(),
        });
    }

    /// Waits until the server has shut down and every connection is closed.
    pub fn wait(self) {
        let Server {
            events,
            dispatcher,
            running,
            files,
            ..
        } = self;
        drop(events);
        let _ = dispatcher.join();
        running.join();
        files.join();
    }
}
