//! The room: our arrival (welcome, a new account, what we missed), who
//! else comes and goes, kicks, the server going down, who is online.

use std::collections::BTreeMap;

use chat_common::Departure;

use super::words::{clean, enumerate, enumerate_all, plural};
use super::Renderer;

impl Renderer {
    /// `welcome, alice — 3 online: alice, bob, carol`.
    pub(super) fn welcome(&self, nick: &str, online: &[String], more: u32) -> String {
        let names = online.iter().map(|n| clean(n).into_owned()).collect();
        self.system(&format!(
            "welcome, {} — {} online: {}",
            clean(nick),
            online.len() + more as usize,
            enumerate_all(names, more)
        ))
    }

    pub(super) fn account_created(&self, nick: &str) -> String {
        self.system(&format!(
            "account {} created: log in with the same password next time",
            clean(nick)
        ))
    }

    pub(super) fn caught_up(&self, count: u32) -> String {
        self.system(&format!(
            "{} while you were away",
            plural(count as usize, "message")
        ))
    }

    pub(super) fn reconnected(&self, count: u32) -> String {
        self.system(&format!(
            "reconnected; {} caught up",
            plural(count as usize, "message")
        ))
    }

    /// `alice, bob and 412 others joined`.
    pub(super) fn joined(&self, nicks: &[String], more: u32) -> String {
        let names = nicks.iter().map(|n| clean(n).into_owned()).collect();
        self.system(&format!("{} joined", enumerate(names, more)))
    }

    /// `alice left (quit)`, or several with their reasons.
    pub(super) fn left(&self, departures: &[Departure], more: u32) -> String {
        let text = match departures {
            [one] if more == 0 => {
                format!("{} left ({})", clean(&one.nick), clean(&one.reason))
            }
            _ => {
                let names = departures
                    .iter()
                    .map(|d| format!("{} ({})", clean(&d.nick), clean(&d.reason)))
                    .collect();
                format!("{} left", enumerate(names, more))
            }
        };
        self.system(&text)
    }

    pub(super) fn kicked(&self, nick: &str, reason: &str) -> String {
        self.system(&format!(
            "{} was kicked by the server: {}",
            clean(nick),
            clean(reason)
        ))
    }

    pub(super) fn shutdown(&self, reason: &str) -> String {
        self.system(&format!("server is shutting down: {}", clean(reason)))
    }

    /// `3 online: alice, bob, carol`.
    /// `* 3 online: alice, ann (away: at lunch), bob`.
    /// `* you are away: at lunch`, `* you are back`.
    pub(super) fn away_status(&self, text: Option<&str>) -> String {
        match text {
            Some(text) => self.system(&format!(
                "you are away: {} (others see it in !online; !away alone: back)",
                clean(text)
            )),
            None => self.system("you are back"),
        }
    }

    pub(super) fn online(&self, users: &[String], away: &BTreeMap<String, String>) -> String {
        let names: Vec<_> = users
            .iter()
            .map(|u| match away.get(u) {
                Some(text) => format!("{} (away: {})", clean(u), clean(text)),
                None => clean(u).into_owned(),
            })
            .collect();
        self.system(&format!("{} online: {}", users.len(), names.join(", ")))
    }
}
