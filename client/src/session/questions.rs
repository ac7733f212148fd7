//! Questions to the server — who is online, history, search — asked now
//! or, without a connection, after the next welcome; and their answers.

use std::collections::BTreeMap;

use chat_common::protocol::DEFAULT_HISTORY;
use chat_common::{Request, Stored};

use super::{Notice, Pending, Query, Session, Update};

impl Session {
    /// A question (`online`, `history`, `search`): asked now if logged in,
    /// else after the next welcome.
    pub(super) fn ask(&mut self, what: Pending) -> Option<Request> {
        if !self.online {
            self.questions.push(what);
            return None;
        }
        Some(self.question(what))
    }

    pub(super) fn question(&mut self, what: Pending) -> Request {
        let request = |id| match &what {
            Pending::History {
                query: Query::Search { words, from },
                limit,
            } => Request::Search {
                id,
                words: words.clone(),
                from: from.clone(),
                limit: limit.unwrap_or(DEFAULT_HISTORY),
            },
            Pending::History { query, limit } => Request::History {
                id,
                with: match query {
                    Query::With(nick) => Some(nick.clone()),
                    _ => None,
                },
                limit: limit.unwrap_or(DEFAULT_HISTORY),
            },
            Pending::Group(op) => op.request(id),
            Pending::Away { text, .. } => Request::Away {
                id,
                text: text.clone(),
            },
            _ => Request::Online { id },
        };
        let id = self.track(what.clone());
        request(id)
    }

    pub fn online(&mut self) -> Option<Request> {
        self.ask(Pending::Online)
    }

    /// `!away [text]`: sent now, or after the next welcome.
    pub fn away(&mut self, text: Option<String>) -> Option<Request> {
        self.ask(Pending::Away { text, again: false })
    }

    /// After a reconnect: the away text again, quietly, as the new login
    /// is back; unless an `!away` typed meanwhile is about to say it.
    pub(super) fn away_again(&mut self) -> Option<Request> {
        let typed = self
            .questions
            .iter()
            .any(|q| matches!(q, Pending::Away { .. }));
        let text = self.away.clone().filter(|_| !typed)?;
        Some(self.question(Pending::Away {
            text: Some(text),
            again: true,
        }))
    }

    /// `!history [nick] [N]`.
    pub fn history(&mut self, with: Option<String>, limit: Option<u32>) -> Option<Request> {
        if let Some(nick) = &with {
            self.roster.lock().saw(nick);
        }
        let query = with.map_or(Query::Public, Query::With);
        self.ask(Pending::History { query, limit })
    }

    /// `!search <words> [from:nick]`.
    pub fn search(&mut self, words: String, from: Option<String>) -> Option<Request> {
        self.ask(Pending::History {
            query: Query::Search { words, from },
            limit: None,
        })
    }

    /// A quiet `online` request, answered silently into the roster, if the
    /// roster is stale and no such request is already on its way.
    pub fn refresh(&mut self) -> Option<Request> {
        let refreshing = self.pending.values().any(|p| *p == Pending::Refresh);
        if !self.online || refreshing || !self.roster.lock().stale {
            return None;
        }
        Some(Request::Online {
            id: self.track(Pending::Refresh),
        })
    }

    /// The answer to `online`, whoever asked: the roster is current.
    pub(super) fn on_online(
        &mut self,
        id: u64,
        users: Vec<String>,
        away: BTreeMap<String, String>,
    ) -> Vec<Update> {
        let silent = self.pending.remove(&id) == Some(Pending::Refresh);
        {
            let mut roster = self.roster.lock();
            roster.set(&users);
            roster.stale = false;
        }
        if silent {
            vec![]
        } else {
            vec![Update::Show(Notice::Online { users, away })]
        }
    }

    /// The answer to `!history` or `!search`: a title, then one line each.
    pub(super) fn on_history(&mut self, id: u64, messages: Vec<Stored>) -> Vec<Update> {
        let what = self.pending.remove(&id);
        let query = match what {
            Some(Pending::History { query, .. }) => query,
            _ => Query::Public,
        };
        let me = self.me.clone().unwrap_or_default();
        let mut updates = vec![Update::Show(Notice::HistoryStart {
            query,
            count: messages.len(),
        })];
        updates.extend(messages.into_iter().map(|m| {
            Update::Show(Notice::Past {
                sender: m.sender,
                receiver: m.receiver,
                text: m.text,
                time: m.time,
                me: me.clone(),
            })
        }));
        updates
    }
}

#[cfg(test)]
mod tests {
    use chat_common::{Request, ServerFrame, Stored};

    use crate::session::testing::{ack, logged_in, s, say, sent, welcome};
    use crate::session::{Notice, Query, Update};

