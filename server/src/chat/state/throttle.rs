//! The login throttle, pure (the time is passed in). Failed logins are
//! counted three ways, each over the same window:
//! - per account and address (IPv4 address, IPv6 /64): `limit` — the
//!   person mistyping waits, nobody else;
//! - per account from every address: [`ACCOUNT_SPREAD`] × `limit` — a
//!   guesser who moves between addresses gets no more than that;
//! - per address over every account: [`ADDRESS_SPREAD`] × `limit`, loose
//!   so that a classroom behind one NAT address never reaches it with
//!   honest typos; it stops an address that sprays many accounts, and
//!   guards only accounts already under attack (with a failure on record)
//!   and registrations: a login to an account that was never the target
//!   has its password checked as usual.
//!
//! Over a limit, a login is refused before its password is looked at, so
//! a guesser costs no hashing. A password being checked counts as a
//! possible failure: when the checks in progress could use up what is left
//! of a limit, a further login waits — parked here, in order per address —
//! until their verdicts are in. So even a thousand guesses sent at once get
//! at most the account's limit hashed, while a crowd registering new
//! accounts from one address (which cannot fail) is never held up.
//!
//! In a cluster the other nodes' failures are [`Throttle::learn`]ed: they
//! count toward every limit as this node's own do, but nothing of theirs
//! is in progress here, so what several nodes check at the same moment
//! is not shared (docs/decisions.md, "Login throttles across nodes").

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use crate::store::UserId;

/// An account's limit over every address, in multiples of the limit per
/// account and address.
pub const ACCOUNT_SPREAD: usize = 2;

/// An address's limit over every account, in multiples of the limit per
/// account and address: 60 failures a minute at the default 3, more than
/// a class of 30 mistyping twice each within one minute.
pub const ADDRESS_SPREAD: usize = 20;

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
    /// When the latest failures happened, oldest first; at most the limit.
    failures: VecDeque<u64>,
    /// Passwords being checked now.
    checking: usize,
}

impl Tally {
    /// Records a failure at `at`, in time order, keeping the newest
    /// `limit`.
    fn record(&mut self, at: u64, limit: usize) {
        let place = self.failures.partition_point(|&t| t <= at);
        self.failures.insert(place, at);
        if self.failures.len() > limit {
            self.failures.pop_front();
        }
    }

    fn recent(&self, window: u64, now: u64) -> impl Iterator<Item = u64> + '_ {
        self.failures
            .iter()
            .copied()
            .filter(move |&t| t + window > now)
    }
}

pub struct Throttle<T> {
    /// The limit per account and address; the others are multiples.
    limit: usize,
    window: u64,
    pairs: HashMap<(UserId, IpAddr), Tally>,
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
    /// `limit` failures per account and address per `window` milliseconds
    /// (`limit` at least 1).
    pub fn new(limit: usize, window: u64) -> Self {
        Throttle {
            limit: limit.max(1),
            window,
            pairs: HashMap::new(),
            accounts: HashMap::new(),
            networks: HashMap::new(),
            parked: BTreeMap::new(),
        }
    }

    fn judge(&self, tally: Option<&Tally>, limit: usize, counts_checks: bool, now: u64) -> Gate {
        let Some(tally) = tally else {
            return Gate::Go;
        };
        let recent: Vec<u64> = tally.recent(self.window, now).collect();
        if recent.len() >= limit {
            // `failures` keeps at most `limit`: all are recent; the
            // oldest must expire before another try.
            return Gate::Shut {
                retry_at: recent[0] + self.window,
            };
        }
        if counts_checks && recent.len() + tally.checking >= limit {
            return Gate::Wait;
        }
        Gate::Go
    }

    /// Whether `attempt` may have its password checked now.
    pub fn gate(&self, attempt: Attempt, now: u64) -> Gate {
        let net = network(attempt.peer);
        let by_network =
            |checks| self.judge(self.networks.get(&net), self.address_limit(), checks, now);
        let gates = match attempt.account {
            Some(account) => {
                let targeted = self
                    .accounts
                    .get(&account)
                    .is_some_and(|t| t.recent(self.window, now).next().is_some());
                [
                    self.judge(self.pairs.get(&(account, net)), self.limit, true, now),
                    self.judge(self.accounts.get(&account), self.account_limit(), true, now),
                    if targeted { by_network(true) } else { Gate::Go },
                ]
            }
            None => [Gate::Go, Gate::Go, by_network(false)],
        };
        let shut = gates.iter().filter_map(|g| match g {
            Gate::Shut { retry_at } => Some(*retry_at),
            _ => None,
        });
        match shut.max() {
            Some(retry_at) => Gate::Shut { retry_at },
            None if gates.contains(&Gate::Wait) => Gate::Wait,
            None => Gate::Go,
        }
    }

