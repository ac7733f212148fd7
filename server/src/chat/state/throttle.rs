//! The login throttle: at most `limit` failed logins per window for each
//! account and for each address (IPv4 address, IPv6 /64). Pure: the time is
//! passed in.
//!
//! Over the limit, a login is refused before its password is looked at, so
//! a guesser costs no hashing. A password being checked counts as a
//! possible failure: when the checks in progress could use up what is left
//! of the limit, a further login to that account (or from that address)
//! waits — parked here, in order per address — until their verdicts are
//! in. So even a thousand guesses sent at once get at most `limit` hashed,
//! while a crowd registering new accounts from one address (which cannot
//! fail) is never held up.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use crate::store::UserId;

/// One login attempt, as the throttle counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// The account whose password is checked; `None` when the login would
    /// create one (which cannot fail by a wrong password).
    pub account: Option<UserId>,
    pub peer: IpAddr,
}

/// What may happen to an attempt now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Go,
    /// Checks in progress could use up the last tries: wait for them.
    Wait,
    /// Over the limit until `retry_at` (ms).
    Shut {
        retry_at: u64,
    },
}

/// A parked attempt whose turn has come.
#[derive(Debug, PartialEq, Eq)]
pub enum Unparked<T> {
    /// Counted as checking: send it to the hashers.
    Go(T),
    /// Refuse it: over the limit until `retry_at`.
    Shut(T, u64),
    /// Its connection is gone or no longer waiting: forget it.
    Dropped(T),
}

#[derive(Debug, Default)]
struct Tally {
    /// When the latest failures happened, oldest first; at most `limit`.
    failures: VecDeque<u64>,
    /// Passwords being checked now.
    checking: usize,
}

pub struct Throttle<T> {
    limit: usize,
    window: u64,
    accounts: HashMap<UserId, Tally>,
    networks: HashMap<IpAddr, Tally>,
    parked: BTreeMap<IpAddr, VecDeque<(Attempt, T)>>,
}

/// Where an address's failures are counted: IPv4 addresses one by one,
/// IPv6 by /64 (what one customer usually gets).
pub fn network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

impl<T> Throttle<T> {
    /// `limit` failures per `window` milliseconds (`limit` at least 1).
    pub fn new(limit: usize, window: u64) -> Self {
        Throttle {
            limit: limit.max(1),
            window,
            accounts: HashMap::new(),
            networks: HashMap::new(),
            parked: BTreeMap::new(),
        }
    }

    fn judge(&self, tally: Option<&Tally>, counts_checks: bool, now: u64) -> Gate {
        let Some(tally) = tally else {
            return Gate::Go;
        };
        let recent: Vec<u64> = tally
            .failures
            .iter()
            .copied()
            .filter(|&t| t + self.window > now)
            .collect();
        if recent.len() >= self.limit {
            // `failures` keeps at most `limit`: all are recent; the
            // oldest must expire before another try.
            return Gate::Shut {
                retry_at: recent[0] + self.window,
            };
        }
        if counts_checks && recent.len() + tally.checking >= self.limit {
            return Gate::Wait;
        }
        Gate::Go
    }

    /// Whether `attempt` may have its password checked now.
    pub fn gate(&self, attempt: Attempt, now: u64) -> Gate {
        let checks = attempt.account.is_some();
        let by_account = attempt
            .account
            .map_or(Gate::Go, |a| self.judge(self.accounts.get(&a), true, now));
        let by_network = self.judge(self.networks.get(&network(attempt.peer)), checks, now);
        match (by_account, by_network) {
            (Gate::Shut { retry_at: a }, Gate::Shut { retry_at: b }) => {
                Gate::Shut { retry_at: a.max(b) }
            }
            (shut @ Gate::Shut { .. }, _) | (_, shut @ Gate::Shut { .. }) => shut,
            (Gate::Wait, _) | (_, Gate::Wait) => Gate::Wait,
            _ => Gate::Go,
        }
    }

    /// `attempt`'s password goes to the hashers (call after [`Gate::Go`]).
    pub fn begin(&mut self, attempt: Attempt) {
        if let Some(account) = attempt.account {
            self.accounts.entry(account).or_default().checking += 1;
            self.networks
                .entry(network(attempt.peer))
                .or_default()
                .checking += 1;
        }
    }

