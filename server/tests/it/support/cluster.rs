//! The verdict of a cluster stream test: for each reader and each sender
//! it reads (one kind of message each: private, group, public), how many
//! messages were acknowledged, delivered, duplicated, out of order and
//! missing; and a group made on a node that may not know its members yet.
//! Shared by `cluster.rs` and `cluster_proof.rs`; the senders and readers
//! themselves are `postgres.rs`'s.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::kill9::Link;
use crate::postgres::{shown_from, tally, Acked, Seen};

/// One sender a reader should have heard, and what kind its messages are.
pub struct Source<'a> {
    pub nick: &'a str,
    pub kind: &'a str,
}

/// Prints one line per source of `reader` (prefixed with `label`) and
/// returns what failed: a text acknowledged but never shown, shown twice,
/// or shown out of the order of its acks.
pub fn verdict(
    label: &str,
    reader: &str,
    sent: &[(&str, Acked)],
    seen: &Seen,
    sources: &[Source],
) -> Vec<String> {
    let mut failures = Vec::new();
    for source in sources {
        let nick = source.nick;
        let Some((_, acked)) = sent.iter().find(|(n, _)| *n == nick) else {
            failures.push(format!("{reader}: no sender {nick}"));
            continue;
        };
        let (delivered, _, missing) = tally(acked.acked.iter(), seen);
        let order = shown_from(seen, nick);
        let distinct: std::collections::HashSet<&&String> = order.iter().collect();
        let duplicated = order.len() - distinct.len();
        let numbers: Vec<usize> = order
            .iter()
            .map(|t| t[nick.len() + 1..].parse().unwrap())
            .collect();
        let out_of_order = numbers.windows(2).filter(|w| w[0] >= w[1]).count();
        eprintln!(
            "{label}: {reader} ← {nick} ({}): acknowledged {} / delivered {delivered} / \
             duplicated {duplicated} / out of order {out_of_order} / missing {}",
            source.kind,
            acked.acked.len(),
            missing.len(),
        );
        if order != acked.acked.iter().collect::<Vec<_>>() {
            failures.push(format!("{reader}: {nick}'s shown against acked differ"));
        }
        if !missing.is_empty() {
            failures.push(format!(
                "{reader}: {nick}'s acknowledged but never delivered: {missing:?}"
            ));
        }
        if duplicated > 0 || out_of_order > 0 {
            failures.push(format!(
                "{reader}: {nick}'s {duplicated} duplicated, {out_of_order} out of order"
            ));
        }
    }
    eprintln!(
        "{label}: {reader}: resends ignored by seq {}, reconnects {}",
        seen.filtered, seen.reconnects
    );
    failures
}

/// `link`'s user creates group `name` with `members`, asking again while
/// its node has not heard of a member's account yet (5 s at most).
pub fn create_group(link: &mut Link, name: &str, members: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        link.send(&json!({"type": "group_create", "id": 1, "name": name, "members": members}))
            .unwrap();
        let answer = loop {
            if let Some(f) = link.recv().unwrap() {
                if f["id"] == 1 {
                    break f;
                }
            }
        };
        if answer["type"] == "group" {
            return;
        }
        assert_eq!(answer["code"], "no_such_user", "{answer}");
        assert!(
            Instant::now() < deadline,
            "the node never heard of {members:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}
