//! The status in interactive mode's prompt: who we are, whether the
//! connection is being re-established, whether we said we are away, and
//! how many private messages came that the prompt has not shown yet:
//! `alice [2 private] >> `, `alice (reconnecting) >> `.

use crate::session::Notice;

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
