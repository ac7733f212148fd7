//! The connection's ups and downs, in red: lost, reconnecting (to the next
//! server of a list), a try that failed, giving up.

use super::words::clean;
use super::{Renderer, RED};

impl Renderer {
    pub(super) fn lost(&self, reason: &str) -> String {
        self.paint(RED, &format!("! connection lost: {}", clean(reason)))
            .into()
    }

    pub(super) fn reconnecting(&self, reason: &str) -> String {
        self.paint(
            RED,
            &format!("! connection lost — reconnecting… ({})", clean(reason)),
        )
        .into()
    }

    pub(super) fn reconnecting_to(&self, lost: &str, next: &str, reason: &str) -> String {
        self.paint(
            RED,
            &format!(
                "! connection to {} lost — reconnecting to {}… ({})",
                clean(lost),
                clean(next),
                clean(reason)
            ),
        )
        .into()
    }

    /// `! b:50445 unreachable, trying c:50445 — reason`; at the end of a
    /// round, `! c:50445 unreachable too; trying a:50445 again in 2 s — …`.
    pub(super) fn unreachable(
        &self,
        server: &str,
        next: &str,
        reason: &str,
        retry_in: Option<u64>,
    ) -> String {
        let (server, next, reason) = (clean(server), clean(next), clean(reason));
        let text = match retry_in {
            None => format!("! {server} unreachable, trying {next} — {reason}"),
            Some(secs) => {
                format!("! {server} unreachable too; trying {next} again in {secs} s — {reason}")
            }
        };
        self.paint(RED, &text).into()
    }

    pub(super) fn retry_failed(&self, reason: &str, retry_in: u64) -> String {
        self.paint(
            RED,
            &format!(
                "! cannot reconnect yet: {}; trying again in {retry_in} s",
                clean(reason)
            ),
        )
        .into()
    }

    pub(super) fn gave_up(&self, after: u64) -> String {
        self.paint(
            RED,
            &format!("! gave up reconnecting after {after} s without a connection"),
        )
        .into()
    }

    /// `* too many failed logins …; trying again in 42 s`: the server's
    /// reason without its own "try again in", which the client now does.
    pub(super) fn throttled(&self, reason: &str, retry_in: u64) -> String {
        let head = reason
            .rsplit_once("; try again in ")
            .map_or(reason, |(head, _)| head);
        self.system(&format!("{}; trying again in {retry_in} s", clean(head)))
    }
}
