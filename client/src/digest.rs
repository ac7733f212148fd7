//! Interactive mode's fewer lines per private message: the line of a
//! message we typed is held back a moment, until the server has stored
//! it and (usually a few milliseconds later) the receiver's client has
//! shown it, and then printed once with the state it reached: `[private
//! to carol] see you (#2 ✓✓ delivered)`. Changes that come after the line
//! was printed are gathered for a second into one line, `* delivered ✓✓:
//! #2 #3`. Nothing printed is ever rewritten, so this needs no cursor
//! movement above rustyline's prompt, whose external printer may show a
//! line late.
//!
//! Anything else to show first lets out what is held, so the screen keeps
//! the order things happened in. Pipe mode keeps one line per state.

use std::time::{Duration, Instant};

use crate::session::{Mark, Notice};

/// How long the line of a message typed waits for its states.
pub const HOLD: Duration = Duration::from_millis(400);
/// How long later states are gathered before their line is printed.
pub const GATHER: Duration = Duration::from_secs(1);

struct Held {
    receiver: String,
    text: String,
    number: u64,
    state: Mark,
    since: Instant,
}

impl Held {
    fn notice(self) -> Notice {
        Notice::PrivateSent {
            receiver: self.receiver,
            text: self.text,
            number: self.number,
            state: self.state,
        }
    }
}

/// The notices being held back, and when each is due.
#[derive(Default)]
pub struct Digest {
    held: Vec<Held>,
    stored: Vec<u64>,
    delivered: Vec<u64>,
    /// When the first of `stored` and `delivered` came.
    gathering: Option<Instant>,
}

impl Digest {
    /// What to print now, in order, for `notice`.
    pub fn notice(&mut self, notice: &Notice, now: Instant) -> Vec<Notice> {
        match notice {
            Notice::PrivateTo {
                receiver,
                text,
                number,
            } => {
                self.held.push(Held {
                    receiver: receiver.clone(),
                    text: text.clone(),
                    number: *number,
                    state: Mark::Pending,
                    since: now,
                });
                Vec::new()
            }
            Notice::Stored {
                number, offline, ..
            } => {
                let state = if *offline {
                    Mark::Offline
                } else {
                    Mark::Stored
                };
                match self.position(*number) {
                    // Offline: nothing more is coming soon.
                    Some(at) if *offline => {
                        self.held[at].state = state;
                        self.release(at)
                    }
                    Some(at) => {
                        self.held[at].state = state;
                        Vec::new()
                    }
                    // Worth its own line: carol gets it at her next login.
                    None if *offline => self.then(notice),
                    None => {
                        self.gather(now);
                        self.stored.push(*number);
                        Vec::new()
                    }
                }
            }
            Notice::Delivered {
                number: Some(number),
                ..
            } => match self.position(*number) {
                Some(at) => {
                    self.held[at].state = Mark::Delivered;
                    self.release(at)
                }
                None => {
                    self.gather(now);
                    self.stored.retain(|n| n != number);
                    self.delivered.push(*number);
                    Vec::new()
                }
            },
            Notice::Refused { number, .. } => {
                let mut out = match self.position(*number) {
                    Some(at) => {
                        self.held[at].state = Mark::Refused;
                        self.release(at)
                    }
                    None => self.flush(),
                };
                out.push(notice.clone());
                out
            }
            _ => self.then(notice),
        }
    }

    /// When [`Digest::tick`] has something to let out.
    pub fn due(&self) -> Option<Instant> {
        let held = self.held.first().map(|h| h.since + HOLD);
        let gathered = self.gathering.map(|since| since + GATHER);
        held.into_iter().chain(gathered).min()
    }

    /// What has waited long enough, with the state it has reached.
    pub fn tick(&mut self, now: Instant) -> Vec<Notice> {
        let mut out = Vec::new();
        if let Some(last) = self.held.iter().rposition(|h| h.since + HOLD <= now) {
            out = self.release(last);
        }
        if self.gathering.is_some_and(|since| since + GATHER <= now) {
            out.extend(self.states());
        }
        out
    }

    /// Everything held, at once.
    pub fn flush(&mut self) -> Vec<Notice> {
        let mut out: Vec<Notice> = self.held.drain(..).map(Held::notice).collect();
        out.extend(self.states());
        out
    }

    fn position(&self, number: u64) -> Option<usize> {
        self.held.iter().position(|h| h.number == number)
    }

