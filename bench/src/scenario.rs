//! The scenarios, run from the main thread: launch the event threads, wait
//! for every client to log in, start the senders, drain, and turn the
//! merged statistics into a [`Report`].
//!
//! Loss is counted per delivery: a public message is expected by every
//! client logged in when sending starts (its sender included), a private
//! one by its receiver; whatever has not arrived after the drain is lost.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::engine::{
    self, now_ns, Client, Command, Handle, Pacing, Progress, SenderRole, Stats, Wire,
};
use crate::histogram::Histogram;
use crate::platform;
use crate::report::Report;
use crate::resp;

/// Where and how to connect, for every scenario.
pub struct Target {
    /// One server, or a cluster's nodes: client `i` connects to node
    /// `i mod n`, so the senders (the first clients) spread as well.
    pub addrs: Vec<SocketAddr>,
    pub tls: bool,
    /// The share of the chat clients that speak over a WebSocket.
    pub websocket_share: f64,
    /// A `redis-server` (pub/sub over RESP, `resp.rs`) instead of ours.
    pub redis: bool,
    /// The servers' processes (every node's), their CPU added up.
    pub server_pids: Vec<u32>,
    /// A PostgreSQL postmaster: its CPU and its backends' is measured.
    pub db_pid: Option<u32>,
    pub threads: usize,
    pub concurrency: usize,
    pub timeout: Duration,
}

/// The traffic of the fanout, latency, bigroom and pairs scenarios.
pub struct Load {
    pub clients: usize,
    pub senders: usize,
    /// Messages per second in total; `None`: as fast as the windows allow.
    pub rate: Option<f64>,
    pub duration: Duration,
    pub size: usize,
    pub window: u64,
    pub drain: Duration,
    /// Clients in pairs, every one sending private messages to its peer.
    pub pairs: bool,
}

const SECOND: u64 = 1_000_000_000;

/// A unique prefix for this run's nicknames, so runs never collide.
fn run_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!(
        "{:x}",
        (t ^ u64::from(std::process::id()) << 20) & 0xff_ffff
    )
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The event threads of one run.
struct Fleet {
    handles: Vec<Handle>,
    started_ns: u64,
}

