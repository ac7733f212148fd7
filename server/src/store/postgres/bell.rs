//! The doorbell: one `pg_notify` in every batch's transaction that moved a
//! stream or changed accounts or groups, saying where the streams end now.
//! PostgreSQL delivers it only if the transaction commits, and in commit
//! order; it is a wake-up, never the facts (nodes read those by cursor,
//! `Op::Tail`), so a lost one costs latency and never a message.
//!
//! The payload: `;`-separated items — `p:<public head>`, `u:<user>:<seq>,…`,
//! `a` (accounts changed), `g` (groups changed), `o` (the `online` table
//! changed), `t:<user>:<node>` (a takeover of that node's session),
//! `l:<user>:<reason>` (a session that ended, and why), `s` (bans or mutes
//! changed), `k:<user>:<reason>` (the operator kicked that user, wherever
//! they are; the reason escaped by [`escape`]), `f` (the file offers
//! changed), `x` (wrong passwords were recorded: nodes read the
//! `login_failures` rows after the last they read, see [`super::failures`]),
//! `d:<node>:<sender>:<to>:<cid>` (a private message's receiver
//! said `received` on that node: its sender's node tells the sender
//! `delivered`; `to` and the client's `cid` escaped by [`escape_field`];
//! dropped, never the heads, when they would not fit), or `poll` in place
//! of the heads when they would not fit in [`MAX_PAYLOAD`] bytes
//! (PostgreSQL's limit is 8,000).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::messages::PUBLIC;
use super::sql::Tx;
use crate::store::{Delivery, Stream};

/// The channel every node listens on.
pub(super) const CHANNEL: &str = "chat";

/// The `heads` row counting account changes (created, or a new password):
/// a node that missed a doorbell sees it move and reloads.
pub(super) const ACCOUNTS: i64 = -1;

/// The `heads` row counting group changes.
pub(super) const GROUPS: i64 = -2;

/// The `heads` row counting changes of the `online` table.
pub(super) const ONLINE: i64 = -3;

/// The `heads` row counting changes of bans and mutes.
pub(super) const SANCTIONS: i64 = -4;
/// The `heads` row counting the batches that recorded login failures.
pub(super) const FAILURES: i64 = -5;
/// The `heads` row counting changes of the file offers (made, completed,
/// answered, told, deleted).
pub(super) const FILES: i64 = -6;

/// The longest payload sent; longer ones say `poll`.
const MAX_PAYLOAD: usize = 7000;

/// What a batch changed, rung at its end.
#[derive(Debug, Default)]
pub(super) struct Bell {
    /// `heads` row → its new end.
    pub(super) heads: BTreeMap<i64, i64>,
    pub(super) accounts: bool,
    pub(super) groups: bool,
    /// The `online` table changed.
    pub(super) online: bool,
    /// Users whose session ended (their row deleted by their node), and
    /// why.
    pub(super) left: Vec<(crate::store::UserId, String)>,
    /// Users who logged in here while online on that (live) node.
    pub(super) takeovers: Vec<(crate::store::UserId, String)>,
    /// A ban or mute was set or lifted.
    pub(super) sanctions: bool,
    /// Users the operator kicked, and why.
    pub(super) kicks: Vec<(crate::store::UserId, String)>,
    /// The file offers changed.
    pub(super) files: bool,
    /// Login failures were recorded.
    pub(super) failures: bool,
    /// Private messages their receivers' clients have shown, acknowledged
    /// on node `here`: the senders' nodes tell them.
    pub(super) delivered: Vec<Delivery>,
    pub(super) here: String,
}

