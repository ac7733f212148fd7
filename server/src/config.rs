//! The server's settings, read from command-line flags (`--help` documents them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::chat::state::policy::{LoginPolicy, PlaintextLogin, Registration};

/// A chat server: public and private messages over TLS, with an admin console.
///
/// Clients connect with `chat-client --server HOST:PORT`. Type `/help` at
/// the `admin>` prompt for the console commands.
#[derive(Debug, Clone, Parser)]
#[command(name = "chat-server", version, args_override_self = true)]
pub struct Config {
    /// Read settings from this TOML file first, one key per flag
    /// (`queue-limit = 262144`, `no-tls = true`); flags given here win.
    /// Default: server.toml in the per-user config directory (e.g.
    /// ~/.config/chat/server.toml), if it exists.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address and port to listen on.
    #[arg(long, default_value = "0.0.0.0:50445")]
    pub bind: SocketAddr,

    /// Directory for the server's files: the database (chat.db: accounts,
    /// messages, delivery state) and the self-signed certificate.
    /// Default: the per-user data directory (e.g. ~/.local/share/chat).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Keep accounts and messages in PostgreSQL instead of the data
    /// directory's SQLite: `postgres://user@host:port/db` (no TLS: loopback
    /// or a trusted network); the schema is created if missing. Needs
    /// --node-id. Several nodes may share one database, each with its own
    /// --node-id: messages (public, private, group), accounts and groups
    /// reach every node, and so do presence (the online list with away
    /// texts, presence lines, /list, /stats with each node's users),
    /// `delivered` notices, takeover (one session per account), bans,
    /// mutes, kicks, the login throttle and file offers (give every node
    /// the same --spool-dir: a transfer cut on one node resumes on
    /// another); address bans and connection caps are per node. A node
    /// that cannot renew its lease in the database closes its connections
    /// (`unavailable`) so its clients move to another node, and serves
    /// again once it can. The certificate stays in the data directory, and
    /// the file spool too unless --spool-dir says otherwise.
    #[arg(long, value_name = "URL", requires = "node_id")]
    pub cluster: Option<String>,

    /// This server's name with --cluster: letters, digits, '-', '_', '.'
    /// (at most 64).
    #[arg(long, value_name = "NAME", requires = "cluster", value_parser = node_id)]
    pub node_id: Option<String>,

    /// Directory for the files waiting to be downloaded. Default: spool/
    /// in the data directory.
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Number of I/O worker threads. Default: the number of CPU cores.
    #[arg(long)]
    pub workers: Option<usize>,

    /// Serve plaintext TCP instead of TLS (for nc and local testing).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub no_tls: bool,

    /// Do not serve the browser client: the port speaks the line protocol
    /// only.
    #[arg(long, conflicts_with = "web_bind")]
    pub no_web: bool,

    /// Serve the browser client (HTTP and its WebSocket) on this address
    /// instead of on --bind's port, where it is told from the line protocol
    /// by its first bytes. Same TLS as --bind.
    #[arg(long, value_name = "ADDR")]
    pub web_bind: Option<SocketAddr>,

    /// PEM certificate (chain) to serve. Without it, a self-signed
    /// certificate is created in the data directory and reused.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Log filter: error, warn, info, debug, trace (or a tracing directive).
    #[arg(long, default_value = "info")]
    pub log_level: String,

    /// Longest request line in bytes; a longer one closes the connection.
    #[arg(long, default_value_t = chat_common::DEFAULT_MAX_FRAME)]
    pub max_frame: usize,

    /// Longest chat text in bytes.
    #[arg(long, default_value_t = chat_common::protocol::DEFAULT_MAX_TEXT)]
    pub max_text: usize,

    /// Bytes that may wait to be written to one client; a client that reads
    /// too slowly to stay under it is disconnected ("send queue exceeded").
    #[arg(long, default_value_t = 256 * 1024)]
    pub queue_limit: usize,

    /// The kernel's send buffer per connection in bytes (SO_SNDBUF; Linux
    /// reserves twice this). Bounded so that a client that stops reading
    /// reaches --queue-limit in seconds, not after megabytes; 0 leaves it
    /// to the OS.
    #[arg(long, default_value_t = 128 * 1024)]
    pub send_buffer: usize,

    /// Seconds a client's socket may accept nothing while messages wait for
    /// it; then it is disconnected ("send queue exceeded"), like one whose
    /// queue passed --queue-limit. What it missed stays stored for its account.
    #[arg(long, default_value_t = 10)]
    pub stall_timeout: u64,

    /// Flood control: chat messages a client may send at once after a
    /// quiet spell; past it, --flood-rate applies.
    #[arg(long, default_value_t = 20)]
    pub flood_burst: u32,

    /// Flood control: chat messages per second a client may keep sending.
    /// Faster ones wait (the client is slowed, not dropped); 0 turns flood
    /// control off. The console's /announce is never limited.
    #[arg(long, default_value_t = 10.0)]
    pub flood_rate: f64,

    /// Seconds a client may keep sending faster than --flood-rate before it
    /// is disconnected ("flooding").
    #[arg(long, default_value_t = 30)]
    pub flood_cut: u64,

    /// Seconds a new connection has to finish its TLS handshake.
    #[arg(long, default_value_t = 10)]
    pub handshake_timeout: u64,

    /// Seconds a new connection has to log in.
    #[arg(long, default_value_t = 30)]
    pub login_timeout: u64,

    /// Seconds of silence from a client (no request) after which the server
    /// sends it a `ping`; a `pong`, or any request, shows it is still there.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..))]
    pub ping_after: u64,

    /// Seconds of silence from a client after which it is disconnected
    /// ("keepalive timeout"); more than --ping-after.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u64).range(2..))]
    pub idle_timeout: u64,

