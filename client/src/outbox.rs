//! The outbox: every message typed, under its client message id (`cid`),
//! kept until the server acknowledges it, so that a connection lost before
//! the `ack` loses nothing: the messages are sent again, with the same
//! `cid`, after the next welcome, and the server drops what it already has.
//!
//! Acknowledged private messages are remembered a while longer (a bounded
//! number of them) so that a later `delivered` frame can be matched to the
//! message's number.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};

/// How many acknowledged private messages wait for their `delivered` frame
/// before the oldest is forgotten (its `delivered` is then shown without
/// its number).
const REMEMBER_STORED: usize = 10_000;

/// A message typed and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Shown to the person as `#number`; the counter in the `cid`.
    pub number: u64,
    pub cid: String,
    /// `*` for everyone, else a nickname.
    pub receiver: String,
    pub text: String,
    /// The request id it was sent under on the current connection; `None`
    /// while it waits for a connection (typed while disconnected, or sent
    /// on a connection that has since been lost).
    pub sent: Option<u64>,
    /// A `delivered` frame came before the `ack` (which was lost with a
    /// connection, the resend's `ack` is still to come): states only move
    /// forward, so its `ack` says nothing new.
    pub delivered: bool,
}

/// An acknowledged private message, waiting for `delivered`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub number: u64,
    pub receiver: String,
}

/// Messages in the order typed, until acknowledged.
#[derive(Debug)]
pub struct Outbox {
    /// Random per process, so two processes of one account (a restarted
    /// client, a second terminal) never reuse each other's ids.
    prefix: String,
    next: u64,
    queue: VecDeque<Entry>,
    stored: HashMap<String, Stored>,
    /// `stored`'s keys, oldest first, to forget the oldest (with some
    /// already delivered, skipped when met).
    stored_order: VecDeque<String>,
}

impl Outbox {
    /// An outbox whose ids start with `prefix`.
    pub fn new(prefix: &str) -> Self {
        Outbox {
            prefix: prefix.to_string(),
            next: 1,
            queue: VecDeque::new(),
            stored: HashMap::new(),
            stored_order: VecDeque::new(),
        }
    }

    /// An outbox with a random prefix of 8 base-36 characters.
    pub fn random() -> Self {
        let mut n = random_u64();
        let prefix: String = (0..8)
            .map(|_| {
                let digit = (n % 36) as u32;
                n /= 36;
                char::from_digit(digit, 36).expect("a base-36 digit")
            })
            .collect();
        Outbox::new(&prefix)
    }

    /// Takes a new message; returns its entry (not yet sent).
    pub fn push(&mut self, receiver: String, text: String) -> &Entry {
        let number = self.next;
        self.next += 1;
        self.queue.push_back(Entry {
            number,
            cid: format!("{}-{number}", self.prefix),
            receiver,
            text,
            sent: None,
            delivered: false,
        });
        self.queue.back().expect("just pushed")
    }

    /// Whether every message has been acknowledged.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// The messages not acknowledged, in the order typed.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.queue.iter()
    }

    /// Records that `cid` went out as request `id`.
    pub fn sent(&mut self, cid: &str, id: u64) {
        if let Some(entry) = self.queue.iter_mut().find(|e| e.cid == cid) {
            entry.sent = Some(id);
        }
    }

    /// The messages waiting to be sent, in the order typed: after a
    /// reconnect, all of them.
    pub fn unsent(&self) -> Vec<Entry> {
        self.queue
            .iter()
            .filter(|e| e.sent.is_none())
            .cloned()
            .collect()
    }

    /// The connection is gone: nothing is on its way any more.
    pub fn disconnected(&mut self) {
        for entry in &mut self.queue {
            entry.sent = None;
        }
    }

    /// The server acknowledged `cid`: it leaves the outbox. A private
    /// message is remembered for its `delivered` frame.
    pub fn acked(&mut self, cid: &str) -> Option<Entry> {
        let entry = self.remove(cid)?;
        if entry.receiver != chat_common::EVERYONE && !entry.delivered {
            while self.stored.len() >= REMEMBER_STORED {
                match self.stored_order.pop_front() {
                    Some(oldest) => self.stored.remove(&oldest),
                    None => break,
                };
            }
            // Delivered ids stay in the order until here: drop them now
            // and then, so the order stays as small as the map.
            if self.stored_order.len() > 2 * REMEMBER_STORED {
                let stored = &self.stored;
                self.stored_order.retain(|cid| stored.contains_key(cid));
            }
            self.stored_order.push_back(entry.cid.clone());
            self.stored.insert(
                entry.cid.clone(),
                Stored {
                    number: entry.number,
                    receiver: entry.receiver.clone(),
                },
            );
        }
        Some(entry)
    }

    /// The server refused `cid`: it leaves the outbox for good.
    pub fn refused(&mut self, cid: &str) -> Option<Entry> {
        self.remove(cid)
    }

    /// A `delivered` frame for `cid`: the message, if this process sent it
    /// and still remembers it. Each is delivered once.
    pub fn delivered(&mut self, cid: &str) -> Option<Stored> {
        if let Some(stored) = self.stored.remove(cid) {
            return Some(stored);
        }
        let entry = self
            .queue
            .iter_mut()
            .find(|e| e.cid == cid && !e.delivered)?;
        entry.delivered = true;
        Some(Stored {
            number: entry.number,
            receiver: entry.receiver.clone(),
        })
    }

    /// Whether `cid` was acknowledged and waits for `delivered`.
    pub fn is_stored(&self, cid: &str) -> bool {
        self.stored.contains_key(cid)
    }

    fn remove(&mut self, cid: &str) -> Option<Entry> {
        let at = self.queue.iter().position(|e| e.cid == cid)?;
        self.queue.remove(at)
    }
}

