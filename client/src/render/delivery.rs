//! Our own messages, from typed (`#3 pending`) to stored and delivered, or
//! refused, or never stored.

use super::words::{clean, to};
use super::{Renderer, DIM, MAGENTA, RED};
use crate::session::Mark;

/// `#3 #4`.
fn numbers(numbers: &[u64]) -> String {
    let numbers: Vec<String> = numbers.iter().map(|n| format!("#{n}")).collect();
    numbers.join(" ")
}

impl Renderer {
    /// `[private to bob] hi (#3 pending)`.
    pub(super) fn private_to(&self, receiver: &str, text: &str, number: u64) -> String {
        let tag = format!("[private to {}]", clean(receiver));
        let state = self
            .paint(DIM, &format!("(#{number} pending)"))
            .into_owned();
        format!("{} {} {state}", self.paint(MAGENTA, &tag), clean(text))
    }

    /// `[private to bob] hi (#3 ✓✓ delivered)`: interactive mode's one
    /// line for a private message, with the state it reached meanwhile.
    pub(super) fn private_sent(
        &self,
        receiver: &str,
        text: &str,
        number: u64,
        state: Mark,
    ) -> String {
        let tag = format!("[private to {}]", clean(receiver));
        let mark = match state {
            Mark::Pending => format!("(#{number} pending…)"),
            Mark::Stored => format!("(#{number} ✓ stored)"),
            Mark::Offline => format!("(#{number} ✓ stored, {} is offline)", clean(receiver)),
            Mark::Delivered => format!("(#{number} ✓✓ delivered)"),
            Mark::Refused => format!("(#{number} not sent)"),
        };
        let colour = if state == Mark::Refused { RED } else { DIM };
        format!(
            "{} {} {}",
            self.paint(MAGENTA, &tag),
            clean(text),
            self.paint(colour, &mark)
        )
    }

    /// `* delivered ✓✓: #3 #4`, `* stored ✓: #5; delivered ✓✓: #3`: what
    /// happened to messages already shown, gathered.
    pub(super) fn states(&self, stored: &[u64], delivered: &[u64]) -> String {
        let mut parts = Vec::new();
        if !stored.is_empty() {
            parts.push(format!("stored ✓: {}", numbers(stored)));
        }
        if !delivered.is_empty() {
            parts.push(format!("delivered ✓✓: {}", numbers(delivered)));
        }
        self.system(&parts.join("; "))
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