    /// Questions lost with a connection, or asked without one, are asked
    /// after the next welcome, after the outbox.
    #[test]
    fn questions_are_asked_again_after_a_reconnect() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        assert!(session.history(Some(s("bob")), Some(5)).is_some());
        say(&mut session, "*", "hi");
        session.disconnected();
        assert_eq!(session.search(s("exam"), Some(s("prof"))), None);
        assert_eq!(session.online(), None);
        let login = session.relogin().unwrap();
        let updates = session.on_frame(welcome(login.id().unwrap(), "alice", &["alice"]));
        let requests = sent(&updates);
        assert!(
            matches!(requests[0], Request::Message { .. }),
            "{requests:?}"
        );
        assert!(
            matches!(&requests[1], Request::History { with: Some(w), limit: 5, .. } if w == "bob"),
            "{requests:?}"
        );
        assert!(
            matches!(&requests[2], Request::Search { words, from: Some(f), limit: 20, .. } if words == "exam" && f == "prof"),
            "{requests:?}"
        );
        assert!(matches!(requests[3], Request::Online { .. }));
        assert_eq!(requests.len(), 4);
    }

    #[test]
    fn history_answers_are_titled_and_listed() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let id = session.search(s("exam"), None).unwrap().id().unwrap();
        let stored = Stored {
            sender: s("prof"),
            receiver: s("*"),
            text: s("exam on monday"),
            time: 9,
        };
        let updates = session.on_frame(ServerFrame::History {
            id,
            messages: vec![stored],
        });
        assert_eq!(
            updates,
            [
                Update::Show(Notice::HistoryStart {
                    query: Query::Search {
                        words: s("exam"),
                        from: None
                    },
                    count: 1
                }),
                Update::Show(Notice::Past {
                    sender: s("prof"),
                    receiver: s("*"),
                    text: s("exam on monday"),
                    time: 9,
                    me: s("alice")
                })
            ]
        );
        assert!(!session.is_waiting());
    }

    #[test]
    fn a_crowd_makes_the_roster_stale_and_one_quiet_refresh_fixes_it() {
        let (mut session, roster) = logged_in("alice", &["alice"]);
        assert_eq!(session.refresh(), None, "a complete roster needs none");
        let crowd = ServerFrame::Presence {
            joined: vec![s("bob")],
            joined_more: 30,
            left: vec![],
            left_more: 0,
        };
        // Nothing is asked on the crowd's account: only completion asks.
        session.on_frame(crowd.clone());
        assert!(!session.is_waiting());
        assert!(roster.lock().stale);
        let Some(Request::Online { id }) = session.refresh() else {
            panic!("expected a refresh");
        };
        assert_eq!(session.refresh(), None, "one at a time");
        session.on_frame(crowd);
        assert_eq!(session.refresh(), None, "still one at a time");
        let everyone: Vec<String> = (0..32).map(|i| format!("u{i}")).collect();
        let answer = ServerFrame::Online {
            id,
            users: everyone.clone(),
            away: Default::default(),
        };
        assert_eq!(session.on_frame(answer), vec![], "answered silently");
        assert_eq!(roster.lock().online().len(), 32);
        assert!(!roster.lock().stale);
        assert_eq!(session.refresh(), None);
    }

    /// `!away` says so once stored, and lasts across a reconnect: the new
    /// login is back, so the client says it again, quietly.
    #[test]
    fn away_is_said_and_said_again_after_a_reconnect() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let Some(Request::Away { id, text }) = session.away(Some(s("at lunch"))) else {
            panic!("an away request");
        };
        assert_eq!(text.as_deref(), Some("at lunch"));
        assert_eq!(
            session.on_frame(ack(id)),
            [Update::Show(Notice::Away {
                text: Some(s("at lunch"))
            })]
        );
        session.disconnected();
        let Some(Request::Login { id, .. }) = session.relogin() else {
            panic!("a relogin");
        };
        let updates = session.on_frame(welcome(id, "alice", &["alice"]));
        let [Request::Away { id, text }] = &sent(&updates)[..] else {
            panic!("the away again: {updates:?}");
        };
        assert_eq!(text.as_deref(), Some("at lunch"));
        assert_eq!(session.on_frame(ack(*id)), [], "quietly");
        // Back: nothing to say again.
        let Some(Request::Away { id, text: None }) = session.away(None) else {
            panic!("a back request");
        };
        assert_eq!(
            session.on_frame(ack(id)),
            [Update::Show(Notice::Away { text: None })]
        );
        session.disconnected();
        let Some(Request::Login { id, .. }) = session.relogin() else {
            panic!("a relogin");
        };
        assert_eq!(
            sent(&session.on_frame(welcome(id, "alice", &["alice"]))),
            []
        );
    }
}
