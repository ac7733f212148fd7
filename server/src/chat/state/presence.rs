//! Coalesced presence: who came and went since the last `presence` frame,
//! so that a crowd arriving costs everyone one line per interval, not one
//! line per arrival (10,000 arrivals would otherwise be 50 million lines).

use std::collections::BTreeMap;

use chat_common::protocol::PRESENCE_NAMES;
use chat_common::{Departure, ServerFrame};

use crate::chat::state::fold;

/// A change not yet announced.
#[derive(Debug)]
enum Change {
    Joined(String),
    /// `announced`: whether everyone had been told this user was here.
    Left {
        departure: Departure,
        announced: bool,
    },
}

/// Changes since the last frame, by folded nickname: the latest change
/// wins, and a return after a departure of someone announced (a reconnect)
/// cancels it.
#[derive(Debug, Default)]
pub struct Presence {
    pending: BTreeMap<String, Change>,
}

impl Presence {
    pub fn joined(&mut self, nick: &str) {
        let key = fold(nick);
        if let Some(Change::Left {
            announced: true, ..
        }) = self.pending.get(&key)
        {
            // An announced user dropped and came back before anyone was
            // told: a reconnect, nothing to say.
            self.pending.remove(&key);
        } else {
            // New, or came, went and came back unannounced: an arrival.
            self.pending.insert(key, Change::Joined(nick.to_string()));
        }
    }

    /// Someone who came and went within one interval is reported as gone,
    /// which says both: people saw their messages and should know they left.
    pub fn left(&mut self, nick: String, reason: &str) {
        let key = fold(&nick);
        let announced = !matches!(self.pending.get(&key), Some(Change::Joined(_)));
        let departure = Departure {
            nick,
            reason: reason.to_string(),
        };
        self.pending.insert(
            key,
            Change::Left {
                departure,
                announced,
            },
        );
    }

    /// A kick is announced by its own frame; an arrival nobody was told of
    /// yet must not be announced after it.
    pub fn kicked(&mut self, nick: &str) {
        let key = fold(nick);
        if let Some(Change::Joined(_)) = self.pending.get(&key) {
            self.pending.remove(&key);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The frame announcing everything pending (and forgetting it): the
    /// first names on each side, sorted, and how many more.
    pub fn take_frame(&mut self) -> Option<ServerFrame> {
        if self.pending.is_empty() {
            return None;
        }
        let (mut joined, mut left) = (Vec::new(), Vec::new());
        let (mut joined_more, mut left_more) = (0u32, 0u32);
        for change in std::mem::take(&mut self.pending).into_values() {
            match change {
                Change::Joined(nick) if joined.len() < PRESENCE_NAMES => joined.push(nick),
                Change::Joined(_) => joined_more += 1,
                Change::Left { departure, .. } if left.len() < PRESENCE_NAMES => {
                    left.push(departure)
                }
                Change::Left { .. } => left_more += 1,
            }
        }
        Some(ServerFrame::Presence {
            joined,
            joined_more,
            left,
            left_more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Step {
        Join(&'static str),
        Leave(&'static str, &'static str),
        Kick(&'static str),
        /// A frame is sent here (and whatever it said is announced).
        Flush,
    }
    use Step::*;

    /// What a frame announced: joined names, and (nick, reason) departures.
    type Announced = Option<(Vec<String>, Vec<(String, String)>)>;

    /// The frame after `steps`.
    fn after(steps: &[Step]) -> Announced {
        let mut presence = Presence::default();
        for step in steps {
            match step {
                Join(nick) => presence.joined(nick),
                Leave(nick, why) => presence.left(nick.to_string(), why),
                Kick(nick) => presence.kicked(nick),
                Flush => drop(presence.take_frame()),
            }
        }
        match presence.take_frame()? {
            ServerFrame::Presence { joined, left, .. } => Some((
                joined,
                left.into_iter().map(|d| (d.nick, d.reason)).collect(),
            )),
            other => panic!("{other:?}"),
        }
    }

    fn names(joined: &[&str], left: &[(&str, &str)]) -> Announced {
        Some((
            joined.iter().map(|n| n.to_string()).collect(),
            left.iter()
                .map(|(n, r)| (n.to_string(), r.to_string()))
                .collect(),
        ))
    }

    #[test]
    fn what_one_interval_of_changes_announces() {
        let cases: Vec<(&str, Vec<Step>, _)> = vec![
            ("nothing", vec![], None),
            ("an arrival", vec![Join("ann")], names(&["ann"], &[])),
            (
                "sorted by folded name",
                vec![Join("bob"), Join("Ann")],
                names(&["Ann", "bob"], &[]),
            ),
            (
                "came and went: gone",
                vec![Join("ann"), Leave("ann", "quit")],
                names(&[], &[("ann", "quit")]),
            ),
            (
                "a reconnect: nothing",
                vec![
                    Join("ann"),
                    Flush,
                    Leave("ann", "connection lost"),
                    Join("Ann"),
                ],
                None,
            ),
            (
                "came, dropped, came back: an arrival",
                vec![Join("ann"), Leave("ann", "connection lost"), Join("ann")],
                names(&["ann"], &[]),
            ),
            (
                "left twice: the last reason",
                vec![
                    Join("ann"),
                    Flush,
                    Leave("ann", "quit"),
                    Join("ann"),
                    Flush,
                    Leave("ann", "connection lost"),
                ],
                names(&[], &[("ann", "connection lost")]),
            ),
            (
                "a kick before the arrival was told",
                vec![Join("ann"), Kick("ann")],
                None,
            ),
            (
                "a kick after it was told",
                vec![Join("ann"), Flush, Kick("ann")],
                None,
            ),
        ];
        for (what, steps, want) in cases {
            assert_eq!(after(&steps), want, "{what}");
        }
    }

    #[test]
    fn a_crowd_is_listed_then_counted() {
        let mut presence = Presence::default();
        for i in 0..PRESENCE_NAMES + 7 {
            presence.joined(&format!("u{i:03}"));
        }
        presence.left("gone".into(), "quit");
        let Some(ServerFrame::Presence {
            joined,
            joined_more,
            left,
            left_more,
        }) = presence.take_frame()
        else {
            panic!()
        };
        assert_eq!((joined.len(), joined_more), (PRESENCE_NAMES, 7));
        assert_eq!((left.len(), left_more), (1, 0));
        assert!(presence.is_empty());
    }
}
