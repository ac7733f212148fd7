//! Who is online, as last told by the server, and whom we have written
//! with: written by the network thread, read by the completer.

use std::sync::Arc;

use parking_lot::Mutex;

/// The roster shared between the network thread and the line editor.
pub type SharedRoster = Arc<Mutex<Roster>>;

/// Our own nickname and everyone online, sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Roster {
    pub me: Option<String>,
    online: Vec<String>,
    /// The server only counted some arrivals or departures (a crowd, or a
    /// welcome to a big room), so `online` is not the whole list. It is
    /// fetched again only when completion needs nicknames: every client
    /// refreshing after every crowd would cost the server an `online`
    /// answer per person per presence frame.
    pub stale: bool,
    /// People we exchanged private messages with in this process, online
    /// or not (sorted): `!history <nick>` and `!private` are often about
    /// someone who is away.
    seen: Vec<String>,
    /// The groups we are in (`#name`, sorted), as the welcome, `!group`
    /// answers and group messages told: completion offers them.
    groups: Vec<String>,
    /// File offers not yet answered (their numbers, sorted), for
    /// `!accept` and `!reject`.
    pub offers: Vec<u64>,
}

impl Roster {
    pub fn online(&self) -> &[String] {
        &self.online
    }

    pub fn set(&mut self, users: &[String]) {
        self.online = users.to_vec();
        self.online.sort();
        self.online.dedup();
    }

    pub fn add(&mut self, nick: &str) {
        if let Err(at) = self.online.binary_search_by(|n| n.as_str().cmp(nick)) {
            self.online.insert(at, nick.to_string());
        }
    }

    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    pub fn set_groups(&mut self, groups: &[String]) {
        self.groups = groups.to_vec();
        self.groups.sort();
        self.groups.dedup();
    }

    pub fn add_group(&mut self, group: &str) {
        if let Err(at) = self.groups.binary_search_by(|g| g.as_str().cmp(group)) {
            self.groups.insert(at, group.to_string());
        }
    }

    pub fn remove_group(&mut self, group: &str) {
        self.groups.retain(|g| g != group);
    }

    /// Remembers a correspondent.
    pub fn saw(&mut self, nick: &str) {
        if let Err(at) = self.seen.binary_search_by(|n| n.as_str().cmp(nick)) {
            self.seen.insert(at, nick.to_string());
        }
    }

    /// Everyone online and everyone seen, sorted, once each.
    pub fn known(&self) -> Vec<&String> {
        let mut all: Vec<&String> = self.online.iter().chain(&self.seen).collect();
        all.sort();
        all.dedup();
        all
    }

    pub fn remove(&mut self, nick: &str) {
        if let Ok(at) = self.online.binary_search_by(|n| n.as_str().cmp(nick)) {
            self.online.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_sorted_and_unique() {
        let mut r = Roster::default();
        r.set(&["carol".into(), "alice".into(), "carol".into()]);
        r.add("bob");
        r.add("alice");
        assert_eq!(r.online(), ["alice", "bob", "carol"]);
        r.remove("bob");
        r.remove("nobody");
        assert_eq!(r.online(), ["alice", "carol"]);
        r.saw("bob");
        r.saw("carol");
        r.saw("bob");
        assert_eq!(r.known(), ["alice", "bob", "carol"]);
        assert_eq!(r.online(), ["alice", "carol"]);
    }
}