impl Bell {
    /// Moves the change counters and sends the doorbell, in the batch's
    /// transaction (nothing if the batch changed nothing).
    pub(super) fn ring(&self, tx: &mut Tx) -> Result<(), postgres::Error> {
        let mut counters = Vec::new();
        if self.accounts {
            counters.push(ACCOUNTS);
        }
        if self.groups {
            counters.push(GROUPS);
        }
        if self.online {
            counters.push(ONLINE);
        }
        if self.sanctions {
            counters.push(SANCTIONS);
        }
        if self.files {
            counters.push(FILES);
        }
        if self.failures {
            counters.push(FAILURES);
        }
        if !counters.is_empty() {
            tx.execute(
                "UPDATE heads SET head = head + 1 WHERE stream = ANY($1)",
                &[&counters],
            )?;
        }
        let Some(payload) = self.payload() else {
            return Ok(());
        };
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])?;
        Ok(())
    }

    /// The doorbell's text, if there is anything to say.
    fn payload(&self) -> Option<String> {
        let mut items: Vec<String> = Vec::new();
        if let Some(head) = self.heads.get(&PUBLIC) {
            items.push(format!("p:{head}"));
        }
        let mut users = String::new();
        for (stream, head) in self.heads.range(1..) {
            if !users.is_empty() {
                users.push(',');
            }
            let _ = write!(users, "{stream}:{head}");
        }
        if !users.is_empty() {
            items.push(format!("u:{users}"));
        }
        if items.iter().map(|i| i.len() + 1).sum::<usize>() > MAX_PAYLOAD {
            items = vec!["poll".into()];
        }
        if self.accounts {
            items.push("a".into());
        }
        if self.groups {
            items.push("g".into());
        }
        if self.online {
            items.push("o".into());
        }
        if self.sanctions {
            items.push("s".into());
        }
        if self.files {
            items.push("f".into());
        }
        if self.failures {
            items.push("x".into());
        }
        // Node ids have no ':' or ';' (`--node-id`); a payload too long
        // for them all loses only some reasons (said "connection lost"),
        // never a takeover.
        for (user, node) in &self.takeovers {
            items.push(format!("t:{user}:{node}"));
        }
        // A kick's reason is the operator's (at most a console line): it
        // always fits.
        for (user, reason) in &self.kicks {
            items.push(format!("k:{user}:{}", escape(reason)));
        }
        let mut length: usize = items.iter().map(|i| i.len() + 1).sum();
        for (user, reason) in &self.left {
            let item = format!("l:{user}:{}", reason.replace(';', ","));
            length += item.len() + 1;
            if length > MAX_PAYLOAD {
                break;
            }
            items.push(item);
        }
        // `delivered` is best effort (as to a sender offline): what does
        // not fit is dropped.
        let mut length: usize = items.iter().map(|i| i.len() + 1).sum();
        for d in &self.delivered {
            let item = format!(
                "d:{}:{}:{}:{}",
                self.here,
                d.sender,
                escape_field(&d.to),
                escape_field(&d.cid)
            );
            if length + item.len() + 1 > MAX_PAYLOAD {
                tracing::debug!("a delivered notice for user {} did not fit", d.sender);
                continue;
            }
            length += item.len() + 1;
            items.push(item);
        }
        (!items.is_empty()).then(|| items.join(";"))
    }
}

/// What a doorbell says, read back by the listener.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Rung {
    pub(super) heads: Vec<(Stream, u64)>,
    pub(super) poll: bool,
    pub(super) accounts: bool,
    pub(super) groups: bool,
    pub(super) online: bool,
    pub(super) left: Vec<(crate::store::UserId, String)>,
    pub(super) takeovers: Vec<(crate::store::UserId, String)>,
    pub(super) sanctions: bool,
    pub(super) kicks: Vec<(crate::store::UserId, String)>,
    pub(super) files: bool,
    pub(super) failures: bool,
    /// Receipts, and the node each was acknowledged on.
    pub(super) delivered: Vec<(String, Delivery)>,
}

/// A text made safe for an item: `%` and `;` as `%25` and `%3B`.
pub(super) fn escape(text: &str) -> String {
    text.replace('%', "%25").replace(';', "%3B")
}

/// A text made safe for a field of an item: [`escape`], `:` as `%3A`,
/// and NUL (which a PostgreSQL text cannot hold) as `%00`.
pub(super) fn escape_field(text: &str) -> String {
    escape(text).replace(':', "%3A").replace('\0', "%00")
}

