//! Attack 4 (issue 5): a member of a busy room stops reading. It is cut off
//! within the limits (here `--stall-timeout 3`; the 256 KiB queue limit
//! as by default), the room's latency and deliveries are unaffected, and
//! what it missed waits for its next login.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socket2::{Domain, Socket, Type};

use crate::support::room::{quantile_ms, Room};
use crate::support::{self, password_of, Options};

/// A client that logs in and then never reads, with a small receive
/// buffer so the server's queue fills in seconds rather than megabytes.
fn stuck_login(addr: SocketAddr, nick: &str) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let tcp: TcpStream = socket.into();
    let login = json!({"type": "login", "id": 0, "nick": nick, "password": password_of(nick)});
    use std::io::Write;
    (&tcp).write_all(format!("{login}\n").as_bytes()).unwrap();
    tcp
}

/// As in `attack_flood.rs`: the latency comparison gets a few tries (each a
/// fresh server and a fresh stuck reader) on a noisy shared machine; every
/// other check must hold in each.
#[test]
fn a_stuck_reader_is_cut_and_the_room_does_not_notice() {
    // Latency against a quiet baseline: alone, as when this file was its
    // own test binary (see `support::serial`).
    let _serial = support::serial();
    let mut tries = Vec::new();
    for _ in 0..3 {
        let (quiet, stuck) = one_stuck_reader();
        tries.push((quiet, stuck));
        // Same tolerance as the flood test.
        if stuck <= 1.5 * quiet + 2.0 {
            return;
        }
    }
    panic!("p99 with a stuck reader vs quiet, ms, in 3 tries: {tries:.2?}");
}

/// Returns the room's p99 (ms) before and while the reader was stuck.
fn one_stuck_reader() -> (f64, f64) {
    let server = Options::plain().crowd().flag("--stall-timeout", 3).start();
    let mut friend = server.login("friend");
    // The stuck one has an account already, so its messages are stored.
    server.login("stuck").bye();
    friend.expect_left("stuck");

    let room = Room::start(&server, 20, Duration::from_millis(125));
    let (seen, sent) = (room.seen.clone(), room.sent.clone());
    thread::sleep(Duration::from_secs(1));
    room.phase(1);
    thread::sleep(Duration::from_secs(4));

    room.phase(2);
    let stuck = stuck_login(server.addr, "stuck");
    let started = Instant::now();
    let mut private = 0;
    let reason = 'waiting: loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the stuck reader was never cut"
        );
        // 2 KiB each: with the room's traffic, ~40 KB/s wait for it.
        let id = friend.send_message(Some("stuck"), &format!("private {private} {:2048}", ""));
        private += 1;
        let deadline = Instant::now() + Duration::from_millis(125);
        loop {
            match friend.next_until(deadline) {
                support::Next::Frame(frame) => {
                    if let Some(left) = frame["left"].as_array().and_then(|l| l.first()) {
                        if left["nick"] == "stuck" {
                            break 'waiting left["reason"].as_str().unwrap().to_string();
                        }
                    }
                    if frame["type"] == "ack" && frame["id"] == id {
                        continue;
                    }
                }
                support::Next::Timeout => break,
                other => panic!("friend: {other:?}"),
            }
        }
    };
    let cut_after = started.elapsed();
    assert_eq!(reason, "send queue exceeded");
    room.phase(3);
    thread::sleep(Duration::from_secs(2));
    drop(stuck);
    let samples = room.stop();
    let (quiet, stuck_p99) = (
        quantile_ms(&samples[1], 0.99),
        quantile_ms(&samples[2], 0.99),
    );
    let (seen, sent) = (
        seen[0].load(Ordering::Relaxed),
        sent.load(Ordering::Relaxed),
    );
    println!(
        "cut after {cut_after:.1?}; quiet p99 {quiet:.2} ms ({} samples), while stuck p99 {stuck_p99:.2} ms ({} samples); {private} private messages to it; room: {sent} sent, {seen} of {} deliveries seen",
        samples[1].len(),
        samples[2].len(),
        sent * 20,
    );
    // The kernel's send buffer (--send-buffer, 128 KiB, which Linux
    // doubles) fills in ~7 s at ~40 KB/s, then the stall timer (3 s) runs.
    assert!(
        cut_after < Duration::from_secs(20),
        "cut after {cut_after:?}"
    );
    // The room lost nothing: every chatter saw every chatter's messages
    // (the last few may have been in flight when the sockets closed).
    assert!(seen + 20 * 20 >= sent * 20, "{seen} of {} seen", sent * 20);

    // Its private messages wait for it.
    let mut again = server.connect("stuck again");
    let welcome: Value = again.try_login("stuck");
    let count = |k: &str| welcome[k].as_u64().unwrap_or(0);
    assert_eq!(count("replay") + count("replay_left"), private, "{welcome}");
    (quiet, stuck_p99)
}