    /// Most connections open at once from one IP address (an IPv6 /64);
    /// more are refused at once ("too_many_connections").
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections_per_ip: u64,

    /// Most connections open at once in all; more are refused at once.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,

    /// Least milliseconds between two presence frames ("alice, bob and 412
    /// others joined"): arrivals and departures in between are combined.
    #[arg(long, default_value_t = 1000)]
    pub presence_interval: u64,

    /// Memory cost of new password hashes (argon2id), in KiB. The default
    /// is OWASP's recommendation; lower it only for tests and benchmarks.
    #[arg(long, default_value_t = crate::chat::auth::Cost::OWASP.memory)]
    pub argon2_memory: u32,

    /// Iterations of new password hashes (argon2id); see --argon2-memory.
    #[arg(long, default_value_t = crate::chat::auth::Cost::OWASP.iterations)]
    pub argon2_iterations: u32,

    /// Whether a password may be sent over a plaintext (--no-tls)
    /// connection. Over TLS it always may.
    #[arg(long, value_enum, default_value_t = PlaintextLogin::Auto)]
    pub plaintext_login: PlaintextLogin,

    /// Failed logins allowed per account and address (IPv6: per /64)
    /// within --login-failure-window; twice as many per account from all
    /// addresses, 20 times as many per address (guarding only accounts that
    /// failed, and registrations). Further logins there are refused
    /// (too_many_attempts) without checking their password.
    #[arg(long, default_value_t = LoginPolicy::default().max_failures as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_login_failures: u32,

    /// Seconds over which --max-login-failures counts.
    #[arg(long, default_value_t = LoginPolicy::default().failure_window_ms / 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub login_failure_window: u64,

    /// Logins that may wait for their password to be hashed; more are
    /// refused (busy) instead of queueing. At OWASP's cost one hash takes
    /// ~30 ms on one core.
    #[arg(long, default_value_t = LoginPolicy::default().max_pending as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_queue: u32,

    /// Whether logging in with a new nickname creates an account (open), or
    /// only the operator creates them, with /register on the console
    /// (closed).
    #[arg(long, value_enum, default_value_t = Registration::Open)]
    pub registration: Registration,

    /// New accounts one address (IPv6: one /64) may create per hour; 0 for
    /// no limit. A class behind one NAT address registers from it.
    #[arg(long, default_value_t = LoginPolicy::default().registrations_per_hour as u32)]
    pub registrations_per_hour: u32,

    /// Largest file a client may send, in bytes (files are spooled in
    /// <data-dir>/spool/ until every receiver has answered).
    #[arg(long, default_value_t = 1 << 30)]
    pub max_file_size: u64,

    /// Bytes of files one user may have waiting in the spool at once;
    /// an offer beyond it is refused (quota_exceeded).
    #[arg(long, default_value_t = 4 << 30)]
    pub spool_quota: u64,

    /// Seconds a spooled file is kept for receivers who have not answered;
    /// then it is deleted. Default: 7 days.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    pub spool_retention: u64,
}

/// A `--node-id`: a short name that logs and the `nodes` table show as is.
fn node_id(name: &str) -> Result<String, String> {
    let fits = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if fits {
        Ok(name.to_string())
    } else {
        Err("1 to 64 letters, digits, '-', '_' or '.'".into())
    }
}

impl Config {
    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            directories::ProjectDirs::from("", "", "chat")
                .map(|dirs| dirs.data_dir().to_path_buf())
                .unwrap_or_else(|| PathBuf::from("chat-data"))
        })
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout)
    }

    pub fn login_timeout(&self) -> Duration {
        Duration::from_secs(self.login_timeout)
    }

    /// When a silent client is pinged, and when it is cut.
    pub fn keepalive(&self) -> anyhow::Result<crate::chat::state::Keepalive> {
        anyhow::ensure!(
            self.ping_after < self.idle_timeout,
            "--ping-after ({} s) must be less than --idle-timeout ({} s)",
            self.ping_after,
            self.idle_timeout
        );
        Ok(crate::chat::state::Keepalive {
            ping_after: Duration::from_secs(self.ping_after),
            idle_timeout: Duration::from_secs(self.idle_timeout),
        })
    }

    pub fn connection_caps(&self) -> crate::framework::Caps {
        crate::framework::Caps {
            per_address: self.max_connections_per_ip as usize,
            total: self.max_connections as usize,
        }
    }

    pub fn hash_cost(&self) -> crate::chat::auth::Cost {
        crate::chat::auth::Cost {
            memory: self.argon2_memory,
            iterations: self.argon2_iterations,
        }
    }

    pub fn flood_policy(&self) -> crate::chat::flood::Policy {
        crate::chat::flood::Policy {
            burst: self.flood_burst,
            per_second: self.flood_rate,
            cut_after: Duration::from_secs(self.flood_cut),
        }
    }

    pub fn login_policy(&self) -> LoginPolicy {
        LoginPolicy {
            plaintext: self.plaintext_login,
            max_failures: self.max_login_failures as usize,
            failure_window_ms: self.login_failure_window.saturating_mul(1000),
            max_pending: self.auth_queue as usize,
            registration: self.registration,
            registrations_per_hour: self.registrations_per_hour as usize,
        }
    }

    /// The limits on file transfers.
    pub fn file_limits(&self) -> crate::chat::state::FileLimits {
        crate::chat::state::FileLimits {
            max_size: self.max_file_size,
            quota: self.spool_quota,
            retention_ms: self.spool_retention.saturating_mul(1000),
        }
    }

    pub fn presence_interval(&self) -> Duration {
        Duration::from_millis(self.presence_interval)
    }
}
