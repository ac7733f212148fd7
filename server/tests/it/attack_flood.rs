//! Attack 3 (issue 5): one client floods the public room while 20 others
//! chat. Flood control holds the flooder to its rate (a burst of 20, then
//! 10 a second) by not reading its socket, so the others' latency stays
//! near the quiet baseline; one that keeps flooding is disconnected.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::room::{quantile_ms, raw_login, Room};
use crate::support::{self, Options, Server};

/// What the flooder managed.
pub(crate) struct Flood {
    /// Lines written into the socket (most never read by the server).
    written: Arc<AtomicU64>,
    /// Messages the server acknowledged: the ones it let through.
    acked: Arc<AtomicU64>,
    /// The error that ended it, if any.
    pub(crate) error: Arc<std::sync::Mutex<Option<Value>>>,
    pub(crate) stop: Arc<AtomicBool>,
}

/// Starts a client writing public messages at `per_second` (10,000 by
/// default) for as long as its socket takes them.
pub(crate) fn flood(server: &Server, per_second: u64) -> Flood {
    let (tcp, mut reader) = raw_login(server, "flooder");
    tcp.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let error = Arc::new(std::sync::Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (acked, error) = (acked.clone(), error.clone());
        thread::spawn(move || {
            let mut line = String::new();
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                if line.starts_with("{\"type\":\"ack\"") {
                    acked.fetch_add(1, Ordering::Relaxed);
                } else if line.starts_with("{\"type\":\"error\"") {
                    *error.lock().unwrap() = serde_json::from_str(&line).ok();
                }
                line.clear();
            }
        });
    }
    {
        let (written, stop) = (written.clone(), stop.clone());
        let mut tcp = tcp;
        // Not non-blocking: that flag is shared with the reader's clone.
        tcp.set_write_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        thread::spawn(move || {
            // The same line over and over, written as the schedule allows
            // and the socket takes it: the attacker's own CPU stays near
            // zero, so what the room feels is the server, not this thread.
            const LINES: u64 = 10;
            let chunk =
                "{\"type\":\"message\",\"id\":1,\"text\":\"flood\"}\n".repeat(LINES as usize);
            let started = Instant::now();
            let (mut sent, mut offset) = (0u64, 0usize);
            while !stop.load(Ordering::Relaxed) {
                let due = started.elapsed().as_micros() as u64 * per_second / 1_000_000;
                while sent + LINES <= due {
                    match tcp.write(&chunk.as_bytes()[offset..]) {
                        Ok(n) => {
                            offset += n;
                            if offset == chunk.len() {
                                offset = 0;
                                sent += LINES;
                                written.store(sent, Ordering::Relaxed);
                            }
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            break
                        }
                        Err(_) => return,
                    }
                }
                thread::sleep(Duration::from_millis(1));
            }
        });
    }
    Flood {
        written,
        acked,
        error,
        stop,
    }
}

const CHATTERS: usize = 20;
/// Each chatter posts every 125 ms (8 a second, under the flood limit):
/// 160 messages/s, 3,360 deliveries/s.
const EVERY: Duration = Duration::from_millis(125);
const PHASE: Duration = Duration::from_secs(5);

/// Runs the room quiet, then with a flooder; returns the p99s (ms), the
/// messages the flooder got through during the flood, and what it wrote.
fn quiet_then_flood(server: &Server) -> (f64, f64, u64, u64) {
    let room = Room::start(server, CHATTERS, EVERY);
    thread::sleep(Duration::from_secs(1)); // warm up
    room.phase(1);
    thread::sleep(PHASE);
    let flood = flood(server, 10_000);
    room.phase(2);
    thread::sleep(PHASE);
    room.phase(3);
    let through = flood.acked.load(Ordering::Relaxed);
    let written = flood.written.load(Ordering::Relaxed);
    flood.stop.store(true, Ordering::Relaxed);
    let samples = room.stop();
    let (quiet, flooded) = (
        quantile_ms(&samples[1], 0.99),
        quantile_ms(&samples[2], 0.99),
    );
    println!(
        "quiet: {} samples, p50 {:.2} ms, p99 {quiet:.2} ms; flood: {} samples, p50 {:.2} ms, p99 {flooded:.2} ms; flooder wrote {written}, got {through} through",
        samples[1].len(),
        quantile_ms(&samples[1], 0.5),
        samples[2].len(),
        quantile_ms(&samples[2], 0.5),
    );
    (quiet, flooded, through, written)
}

