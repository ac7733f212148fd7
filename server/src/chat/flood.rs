//! Flood control: a token bucket per account for chat messages, kept
//! across connections in the [`Ledger`], so that logging in again does not
//! fill it again. Messages sent with a login (pipelined) wait for its
//! outcome, then count against the account; those of a connection that
//! never logged in (refused anyway) take from their address's bucket.
//!
//! A client over its rate is slowed, not cut: its next message waits (and
//! the worker stops reading its socket, so TCP pushes back) until a token
//! is due. Only one that keeps at it for `cut_after` is disconnected.
//! Other requests are bounded elsewhere (reads per connection, the send
//! queue, the login throttle), and the console's `/announce` never passes
//! through a bucket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::chat::state::throttle::network;
use crate::framework::ConnId;
use crate::store::UserId;

/// An address's bucket, for messages of connections that sent no login
/// (each is refused `not_logged_in`), in multiples of an account's burst
/// and rate.
pub const ADDRESS_SPREAD: u32 = 4;

/// How often a message sent with a login looks again whether the login is
/// through.
const LOGIN_POLL: Duration = Duration::from_millis(5);

/// Buckets kept before full ones (forgotten: nothing to remember) are
/// dropped.
const PRUNE_AT: usize = 1024;

/// The limits, the same for every connection.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Messages that may be sent at once after a quiet spell.
    pub burst: u32,
    /// Messages per second after that; 0 turns flood control off.
    pub per_second: f64,
    /// How long a client may stay over its rate before it is disconnected.
    pub cut_after: Duration,
}

impl Policy {
    pub fn is_off(&self) -> bool {
        self.per_second <= 0.0
    }

    /// The looser limits of an address's bucket.
    fn for_address(&self) -> Policy {
        Policy {
            burst: self.burst * ADDRESS_SPREAD,
            per_second: self.per_second * f64::from(ADDRESS_SPREAD),
            ..*self
        }
    }
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Send it now.
    Go,
    /// Hold it until then. `started` is true for the first wait of a flood.
    Wait { until: Instant, started: bool },
    /// Over the rate for longer than `cut_after`: disconnect.
    Cut,
    /// Not a flood: the connection's login is not through yet; look again
    /// then.
    Hold(Instant),
}

/// One account's (or address's) bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    refilled: Instant,
    /// Since when the client has been over its rate without a pause long
    /// enough to fill the bucket again.
    flooding_since: Option<Instant>,
}

impl Bucket {
    pub fn new(policy: &Policy, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(policy.burst),
            refilled: now,
            flooding_since: None,
        }
    }

    /// Whether it has filled up again by `now`: it remembers nothing.
    fn is_full(&self, policy: &Policy, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens + elapsed * policy.per_second >= f64::from(policy.burst.max(1))
    }

    /// Takes a token for one message, or says how long to wait for one.
    pub fn take(&mut self, policy: &Policy, now: Instant) -> Verdict {
        if policy.is_off() {
            return Verdict::Go;
        }
        let burst = f64::from(policy.burst.max(1));
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * policy.per_second).min(burst);
        self.refilled = now;
        if self.tokens >= burst {
            // A full bucket means the client paused: whatever it did
            // before is forgiven.
            self.flooding_since = None;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Go;
        }
        let started = self.flooding_since.is_none();
        let since = *self.flooding_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= policy.cut_after {
            return Verdict::Cut;
        }
        let wait = (1.0 - self.tokens) / policy.per_second;
        Verdict::Wait {
            until: now + Duration::from_secs_f64(wait),
            started,
        }
    }
}

/// Every account's bucket, shared by the I/O workers (which take tokens)
/// and the dispatcher (which says which account a connection is).
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<Buckets>,
}

/// Who a connection speaks for, as far as flood control knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaker {
    /// It sent a login, not decided yet.
    Pending,
    Account(UserId),
}

#[derive(Default)]
struct Buckets {
    /// Connections that sent a login, and those logged in.
    conns: HashMap<ConnId, Speaker>,
    accounts: HashMap<UserId, Bucket>,
    /// By network (IPv6 /64), for connections not logged in yet.
    addresses: HashMap<IpAddr, Bucket>,
}

impl Ledger {
    /// `conn` sent a login: its messages wait for the outcome ([`bind`]),
    /// unless it is logged in already.
    ///
    /// [`bind`]: Ledger::bind
    pub fn login_sent(&self, conn: ConnId) {
        self.inner
            .lock()
            .conns
            .entry(conn)
            .or_insert(Speaker::Pending);
    }

    /// `conn` speaks for `user` from now on (`None`: its login failed, or
    /// it has left).
    pub fn bind(&self, conn: ConnId, user: Option<UserId>) {
        let mut inner = self.inner.lock();
        match user {
            Some(user) => inner.conns.insert(conn, Speaker::Account(user)),
            None => inner.conns.remove(&conn),
        };
    }

