//! Our own messages, from typed (`#3 pending`) to stored and delivered, or
//! refused, or never stored.

use super::words::{clean, to};
use super::{Renderer, DIM, MAGENTA, RED};

impl Renderer {
    /// `[private to bob] hi (#3 pending)`.
    pub(super) fn private_to(&self, receiver: &str, text: &str, number: u64) -> String {
        let tag = format!("[private to {}]", clean(receiver));
        let state = self
            .paint(DIM, &format!("(#{number} pending)"))
            .into_owned();
        format!("{} {} {state}", self.paint(MAGENTA, &tag), clean(text))
    }

    /// `[to everyone] all (#4 pending)`: typed while not connected.
    pub(super) fn public_pending(&self, text: &str, number: u64) -> String {
        let state = self
            .paint(DIM, &format!("(#{number} pending)"))
            .into_owned();
        format!(
            "{} {} {state}",
            self.paint(DIM, "[to everyone]"),
            clean(text)
        )
    }

    pub(super) fn stored(&self, number: u64, receiver: &str, offline: bool) -> String {
        if offline {
            self.system(&format!(
                "#{number} stored for {} (offline)",
                clean(receiver)
            ))
        } else {
            self.system(&format!("#{number} stored"))
        }
    }

    pub(super) fn delivered(&self, number: Option<u64>, receiver: &str) -> String {
        match number {
            Some(number) => self.system(&format!("#{number} delivered to {}", clean(receiver))),
            None => self.system(&format!(
                "a message sent earlier was delivered to {}",
                clean(receiver)
            )),
        }
    }

    pub(super) fn refused(&self, number: u64, receiver: &str, reason: &str) -> String {
        self.paint(
            RED,
            &format!(
                "! #{number} to {} not sent: {}",
                to(receiver),
                clean(reason)
            ),
        )
        .into()
    }

    pub(super) fn unsent(&self, number: u64, receiver: &str, text: &str) -> String {
        self.paint(
            RED,
            &format!(
                "! #{number} to {} was never stored: {}",
                to(receiver),
                clean(text)
            ),
        )
        .into()
    }
}
