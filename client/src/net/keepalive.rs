//! When to ping a silent server, and when to give up on one: without this
//! a network that dropped without a word (no FIN, no RST) would leave the
//! client waiting for ever. Any bytes from the server count as life — its
//! own keepalive `ping` too, which the session answers at once.

use std::time::{Duration, Instant};

/// The keepalive of one connection.
#[derive(Debug, Clone)]
pub(super) struct Keepalive {
    /// Silence this long calls for a `ping`; half as long again without an
    /// answer, and the connection is dead.
    period: Duration,
    /// When the server was last heard from.
    heard: Instant,
    /// When our `ping` went out, if nothing was heard since.
    probed: Option<Instant>,
}

/// What a silent server calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Probe {
    Ping,
    /// Given up on, after this long without a byte.
    Dead {
        silent: Duration,
    },
}

impl Keepalive {
    /// A connection that was just made, at `now`.
    pub(super) fn new(period: Duration, now: Instant) -> Self {
        Keepalive {
            period,
            heard: now,
            probed: None,
        }
    }

    /// Bytes came from the server at `now`.
    pub(super) fn heard(&mut self, now: Instant) {
        self.heard = now;
        self.probed = None;
    }

    /// When [`Keepalive::check`] has something to do next.
    pub(super) fn due(&self) -> Instant {
        match self.probed {
            Some(sent) => sent + self.period / 2,
            None => self.heard + self.period,
        }
    }

    /// At `now`: nothing yet, a `ping` to send (counted as sent), or the
    /// end of a server that did not answer the last one.
    pub(super) fn check(&mut self, now: Instant) -> Option<Probe> {
        if now < self.due() {
            return None;
        }
        if self.probed.is_some() {
            return Some(Probe::Dead {
                silent: now.duration_since(self.heard),
            });
        }
        self.probed = Some(now);
        Some(Probe::Ping)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(30);

    /// Silent for the period: a ping; silent half as long again: dead.
    #[test]
    fn a_silent_server_is_pinged_then_given_up() {
        let start = Instant::now();
        let mut keepalive = Keepalive::new(PERIOD, start);
        assert_eq!(keepalive.due(), start + PERIOD);
        let just_before = start + PERIOD - Duration::from_millis(1);
        assert_eq!(keepalive.check(just_before), None);
        assert_eq!(keepalive.check(start + PERIOD), Some(Probe::Ping));
        assert_eq!(keepalive.due(), start + PERIOD + PERIOD / 2);
        assert_eq!(
            keepalive.check(start + PERIOD + PERIOD / 4),
            None,
            "one ping"
        );
        let end = start + PERIOD * 3 / 2;
        assert_eq!(
            keepalive.check(end),
            Some(Probe::Dead {
                silent: PERIOD * 3 / 2
            })
        );
    }

    /// Any bytes count as an answer, and put the next ping a whole period off.
    #[test]
    fn hearing_from_the_server_starts_the_count_again() {
        let start = Instant::now();
        let mut keepalive = Keepalive::new(PERIOD, start);
        assert_eq!(keepalive.check(start + PERIOD), Some(Probe::Ping));
        let answer = start + PERIOD + Duration::from_secs(1);
        keepalive.heard(answer);
        assert_eq!(keepalive.due(), answer + PERIOD);
        assert_eq!(keepalive.check(start + PERIOD * 3 / 2), None, "not dead");
        // Heard before the first ping was due: no ping at all.
        let mut keepalive = Keepalive::new(PERIOD, start);
        keepalive.heard(start + PERIOD / 2);
        assert_eq!(keepalive.check(start + PERIOD), None);
        assert_eq!(keepalive.check(start + PERIOD * 3 / 2), Some(Probe::Ping));
    }
}
