//! The server's keepalive: a connection the server has heard nothing from
//! for a while is sent a `ping`; one still silent later is cut. A peer whose
//! network dropped without a FIN or a reset would otherwise hold its place
//! (and its nickname, online) for ever, and TCP alone would never notice an
//! idle connection die.
//!
//! "Heard" means a request arrived: bytes of a line that never ends, or
//! lines that cannot be read, do not count, so a logged-in client trickling
//! an endless line is cut like a silent one. The dispatcher calls
//! [`ChatState::keep_alive`] from its one-second tick, so the times are
//! kept to within a second and an idle server does not wake any more often.

use std::time::Duration;

use chat_common::codec::encode;
use chat_common::{ErrorCode, ServerFrame};

use super::{ChatState, Deliver, Phase};
use crate::framework::ConnId;

/// The presence reason (and log reason) of a connection cut for silence.
pub const KEEPALIVE_TIMEOUT: &str = "keepalive timeout";

/// When a silent connection is pinged (`--ping-after`) and when it is cut
/// (`--idle-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub ping_after: Duration,
    pub idle_timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            ping_after: Duration::from_secs(90),
            idle_timeout: Duration::from_secs(150),
        }
    }
}

impl ChatState {
    /// Pings connections silent for `ping_after` (once per silence) and
    /// closes those silent for `idle_timeout`, telling them why; a user who
    /// was online is seen to leave with reason "keepalive timeout". Returns
    /// the connections cut.
    pub fn keep_alive(
        &mut self,
        now: u64,
        keepalive: Keepalive,
        out: &mut impl Deliver,
    ) -> Vec<ConnId> {
        let ping_after = keepalive.ping_after.as_millis() as u64;
        let idle_timeout = keepalive.idle_timeout.as_millis() as u64;
        let mut lost: Vec<ConnId> = Vec::new();
        for (&conn, session) in self.sessions.iter_mut() {
            if session.phase == Phase::Leaving {
                continue;
            }
            let silent = now.saturating_sub(session.heard);
            if silent >= idle_timeout {
                lost.push(conn);
            } else if silent >= ping_after && !session.pinged {
                session.pinged = true;
                out.send(conn, encode(&ServerFrame::Ping));
            }
        }
        if lost.is_empty() {
            return lost;
        }
        let frame = encode(&ServerFrame::Error {
            id: None,
            code: ErrorCode::Timeout,
            reason: format!(
                "nothing heard from you for {} s (keepalive timeout); closing",
                idle_timeout / 1000
            ),
        });
        for &conn in &lost {
            out.send(conn, frame.clone());
            self.leave(conn, KEEPALIVE_TIMEOUT, out);
        }
        lost
    }
}
