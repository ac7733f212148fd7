/*!
`chat-bench`: a load generator that speaks the chat protocol to a running
server over loopback and measures it. All simulated clients live in this
process, multiplexed by a few mio event threads (`engine.rs`); each payload
carries its sender, sequence number and send time, so every delivery gives
one end-to-end latency sample and losses are counted, not guessed.

Output: a table, then as the last line of stdout one line starting with
`JSON ` followed by a JSON object holding every figure (`scripts/bench.sh`
collects these lines).
*/

mod conn;
mod engine;
mod file;
mod frames;
mod histogram;
mod platform;
mod report;
mod resp;
mod scan;
mod scenario;
mod summary;
mod ws;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};

use scenario::{Load, Target};

/// Benchmarks a running chat server: fan-out, latency under load, a big
/// room, many idle connections, private pairs.
///
/// Prints a table, then one line `JSON {...}` with every figure (the last
/// line of stdout).
#[derive(Parser)]
#[command(name = "chat-bench", version)]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args)]
struct TargetArgs {
    /// The server to measure, or a cluster's nodes as a list
    /// (`a,b,c`, as the client's --server): client i connects to node
    /// i mod n, so senders and receivers sit on different nodes and most
    /// deliveries cross between them. Loopback addresses only.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:50445"
    )]
    server: Vec<SocketAddr>,

    /// Connect with TLS, accepting any certificate (for benchmarking only).
    #[arg(long, global = true)]
    tls: bool,

    /// The share of the clients (0 to 1) that speak over a WebSocket on
    /// the same port, as the browser's page does (`GET /ws`, one masked
    /// text message per frame), instead of lines over TCP; with or without
    /// --tls. Spread evenly over the event threads and over the senders.
    #[arg(long, global = true, default_value_t = 0.0)]
    websocket_share: f64,

    /// What is listening at --server: our chat-server, or a redis-server
    /// measured through pub/sub (each client SUBSCRIBEs to one channel,
    /// each sender PUBLISHes on a second connection; every scenario but
    /// file; with --tls, at its --tls-port), for comparison.
    #[arg(long, global = true, value_enum, default_value_t = Kind::ChatServer)]
    target: Kind,

    /// The server's process id (a list for a cluster: every node's): its
    /// CPU use and memory are read from /proc, a cluster's added up.
    #[arg(long, global = true, value_delimiter = ',')]
    server_pid: Vec<u32>,

    /// A cluster's PostgreSQL (the postmaster's pid): the CPU of it and
    /// its backends over the sending window is reported too.
    #[arg(long, global = true)]
    db_pid: Option<u32>,

    /// Event threads in chat-bench (each multiplexes a share of the clients).
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,

    /// Most clients connecting and logging in at the same time. Above the
    /// server's listen backlog the kernel drops SYNs and connecting stalls
    /// for the 1 s SYN retry (std's `TcpListener::bind` gives 128).
    #[arg(long, global = true, default_value_t = 100)]
    concurrency: usize,

    /// Seconds to wait for logins (and, for connections, for the final
    /// message) before reporting what was reached.
    #[arg(long, global = true, default_value_t = 120)]
    timeout: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    ChatServer,
    Redis,
}