    fn account_limit(&self) -> usize {
        self.limit * ACCOUNT_SPREAD
    }

    fn address_limit(&self) -> usize {
        self.limit * ADDRESS_SPREAD
    }

    /// The tallies an attempt on `account` from `net` counts in, with
    /// their limits.
    fn tallies_of(&mut self, account: UserId, net: IpAddr) -> [(&mut Tally, usize); 3] {
        let (limit, account_limit, address_limit) =
            (self.limit, self.account_limit(), self.address_limit());
        [
            (self.pairs.entry((account, net)).or_default(), limit),
            (self.accounts.entry(account).or_default(), account_limit),
            (self.networks.entry(net).or_default(), address_limit),
        ]
    }

    /// `attempt`'s password goes to the hashers (call after [`Gate::Go`]).
    pub fn begin(&mut self, attempt: Attempt) {
        if let Some(account) = attempt.account {
            for (tally, _) in self.tallies_of(account, network(attempt.peer)) {
                tally.checking += 1;
            }
        }
    }

    /// The verdict on an attempt that [`Throttle::begin`] counted. Returns
    /// true when this failure reached a limit (worth a line in the log).
    pub fn end(&mut self, attempt: Attempt, failed: bool, now: u64) -> bool {
        let Some(account) = attempt.account else {
            return false;
        };
        let window = self.window;
        let mut reached = false;
        for (tally, limit) in self.tallies_of(account, network(attempt.peer)) {
            tally.checking = tally.checking.saturating_sub(1);
            if failed {
                tally.record(now, limit);
                reached |= tally.recent(window, now).count() == limit;
            }
        }
        reached
    }

    /// A failure that another node of a cluster saw at `at` (ms, this
    /// node's clock): counted like one of [`Throttle::end`]'s, with no
    /// check in progress here. One already out of the window is ignored.
    pub fn learn(&mut self, attempt: Attempt, at: u64, now: u64) {
        let Some(account) = attempt.account else {
            return;
        };
        if at + self.window <= now {
            return;
        }
        for (tally, limit) in self.tallies_of(account, network(attempt.peer)) {
            tally.record(at, limit);
        }
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
        self.pairs.retain(|_, t| live(t));
        self.accounts.retain(|_, t| live(t));
        self.networks.retain(|_, t| live(t));
    }

    /// Tallies kept: pairs, accounts and networks (for tests and stats).
    pub fn tallies(&self) -> usize {
        self.pairs.len() + self.accounts.len() + self.networks.len()
    }
}

/// An hour, in ms: the window of [`Registrations`].
const HOUR: u64 = 3_600_000;

/// New accounts per address (IPv6: per /64) in the last hour, so that one
/// address cannot create accounts without end (354 in 6.3 s were seen).
#[derive(Debug, Default)]
pub struct Registrations {
    /// When each address's recent registrations began, oldest first.
    by_network: HashMap<IpAddr, VecDeque<u64>>,
}

impl Registrations {
    /// Whether `peer` may register now, under `limit` an hour (0: no
    /// limit); if not, when it may (ms).
    pub fn check(&self, peer: IpAddr, limit: usize, now: u64) -> Result<(), u64> {
        let Some(times) = self.by_network.get(&network(peer)) else {
            return Ok(());
        };
        let recent: Vec<u64> = times.iter().copied().filter(|&t| t + HOUR > now).collect();
        match limit {
            0 => Ok(()),
            _ if recent.len() < limit => Ok(()),
            _ => Err(recent[recent.len() - limit] + HOUR),
        }
    }

    /// `peer` is registering an account (counted whether or not it ends
    /// well: a registration fails only for a reason found before hashing).
    pub fn record(&mut self, peer: IpAddr, limit: usize, now: u64) {
        if limit == 0 {
            return;
        }
        let times = self.by_network.entry(network(peer)).or_default();
        times.push_back(now);
        while times.len() > limit || times.front().is_some_and(|&t| t + HOUR <= now) {
            times.pop_front();
        }
    }