    /// Takes a token for a message on `conn` from `peer`: from its
    /// account's bucket once it has logged in; after a login not yet
    /// decided, none (it waits); else from its address's.
    pub fn take(&self, conn: ConnId, peer: IpAddr, policy: &Policy, now: Instant) -> Verdict {
        if policy.is_off() {
            return Verdict::Go;
        }
        let mut inner = self.inner.lock();
        let Buckets {
            conns,
            accounts,
            addresses,
        } = &mut *inner;
        let address = policy.for_address();
        if accounts.len() + addresses.len() > PRUNE_AT {
            accounts.retain(|_, b| !b.is_full(policy, now));
            addresses.retain(|_, b| !b.is_full(&address, now));
        }
        match conns.get(&conn) {
            Some(Speaker::Account(user)) => accounts
                .entry(*user)
                .or_insert_with(|| Bucket::new(policy, now))
                .take(policy, now),
            Some(Speaker::Pending) => Verdict::Hold(now + LOGIN_POLL),
            None => addresses
                .entry(network(peer))
                .or_insert_with(|| Bucket::new(&address, now))
                .take(&address, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        burst: 20,
        per_second: 10.0,
        cut_after: Duration::from_secs(30),
    };

    /// Sends as fast as allowed for `secs`, waiting whenever told to;
    /// returns how many went and the first cut, if any.
    fn flood(bucket: &mut Bucket, start: Instant, secs: u64) -> (u32, Option<Instant>) {
        let mut now = start;
        let mut sent = 0;
        while now < start + Duration::from_secs(secs) {
            match bucket.take(&POLICY, now) {
                Verdict::Go => sent += 1,
                Verdict::Wait { until, .. } => now = until,
                Verdict::Cut => return (sent, Some(now)),
                Verdict::Hold(_) => unreachable!("a bucket never holds"),
            }
        }
        (sent, None)
    }

    #[test]
    fn a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(&POLICY, start);
        let (sent, cut) = flood(&mut bucket, start, 10);
        assert_eq!(cut, None);
        // 20 at once, then 10 a second for 10 s (give or take the last).
        assert!((118..=121).contains(&sent), "sent {sent}");
    }

    #[test]
    fn the_first_wait_says_a_flood_started() {
        let start = Instant::now();
        let mut bucket = Bucket::new(&POLICY, start);
        for _ in 0..20 {
            assert_eq!(bucket.take(&POLICY, start), Verdict::Go);
        }
        let Verdict::Wait { until, started } = bucket.take(&POLICY, start) else {
            panic!("the 21st message must wait");
        };
        assert!(started);
        assert_eq!(until - start, Duration::from_millis(100));
        assert!(matches!(
            bucket.take(&POLICY, start),
            Verdict::Wait { started: false, .. }
        ));
    }

    #[test]
    fn flooding_for_30_s_is_cut_and_a_pause_forgives() {
        let start = Instant::now();
        let mut bucket = Bucket::new(&POLICY, start);
        let (_, cut) = flood(&mut bucket, start, 60);
        let cut = cut.expect("a 60 s flood is cut");
        assert!(cut - start >= Duration::from_secs(30) && cut - start < Duration::from_secs(31));

        // Flood 20 s, pause 2 s (the bucket fills), flood 20 s: never cut.
        let mut bucket = Bucket::new(&POLICY, start);
        assert_eq!(flood(&mut bucket, start, 20).1, None);
        let later = start + Duration::from_secs(22);
        assert_eq!(flood(&mut bucket, later, 20).1, None);
    }

    #[test]
    fn a_client_within_its_rate_never_waits() {
        let start = Instant::now();
        let mut bucket = Bucket::new(&POLICY, start);
        for i in 0..1_000 {
            let now = start + Duration::from_millis(200 * i);
            assert_eq!(bucket.take(&POLICY, now), Verdict::Go);
        }
    }

    #[test]
    fn off_means_off() {
        let policy = Policy {
            per_second: 0.0,
            ..POLICY
        };
        let start = Instant::now();
        let mut bucket = Bucket::new(&policy, start);
        for _ in 0..10_000 {
            assert_eq!(bucket.take(&policy, start), Verdict::Go);
        }
    }

    /// An account's bucket outlives its connection: logging in again does
    /// not fill it. Before the login is through, messages take from the
    /// address's looser bucket, shared by every connection from it.
    #[test]
    fn the_ledger_remembers_an_account_across_connections() {
        let ledger = Ledger::default();
        let start = Instant::now();
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let burst = |conn: ConnId| {
            (0..1000)
                .take_while(|_| ledger.take(conn, peer, &POLICY, start) == Verdict::Go)
                .count()
        };
        ledger.bind(1, Some(7));
        assert_eq!(burst(1), 20);
        ledger.bind(1, None);
        ledger.bind(2, Some(7));
        assert_eq!(burst(2), 0, "a new connection, the same account");
        ledger.bind(3, Some(8));
        assert_eq!(burst(3), 20, "another account");
        assert_eq!(burst(4), 80, "no login: the address's");
        assert_eq!(burst(5), 0, "the same address");
        ledger.login_sent(9);
        assert!(matches!(
            ledger.take(9, peer, &POLICY, start),
            Verdict::Hold(_)
        ));
        ledger.bind(9, Some(8));
        assert_eq!(burst(9), 0, "then the account's, used up by conn 3");
        ledger.login_sent(9);
        assert_eq!(burst(9), 0, "a second login does not undo the first");
        ledger.login_sent(10);
        ledger.bind(10, None);
        assert_eq!(burst(10), 0, "a failed login: the address's, used up");
        let elsewhere: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(ledger.take(6, elsewhere, &POLICY, start), Verdict::Go);
    }
}