    /// The verdict on an attempt that [`Throttle::begin`] counted. Returns
    /// true when this failure reached the limit (worth a line in the log).
    pub fn end(&mut self, attempt: Attempt, failed: bool, now: u64) -> bool {
        let Some(account) = attempt.account else {
            return false;
        };
        let (limit, window) = (self.limit, self.window);
        let mut reached = false;
        for tally in [
            self.accounts.get_mut(&account),
            self.networks.get_mut(&network(attempt.peer)),
        ]
        .into_iter()
        .flatten()
        {
            tally.checking = tally.checking.saturating_sub(1);
            if failed {
                tally.failures.push_back(now);
                if tally.failures.len() > limit {
                    tally.failures.pop_front();
                }
                let recent = tally.failures.iter().filter(|&&t| t + window > now);
                reached |= recent.count() == limit;
            }
        }
        reached
    }

    /// Keeps `item` until [`Throttle::unpark`] lets it go (after
    /// [`Gate::Wait`]).
    pub fn park(&mut self, attempt: Attempt, item: T) {
        self.parked
            .entry(network(attempt.peer))
            .or_default()
            .push_back((attempt, item));
    }

    /// How many attempts are parked.
    pub fn parked(&self) -> usize {
        self.parked.values().map(VecDeque::len).sum()
    }

    /// The parked attempts that need not wait any longer, in order per
    /// address; those that `alive` says nobody waits for are dropped.
    pub fn unpark(&mut self, now: u64, alive: impl Fn(&T) -> bool) -> Vec<Unparked<T>> {
        let mut out = Vec::new();
        let mut parked = std::mem::take(&mut self.parked);
        for queue in parked.values_mut() {
            while let Some((attempt, item)) = queue.front() {
                if !alive(item) {
                    let (_, item) = queue.pop_front().expect("front");
                    out.push(Unparked::Dropped(item));
                    continue;
                }
                let attempt = *attempt;
                let gate = self.gate(attempt, now);
                if gate == Gate::Wait {
                    break;
                }
                let (_, item) = queue.pop_front().expect("front");
                match gate {
                    Gate::Shut { retry_at } => out.push(Unparked::Shut(item, retry_at)),
                    _ => {
                        self.begin(attempt);
                        out.push(Unparked::Go(item));
                    }
                }
            }
        }
        parked.retain(|_, queue| !queue.is_empty());
        self.parked = parked;
        out
    }

    /// Forgets tallies with no recent failure and nothing being checked.
    pub fn prune(&mut self, now: u64) {
        let window = self.window;
        let live =
            |t: &Tally| t.checking > 0 || t.failures.back().is_some_and(|&f| f + window > now);
        self.accounts.retain(|_, t| live(t));
        self.networks.retain(|_, t| live(t));
    }