    /// The held lines up to `at`, in the order typed.
    fn release(&mut self, at: usize) -> Vec<Notice> {
        self.held.drain(..=at).map(Held::notice).collect()
    }

    fn gather(&mut self, now: Instant) {
        self.gathering.get_or_insert(now);
    }

    fn states(&mut self) -> Option<Notice> {
        self.gathering = None;
        if self.stored.is_empty() && self.delivered.is_empty() {
            return None;
        }
        Some(Notice::States {
            stored: std::mem::take(&mut self.stored),
            delivered: std::mem::take(&mut self.delivered),
        })
    }

    /// What is held, then `notice`.
    fn then(&mut self, notice: &Notice) -> Vec<Notice> {
        let mut out = self.flush();
        out.push(notice.clone());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(number: u64) -> Notice {
        Notice::PrivateTo {
            receiver: "carol".into(),
            text: format!("text {number}"),
            number,
        }
    }

    fn sent(number: u64, state: Mark) -> Notice {
        Notice::PrivateSent {
            receiver: "carol".into(),
            text: format!("text {number}"),
            number,
            state,
        }
    }

    fn stored(number: u64, offline: bool) -> Notice {
        Notice::Stored {
            number,
            receiver: "carol".into(),
            offline,
        }
    }

    fn delivered(number: u64) -> Notice {
        Notice::Delivered {
            number: Some(number),
            receiver: "carol".into(),
        }
    }

    fn public(text: &str) -> Notice {
        Notice::Public {
            sender: "alice".into(),
            text: text.into(),
            own: false,
            time: 0,
            away: false,
        }
    }

    /// Typed, stored, delivered: one line, printed at the delivery.
    #[test]
    fn one_line_for_a_message_delivered_at_once() {
        let t = Instant::now();
        let mut d = Digest::default();
        assert!(d.notice(&typed(2), t).is_empty());
        assert_eq!(d.due(), Some(t + HOLD));
        assert!(d.notice(&stored(2, false), t).is_empty());
        assert_eq!(d.notice(&delivered(2), t), [sent(2, Mark::Delivered)]);
        assert_eq!(d.due(), None);
        assert!(d.flush().is_empty());
    }

    /// Stored for someone offline: printed at once, saying so.
    #[test]
    fn offline_is_said_on_the_line() {
        let t = Instant::now();
        let mut d = Digest::default();
        d.notice(&typed(1), t);
        assert_eq!(d.notice(&stored(1, true), t), [sent(1, Mark::Offline)]);
        // Delivered at her login: a gathered line a second later.
        assert!(d.notice(&delivered(1), t).is_empty());
        assert_eq!(d.due(), Some(t + GATHER));
        assert!(d.tick(t + GATHER / 2).is_empty());
        assert_eq!(
            d.tick(t + GATHER),
            [Notice::States {
                stored: vec![],
                delivered: vec![1]
            }]
        );
        assert_eq!(d.due(), None);
    }

    /// Not delivered within the hold: printed with the state reached, and
    /// later deliveries gathered into one line; what someone else says
    /// lets the held lines out first, in order.
    #[test]
    fn later_states_are_gathered_and_order_is_kept() {
        let t = Instant::now();
        let mut d = Digest::default();
        d.notice(&typed(3), t);
        d.notice(&stored(3, false), t);
        d.notice(&typed(4), t + HOLD / 2);
        assert_eq!(d.tick(t + HOLD), [sent(3, Mark::Stored)]);
        assert_eq!(d.due(), Some(t + HOLD / 2 + HOLD));
        assert_eq!(
            d.notice(&public("hi"), t + HOLD),
            [sent(4, Mark::Pending), public("hi")]
        );
        d.notice(&stored(4, false), t + HOLD);
        d.notice(&delivered(3), t + HOLD);
        d.notice(&delivered(4), t + HOLD);
        assert_eq!(
            d.tick(t + HOLD + GATHER),
            [Notice::States {
                stored: vec![],
                delivered: vec![3, 4]
            }]
        );
    }

    /// A refusal prints the line marked, then the reason.
    #[test]
    fn a_refusal_prints_the_line_and_the_reason() {
        let t = Instant::now();
        let mut d = Digest::default();
        d.notice(&typed(5), t);
        let refused = Notice::Refused {
            number: 5,
            receiver: "zed".into(),
            reason: "no such user: zed".into(),
        };
        assert_eq!(
            d.notice(&refused, t),
            [sent(5, Mark::Refused), refused.clone()]
        );
    }
}