    /// Forgets addresses with no registration in the last hour.
    pub fn prune(&mut self, now: u64) {
        self.by_network
            .retain(|_, times| times.back().is_some_and(|&t| t + HOUR > now));
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
    fn three_failures_a_minute_per_account_and_address() {
        let mut t = Throttle::new(3, WINDOW);
        let alice = |peer| from(Some(1), peer);
        fail(&mut t, alice("10.0.0.1"), 1_000);
        fail(&mut t, alice("10.0.0.1"), 2_000);
        fail(&mut t, alice("10.0.0.1"), 3_000);
        assert_eq!(
            t.gate(alice("10.0.0.1"), 4_000),
            Gate::Shut { retry_at: 61_000 }
        );
        assert_eq!(
            t.gate(alice("10.0.0.4"), 4_000),
            Gate::Go,
            "alice elsewhere"
        );
        assert_eq!(
            t.gate(from(Some(2), "10.0.0.1"), 4_000),
            Gate::Go,
            "bob on the same address"
        );
        assert_eq!(
            t.gate(alice("10.0.0.1"), 60_999),
            Gate::Shut { retry_at: 61_000 }
        );
        assert_eq!(
            t.gate(alice("10.0.0.1"), 61_000),
            Gate::Go,
            "the first expired"
        );
    }

    /// From several addresses, one account gets twice the limit.
    #[test]
    fn six_failures_a_minute_per_account() {
        let mut t = Throttle::new(3, WINDOW);
        let alice = |peer| from(Some(1), peer);
        for (i, peer) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().enumerate() {
            fail(&mut t, alice(peer), 1_000 + i as u64);
            fail(&mut t, alice(peer), 2_000 + i as u64);
        }
        for peer in ["10.0.0.1", "10.0.0.9", "2001:db8::1"] {
            assert_eq!(
                t.gate(alice(peer), 4_000),
                Gate::Shut { retry_at: 61_000 },
                "{peer}"
            );
        }
        assert_eq!(t.gate(from(Some(2), "10.0.0.9"), 4_000), Gate::Go, "bob");
    }

    /// A classroom behind one address: one student's typos touch nobody
    /// else; only an address that fails on many accounts is stopped, and
    /// then only for accounts already under attack and for registrations.
    #[test]
    fn an_address_is_throttled_loosely_and_only_for_targets() {
        let mut t = Throttle::new(3, WINDOW);
        let nat = "192.0.2.7";
        let budget = 3 * ADDRESS_SPREAD as UserId;
        for account in 1..budget {
            fail(&mut t, from(Some(account), nat), 10);
        }
        assert_eq!(t.gate(from(Some(1), nat), 20), Gate::Go, "one short");
        assert_eq!(t.gate(from(None, nat), 20), Gate::Go, "may register");
        fail(&mut t, from(Some(budget), nat), 10);
        let shut = Gate::Shut { retry_at: 60_010 };
        assert_eq!(t.gate(from(Some(1), nat), 20), shut, "a target");
        assert_eq!(t.gate(from(None, nat), 20), shut, "nor may it register");
        assert_eq!(
            t.gate(from(Some(budget + 1), nat), 20),
            Gate::Go,
            "never the target: its password is checked"
        );
        assert_eq!(
            t.gate(from(Some(1), "192.0.2.8"), 20),
            Gate::Go,
            "next door"
        );
        assert_eq!(
            t.gate(from(Some(1), "::ffff:192.0.2.7"), 20),
            shut,
            "the same address mapped into IPv6"
        );
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let mut t = Throttle::new(3, WINDOW);
        for peer in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"] {
            fail(&mut t, from(Some(1), peer), 0);
        }
        assert!(matches!(
            t.gate(from(Some(1), "2001:db8:1:2:abcd::1"), 1),
            Gate::Shut { .. }
        ));
        assert_eq!(
            t.gate(from(Some(1), "2001:db8:1:3::1"), 1),
            Gate::Go,
            "another /64"
        );
    }