/// [`escape`] or [`escape_field`] undone; `None` for a `%` that escapes
/// nothing they make.
pub(super) fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        out.push(match code {
            "25" => '%',
            "3B" => ';',
            "3A" => ':',
            "00" => '\0',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Reads a payload; anything it does not understand asks for a poll.
pub(super) fn parse(payload: &str) -> Rung {
    let mut rung = Rung::default();
    for item in payload.split(';') {
        match item.split_once(':') {
            None if item == "poll" => rung.poll = true,
            None if item == "a" => rung.accounts = true,
            None if item == "g" => rung.groups = true,
            None if item == "o" => rung.online = true,
            None if item == "s" => rung.sanctions = true,
            Some(("k", kick)) => match kick.split_once(':') {
                Some((user, reason)) => match (user.parse(), unescape(reason)) {
                    (Ok(user), Some(reason)) => rung.kicks.push((user, reason)),
                    _ => rung.poll = true,
                },
                None => rung.poll = true,
            },
            None if item == "f" => rung.files = true,
            None if item == "x" => rung.failures = true,
            Some(("d", receipt)) => match delivery(receipt) {
                Some(d) => rung.delivered.push(d),
                None => rung.poll = true,
            },
            Some(("l", left)) => match left.split_once(':') {
                Some((user, reason)) if user.parse::<i64>().is_ok() => rung
                    .left
                    .push((user.parse().expect("checked"), reason.to_string())),
                _ => rung.poll = true,
            },
            Some(("t", takeover)) => match takeover.split_once(':') {
                Some((user, node)) if user.parse::<i64>().is_ok() => rung
                    .takeovers
                    .push((user.parse().expect("checked"), node.to_string())),
                _ => rung.poll = true,
            },
            Some(("p", head)) => match head.parse() {
                Ok(head) => rung.heads.push((Stream::Public, head)),
                Err(_) => rung.poll = true,
            },
            Some(("u", users)) => {
                for pair in users.split(',') {
                    let parsed = pair
                        .split_once(':')
                        .and_then(|(u, h)| Some((u.parse().ok()?, h.parse().ok()?)));
                    match parsed {
                        Some((user, head)) => rung.heads.push((Stream::User(user), head)),
                        None => rung.poll = true,
                    }
                }
            }
            _ => rung.poll = true,
        }
    }
    rung
}

/// A `d` item's fields: the node, and the delivery.
fn delivery(receipt: &str) -> Option<(String, Delivery)> {
    let mut fields = receipt.split(':');
    let (node, sender, to, cid) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if fields.next().is_some() {
        return None;
    }
    let delivery = Delivery {
        sender: sender.parse().ok()?,
        cid: unescape(cid)?,
        to: unescape(to)?,
    };
    Some((node.to_string(), delivery))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_reads_back_as_it_was_rung() {
        let mut bell = Bell::default();
        bell.heads.insert(PUBLIC, 12);
        bell.heads.insert(3, 7);
        bell.heads.insert(9, 1);
        bell.accounts = true;
        let payload = bell.payload().unwrap();
        assert_eq!(payload, "p:12;u:3:7,9:1;a");
        assert_eq!(
            parse(&payload),
            Rung {
                heads: vec![
                    (Stream::Public, 12),
                    (Stream::User(3), 7),
                    (Stream::User(9), 1)
                ],
                poll: false,
                accounts: true,
                groups: false,
                ..Rung::default()
            }
        );
        let mut bell = Bell {
            online: true,
            ..Bell::default()
        };
        bell.left = vec![(4, "quit".into()), (5, "kicked: a;b".into())];
        bell.takeovers.push((6, "n2".into()));
        let payload = bell.payload().unwrap();
        assert_eq!(payload, "o;t:6:n2;l:4:quit;l:5:kicked: a,b");
        let rung = parse(&payload);
        assert!(rung.online && !rung.poll);
        assert_eq!(
            rung.left,
            vec![(4, "quit".to_string()), (5, "kicked: a,b".to_string())]
        );
        assert_eq!(rung.takeovers, vec![(6, "n2".to_string())]);
        assert_eq!(Bell::default().payload(), None, "nothing to ring");
        let bell = Bell {
            files: true,
            ..Bell::default()
        };
        assert_eq!(bell.payload().unwrap(), "f");
        assert!(parse("f").files && !parse("f").poll);
        let bell = Bell {
            failures: true,
            files: true,
            ..Bell::default()
        };
        assert_eq!(bell.payload().unwrap(), "f;x");
        assert!(parse("x").failures && !parse("x").poll);
    }

    #[test]
    fn sanctions_and_kicks_read_back_with_any_reason() {
        let reasons = ["spam", "a;b:c", "100% %3B;", "", "%"];
        let bell = Bell {
            sanctions: true,
            kicks: reasons
                .iter()
                .enumerate()
                .map(|(i, r)| (i as i64, r.to_string()))
                .collect(),
            ..Bell::default()
        };
        let payload = bell.payload().unwrap();
        assert!(payload.starts_with("s;k:0:spam;k:1:a%3Bb:c;"), "{payload}");
        let rung = parse(&payload);
        assert!(rung.sanctions && !rung.poll, "{rung:?}");
        assert_eq!(rung.kicks, bell.kicks);
        for bad in ["k:x:why", "k:1", "k:1:50%", "k:1:%zz"] {
            assert!(parse(bad).poll, "{bad}");
        }
    }

    #[test]
    fn too_many_heads_ring_poll_and_garbage_asks_for_one() {
        let mut bell = Bell::default();
        for user in 1..2000 {
            bell.heads.insert(user, 1_000_000);
        }
        bell.groups = true;
        assert_eq!(bell.payload().unwrap(), "poll;g");
        assert!(parse("p:x").poll);
        assert!(parse("what").poll);
        assert!(parse("u:1:2,3").poll);
    }

    #[test]
    fn delivered_notices_read_back_with_any_cid_and_overflow_is_dropped() {
        let cids = [
            "c-1",
            "a;b:c%d",
            "%3A%3B%25",
            "::;;%%",
            "c\0{0}\\",
            "",
            "ünï ☃ \\ \" ,",
            &"x;".repeat(32),
        ];
        let delivered: Vec<Delivery> = cids
            .iter()
            .enumerate()
            .map(|(i, cid)| Delivery {
                sender: i as i64 + 1,
                cid: cid.to_string(),
                to: ["bob", "b:o;b%", "☃"][i % 3].to_string(),
            })
            .collect();
        let mut bell = Bell {
            delivered: delivered.clone(),
            here: "n-1.a_b".into(),
            ..Bell::default()
        };
        bell.heads.insert(PUBLIC, 3);
        let payload = bell.payload().unwrap();
        assert!(!payload.contains('\0'), "PostgreSQL refuses a NUL");
        assert!(payload.starts_with("p:3;d:n-1.a_b:1:bob:c-1;"), "{payload}");
        let rung = parse(&payload);
        assert!(!rung.poll, "{payload}");
        assert_eq!(rung.heads, vec![(Stream::Public, 3)]);
        let want: Vec<(String, Delivery)> = delivered
            .iter()
            .map(|d| ("n-1.a_b".to_string(), d.clone()))
            .collect();
        assert_eq!(rung.delivered, want);
        for bad in [
            "d:n1:x:bob:c",
            "d:n1:1:bob",
            "d:n1:1:bob:c:d",
            "d:n1:1:bob:%zz",
        ] {
            assert!(parse(bad).poll, "{bad}");
        }

        // A batch of receipts too long for one doorbell: the heads and as
        // many receipts as fit go, the rest are dropped.
        let mut bell = Bell {
            delivered: (0..200)
                .map(|i| Delivery {
                    sender: i,
                    cid: ";".repeat(64),
                    to: "bob".into(),
                })
                .collect(),
            here: "n1".into(),
            ..Bell::default()
        };
        bell.heads.insert(PUBLIC, 9);
        bell.heads.insert(4, 2);
        let payload = bell.payload().unwrap();
        assert!(payload.len() <= MAX_PAYLOAD, "{}", payload.len());
        let rung = parse(&payload);
        assert_eq!(rung.heads, vec![(Stream::Public, 9), (Stream::User(4), 2)]);
        assert!(!rung.poll);
        let kept = rung.delivered.len();
        assert!((30..200).contains(&kept), "{kept} of 200 kept");
        assert_eq!(rung.delivered[kept - 1].1.sender, kept as i64 - 1);
    }
}
