//! Chat messages as they arrive: to everyone, to a group, to us, and the
//! server's announcements.

use super::words::clean;
use super::{Renderer, BOLD_CYAN, BOLD_GREEN, BOLD_YELLOW, MAGENTA};
use crate::command::ACTION;

/// The action of a `/me` text (`/me waves` → `waves`), if it is one.
fn action(text: &str) -> Option<&str> {
    text.strip_prefix(ACTION)
        .filter(|rest| !rest.trim().is_empty())
}

impl Renderer {
    /// ` * alice waves`, as irssi draws `/me`: the leading space keeps it
    /// apart from the client's own `* …` lines, so `/me joined` cannot
    /// pass for a presence notice.
    fn act(&self, sender: &str, own: bool, action: &str) -> String {
        let who = if own {
            format!("{} (you)", clean(sender))
        } else {
            clean(sender).into_owned()
        };
        let colour = if own { BOLD_GREEN } else { BOLD_CYAN };
        format!(" * {} {}", self.paint(colour, &who), clean(action))
    }

    /// `<alice> hello`, or `<alice (you)> hello` for the echo of ours;
    /// ` * alice waves` for `/me waves`.
    pub(super) fn public(
        &self,
        sender: &str,
        text: &str,
        own: bool,
        away: bool,
        marked: bool,
    ) -> String {
        if let Some(action) = action(text) {
            return format!("{}{}", self.act(sender, own, action), self.away(away));
        }
        let who = if own {
            self.paint(BOLD_GREEN, &format!("<{} (you)>", clean(sender)))
                .into_owned()
        } else {
            self.paint(BOLD_CYAN, &format!("<{}>", clean(sender)))
                .into_owned()
        };
        format!("{who} {}{}", self.text(text, marked), self.away(away))
    }

    /// `[#class] alice: hello`.
    pub(super) fn group_message(
        &self,
        group: &str,
        sender: &str,
        text: &str,
        own: bool,
        away: bool,
        marked: bool,
    ) -> String {
        if let Some(action) = action(text) {
            return format!(
                "{}{}{}",
                self.paint(BOLD_CYAN, &format!("[{}]", clean(group))),
                self.act(sender, own, action),
                self.away(away)
            );
        }
        let who = if own {
            format!("{} (you)", clean(sender))
        } else {
            clean(sender).into_owned()
        };
        format!(
            "{} {who}: {}{}",
            self.paint(BOLD_CYAN, &format!("[{}]", clean(group))),
            self.text(text, marked),
            self.away(away)
        )
    }

    /// `[private from alice] hi`.
    pub(super) fn private_from(
        &self,
        sender: &str,
        text: &str,
        away: bool,
        marked: bool,
    ) -> String {
        let tag = format!("[private from {}]", clean(sender));
        if let Some(action) = action(text) {
            return format!(
                "{}{}{}",
                self.paint(MAGENTA, &tag),
                self.act(sender, false, action),
                self.away(away)
            );
        }
        format!(
            "{} {}{}",
            self.paint(MAGENTA, &tag),
            self.text(text, marked),
            self.away(away)
        )
    }

    /// `[server] maintenance at 5`.
    pub(super) fn announce(&self, text: &str) -> String {
        format!("{} {}", self.paint(BOLD_YELLOW, "[server]"), clean(text))
    }
}