    /// Passwords being checked count as possible failures: a burst of
    /// guesses from many addresses gets the account's limit checked and
    /// the rest wait, then are refused once those failed — never more
    /// than that hashed.
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
        assert_eq!(checking, [0, 1, 2, 3, 4, 5]);
        assert_eq!(t.parked(), 94);
        assert!(t.unpark(5, |_| true).is_empty(), "nothing decided yet");
        for i in 0..5 {
            t.end(guess(i), true, 10 + i as u64);
        }
        assert!(t.unpark(15, |_| true).is_empty(), "one check still out");
        assert!(t.end(guess(5), true, 15), "the limit is reached");
        let released = t.unpark(16, |_| true);
        assert_eq!(released.len(), 94);
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
        let mut t: Throttle<()> = Throttle::new(1, WINDOW);
        let nat = "10.0.0.1";
        // Account 99 is under attack from elsewhere.
        fail(&mut t, from(Some(99), "10.9.9.9"), 0);
        for account in 1..=ADDRESS_SPREAD as UserId {
            t.begin(from(Some(account), nat));
        }
        assert_eq!(t.gate(from(Some(99), nat), 0), Gate::Wait, "a target waits");
        assert_eq!(t.gate(from(None, nat), 0), Gate::Go);
        t.begin(from(None, nat));
        t.end(from(None, nat), false, 0);
        let checks = ADDRESS_SPREAD;
        assert_eq!(
            t.tallies(),
            3 + 2 * checks + 1,
            "pairs, accounts, addresses"
        );
    }

    /// Another node's failures count toward every limit here, in time
    /// order among this node's own, so the limit holds for the cluster.
    #[test]
    fn failures_learned_from_other_nodes_count() {
        let mut t = Throttle::new(3, WINDOW);
        let alice = from(Some(1), "10.0.0.1");
        t.learn(alice, 2_000, 5_000);
        fail(&mut t, alice, 3_000);
        t.learn(alice, 1_000, 5_000);
        assert_eq!(
            t.gate(alice, 5_000),
            Gate::Shut { retry_at: 61_000 },
            "retry once the oldest (learned late) is out"
        );
        assert_eq!(t.gate(from(Some(1), "10.0.0.2"), 5_000), Gate::Go);
        // Three more learned from elsewhere: the account's six.
        for (i, peer) in ["10.0.0.7", "10.0.0.8", "10.0.0.9"].iter().enumerate() {
            t.learn(from(Some(1), peer), 4_000 + i as u64, 5_000);
        }
        assert_eq!(
            t.gate(from(Some(1), "10.0.0.2"), 5_000),
            Gate::Shut { retry_at: 61_000 },
            "the account's limit"
        );
        assert_eq!(t.gate(alice, 60_999), Gate::Shut { retry_at: 61_000 });
        assert_eq!(t.gate(alice, 61_000), Gate::Go, "the learned 1 000 expired");
    }

    /// A learned failure is not a check: it frees no slot and takes none;
    /// one already out of the window, or on a registration, counts nothing.
    #[test]
    fn learned_failures_are_not_checks() {
        let mut t: Throttle<&str> = Throttle::new(2, WINDOW);
        let alice = from(Some(1), "10.0.0.1");
        t.begin(alice);
        t.learn(alice, 10, 10);
        assert_eq!(t.gate(alice, 20), Gate::Wait, "one failure, one check");
        t.park(alice, "next");
        assert!(t.end(alice, true, 30), "the limit is reached");
        assert_eq!(t.unpark(40, |_| true), [Unparked::Shut("next", 60_010)]);
        let mut t: Throttle<()> = Throttle::new(1, WINDOW);
        t.learn(alice, 0, WINDOW);
        t.learn(from(None, "10.0.0.1"), WINDOW, WINDOW);
        assert_eq!(t.tallies(), 0, "too old, and no account");
        assert_eq!(t.gate(alice, WINDOW), Gate::Go);
    }

    #[test]
    fn old_tallies_are_forgotten() {
        let mut t = Throttle::new(3, WINDOW);
        fail(&mut t, from(Some(1), "10.0.0.1"), 0);
        t.begin(from(Some(2), "10.0.0.2"));
        t.prune(30_000);
        assert_eq!(t.tallies(), 6);
        t.prune(60_000);
        assert_eq!(t.tallies(), 3, "only the check in progress");
        t.end(from(Some(2), "10.0.0.2"), false, 60_001);
        t.prune(60_001);
        assert_eq!(t.tallies(), 0);
    }

    #[test]
    fn registrations_per_address_an_hour() {
        let mut r = Registrations::default();
        let nat: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..3 {
            assert_eq!(r.check(nat, 3, i), Ok(()));
            r.record(nat, 3, i);
        }
        assert_eq!(
            r.check(nat, 3, 10),
            Err(HOUR),
            "the first is an hour old then"
        );
        assert_eq!(r.check(nat, 3, HOUR), Ok(()));
        assert_eq!(
            r.check("192.0.2.8".parse().unwrap(), 3, 10),
            Ok(()),
            "next door"
        );
        assert_eq!(r.check(nat, 0, 10), Ok(()), "0: no limit");
        r.prune(HOUR + 1);
        assert_eq!(r.by_network.len(), 1, "the last was at 2");
        r.prune(HOUR + 2);
        assert!(r.by_network.is_empty());
    }
}
