//! Who may connect: caps on open connections per address and in all, and a
//! list of banned addresses. The acceptor asks before it hands a new
//! connection to a worker; the [`Slot`] it gets back is the connection's
//! place under the caps and gives it back when dropped (the worker drops it
//! when the connection closes, whatever the path), so counts cannot leak.
//!
//! An address is an IPv4 address or an IPv6 /64: one IPv6 host usually has
//! a whole /64 to pick addresses from, so a cap (or a ban) on one IPv6
//! address would hold nobody.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use chat_common::Frame;
use parking_lot::Mutex;

/// The caps, from `--max-connections-per-ip` and `--max-connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub per_address: usize,
    pub total: usize,
}

/// Why a connection was turned away at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address is on the ban list.
    Banned,
    /// Its address already has `Caps::per_address` connections open.
    PerAddress,
    /// The server already has `Caps::total` connections open.
    Total,
}

/// A ban: the address as given and when it lifts (`None`: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    pub ip: IpAddr,
    pub until: Option<Instant>,
}

/// The counters `/stats` shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Connections open now (admitted and not yet closed).
    pub open: usize,
    /// Connections admitted since the start.
    pub admitted: u64,
    pub refused_banned: u64,
    pub refused_per_address: u64,
    pub refused_total: u64,
}

/// What caps and bans count by: an IPv4 address, or the /64 of an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    V4(u32),
    V6(u64),
}

impl Key {
    fn of(ip: IpAddr) -> Key {
        // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d.
        match ip.to_canonical() {
            IpAddr::V4(v4) => Key::V4(v4.to_bits()),
            IpAddr::V6(v6) => Key::V6((v6.to_bits() >> 64) as u64),
        }
    }
}

#[derive(Default)]
struct Books {
    open: HashMap<Key, usize>,
    total: usize,
    bans: HashMap<Key, Ban>,
}

/// What a refused plaintext peer is told before the connection closes, if
/// anything (the framework knows no protocol; the application does).
pub type Notice = fn(Refusal) -> Option<Frame>;

/// The caps, the open connections they count, and the ban list; shared by
/// the acceptor, the workers and whoever runs the console.
pub struct Admission {
    caps: Caps,
    notice: Notice,
    books: Mutex<Books>,
    admitted: AtomicU64,
    refused: [AtomicU64; 3],
}

impl Admission {
    pub fn new(caps: Caps, notice: Notice) -> Arc<Admission> {
        Arc::new(Admission {
            caps,
            notice,
            books: Mutex::default(),
            admitted: AtomicU64::new(0),
            refused: Default::default(),
        })
    }

    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// The line a refused plaintext peer gets, if any.
    pub fn notice(&self, refusal: Refusal) -> Option<Frame> {
        (self.notice)(refusal)
    }

    /// Takes a place for a new connection from `ip`, or says why not (and
    /// counts the refusal).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let key = Key::of(ip);
        let verdict = {
            let mut books = self.books.lock();
            let banned = match books.bans.get(&key) {
                Some(ban) if ban.until.is_some_and(|t| t <= Instant::now()) => {
                    books.bans.remove(&key);
                    false
                }
                Some(_) => true,
                None => false,
            };
            if banned {
                Err(Refusal::Banned)
            } else if books.total >= self.caps.total {
                Err(Refusal::Total)
            } else if books.open.get(&key).copied().unwrap_or(0) >= self.caps.per_address {
                Err(Refusal::PerAddress)
            } else {
                books.total += 1;
                *books.open.entry(key).or_default() += 1;
                Ok(())
            }
        };
        match verdict {
            Ok(()) => {
                self.admitted.fetch_add(1, Relaxed);
                Ok(Slot {
                    admission: self.clone(),
                    key,
                })
            }
            Err(refusal) => {
                self.refused[refusal as usize].fetch_add(1, Relaxed);
                Err(refusal)
            }
        }
    }

    fn release(&self, key: Key) {
        let mut books = self.books.lock();
        books.total = books.total.saturating_sub(1);
        if let Some(n) = books.open.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                books.open.remove(&key);
            }
        }
    }

    /// Refuses new connections from `ip` (for IPv6, its /64) until `until`,
    /// or for good. Connections already open are not touched. Banning an
    /// address again replaces its ban.
    pub fn ban(&self, ip: IpAddr, until: Option<Instant>) {
        self.books
            .lock()
            .bans
            .insert(Key::of(ip), Ban { ip, until });
    }

    /// Lifts the ban on `ip` (or its /64); false if none was in force.
    pub fn unban(&self, ip: IpAddr) -> bool {
        let mut books = self.books.lock();
        match books.bans.remove(&Key::of(ip)) {
            Some(ban) => ban.until.is_none_or(|t| t > Instant::now()),
            None => false,
        }
    }

    /// The bans in force, sorted by address; expired ones are dropped.
    pub fn banned(&self) -> Vec<Ban> {
        let now = Instant::now();
        let mut books = self.books.lock();
        books
            .bans
            .retain(|_, ban| ban.until.is_none_or(|t| t > now));
        let mut bans: Vec<Ban> = books.bans.values().copied().collect();
        bans.sort_by_key(|ban| ban.ip);
        bans
    }

    /// Connections open now from `ip` (for IPv6, its /64).
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.books
            .lock()
            .open
            .get(&Key::of(ip))
            .copied()
            .unwrap_or(0)
    }

    /// Whether `a` and `b` count as one address (the same IPv6 /64).
    pub fn same_address(a: IpAddr, b: IpAddr) -> bool {
        Key::of(a) == Key::of(b)
    }

    pub fn stats(&self) -> AdmissionStats {
        let open = self.books.lock().total;
        let refused = |r: Refusal| self.refused[r as usize].load(Relaxed);
        AdmissionStats {
            open,
            admitted: self.admitted.load(Relaxed),
            refused_banned: refused(Refusal::Banned),
            refused_per_address: refused(Refusal::PerAddress),
            refused_total: refused(Refusal::Total),
        }
    }
}