    /// Accounts and networks with a tally (for tests and stats).
    pub fn tallies(&self) -> usize {
        self.accounts.len() + self.networks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: u64 = 60_000;

    fn from(account: Option<UserId>, peer: &str) -> Attempt {
        Attempt {
            account,
            peer: peer.parse().unwrap(),
        }
    }

    /// Checks `attempt` and fails it at `now`, as a wrong password would.
    fn fail(t: &mut Throttle<()>, attempt: Attempt, now: u64) {
        assert_eq!(t.gate(attempt, now), Gate::Go, "at {now}");
        t.begin(attempt);
        t.end(attempt, true, now);
    }

    #[test]
    fn three_failures_a_minute_per_account() {
        let mut t = Throttle::new(3, WINDOW);
        let alice = |peer| from(Some(1), peer);
        fail(&mut t, alice("10.0.0.1"), 1_000);
        fail(&mut t, alice("10.0.0.2"), 2_000);
        fail(&mut t, alice("10.0.0.3"), 3_000);
        for peer in ["10.0.0.1", "10.0.0.4", "2001:db8::1"] {
            assert_eq!(
                t.gate(alice(peer), 4_000),
                Gate::Shut { retry_at: 61_000 },
                "{peer}"
            );
        }
        assert_eq!(t.gate(from(Some(2), "10.0.0.4"), 4_000), Gate::Go, "bob");
        assert_eq!(
            t.gate(alice("10.0.0.4"), 60_999),
            Gate::Shut { retry_at: 61_000 }
        );
        assert_eq!(
            t.gate(alice("10.0.0.4"), 61_000),
            Gate::Go,
            "the first expired"
        );
        fail(&mut t, alice("10.0.0.4"), 61_000);
        assert_eq!(
            t.gate(alice("10.0.0.5"), 61_001),
            Gate::Shut { retry_at: 62_000 }
        );
    }

    #[test]
    fn three_failures_a_minute_per_address() {
        let mut t = Throttle::new(3, WINDOW);
        for account in 1..=3 {
            fail(&mut t, from(Some(account), "192.0.2.7"), 10);
        }
        let shut = Gate::Shut { retry_at: 60_010 };
        assert_eq!(t.gate(from(Some(4), "192.0.2.7"), 20), shut);
        assert_eq!(
            t.gate(from(None, "192.0.2.7"), 20),
            shut,
            "nor may it register"
        );
        assert_eq!(
            t.gate(from(Some(4), "192.0.2.8"), 20),
            Gate::Go,
            "next door"
        );
        assert_eq!(
            t.gate(from(Some(4), "::ffff:192.0.2.7"), 20),
            shut,
            "the same address mapped into IPv6"
        );
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let mut t = Throttle::new(3, WINDOW);
        for (account, peer) in [
            (1, "2001:db8:1:2::1"),
            (2, "2001:db8:1:2::2"),
            (3, "2001:db8:1:2:ffff::9"),
        ] {
            fail(&mut t, from(Some(account), peer), 0);
        }
        assert!(matches!(
            t.gate(from(Some(9), "2001:db8:1:2:abcd::1"), 1),
            Gate::Shut { .. }
        ));
        assert_eq!(
            t.gate(from(Some(9), "2001:db8:1:3::1"), 1),
            Gate::Go,
            "another /64"
        );
    }

    /// Passwords being checked count as possible failures: a burst of
    /// guesses gets `limit` checked and the rest wait, then are refused
    /// once those failed — never more than `limit` hashed.
    #[test]
    fn a_burst_waits_for_the_checks_in_progress() {
        let mut t = Throttle::new(3, WINDOW);
        let guess = |i: u32| from(Some(1), &format!("10.1.{}.{}", i / 200, i % 200));
        let mut checking = Vec::new();
        for i in 0..100 {
            match t.gate(guess(i), 0) {
                Gate::Go => {
                    t.begin(guess(i));
                    checking.push(i);
                }
                Gate::Wait => t.park(guess(i), i),
                shut => panic!("{shut:?}"),
            }
        }
        assert_eq!(checking, [0, 1, 2]);
        assert_eq!(t.parked(), 97);
        assert!(t.unpark(5, |_| true).is_empty(), "nothing decided yet");
        t.end(guess(0), true, 10);
        t.end(guess(1), true, 11);
        assert!(t.unpark(12, |_| true).is_empty(), "one check still out");
        assert!(t.end(guess(2), true, 12), "the limit is reached");
        let released = t.unpark(13, |_| true);
        assert_eq!(released.len(), 97);
        assert!(released
            .iter()
            .all(|u| matches!(u, Unparked::Shut(_, 60_010))));
        assert_eq!(t.parked(), 0);
    }

    /// A correct password frees its slot without counting as a failure,
    /// so the next waiting login goes; a connection that left is dropped.
    #[test]
    fn a_success_lets_the_next_one_go() {
        let mut t = Throttle::new(1, WINDOW);
        let alice = from(Some(1), "10.0.0.1");
        t.begin(alice);
        assert_eq!(t.gate(alice, 0), Gate::Wait);
        t.park(alice, "gone");
        t.park(alice, "second");
        assert!(!t.end(alice, false, 1));
        assert_eq!(
            t.unpark(2, |who| *who != "gone"),
            [Unparked::Dropped("gone"), Unparked::Go("second")]
        );
        assert_eq!(t.gate(alice, 3), Gate::Wait, "the second is being checked");
    }

    /// Registrations cannot fail: they never wait for checks, and a crowd
    /// of them from one address takes no slot.
    #[test]
    fn registrations_do_not_wait() {
        let mut t: Throttle<()> = Throttle::new(3, WINDOW);
        for account in 1..=3 {
            t.begin(from(Some(account), "10.0.0.1"));
        }
        assert_eq!(t.gate(from(Some(4), "10.0.0.1"), 0), Gate::Wait);
        assert_eq!(t.gate(from(None, "10.0.0.1"), 0), Gate::Go);
        t.begin(from(None, "10.0.0.1"));
        t.end(from(None, "10.0.0.1"), false, 0);
        assert_eq!(t.tallies(), 4, "three accounts and one address");
    }

    #[test]
    fn old_tallies_are_forgotten() {
        let mut t = Throttle::new(3, WINDOW);
        fail(&mut t, from(Some(1), "10.0.0.1"), 0);
        t.begin(from(Some(2), "10.0.0.2"));
        t.prune(30_000);
        assert_eq!(t.tallies(), 4);
        t.prune(60_000);
        assert_eq!(t.tallies(), 2, "only the check in progress");
        t.end(from(Some(2), "10.0.0.2"), false, 60_001);
        t.prune(60_001);
        assert_eq!(t.tallies(), 0);
    }
}
