//! The cluster's proof (issue 17): three nodes on a PostgreSQL of this
//! test's own, users spread over them streaming private, group and public
//! messages while every node in turn is SIGKILLed and started again, and
//! PostgreSQL itself is restarted once, in the same run. Every
//! acknowledged message must reach each of its readers exactly once, in
//! order. A killed node's users move to the next live node (their address
//! is what a client's server list would pick next) and pick up with
//! `last_seq`/`last_public` and their outbox, as the client does.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::kill9::Address;
use crate::postgres::node;
use crate::support::cluster::study_stream;
use crate::support::{self, postgres, Server};

#[test]
fn every_acknowledged_message_arrives_once_in_order_through_kills_and_a_postgres_restart() {
    // Its own server: it goes down and up again.
    let Some(pg) = postgres::Postgres::start() else {
        return;
    };
    let _serial = support::serial();
    let url = pg.database();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let start = |i: usize| node(&url, &format!("n{}", i + 1), dirs[i].path());
    let mut nodes: Vec<Server> = (0..3).map(start).collect();
    // Each user's address, the node it is on now.
    let users = ["bob", "frank", "alice", "carol", "dave"];
    let homes: Vec<Address> = [0, 1, 1, 2, 2]
        .iter()
        .map(|&i| Arc::new(Mutex::new(Some(nodes[i].addr))))
        .collect();
    let home = |nick: &str| homes[users.iter().position(|u| *u == nick).unwrap()].clone();
    // bob (n1) reads alice's private messages (n2), carol's to #study (n3)
    // and dave's public ones (n3); frank (n2) reads #study and public.
    let stream = study_stream(home);

    // Node `victim` SIGKILLed (a `Server` is killed when dropped) and
    // started again; its users move to node `to`.
    let kill = |nodes: &mut Vec<Server>, victim: usize, to: usize| {
        let (gone, next) = (nodes[victim].addr, nodes[to].addr);
        for address in &homes {
            let mut address = address.lock().unwrap();
            if *address == Some(gone) {
                *address = Some(next);
            }
        }
        // Killed before it starts again: its id is locked while it lives.
        drop(nodes.remove(victim));
        nodes.insert(victim, start(victim));
        eprintln!(
            "proof: n{} killed, its users moved to n{}",
            victim + 1,
            to + 1
        );
    };
    // n2 dies (its users go to n3); PostgreSQL restarts; n3 dies (to n1);
    // n1 dies (to n2): every user moves at least once.
    let started = Instant::now();
    thread::sleep(Duration::from_millis(1200));
    kill(&mut nodes, 1, 2);
    thread::sleep(Duration::from_millis(1200));
    pg.down();
    let down_at = Instant::now();
    thread::sleep(Duration::from_millis(1500));
    let up_at = Instant::now();
    pg.up();
    eprintln!("proof: PostgreSQL restarted");
    thread::sleep(Duration::from_millis(1500));
    kill(&mut nodes, 2, 0);
    thread::sleep(Duration::from_millis(1200));
    kill(&mut nodes, 0, 1);
    thread::sleep(Duration::from_millis(1200));
    let streamed = stream.finish();
    let sent = &streamed.sent;
    let acks_while_down = sent
        .iter()
        .flat_map(|(_, s)| &s.times)
        .filter(|&&t| t > down_at + Duration::from_millis(500) && t < up_at)
        .count();

    let label = "proof, 3 nodes, 3 kills and a PostgreSQL restart";
    let failures = streamed.verdict(label);
    eprintln!(
        "{label}: {:.1} s of traffic; senders (acked, connections, store_failed): {:?}; \
         acks while PostgreSQL was down: {acks_while_down}",
        started.elapsed().as_secs_f64(),
        streamed.senders()
    );
    let bob_total = streamed.acked_for("bob");
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(acks_while_down, 0, "acknowledged while PostgreSQL was down");
    assert!(
        bob_total > 100,
        "too few messages to prove anything: {bob_total}"
    );
    assert!(
        sent.iter().all(|(_, s)| s.reconnects >= 2),
        "a kill did not interrupt every sender"
    );
    assert!(
        streamed.seen("bob").reconnects >= 2 && streamed.seen("frank").reconnects >= 2,
        "a reader was never moved"
    );
    drop(nodes);
}
