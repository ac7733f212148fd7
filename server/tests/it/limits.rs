//! Limits that protect the server from idle and slow clients: the login
//! timeout and the per-client send queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{self, Client, Next, Options};

both! {
    /// A connection that does not log in within --login-timeout gets a
    /// `timeout` error and is closed (pinging does not count); a user who
    /// logged in is not affected.
    fn login_timeout(tls) {
        let server = Options::with_tls(tls).flag("--login-timeout", 1).start();
        let mut alice = server.login("alice");
        let mut idle = server.connect("idle");
        let mut pinger = server.connect("pinger");
        let start = Instant::now();
        pinger.ping();
        for client in [&mut idle, &mut pinger] {
            let error = client.expect_within("the login timeout", Duration::from_secs(4), |f| {
                f["type"] == "error"
            });
            assert_eq!(error["code"], "timeout", "{error}");
            assert_eq!(error.get("id"), None, "{error}");
            client.expect_eof();
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(900), "closed after only {elapsed:?}");
        assert!(elapsed <= Duration::from_millis(3000), "closed after {elapsed:?}");
        alice.ping();
        alice.expect_nothing_more();
    }

    /// A client that never reads is disconnected once more than
    /// --queue-limit bytes wait for it; the others are told it left
    /// ("send queue exceeded") and keep chatting, and the sender, who reads,
    /// gets every ack.
    fn slow_consumer(tls) {
        const MESSAGES: usize = 3000;
        const BATCH: usize = 10;
        let server = Options::with_tls(tls)
            .flag("--queue-limit", 65536)
            .unthrottled()
            .start();
        let mut sender = server.login("sender");
        let mut third = server.login("third");
        let slow = server.login("slow");
        sender.sync();
        third.sync();

        // The third client reads on its own thread until the sender is done,
        // publishing how many messages it has read: the sender never gets
        // more than a batch ahead of it, so only the slow client falls behind.
        let progress = Arc::new(AtomicUsize::new(0));
        let read = progress.clone();
        let reader = std::thread::spawn(move || {
            let mut messages = 0;
            let mut left = None;
            loop {
                let frame = third.recv();
                match frame["type"].as_str() {
                    Some("message") if frame["text"] == "done" => break,
                    Some("message") => {
                        messages += 1;
                        read.store(messages, Ordering::Release);
                    }
                    Some("presence") => left = Some((frame, messages)),
                    _ => third.fail(&format!("unexpected {frame}")),
                }
            }
            (third, messages, left)
        });
        let wait_for_third = |count: usize| {
            let deadline = Instant::now() + support::TIMEOUT;
            while progress.load(Ordering::Acquire) < count {
                assert!(Instant::now() < deadline, "the third client is stuck before message {count}");
                std::thread::sleep(Duration::from_micros(200));
            }
        };

        let text = "x".repeat(3 * 1024);
        let mut acks = 0;
        let mut left_seen: Option<Value> = None;
        for batch in 0..MESSAGES / BATCH {
            wait_for_third(batch.saturating_sub(1) * BATCH);
            let mut last = 0;
            for _ in 0..BATCH {
                last = sender.send_message(None, &text);
            }
            loop {
                let frame = sender.recv();
                match frame["type"].as_str() {
                    Some("ack") => {
                        acks += 1;
                        if frame["id"] == last {
                            break;
                        }
                    }
                    Some("message") => {}
                    Some("presence") => left_seen = Some(frame),
                    _ => sender.fail(&format!("batch {batch}: unexpected {frame}")),
                }
            }
        }
        sender.say("done");
        assert_eq!(acks, MESSAGES, "acks");

        let (mut third, messages, left) = reader.join().expect("the third client's reader");
        assert_eq!(messages, MESSAGES, "messages the third client received");
        let (left, after) = left.expect("the third client saw the slow one leave");
        let gone = json!({"type": "presence", "left": [{"nick": "slow", "reason": "send queue exceeded"}]});
        assert_eq!(left, gone);
        assert!(after < MESSAGES, "left only after {after} messages");
        let left_seen = left_seen.unwrap_or_else(|| {
            // The sender may not have read it yet.
            sender.expect_type("presence")
        });
        assert_eq!(left_seen, gone);

        // The slow client's socket holds what the kernel buffered, then ends.
        let mut slow: Client = slow;
        match slow.expect_closed_within(Duration::from_secs(10)) {
            Next::Eof | Next::Broken(_) => {}
            other => slow.fail(&format!("expected the connection to end, got {other:?}")),
        }

        // The others chat on; the slow one is no longer online.
        third.say("still here");
        let frame = sender.expect(
            "the third client's message",
            |f| f["type"] == "message" && f["text"] == "still here",
        );
        assert_eq!(frame["sender"], "third");
        let id = sender.id();
        sender.send(json!({"type": "online", "id": id}));
        assert_eq!(sender.expect_reply(id)["users"], json!(["sender", "third"]));
    }
}

/// A client that stops reading is cut by the stall timer even when far
/// less than --queue-limit waits for it: its socket took nothing for
/// --stall-timeout while messages waited. Everyone is told it left ("send
/// queue exceeded"), and at its next login every message it had not read
/// is there.
#[test]
fn a_reader_that_stops_is_cut_by_the_stall_timer() {
    let server = Options::plain()
        .flag("--queue-limit", 64 * 1024 * 1024)
        .flag("--stall-timeout", 1)
        .unthrottled()
        .start();
    let mut sender = server.login("sender");
    let stuck = server.login("stuck");
    sender.sync();
    let text = "y".repeat(3 * 1024);
    let started = Instant::now();
    let mut sent = 0;
    let reason = 'sending: loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "stuck was never cut ({sent} messages sent)"
        );
        let id = sender.send_message(Some("stuck"), &text);
        sent += 1;
        loop {
            let frame = sender.recv();
            match frame["type"].as_str() {
                Some("ack") if frame["id"] == id => break,
                Some("presence") => {
                    if let Some(left) = frame["left"].as_array().and_then(|l| l.first()) {
                        assert_eq!(left["nick"], "stuck", "{frame}");
                        break 'sending left["reason"].as_str().unwrap().to_string();
                    }
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert_eq!(reason, "send queue exceeded");
    drop(stuck);
    // Let the acks of the last messages in flight arrive.
    sender.sync();

    // Everything stuck did not read waits for it.
    let mut again = server.connect("stuck again");
    let welcome = again.try_login("stuck");
    let count = |f: &Value, k: &str| f[k].as_u64().unwrap_or(0) as usize;
    assert_eq!(
        count(&welcome, "replay") + count(&welcome, "replay_left"),
        sent,
        "{welcome}"
    );
}