#[derive(Subcommand)]
enum Scenario {
    /// Senders send public messages as fast as their windows allow
    /// (defaults: 100 clients, 10 senders, 10 s, 64 bytes, window 64).
    Fanout(LoadArgs),
    /// Paced public messages, spread evenly over the senders
    /// (defaults: 100 clients, 10 senders, 1000 msg/s, 10 s).
    Latency(LoadArgs),
    /// A big public room at a steady rate
    /// (defaults: 1000 clients, 5 senders, 200 msg/s, 10 s).
    Bigroom(LoadArgs),
    /// Clients in pairs, each sending private messages to its peer as fast
    /// as its window allows (defaults: 1000 clients, 10 s, window 16).
    Pairs(LoadArgs),
    /// Connect and log in many clients, hold them idle, read the server's
    /// RSS, then send one message and check that every client got it
    /// (default: 10000 clients).
    Connections(ConnArgs),
    /// One file uploaded into the server's spool and downloaded out of it
    /// (plaintext), while two other clients exchange private messages
    /// whose latency is measured (default: 1 GiB, 200 messages/s).
    File(FileArgs),
    /// Write a self-signed certificate and its key into DIR (`cert.pem`,
    /// `key.pem`), made as our server makes its own (rcgen: ECDSA P-256,
    /// for localhost), for a redis-server's --tls-port; used by
    /// scripts/bench.sh.
    Cert { dir: std::path::PathBuf },
    /// Print a markdown table of the `JSON` lines in FILE (`-` for stdin),
    /// each figure beside its target; used by scripts/bench.sh.
    Summary { file: std::path::PathBuf },
    /// Print a markdown table comparing the `JSON` lines of our server
    /// (OURS) with those of Redis (REDIS), run k of a scenario in one beside
    /// run k in the other: medians and the median of the per-run ratios,
    /// beside issue 18's targets; used by scripts/bench.sh.
    Compare {
        ours: std::path::PathBuf,
        redis: std::path::PathBuf,
    },
    /// Print a markdown table of the `JSON` lines of runs with clients on
    /// WebSocket (WS) beside those of the same scenarios over TCP alone
    /// (PLAIN), run k beside run k: medians, ranges and the median of the
    /// per-run ratios; used by scripts/bench.sh (issue 19).
    Transports {
        plain: std::path::PathBuf,
        ws: std::path::PathBuf,
    },
    /// Print a markdown table of the `JSON` lines of runs against a
    /// cluster (CLUSTER) beside those of the same scenarios against one
    /// server (SINGLE), run k beside run k: medians, ranges and the median
    /// of the per-run ratios; used by scripts/bench.sh (issue 17).
    Cluster {
        single: std::path::PathBuf,
        cluster: std::path::PathBuf,
    },
}

#[derive(Args)]
struct LoadArgs {
    /// Clients to connect and log in.
    #[arg(long)]
    clients: Option<usize>,
    /// How many of them send (ignored by pairs: everyone sends).
    #[arg(long)]
    senders: Option<usize>,
    /// Messages per second in total; without it, as fast as the windows allow.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Bytes of message text.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Most messages one sender has sent and not yet seen answered
    /// (default 64; 16 for pairs, where 1,000 senders share the server).
    #[arg(long)]
    window: Option<u64>,
    /// Seconds to wait after the last send for outstanding deliveries.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
}

#[derive(Args)]
struct ConnArgs {
    /// Clients to connect and log in.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Bytes of the final message's text.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Seconds to hold the clients idle before reading the server's RSS.
    #[arg(long, default_value_t = 2.0)]
    hold: f64,
}

#[derive(Args)]
struct FileArgs {
    /// The file's size: bytes, or with KiB/MiB/GiB.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    size: u64,
    /// Private messages a second sent during the transfer.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
}

/// `1GiB`, `50MiB`, `64KiB` or plain bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let scale = match unit {
        "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("unknown unit {unit:?}: use KiB, MiB or GiB")),
    };
    number
        .parse::<u64>()
        .map(|n| n * scale)
        .map_err(|e| format!("{text}: {e}"))
}