/// Latency on a shared 2-core machine is at the mercy of whatever else runs:
/// the comparison gets this many tries (each a fresh server), and the
/// defence holds if one of them is within bounds. Without flood control
/// every try misses by two orders of magnitude.
const TRIES: usize = 3;

#[test]
fn a_flooder_is_held_to_its_rate_and_the_room_does_not_notice() {
    // Latency against a quiet baseline: alone, as when this file was its
    // own test binary (see `support::serial`).
    let _serial = support::serial();
    let secs = PHASE.as_secs();
    let mut tries = Vec::new();
    for _ in 0..TRIES {
        let server = Options::plain().crowd().start();
        let (quiet, flooded, through, written) = quiet_then_flood(&server);
        // 10,000 a second were offered; a burst of 20 and 10 a second got
        // in (the ack of the last may still be on its way). Every try.
        assert!(written >= 20_000, "the flooder only wrote {written}");
        assert!(
            through <= 20 + 10 * secs + 2,
            "{through} messages in {secs} s got through"
        );
        assert!(
            through >= 20 + 10 * (secs - 1),
            "slowed, not stopped: only {through} got through"
        );
        tries.push((quiet, flooded));
        // Within 1.5x of the quiet p99; the 2 ms allow for scheduling noise
        // (a p99 of 800 samples is the 8th worst). Without flood control
        // the same attack takes the p99 past 100 ms
        // (`without_flood_control_for_comparison`).
        if flooded <= 1.5 * quiet + 2.0 {
            return;
        }
    }
    panic!("p99 under flood vs quiet, ms, in {TRIES} tries: {tries:.2?}");
}

/// For comparison only (`cargo test -p chat-server --test it
/// attack_flood:: -- --ignored --nocapture`): the same attack with flood control off.
#[test]
#[ignore]
fn without_flood_control_for_comparison() {
    // Latency against a quiet baseline: alone, as when this file was its
    // own test binary (see `support::serial`).
    let _serial = support::serial();
    let server = Options::plain().crowd().unthrottled().start();
    quiet_then_flood(&server);
}

#[test]
fn a_flooder_that_keeps_on_is_disconnected_and_others_chat_on() {
    // Latency against a quiet baseline: alone, as when this file was its
    // own test binary (see `support::serial`).
    let _serial = support::serial();
    let mut server = Options::plain().flag("--flood-cut", 2).start();
    let mut alice = server.login("alice");
    let started = Instant::now();
    let flood = flood(&server, 10_000);
    while flood.error.lock().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still flooding after 10 s"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let cut_after = started.elapsed();
    let error = flood.error.lock().unwrap().clone().unwrap();
    assert_eq!(error["code"], "flooding", "{error}");
    assert!(error["reason"].as_str().unwrap().contains("flooding"));
    assert!(
        cut_after >= Duration::from_secs(2),
        "cut after {cut_after:?}"
    );
    flood.stop.store(true, Ordering::Relaxed);
    // Everyone learns it left, and why; the room goes on.
    assert_eq!(alice.expect_left("flooder"), "flooding");
    let id = alice.send_message(None, "still here");
    alice.expect_reply(id);
    let stats = server.admin_output("/stats", |l| l.starts_with("uptime"));
    assert!(
        stats.contains("floods throttled: 1 (1 flooders disconnected)"),
        "{stats}"
    );
    let _ = alice.tcp().flush();
}