impl Fleet {
    /// Deals `clients` round-robin to the threads (so senders spread), and
    /// puts `target.websocket_share` of each thread's on WebSocket.
    fn launch(
        target: &Target,
        size: usize,
        window: u64,
        clients: Vec<Client>,
    ) -> anyhow::Result<Fleet> {
        let threads = target.threads.max(1);
        let tls = if target.tls {
            Some(crate::conn::insecure_connector()?)
        } else {
            None
        };
        let nodes = target.addrs.len().max(1);
        let sender_nodes = clients
            .iter()
            .filter_map(|c| c.sender.as_ref().map(|s| (s.id as usize, c.node)))
            .fold(Vec::new(), |mut v: Vec<usize>, (id, node)| {
                if v.len() <= id {
                    v.resize(id + 1, usize::MAX);
                }
                v[id] = node;
                v
            });
        // Only meaningful with several nodes.
        let sender_nodes = if nodes > 1 { sender_nodes } else { Vec::new() };
        let settings = Arc::new(engine::Settings {
            addrs: target.addrs.clone(),
            sender_nodes,
            tls,
            size,
            window,
            concurrency: target.concurrency.div_ceil(threads).max(1),
        });
        let mut shares: Vec<Vec<Client>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, client) in clients.into_iter().enumerate() {
            shares[i % threads].push(client);
        }
        for (k, share) in shares.iter_mut().enumerate() {
            for (j, client) in share.iter_mut().enumerate() {
                client.websocket = over_websocket(j + k, target.websocket_share);
            }
        }
        let started_ns = now_ns();
        let handles = shares
            .into_iter()
            .enumerate()
            .map(|(k, share)| engine::spawn(format!("bench-{k}"), settings.clone(), share))
            .collect::<Result<_, _>>()
            .context("starting the event threads")?;
        Ok(Fleet {
            handles,
            started_ns,
        })
    }

    fn sum(&self, field: impl Fn(&Progress) -> &AtomicU64) -> u64 {
        self.handles
            .iter()
            .map(|h| field(&h.progress).load(Relaxed))
            .sum()
    }

    fn max(&self, field: impl Fn(&Progress) -> &AtomicU64) -> u64 {
        self.handles
            .iter()
            .map(|h| field(&h.progress).load(Relaxed))
            .max()
            .unwrap_or(0)
    }

    fn command(&self, make: impl Fn() -> Command) {
        for h in &self.handles {
            h.send(make());
        }
    }

    /// Waits until `want` clients are in or have failed, or until `deadline`
    /// (then gives up on the rest). Returns how many are in.
    fn wait_logins(&self, want: u64, deadline: u64) -> u64 {
        loop {
            let (ok, failed) = (self.sum(|p| &p.logged_in), self.sum(|p| &p.failed));
            if ok + failed >= want {
                return ok;
            }
            if now_ns() >= deadline {
                eprintln!("chat-bench: {ok} of {want} clients logged in before the timeout; going on without the rest");
                self.command(|| Command::Abandon);
                std::thread::sleep(Duration::from_millis(100));
                return self.sum(|p| &p.logged_in);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until nothing has arrived for `quiet` (the server has finished
    /// telling everyone who joined), or until `deadline`.
    fn wait_quiet(&self, quiet: Duration, deadline: u64) {
        let mut last = self.sum(|p| &p.bytes_in);
        let mut since = now_ns();
        while now_ns() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.sum(|p| &p.bytes_in);
            if now != last {
                (last, since) = (now, now_ns());
            } else if now_ns() - since >= quiet.as_nanos() as u64 {
                return;
            }
        }
    }

    fn finish(self) -> anyhow::Result<Merged> {
        let mut merged = Merged::default();
        for handle in self.handles {
            let stats = handle.join()?;
            merged.add(stats);
        }
        Ok(merged)
    }
}

/// Every thread's statistics added up.
#[derive(Default)]
struct Merged {
    latency: Histogram,
    cross_latency: Histogram,
    ack_latency: Histogram,
    receipts: Vec<Vec<u64>>,
    sent_by: Vec<u64>,
    received: u64,
    received_in_window: u64,
    duplicates: u64,
    gaps: u64,
    sent: u64,
    acked: u64,
    errors: u64,
    failed: u64,
    disconnected: u64,
    late_sends: u64,
    problem: Option<String>,
    cpu_window: Vec<Option<Duration>>,
    cpu_total: Vec<Option<Duration>>,
}

impl Merged {
    fn add(&mut self, s: Stats) {
        self.latency.merge(&s.latency);
        self.cross_latency.merge(&s.cross_latency);
        self.ack_latency.merge(&s.ack_latency);
        if self.receipts.len() < s.receipts.len() {
            self.receipts.resize_with(s.receipts.len(), Vec::new);
        }
        for (all, mine) in self.receipts.iter_mut().zip(&s.receipts) {
            if all.len() < mine.len() {
                all.resize(mine.len(), 0);
            }
            for (a, m) in all.iter_mut().zip(mine) {
                *a += u64::from(*m);
            }
        }
        if self.sent_by.len() < s.sent_by.len() {
            self.sent_by.resize(s.sent_by.len(), 0);
        }
        for (a, m) in self.sent_by.iter_mut().zip(&s.sent_by) {
            *a += m;
        }
        self.received += s.received;
        self.received_in_window += s.received_in_window;
        self.duplicates += s.duplicates;
        self.gaps += s.gaps;
        self.sent += s.sent;
        self.acked += s.acked;
        self.errors += s.errors;
        self.failed += s.failed;
        self.disconnected += s.disconnected;
        self.late_sends += s.late_sends;
        if self.problem.is_none() {
            self.problem = s.first_problem;
        }
        self.cpu_window.push(s.cpu_window);
        self.cpu_total.push(s.cpu_total);
    }

    /// Messages that reached fewer than `receivers` clients.
    fn incomplete(&self, receivers: u64) -> u64 {
        let mut short = 0;
        for (id, &sent) in self.sent_by.iter().enumerate() {
            let counts = self.receipts.get(id).map_or(&[][..], |c| &c[..]);
            short += (0..sent as usize)
                .filter(|&seq| counts.get(seq).copied().unwrap_or(0) < receivers)
                .count() as u64;
        }
        short
    }

    fn add_latency(&self, r: &mut Report) {
        let h = &self.latency;
        r.add("latency_samples", h.count(), "");
        for (key, p) in [("p50_ms", 0.5), ("p99_ms", 0.99), ("p999_ms", 0.999)] {
            r.add_f(key, ms(h.percentile(p)), 3, "ms");
        }
        r.add_f("max_ms", ms(h.max()), 3, "ms");
        r.add_f("mean_ms", ms(h.mean()), 3, "ms");
    }

    /// CPU% of each event thread over `wall` (its window or the whole run).
    fn add_cpu(&self, r: &mut Report, window: bool, wall: Duration) {
        let cpu = if window {
            &self.cpu_window
        } else {
            &self.cpu_total
        };
        let pct: Vec<f64> = cpu
            .iter()
            .map(|c| c.map_or(f64::NAN, |c| 100.0 * c.as_secs_f64() / wall.as_secs_f64()))
            .collect();
        let total: f64 = pct.iter().sum();
        let round = |x: f64| (x * 10.0).round() / 10.0;
        if total.is_finite() {
            r.add_f("bench_cpu_pct", total, 1, "% of a core");
            r.add(
                "bench_thread_cpu_pct",
                pct.iter().map(|&p| round(p)).collect::<Vec<_>>(),
                "% of a core, per event thread",
            );
        } else {
            r.add(
                "bench_cpu_pct",
                serde_json::Value::Null,
                "(not measured on this OS)",
            );
        }
    }
}

/// Whether the `n`th client of a thread's share goes over WebSocket:
/// `share` of any run of them does, spread evenly (at ½, every other one).
/// A thread's senders come first in its share, so they are split as well;
/// `n` counts from the thread's number, so that with ½ the odd one out
/// alternates between threads (5 of 10 senders over 2 threads, not 4).
fn over_websocket(n: usize, share: f64) -> bool {
    let upto = |n: usize| (n as f64 * share).floor();
    upto(n + 1) > upto(n)
}

/// How many of the `clients` go over WebSocket with `share`, dealt over
/// `threads` as [`Fleet::launch`] deals them.
fn websocket_count(clients: usize, threads: usize, share: f64) -> usize {
    let threads = threads.max(1);
    (0..clients)
        .filter(|&i| over_websocket(i / threads + i % threads, share))
        .count()
}

fn nick(run: &str, i: usize) -> String {
    format!("b{run}-{i}")
}

/// `figure` of every server process (the nodes of a cluster), added up;
/// `None` without server pids or when one process's figure is unknown.
fn every_server<T: std::iter::Sum>(target: &Target, figure: fn(u32) -> Option<T>) -> Option<T> {
    if target.server_pids.is_empty() {
        return None;
    }
    target.server_pids.iter().map(|&pid| figure(pid)).sum()
}

/// The CPU of every server process, added up.
fn server_cpu(target: &Target) -> Option<Duration> {
    every_server(target, platform::process_cpu)
}

fn db_cpu(target: &Target) -> Option<Duration> {
    platform::tree_cpu(target.db_pid?)
}

/// The RSS of every server process, added up.
fn server_rss(target: &Target) -> Option<u64> {
    every_server(target, platform::process_rss)
}

fn cpu_pct(before: Option<Duration>, after: Option<Duration>, wall: Duration) -> serde_json::Value {
    match before.zip(after) {
        Some((b, a)) => {
            let pct = 100.0 * (a.saturating_sub(b)).as_secs_f64() / wall.as_secs_f64();
            ((pct * 10.0).round() / 10.0).into()
        }
        None => serde_json::Value::Null,
    }
}

/// Which server and how it was reached; `clients` and `senders`: the
/// chat clients, to count those over WebSocket.
fn add_server(r: &mut Report, target: &Target, clients: usize, senders: usize) {
    r.add(
        "transport",
        if target.tls { "tls" } else { "plaintext" },
        "",
    );
    if target.websocket_share > 0.0 {
        let (threads, share) = (target.threads, target.websocket_share);
        r.add("websocket_share", share, "of the clients asked for");
        r.add(
            "clients_websocket",
            websocket_count(clients, threads, share),
            "clients over WebSocket",
        );
        r.add(
            "senders_websocket",
            websocket_count(senders, threads, share),
            "senders over WebSocket",
        );
    }
    r.add(
        "server",
        if target.redis { "redis" } else { "chat-server" },
        "",
    );
    r.add(
        "nodes",
        target.addrs.len(),
        "servers the clients are spread over",
    );
}

/// CPU between `before` and `after` per one of `count`, in seconds × `scale`.
fn cpu_per(
    before: Option<Duration>,
    after: Option<Duration>,
    count: u64,
    scale: f64,
) -> serde_json::Value {
    match before.zip(after) {
        Some((b, a)) if count > 0 => {
            let per = a.saturating_sub(b).as_secs_f64() * scale / count as f64;
            ((per * 10.0).round() / 10.0).into()
        }
        _ => serde_json::Value::Null,
    }
}

/// fanout, latency, bigroom and pairs.
pub fn traffic(name: &str, target: &Target, load: &Load) -> anyhow::Result<Report> {
    if load.pairs && !load.clients.is_multiple_of(2) {
        bail!("pairs needs an even number of clients");
    }
    let senders = if load.pairs {
        load.clients
    } else {
        load.senders.min(load.clients)
    };
    if senders == 0 {
        bail!("at least one sender is needed");
    }
    let run = run_id();
    let clients = if target.redis {
        // A subscriber per client (to the room, or in pairs to its own
        // channel), then a publisher per sender.
        let mut list: Vec<Client> = (0..load.clients)
            .map(|i| Client {
                nick: nick(&run, i),
                sender: None,
                node: 0,
                wire: Wire::Subscriber(if load.pairs {
                    nick(&run, i)
                } else {
                    resp::ROOM.to_string()
                }),
                websocket: false,
            })
            .collect();
        list.extend((0..senders).map(|i| Client {
            nick: format!("{}-pub", nick(&run, i)),
            sender: Some(SenderRole {
                id: i as u32,
                to: Some(if load.pairs {
                    nick(&run, i ^ 1)
                } else {
                    resp::ROOM.to_string()
                }),
            }),
            wire: Wire::Publisher,
            websocket: false,
            node: 0,
        }));
        list
    } else {
        (0..load.clients)
            .map(|i| Client {
                nick: nick(&run, i),
                sender: (i < senders).then(|| SenderRole {
                    id: i as u32,
                    to: load.pairs.then(|| nick(&run, i ^ 1)),
                }),
                wire: Wire::Chat,
                websocket: false,
                node: i % target.addrs.len(),
            })
            .collect()
    };
    let connections = clients.len() as u64;

    let fleet = Fleet::launch(target, load.size, load.window, clients)?;
    let deadline = fleet.started_ns + target.timeout.as_nanos() as u64;
    fleet.wait_logins(connections, deadline);
    // Receiving clients (Redis publishers left out).
    let logged_in = fleet.sum(|p| &p.listening);
    let connect_ns = fleet
        .max(|p| &p.last_login_ns)
        .saturating_sub(fleet.started_ns);
    if logged_in == 0 {
        let merged = fleet.finish()?;
        bail!(
            "no client could log in to {}: {}",
            target.addrs[0],
            merged.problem.unwrap_or_default()
        );
    }
    fleet.wait_quiet(Duration::from_millis(300), now_ns() + 60 * SECOND);

    // Who is there when sending starts is who should receive.
    let receivers = logged_in.saturating_sub(fleet.sum(|p| &p.disconnected));
    let start_ns = now_ns() + 20_000_000;
    let end_ns = start_ns + load.duration.as_nanos() as u64;
    let pacing = match load.rate {
        Some(rate) => Pacing::Rate {
            rate,
            senders: senders as u32,
        },
        None => Pacing::Window,
    };
    // The senders start at once; the schedule is anchored at `start_ns`.
    fleet.command(|| Command::Send {
        start_ns,
        end_ns,
        pacing,
    });
    sleep_until(start_ns);
    let server_before = server_cpu(target);
    let db_before = db_cpu(target);
    sleep_until(end_ns);
    let server_after = server_cpu(target);
    let db_after = db_cpu(target);

    // Drain: until every message is answered and delivered, at most `drain`.
    let expect = |sent: u64| if load.pairs { sent } else { sent * receivers };
    let drain_end = now_ns() + load.drain.as_nanos() as u64;
    while now_ns() < drain_end {
        let sent = fleet.sum(|p| &p.sent);
        if fleet.sum(|p| &p.answered) >= sent && fleet.sum(|p| &p.received) >= expect(sent) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let merged = fleet.finish()?;

    let mut r = Report::new(name);
    add_server(&mut r, target, load.clients, senders);
    r.add("clients", load.clients, "");
    r.add("clients_logged_in", logged_in, "");
    r.add("senders", senders, "");
    r.add(
        "mode",
        if load.pairs {
            "private pairs"
        } else {
            "public room"
        },
        "",
    );
    match load.rate {
        Some(rate) => r.add("rate_target_per_s", rate, "messages/s in total"),
        None => r.add("window", load.window, "messages in flight per sender"),
    }
    r.add_f("duration_s", load.duration.as_secs_f64(), 3, "s");
    r.add("size_bytes", load.size, "payload text");
    r.add_f(
        "connect_s",
        connect_ns as f64 / 1e9,
        3,
        "s to connect and log in all",
    );
    let secs = load.duration.as_secs_f64();
    r.add("messages_sent", merged.sent, "");
    r.add_f("messages_per_s", merged.sent as f64 / secs, 0, "sent/s");
    r.add("messages_acked", merged.acked, "");
    r.add("errors", merged.errors, "error answers");
    let expected = expect(merged.sent);
    let unique = merged.received - merged.duplicates;
    r.add("deliveries", merged.received, "received in all");
    r.add_f(
        "deliveries_per_s",
        merged.received_in_window as f64 / secs,
        0,
        "received/s during the sending window",
    );
    r.add("deliveries_expected", expected, "");
    r.add("lost", expected.saturating_sub(unique), "deliveries");
    r.add_f(
        "loss_pct",
        if expected == 0 {
            0.0
        } else {
            100.0 * expected.saturating_sub(unique) as f64 / expected as f64
        },
        4,
        "%",
    );
    r.add(
        "incomplete_messages",
        merged.incomplete(if load.pairs { 1 } else { receivers }),
        "reached fewer receivers than expected",
    );
    r.add("duplicates", merged.duplicates, "");
    r.add(
        "gaps",
        merged.gaps,
        "a receiver saw a sender's seq skip ahead",
    );
    r.add(
        "disconnected",
        merged.disconnected,
        "clients the server dropped",
    );
    merged.add_latency(&mut r);
    let ack = &merged.ack_latency;
    r.add(
        "acks_timed",
        ack.count(),
        "answers timed from their message's send",
    );
    r.add_f("ack_p50_ms", ms(ack.percentile(0.5)), 3, "ms send to ack");
    r.add_f("ack_p99_ms", ms(ack.percentile(0.99)), 3, "ms send to ack");
    if target.addrs.len() > 1 {
        let cross = &merged.cross_latency;
        r.add(
            "cross_node_deliveries",
            cross.count(),
            "sender and receiver on different nodes",
        );
        r.add_f(
            "cross_p50_ms",
            ms(cross.percentile(0.5)),
            3,
            "ms, cross-node",
        );
        r.add_f(
            "cross_p99_ms",
            ms(cross.percentile(0.99)),
            3,
            "ms, cross-node",
        );
    }
    if load.rate.is_some() {
        r.add("late_sends", merged.late_sends, "sent > 1 ms after due");
    }
    r.add(
        "server_cpu_pct",
        cpu_pct(server_before, server_after, load.duration),
        "% of a core, sending window",
    );
    r.add(
        "server_cpu_ns_per_delivery",
        cpu_per(server_before, server_after, merged.received_in_window, 1e9),
        "ns of server CPU per delivery, sending window",
    );
    if target.db_pid.is_some() {
        r.add(
            "db_cpu_pct",
            cpu_pct(db_before, db_after, load.duration),
            "% of a core, PostgreSQL and its backends, sending window",
        );
        r.add(
            "db_cpu_us_per_message",
            cpu_per(db_before, db_after, merged.sent, 1e6),
            "µs of PostgreSQL CPU per message sent, sending window",
        );
    }
    merged.add_cpu(&mut r, true, load.duration);
    r.add(
        "problem",
        merged.problem.map_or(serde_json::Value::Null, Into::into),
        "",
    );
    Ok(r)
}

/// connections: connect and log in many clients, hold them idle, measure
/// the server's memory, then reach all of them with one message.
pub fn connections(
    target: &Target,
    clients: usize,
    size: usize,
    hold: Duration,
) -> anyhow::Result<Report> {
    let run = run_id();
    let rss_baseline = server_rss(target);
    let cpu_before = server_cpu(target);
    let mut list: Vec<Client> = (0..clients)
        .map(|i| Client {
            nick: nick(&run, i),
            sender: (i == 0 && !target.redis).then_some(SenderRole { id: 0, to: None }),
            node: i % target.addrs.len(),
            wire: if target.redis {
                Wire::Subscriber(resp::ROOM.to_string())
            } else {
                Wire::Chat
            },
            websocket: false,
        })
        .collect();
    if target.redis {
        // The final message's publisher, connected last.
        list.push(Client {
            nick: format!("{}-pub", nick(&run, 0)),
            sender: Some(SenderRole {
                id: 0,
                to: Some(resp::ROOM.to_string()),
            }),
            wire: Wire::Publisher,
            websocket: false,
            node: 0,
        });
    }
    let connections = list.len() as u64;
    let fleet = Fleet::launch(target, size, 1, list)?;
    let deadline = fleet.started_ns + target.timeout.as_nanos() as u64;
    fleet.wait_logins(connections, deadline);
    let logged_in = fleet.sum(|p| &p.listening);
    let connect_ns = fleet
        .max(|p| &p.last_login_ns)
        .saturating_sub(fleet.started_ns);
    let failed = fleet.sum(|p| &p.failed);
    let cpu_connected = server_cpu(target);
    let connect_wall = Duration::from_nanos(now_ns() - fleet.started_ns);

    // Idle: everything the arrivals caused has been delivered, then `hold`.
    let quiet_from = now_ns();
    fleet.wait_quiet(
        Duration::from_millis(300),
        deadline.max(now_ns() + 10 * SECOND),
    );
    let settle_ns = now_ns() - quiet_from;
    std::thread::sleep(hold);
    let rss_after = server_rss(target);
    let holding = logged_in.saturating_sub(fleet.sum(|p| &p.disconnected));

    let received_before = fleet.sum(|p| &p.received);
    fleet.command(|| Command::SendOne);
    let reach_deadline = now_ns() + target.timeout.min(Duration::from_secs(30)).as_nanos() as u64;
    while fleet.sum(|p| &p.received) - received_before < holding && now_ns() < reach_deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let started_ns = fleet.started_ns;
    let merged = fleet.finish()?;

    let mut r = Report::new("connections");
    add_server(&mut r, target, clients, 1);
    r.add("clients", clients, "");
    r.add("clients_logged_in", logged_in, "");
    r.add("failed", failed, "clients that could not connect or log in");
    r.add_f(
        "connect_s",
        connect_ns as f64 / 1e9,
        3,
        "s to connect and log in all",
    );
    r.add(
        "server_cpu_connect_pct",
        cpu_pct(cpu_before, cpu_connected, connect_wall),
        "% of a core while connecting",
    );
    r.add(
        "server_cpu_us_per_login",
        cpu_per(cpu_before, cpu_connected, logged_in, 1e6),
        "µs of server CPU per client connected and logged in",
    );
    r.add_f(
        "settle_s",
        settle_ns as f64 / 1e9,
        3,
        "s until the server went quiet after the last login",
    );
    r.add("held", holding, "clients connected during the idle hold");
    r.add("rss_baseline_bytes", rss_baseline, "");
    r.add("rss_after_bytes", rss_after, "");
    let per_conn = rss_baseline
        .zip(rss_after)
        .filter(|_| holding > 0)
        .map(|(b, a)| a.saturating_sub(b) as f64 / holding as f64 / 1024.0);
    match per_conn {
        Some(kib) => r.add_f(
            "rss_per_conn_kib",
            kib,
            2,
            "KiB of server RSS per connection",
        ),
        None => r.add(
            "rss_per_conn_kib",
            serde_json::Value::Null,
            "(needs --server-pid)",
        ),
    }
    r.add(
        "reached",
        merged.received - received_before,
        "clients that got the final message",
    );
    r.add_f(
        "reach_all_ms",
        ms(merged.latency.max()),
        3,
        "ms from sending until the last one got it",
    );
    r.add_f("reach_p50_ms", ms(merged.latency.percentile(0.5)), 3, "ms");
    r.add(
        "disconnected",
        merged.disconnected,
        "clients the server dropped",
    );
    merged.add_cpu(&mut r, false, Duration::from_nanos(now_ns() - started_ns));
    r.add(
        "problem",
        merged.problem.map_or(serde_json::Value::Null, Into::into),
        "",
    );
    Ok(r)
}

fn sleep_until(ns: u64) {
    let now = now_ns();
    if ns > now {
        std::thread::sleep(Duration::from_nanos(ns - now));
    }
}