fn main() {
    if let Err(err) = run() {
        eprintln!("chat-bench: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let read = |file: &std::path::Path| -> anyhow::Result<String> {
        if file.as_os_str() == "-" {
            Ok(std::io::read_to_string(std::io::stdin())?)
        } else {
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
        }
    };
    match &cli.scenario {
        Scenario::Cert { dir } => {
            let (cert, key, _) = chat_server::certs::ensure_self_signed(dir)?;
            println!("{}\n{}", cert.display(), key.display());
            return Ok(());
        }
        Scenario::Summary { file } => {
            print!("{}", summary::render(&read(file)?)?);
            return Ok(());
        }
        Scenario::Compare { ours, redis } => {
            print!("{}", summary::compare(&read(ours)?, &read(redis)?)?);
            return Ok(());
        }
        Scenario::Transports { plain, ws } => {
            print!("{}", summary::transports(&read(plain)?, &read(ws)?)?);
            return Ok(());
        }
        Scenario::Cluster { single, cluster } => {
            print!("{}", summary::cluster(&read(single)?, &read(cluster)?)?);
            return Ok(());
        }
        _ => {}
    }
    let t = &cli.target;
    // Traffic to anything but this machine is out of bounds for a benchmark.
    if let Some(far) = t.server.iter().find(|a| !a.ip().is_loopback()) {
        bail!("--server must be a loopback address (127.0.0.1 or ::1), not {far}");
    }
    if t.server.is_empty() {
        bail!("--server needs at least one address");
    }
    let several = t.server.len() > 1;
    if several && (t.target == Kind::Redis || matches!(cli.scenario, Scenario::File(_))) {
        bail!("several servers are for our server's chat scenarios (not Redis, not file)");
    }
    let redis = t.target == Kind::Redis;
    if redis && matches!(cli.scenario, Scenario::File(_)) {
        bail!("the file scenario has no Redis counterpart");
    }
    if !(0.0..=1.0).contains(&t.websocket_share) {
        bail!("--websocket-share must be between 0 and 1");
    }
    if t.websocket_share > 0.0 && (redis || matches!(cli.scenario, Scenario::File(_))) {
        bail!("--websocket-share is for our server's chat scenarios (not Redis, not file)");
    }
    platform::raise_fd_limit();
    engine::now_ns(); // Starts the epoch.
    let target = Target {
        addrs: t.server.clone(),
        tls: t.tls,
        websocket_share: t.websocket_share,
        redis,
        server_pids: t.server_pid.clone(),
        db_pid: t.db_pid,
        threads: t.threads,
        concurrency: t.concurrency,
        timeout: Duration::from_secs(t.timeout),
    };
    let report = match cli.scenario {
        Scenario::Fanout(a) => {
            scenario::traffic("fanout", &target, &a.load(100, 10, None, false)?)?
        }
        Scenario::Latency(a) => {
            scenario::traffic("latency", &target, &a.load(100, 10, Some(1000.0), false)?)?
        }
        Scenario::Bigroom(a) => {
            scenario::traffic("bigroom", &target, &a.load(1000, 5, Some(200.0), false)?)?
        }
        Scenario::Pairs(a) => scenario::traffic("pairs", &target, &a.load(1000, 0, None, true)?)?,
        Scenario::Connections(a) => scenario::connections(
            &target,
            a.clients,
            a.size,
            Duration::try_from_secs_f64(a.hold)?,
        )?,
        Scenario::File(a) => {
            if !(a.rate > 0.0 && a.rate.is_finite()) {
                bail!("--rate must be a positive number");
            }
            file::run(
                t.server[0],
                t.tls,
                &file::FileLoad {
                    size: a.size,
                    rate: a.rate,
                },
            )?
        }
        Scenario::Cert { .. }
        | Scenario::Summary { .. }
        | Scenario::Compare { .. }
        | Scenario::Transports { .. }
        | Scenario::Cluster { .. } => {
            unreachable!("handled above")
        }
    };
    print!("{}", report.table());
    println!("{}", report.json_line());
    Ok(())
}

impl LoadArgs {
    fn load(
        &self,
        clients: usize,
        senders: usize,
        rate: Option<f64>,
        pairs: bool,
    ) -> anyhow::Result<Load> {
        let rate = self.rate.or(rate);
        if rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            bail!("--rate must be a positive number");
        }
        let window = self.window.unwrap_or(if pairs { 16 } else { 64 });
        if window == 0 {
            bail!("--window must be at least 1");
        }
        Ok(Load {
            clients: self.clients.unwrap_or(clients),
            senders: self.senders.unwrap_or(senders),
            rate,
            duration: Duration::try_from_secs_f64(self.duration)?,
            size: self.size,
            window,
            drain: Duration::try_from_secs_f64(self.drain)?,
            pairs,
        })
    }
}
