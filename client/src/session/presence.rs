//! Who comes and goes: the roster kept current, arrivals and departures
//! said (our own arrival was the welcome), a kick told.

use chat_common::Departure;

use super::{Ending, Notice, Session, Update};

impl Session {
    /// Who came and went: keeps the roster current and says it.
    pub(super) fn on_presence(
        &mut self,
        mut joined: Vec<String>,
        joined_more: u32,
        left: Vec<Departure>,
        left_more: u32,
    ) -> Vec<Update> {
        {
            let mut roster = self.roster.lock();
            for departure in &left {
                roster.remove(&departure.nick);
            }
            for nick in &joined {
                roster.add(nick);
            }
            // A crowd is only counted: completion will ask for the list.
            if joined_more > 0 || left_more > 0 {
                roster.stale = true;
            }
        }
        let mut updates = Vec::new();
        // Our own arrival was the welcome.
        joined.retain(|nick| Some(nick) != self.me.as_ref());
        if !joined.is_empty() || joined_more > 0 {
            updates.push(Update::Show(Notice::Joined {
                nicks: joined,
                more: joined_more,
            }));
        }
        if !left.is_empty() || left_more > 0 {
            updates.push(Update::Show(Notice::Left {
                departures: left,
                more: left_more,
            }));
        }
        updates
    }

    /// Someone was kicked: us, and the session is over.
    pub(super) fn on_kicked(&mut self, nick: String, reason: String) -> Vec<Update> {
        self.roster.lock().remove(&nick);
        let me = self.me.as_deref() == Some(nick.as_str());
        let mut updates = vec![Update::Show(Notice::Kicked { nick, reason })];
        if me {
            updates.push(Update::Ended(Ending::Kicked));
        }
        updates
    }
}

#[cfg(test)]
mod tests {
    use chat_common::{Departure, ServerFrame};

    use crate::roster::Roster;
    use crate::session::testing::{logged_in, s};
    use crate::session::{Notice, Update};

    #[test]
    fn roster_follows_events() {
        let (mut session, roster) = logged_in("alice", &["bob", "alice"]);
        let updates = session.on_frame(ServerFrame::Presence {
            joined: vec![s("carol"), s("alice")],
            joined_more: 0,
            left: vec![Departure {
                nick: s("bob"),
                reason: s("quit"),
            }],
            left_more: 0,
        });
        // Our own name is not news to us.
        assert_eq!(
            updates[0],
            Update::Show(Notice::Joined {
                nicks: vec![s("carol")],
                more: 0
            })
        );
        let mut want = Roster::default();
        want.me = Some(s("alice"));
        want.set(&[s("alice"), s("carol")]);
        assert_eq!(*roster.lock(), want);
        let updates = session.on_frame(ServerFrame::Kicked {
            nick: s("carol"),
            reason: s("spam"),
        });
        assert_eq!(updates.len(), 1);
        assert_eq!(roster.lock().online(), [s("alice")]);
    }
}