/// One admitted connection's place under the caps, given back on drop.
pub struct Slot {
    admission: Arc<Admission>,
    key: Key,
}

impl Slot {
    /// Whether its address was banned since it was admitted: a connection
    /// still in its TLS handshake is unknown to the application, so the
    /// ban's sweep of open connections cannot reach it.
    pub fn is_banned(&self) -> bool {
        let books = self.admission.books.lock();
        books
            .bans
            .get(&self.key)
            .is_some_and(|ban| ban.until.is_none_or(|t| t > Instant::now()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.release(self.key);
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slot({:?})", self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn caps(per_address: usize, total: usize) -> Arc<Admission> {
        Admission::new(Caps { per_address, total }, |_| None)
    }

    #[test]
    fn the_cap_per_address_holds_and_a_closed_connection_frees_its_place() {
        let a = caps(2, 100);
        let one = a.admit(ip("10.0.0.1")).unwrap();
        let _two = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(a.admit(ip("10.0.0.1")).unwrap_err(), Refusal::PerAddress);
        // Another address has its own count.
        let _other = a.admit(ip("10.0.0.2")).unwrap();
        drop(one);
        let _three = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(a.open_from(ip("10.0.0.1")), 2);
        let stats = a.stats();
        assert_eq!((stats.open, stats.admitted), (3, 4));
        assert_eq!(stats.refused_per_address, 1);
    }

    #[test]
    fn the_total_cap_holds() {
        let a = caps(10, 3);
        let slots: Vec<Slot> = (1..=3)
            .map(|i| a.admit(ip(&format!("10.0.0.{i}"))).unwrap())
            .collect();
        assert_eq!(a.admit(ip("10.0.0.9")).unwrap_err(), Refusal::Total);
        drop(slots);
        assert_eq!(a.stats().open, 0);
        assert!(a.admit(ip("10.0.0.9")).is_ok());
        assert_eq!(a.stats().refused_total, 1);
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let a = caps(1, 100);
        let _s = a.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8:1:2:ffff::9")).unwrap_err(),
            Refusal::PerAddress,
            "same /64"
        );
        assert!(a.admit(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        let _v4 = a.admit(ip("192.0.2.7")).unwrap();
        assert_eq!(
            a.admit(ip("::ffff:192.0.2.7")).unwrap_err(),
            Refusal::PerAddress
        );
    }

    #[test]
    fn bans_refuse_expire_and_lift() {
        let a = caps(10, 100);
        let now = Instant::now();
        a.ban(ip("10.0.0.1"), None);
        a.ban(ip("2001:db8::1"), Some(now + Duration::from_secs(60)));
        a.ban(ip("10.0.0.3"), Some(now - Duration::from_millis(1)));
        assert_eq!(a.admit(ip("10.0.0.1")).unwrap_err(), Refusal::Banned);
        assert_eq!(
            a.admit(ip("2001:db8::42")).unwrap_err(),
            Refusal::Banned,
            "the ban covers the /64"
        );
        assert!(a.admit(ip("10.0.0.3")).is_ok(), "an expired ban");
        assert_eq!(
            a.banned(),
            vec![
                Ban {
                    ip: ip("10.0.0.1"),
                    until: None
                },
                Ban {
                    ip: ip("2001:db8::1"),
                    until: Some(now + Duration::from_secs(60))
                },
            ]
        );
        assert!(a.unban(ip("10.0.0.1")));
        assert!(!a.unban(ip("10.0.0.1")), "already lifted");
        assert!(a.admit(ip("10.0.0.1")).is_ok());
        assert_eq!(a.stats().refused_banned, 2);
    }

    #[test]
    fn a_slot_learns_of_a_later_ban_on_its_address() {
        let a = caps(10, 100);
        let slot = a.admit(ip("2001:db8::1")).unwrap();
        let other = a.admit(ip("10.0.0.1")).unwrap();
        assert!(!slot.is_banned());
        a.ban(ip("2001:db8::2"), None);
        assert!(slot.is_banned(), "the same /64");
        assert!(!other.is_banned());
        a.ban(
            ip("10.0.0.1"),
            Some(Instant::now() - Duration::from_millis(1)),
        );
        assert!(!other.is_banned(), "an expired ban");
    }
}
