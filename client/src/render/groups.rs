//! Groups: the answers to `!group` and being added to or removed from one.

use chat_common::protocol::GroupInfo;

use super::words::{clean, plural};
use super::Renderer;

impl Renderer {
    /// `created #class (private, 3 members, owner alice): …; online: …`.
    pub(super) fn group_info(
        &self,
        verb: &str,
        group: &GroupInfo,
        members: &[String],
        online: &[String],
    ) -> String {
        self.system(&format!(
            "{verb} {} ({}): {}; online: {}",
            clean(&group.name),
            describe(group),
            clean(&members.join(", ")),
            if online.is_empty() {
                "nobody".to_string()
            } else {
                clean(&online.join(", ")).into_owned()
            }
        ))
    }

    /// Ours, then the public ones we could join.
    pub(super) fn group_list(&self, groups: &[GroupInfo]) -> String {
        if groups.is_empty() {
            return self.system("no groups yet: !group create <name> [--public] [nick…]");
        }
        let line = |g: &GroupInfo| format!("{} ({})", clean(&g.name), describe(g));
        let mine: Vec<String> = groups.iter().filter(|g| g.member).map(line).collect();
        let other: Vec<String> = groups.iter().filter(|g| !g.member).map(line).collect();
        let mut text = format!(
            "your groups: {}",
            if mine.is_empty() {
                "none".to_string()
            } else {
                mine.join(", ")
            }
        );
        if !other.is_empty() {
            text += &format!("; public groups to join: {}", other.join(", "));
        }
        self.system(&text)
    }

    pub(super) fn group_left(&self, group: &str) -> String {
        self.system(&format!("you left {}", clean(group)))
    }

    pub(super) fn group_changed(&self, group: &str, by: &str, added: bool) -> String {
        if added {
            self.system(&format!("{} added you to {}", clean(by), clean(group)))
        } else {
            self.system(&format!("{} removed you from {}", clean(by), clean(group)))
        }
    }
}

/// `public, 3 members, owner alice`.
fn describe(group: &GroupInfo) -> String {
    format!(
        "{}, {}, owner {}",
        if group.public { "public" } else { "private" },
        plural(group.size as usize, "member"),
        clean(&group.owner)
    )
}
