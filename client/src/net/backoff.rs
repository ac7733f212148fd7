//! When to try connecting again after the connection was lost: 0.5 s,
//! doubling to 15 s, each with ±25 % jitter so that the clients of a
//! restarted server do not all knock at the same instant; and when to give
//! up.

use std::time::{Duration, Instant};

use crate::outbox::random_u64;

/// The first wait.
pub const FIRST: Duration = Duration::from_millis(500);

/// The longest wait between two tries.
pub const CAP: Duration = Duration::from_secs(15);

/// How reconnecting goes for one outage.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The wait before the next try, without jitter.
    next: Duration,
    /// When the connection was lost.
    since: Instant,
    /// Stop after this long without a connection; `None`: never.
    give_up: Option<Duration>,
}

impl Backoff {
    /// An outage that started at `since`.
    pub fn new(since: Instant, give_up: Option<Duration>) -> Self {
        Backoff {
            next: FIRST,
            since,
            give_up,
        }
    }

    /// When to try next, `now` being the time of the failure (or of the
    /// loss, for the first try); `None` when it is time to give up. A try
    /// that would come after the limit comes at the limit instead: the
    /// last chance.
    pub fn next_try(&mut self, now: Instant) -> Option<Instant> {
        let wait = jitter(self.next, random_u64());
        self.next = (self.next * 2).min(CAP);
        let at = now + wait;
        match self.give_up {
            Some(limit) if now >= self.since + limit => None,
            Some(limit) => Some(at.min(self.since + limit)),
            None => Some(at),
        }
    }

    /// How long the outage has lasted.
    pub fn elapsed(&self, now: Instant) -> Duration {
        now.duration_since(self.since)
    }
}

/// `wait` scaled by a factor between 0.75 and 1.25 picked by `random`.
fn jitter(wait: Duration, random: u64) -> Duration {
    let permille = 750 + random % 501;
    wait * permille as u32 / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter() {
        let second = Duration::from_secs(1);
        assert_eq!(jitter(second, 0), Duration::from_millis(750));
        assert_eq!(jitter(second, 500), Duration::from_millis(1250));
        assert_eq!(jitter(second, 501), Duration::from_millis(750));
        for _ in 0..100 {
            let wait = jitter(second, random_u64());
            assert!(wait >= second * 3 / 4 && wait <= second * 5 / 4, "{wait:?}");
        }
    }

    #[test]
    fn waits_double_up_to_the_cap() {
        let start = Instant::now();
        let mut backoff = Backoff::new(start, None);
        let mut waits = Vec::new();
        let mut now = start;
        for _ in 0..8 {
            let at = backoff.next_try(now).expect("never gives up");
            waits.push(at - now);
            now = at;
        }
        let nominal = [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0];
        for (wait, nominal) in waits.iter().zip(nominal) {
            let secs = wait.as_secs_f64();
            assert!(
                secs >= nominal * 0.75 - 0.001 && secs <= nominal * 1.25 + 0.001,
                "{waits:?}"
            );
        }
        assert_eq!(backoff.elapsed(now), now - start);
    }

    #[test]
    fn the_last_try_is_at_the_limit_then_it_gives_up() {
        let start = Instant::now();
        let limit = Duration::from_secs(3);
        let mut backoff = Backoff::new(start, Some(limit));
        let mut now = start;
        let mut tries = Vec::new();
        while let Some(at) = backoff.next_try(now) {
            assert!(at - start <= limit);
            now = at;
            tries.push(at - start);
        }
        // About 0.5 s, 1.5 s, then 3.5 s brought back to 3 s (or 3 s, then 3 s).
        assert_eq!(tries.last(), Some(&limit), "{tries:?}");
        assert!((3..=4).contains(&tries.len()), "{tries:?}");
        let mut never = Backoff::new(start, Some(Duration::ZERO));
        assert_eq!(never.next_try(start), None);
    }
}
