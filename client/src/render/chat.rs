//! Chat messages as they arrive: to everyone, to a group, to us, and the
//! server's announcements.

use super::words::clean;
use super::{Renderer, BOLD_CYAN, BOLD_GREEN, BOLD_YELLOW, MAGENTA};

impl Renderer {
    /// `<alice> hello`, or `<alice (you)> hello` for the echo of ours.
    pub(super) fn public(&self, sender: &str, text: &str, own: bool, away: bool) -> String {
        let who = if own {
            self.paint(BOLD_GREEN, &format!("<{} (you)>", clean(sender)))
                .into_owned()
        } else {
            self.paint(BOLD_CYAN, &format!("<{}>", clean(sender)))
                .into_owned()
        };
        format!("{who} {}{}", clean(text), self.away(away))
    }

    /// `[#class] alice: hello`.
    pub(super) fn group_message(
        &self,
        group: &str,
        sender: &str,
        text: &str,
        own: bool,
        away: bool,
    ) -> String {
        let who = if own {
            format!("{} (you)", clean(sender))
        } else {
            clean(sender).into_owned()
        };
        format!(
            "{} {who}: {}{}",
            self.paint(BOLD_CYAN, &format!("[{}]", clean(group))),
            clean(text),
            self.away(away)
        )
    }

    /// `[private from alice] hi`.
    pub(super) fn private_from(&self, sender: &str, text: &str, away: bool) -> String {
        let tag = format!("[private from {}]", clean(sender));
        format!(
            "{} {}{}",
            self.paint(MAGENTA, &tag),
            clean(text),
            self.away(away)
        )
    }

    /// `[server] maintenance at 5`.
    pub(super) fn announce(&self, text: &str) -> String {
        format!("{} {}", self.paint(BOLD_YELLOW, "[server]"), clean(text))
    }
}
