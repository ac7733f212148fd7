//! The status in interactive mode's prompt: who we are, whether the
//! connection is being re-established, whether we said we are away, and
//! how many private messages came that the prompt has not shown yet:
//! `alice [2 private] >> `, `alice (reconnecting) >> `.

use crate::render::names;
use crate::session::Notice;

/// Whether `notice` wants the user's attention (highlighted, and the bell
/// unless it was caught up): a private message, or a message by someone
/// else that names `me` as a word. The second is `true` for one caught up
/// (that came while we were away), which rings no bell.
pub fn attention(notice: &Notice, me: Option<&str>) -> (bool, bool) {
    let named = |text: &str| me.is_some_and(|me| names(text, me));
    match notice {
        Notice::PrivateFrom { away, .. } => (true, *away),
        Notice::Public {
            text, own, away, ..
        }
        | Notice::Group {
            text, own, away, ..
        } => (!own && named(text), *away),
        _ => (false, false),
    }
}

/// What the prompt says, kept up to date from the notices shown.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PromptStatus {
    pub nick: Option<String>,
    pub reconnecting: bool,
    pub away: bool,
    /// Private messages shown since the user last typed a line with the
    /// count in sight.
    pub unread: usize,
}

impl PromptStatus {
    /// Takes `notice` into account; whether the prompt changed.
    pub fn note(&mut self, notice: &Notice) -> bool {
        let before = self.clone();
        match notice {
            Notice::Welcome { nick, .. } => {
                self.nick = Some(nick.clone());
                self.reconnecting = false;
            }
            Notice::Reconnected { .. } => {
                self.reconnecting = false;
                // A new login is back until the client says otherwise.
            }
            Notice::Lost { .. }
            | Notice::Reconnecting { .. }
            | Notice::RetryFailed { .. }
            | Notice::ReconnectingTo { .. }
            | Notice::Unreachable { .. }
            | Notice::Throttled { .. } => self.reconnecting = true,
            Notice::PrivateFrom { .. } => self.unread += 1,
            Notice::Away { text } => self.away = text.is_some(),
            _ => {}
        }
        *self != before
    }

    /// The user typed a line while the prompt showed `seen` unread
    /// messages: those are read; any that came meanwhile are not.
    pub fn typed(&mut self, seen: usize) {
        self.unread = self.unread.saturating_sub(seen);
    }

    /// `alice (reconnecting) [2 private] >> `; `>> ` before the login.
    pub fn prompt(&self) -> String {
        let Some(nick) = &self.nick else {
            return ">> ".to_string();
        };
        let mut prompt = crate::render::clean(nick).into_owned();
        if self.reconnecting {
            prompt.push_str(" (reconnecting)");
        }
        if self.away {
            prompt.push_str(" (away)");
        }
        if self.unread > 0 {
            prompt.push_str(&format!(" [{} private]", self.unread));
        }
        prompt.push_str(" >> ");
        prompt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(text: &str, own: bool, away: bool) -> Notice {
        Notice::Public {
            sender: if own { "alice" } else { "bob" }.into(),
            text: text.into(),
            own,
            time: 0,
            away,
        }
    }

    #[test]
    fn private_messages_and_mentions_want_attention() {
        let me = Some("Alice");
        assert_eq!(attention(&private(), me), (true, false));
        for text in ["alice: hi", "hi ALICE", "@alice?", "ask alice-", "(alice)"] {
            let named = !text.ends_with('-');
            assert_eq!(
                attention(&public(text, false, false), me).0,
                named,
                "{text:?}"
            );
        }
        for text in ["malice", "alicex", "alice_2 hi", "hello"] {
            assert!(!attention(&public(text, false, false), me).0, "{text:?}");
        }
        // Our own, and none before we know who we are.
        assert!(!attention(&public("I am alice", true, false), me).0);
        assert!(!attention(&public("alice", false, false), None).0);
        // Caught up: highlighted, no bell.
        assert_eq!(attention(&public("alice", false, true), me), (true, true));
    }

    fn private() -> Notice {
        Notice::PrivateFrom {
            sender: "bob".into(),
            text: "hi".into(),
            time: 0,
            away: false,
        }
    }

    #[test]
    fn the_prompt_follows_what_happens() {
        let mut status = PromptStatus::default();
        assert_eq!(status.prompt(), ">> ");
        assert!(status.note(&Notice::Welcome {
            nick: "alice".into(),
            online: vec![],
            more: 0,
        }));
        assert_eq!(status.prompt(), "alice >> ");
        assert!(status.note(&private()));
        assert!(status.note(&private()));
        assert_eq!(status.prompt(), "alice [2 private] >> ");
        assert!(status.note(&Notice::Lost {
            reason: "gone".into()
        }));
        assert!(!status.note(&Notice::Reconnecting {
            reason: "gone".into()
        }));
        assert_eq!(status.prompt(), "alice (reconnecting) [2 private] >> ");
        assert!(status.note(&Notice::Reconnected { count: 0 }));
        assert!(status.note(&Notice::Away {
            text: Some("lunch".into())
        }));
        assert_eq!(status.prompt(), "alice (away) [2 private] >> ");
        // Typed with two in sight while a third came: one is left.
        status.note(&private());
        status.typed(2);
        assert_eq!(status.prompt(), "alice (away) [1 private] >> ");
        assert!(!status.note(&Notice::Online {
            users: vec![],
            away: Default::default()
        }));
    }
}