/// 64 random bits from the standard library's per-process hash keys
/// (each `RandomState` gets new ones), mixed with the time and process id:
/// enough for ids and jitter, without a dependency.
pub fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> String {
        text.to_string()
    }

    #[test]
    fn ids_are_prefixed_and_counted() {
        let mut outbox = Outbox::new("k3v9");
        assert_eq!(outbox.push(s("*"), s("a")).cid, "k3v9-1");
        let second = outbox.push(s("bob"), s("b")).clone();
        assert_eq!((second.number, second.cid.as_str()), (2, "k3v9-2"));
        assert_eq!(second.sent, None);
        let a = Outbox::random().push(s("*"), s("x")).cid.clone();
        let b = Outbox::random().push(s("*"), s("x")).cid.clone();
        assert_ne!(a, b, "two processes, two prefixes");
        assert!(a.len() <= chat_common::protocol::MAX_CID, "{a}");
    }

    /// After a lost connection everything not acknowledged is sent again,
    /// in the order typed, whether it had gone out or not.
    #[test]
    fn resend_keeps_the_typing_order() {
        let mut outbox = Outbox::new("p");
        for text in ["one", "two", "three", "four"] {
            outbox.push(s("bob"), s(text));
        }
        outbox.sent("p-1", 10);
        outbox.sent("p-2", 11);
        outbox.sent("p-3", 12);
        let waiting: Vec<_> = outbox.unsent().into_iter().map(|e| e.text).collect();
        assert_eq!(waiting, ["four"]);
        assert_eq!(outbox.acked("p-2").map(|e| e.number), Some(2));
        outbox.disconnected();
        let again: Vec<_> = outbox.unsent().into_iter().map(|e| e.cid).collect();
        assert_eq!(again, ["p-1", "p-3", "p-4"]);
        assert_eq!(outbox.len(), 3);
    }

    #[test]
    fn acked_private_messages_wait_for_delivered_once() {
        let mut outbox = Outbox::new("p");
        outbox.push(s("bob"), s("hi"));
        outbox.push(s("*"), s("all"));
        assert!(outbox.acked("p-1").is_some());
        assert!(outbox.acked("p-1").is_none(), "acknowledged once");
        assert!(outbox.acked("p-2").is_some());
        assert!(outbox.is_empty());
        assert!(
            !outbox.is_stored("p-2"),
            "public messages are not delivered"
        );
        assert_eq!(
            outbox.delivered("p-1"),
            Some(Stored {
                number: 1,
                receiver: s("bob")
            })
        );
        assert_eq!(outbox.delivered("p-1"), None);
        assert_eq!(outbox.delivered("other-7"), None);
    }

    /// The `ack` lost with a connection, `delivered` can come before the
    /// resend's `ack`: it is shown once, and the `ack` adds nothing.
    #[test]
    fn delivered_before_the_ack() {
        let mut outbox = Outbox::new("p");
        outbox.push(s("bob"), s("hi"));
        assert_eq!(outbox.delivered("p-1").map(|s| s.number), Some(1));
        assert_eq!(outbox.delivered("p-1"), None);
        let entry = outbox.acked("p-1").unwrap();
        assert!(entry.delivered);
        assert!(!outbox.is_stored("p-1"));
    }

    #[test]
    fn refused_messages_leave() {
        let mut outbox = Outbox::new("p");
        outbox.push(s("nobody"), s("hi"));
        assert!(outbox.refused("p-1").is_some());
        assert!(outbox.is_empty());
        assert!(!outbox.is_stored("p-1"));
    }

    #[test]
    fn the_oldest_stored_is_forgotten() {
        let mut outbox = Outbox::new("p");
        for i in 0..=REMEMBER_STORED {
            let cid = outbox.push(s("bob"), format!("{i}")).cid.clone();
            outbox.acked(&cid);
        }
        assert!(!outbox.is_stored("p-1"));
        assert!(outbox.is_stored("p-2"));
        assert!(outbox.is_stored(&format!("p-{}", REMEMBER_STORED + 1)));
    }
}
