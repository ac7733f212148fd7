//! The rules a login must pass before its password is hashed: whether a
//! password may travel in plaintext, how many logins may fail, how many
//! may wait for the hashers.

use std::net::IpAddr;

/// Whether a password may be sent over a plaintext (`--no-tls`) connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PlaintextLogin {
    /// Only from this machine (a loopback peer): the password never
    /// crosses a network in clear.
    #[default]
    Auto,
    /// From anywhere (a network you trust, a TLS-terminating proxy).
    Allow,
    /// Never: every login needs TLS.
    Refuse,
}

impl PlaintextLogin {
    /// Whether a login with a password may go ahead on a connection from
    /// `peer`; over TLS it always may.
    pub fn allows(self, tls: bool, peer: IpAddr) -> bool {
        tls || match self {
            PlaintextLogin::Auto => peer.to_canonical().is_loopback(),
            PlaintextLogin::Allow => true,
            PlaintextLogin::Refuse => false,
        }
    }
}

/// Whether a login may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Registration {
    /// Anyone may (within `--registrations-per-hour` per address).
    #[default]
    Open,
    /// Only the operator creates accounts (`/register` on the console).
    Closed,
}

/// The login rules (flags `--plaintext-login`, `--max-login-failures`,
/// `--login-failure-window`, `--auth-queue`, `--registration`,
/// `--registrations-per-hour`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginPolicy {
    pub plaintext: PlaintextLogin,
    /// Failed logins allowed per account and per address in a window.
    pub max_failures: usize,
    /// That window, in milliseconds.
    pub failure_window_ms: u64,
    /// Logins that may wait for the password hashers (queued or being
    /// hashed, or held by the throttle); the ones beyond are refused `busy`.
    pub max_pending: usize,
    pub registration: Registration,
    /// New accounts per address (IPv6: per /64) per hour; 0: no limit.
    pub registrations_per_hour: usize,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            plaintext: PlaintextLogin::Auto,
            max_failures: 3,
            failure_window_ms: 60_000,
            max_pending: 256,
            registration: Registration::Open,
            registrations_per_hour: 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decision for every policy, transport and kind of peer; tests
    /// over sockets can only show the loopback rows.
    #[test]
    fn plaintext_passwords_only_where_allowed() {
        use PlaintextLogin::*;
        let cases = [
            (Auto, false, "127.0.0.1", true),
            (Auto, false, "127.0.0.53", true),
            (Auto, false, "::1", true),
            (Auto, false, "::ffff:127.0.0.1", true),
            (Auto, false, "192.168.1.20", false),
            (Auto, false, "10.0.0.1", false),
            (Auto, false, "2001:db8::1", false),
            (Auto, false, "0.0.0.0", false),
            (Auto, true, "192.168.1.20", true),
            (Allow, false, "192.168.1.20", true),
            (Allow, false, "127.0.0.1", true),
            (Refuse, false, "127.0.0.1", false),
            (Refuse, false, "::1", false),
            (Refuse, true, "192.168.1.20", true),
        ];
        for (policy, tls, peer, allowed) in cases {
            let ip: IpAddr = peer.parse().unwrap();
            assert_eq!(
                policy.allows(tls, ip),
                allowed,
                "{policy:?}, tls {tls}, from {peer}"
            );
        }
    }
}
