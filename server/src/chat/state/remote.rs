//! Who is online on the other nodes of a cluster: a replica of the
//! store's `online` table without this node's rows, replaced whenever the
//! cluster listener reloads it. Its changes become presence lines, merged
//! into this node's interval like local ones; the online lists (`welcome`,
//! `online` with its away texts, `/stats`) are this node's users and these,
//! by folded name.
//! On SQLite it stays empty.

use std::collections::BTreeMap;

use super::{fold, ChatState, Deliver};
use crate::store::{Remote, UserId};

impl ChatState {
    /// The listener read who is online elsewhere; `left`: users whose own
    /// node said why they left (the others went with their node).
    pub(super) fn remote_online(&mut self, users: Vec<Remote>, left: Vec<(UserId, String)>) {
        let new: BTreeMap<String, Remote> = users.into_iter().map(|r| (fold(&r.nick), r)).collect();
        for (key, old) in &self.remote {
            if !new.contains_key(key) && !self.nicks.contains_key(key) {
                let why = left
                    .iter()
                    .rfind(|(user, _)| *user == old.user)
                    .map_or("connection lost", |(_, why)| why.as_str());
                self.presence.left(old.nick.clone(), why);
            }
        }
        for (key, user) in &new {
            if !self.remote.contains_key(key) && !self.nicks.contains_key(key) {
                self.presence.joined(&user.nick);
            }
        }
        self.remote = new;
    }

    /// `user` logged in on `node`, another node: its session here closes
    /// as a takeover does, and nobody is told (the user has not left).
    pub(super) fn taken_over_elsewhere(&mut self, user: UserId, out: &mut impl Deliver) {
        let Some(&conn) = self.online.get(&user) else {
            return;
        };
        let nick = self.accounts.nick(user).to_string();
        // Until the replica shows it there: not an arrival when it does.
        self.remote.entry(fold(&nick)).or_insert(Remote {
            user,
            nick,
            node: String::new(),
            away: None,
        });
        self.take_over(conn, out);
    }

    /// Whether `user` is online on this node or another (for `away`, an
    /// ack's `offline`, a group's online members).
    pub(super) fn is_online(&self, user: UserId) -> bool {
        self.online.contains_key(&user)
            || (!self.remote.is_empty()
                && self
                    .remote
                    .get(&fold(self.accounts.nick(user)))
                    .is_some_and(|r| r.user == user))
    }

    /// Whether `nick` is online on another node.
    pub(super) fn is_remote(&self, nick: &str) -> bool {
        self.remote.contains_key(&fold(nick))
    }

    /// Everyone online in the cluster, in folded order: (folded name, the
    /// name as spelled, the node if another).
    pub(super) fn everyone(&self) -> impl Iterator<Item = (&str, String, Option<&str>)> + '_ {
        let mut local = self
            .nicks
            .iter()
            .filter_map(|(k, c)| Some((k.as_str(), self.sessions.get(c)?.nick.clone()?)))
            .peekable();
        let mut remote = self
            .remote
            .iter()
            .filter(|(k, _)| !self.nicks.contains_key(*k))
            .peekable();
        std::iter::from_fn(move || match (local.peek(), remote.peek()) {
            (Some((l, _)), Some((r, _))) if *l > r.as_str() => {
                let (k, r) = remote.next()?;
                Some((k.as_str(), r.nick.clone(), Some(r.node.as_str())))
            }
            (Some(_), _) => local.next().map(|(k, n)| (k, n, None)),
            (None, Some(_)) => {
                let (k, r) = remote.next()?;
                Some((k.as_str(), r.nick.clone(), Some(r.node.as_str())))
            }
            (None, None) => None,
        })
    }

    /// How many are online in the cluster.
    pub(super) fn online_count(&self) -> usize {
        self.nicks.len()
            + self
                .remote
                .keys()
                .filter(|k| !self.nicks.contains_key(*k))
                .count()
    }
}
