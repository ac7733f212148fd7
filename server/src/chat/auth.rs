//! Password hashing off the dispatcher: argon2id takes tens of milliseconds
//! by design, so it runs on its own threads and the chat never waits for it.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use crossbeam_channel::{Receiver, Sender};

use std::net::IpAddr;

use crate::chat::state::throttle::Attempt;
use crate::store::{Origin, UserId};

/// The cost of a new hash. Verifying uses the parameters stored in the
/// hash itself, so changing these affects only accounts created later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Memory in KiB.
    pub memory: u32,
    pub iterations: u32,
}

impl Cost {
    /// OWASP's recommendation for argon2id: 19 MiB, 2 iterations, 1 lane.
    pub const OWASP: Cost = Cost {
        memory: 19 * 1024,
        iterations: 2,
    };

    fn hasher(self) -> Result<Argon2<'static>, argon2::Error> {
        let params = Params::new(self.memory, self.iterations, 1, None)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// A login waiting for its password to be checked (or hashed, for a new
/// account), or a password change (`change`) waiting for the old one to be
/// checked and the new one hashed.
#[derive(Debug)]
pub struct Check {
    pub origin: Origin,
    /// Where the login comes from, for the throttle.
    pub peer: IpAddr,
    pub nick: String,
    pub password: String,
    /// The account whose password this is and its hash; `None` to create
    /// the account.
    pub account: Option<UserId>,
    pub hash: Option<String>,
    pub last_seq: Option<u64>,
    pub last_public: Option<u64>,
    /// The new password, for a change (`password`); `None` for a login.
    pub change: Option<String>,
}

impl Check {
    /// The job as the login throttle counts it.
    pub fn attempt(&self) -> Attempt {
        Attempt {
            account: self.account,
            peer: self.peer,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The password matches the account's hash.
    Verified,
    /// A hash of the password, for a new account, or of the new password,
    /// for a change whose old password matched.
    Hashed(String),
    WrongPassword,
    Failed(String),
}

/// Starts `threads` hashing threads; each verdict goes to `done` with its job.
pub fn start(
    threads: usize,
    cost: Cost,
    jobs: Receiver<Check>,
    done: Sender<(Check, Verdict)>,
) -> std::io::Result<()> {
    for i in 0..threads.max(1) {
        let (jobs, done) = (jobs.clone(), done.clone());
        std::thread::Builder::new()
            .name(format!("auth-{i}"))
            .spawn(move || {
                for job in jobs {
                    let verdict = judge(cost, &job);
                    if done.send((job, verdict)).is_err() {
                        return;
                    }
                }
            })?;
    }
    Ok(())
}

fn judge(cost: Cost, job: &Check) -> Verdict {
    let fresh = |password: &str| match hash(cost, password) {
        Ok(hash) => Verdict::Hashed(hash),
        Err(err) => Verdict::Failed(err),
    };
    match (&job.hash, &job.change) {
        (Some(hash), Some(new)) => match verify(&job.password, hash) {
            Verdict::Verified => fresh(new),
            other => other,
        },
        (Some(hash), None) => verify(&job.password, hash),
        (None, _) => fresh(&job.password),
    }
}

/// A password for the operator to hand out (`/register`): 12 letters and
/// digits without look-alikes (no 0/O, 1/l/I), about 70 bits.
pub fn new_password() -> String {
    use argon2::password_hash::rand_core::RngCore as _;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..12)
        .map(|_| ALPHABET[(OsRng.next_u32() as usize) % ALPHABET.len()] as char)
        .collect()
}

pub fn hash(cost: Cost, password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    let hasher = cost.hasher().map_err(|e| e.to_string())?;
    hasher
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Compares in constant time: the verifier (password-hash 0.5's
/// `PasswordVerifier`, which argon2 0.5 uses) hashes the guess with the
/// stored salt and parameters and compares the two outputs with `subtle`'s
/// `ConstantTimeEq` (`Output`'s `PartialEq`), so how much of a guess is
/// right does not show in the time taken.
pub fn verify(password: &str, hash: &str) -> Verdict {
    let parsed = match PasswordHash::new(hash) {
        Ok(parsed) => parsed,
        Err(err) => return Verdict::Failed(format!("stored hash unreadable: {err}")),
    };
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Verdict::Verified,
        Err(argon2::password_hash::Error::Password) => Verdict::WrongPassword,
        Err(err) => Verdict::Failed(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let cheap = Cost {
            memory: 64,
            iterations: 1,
        };
        let a = hash(cheap, "secret").unwrap();
        let b = hash(cheap, "secret").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert_eq!(verify("secret", &a), Verdict::Verified);
        assert_eq!(verify("Secret", &a), Verdict::WrongPassword);
        assert!(matches!(verify("secret", "garbage"), Verdict::Failed(_)));
    }

    #[test]
    fn owasp_parameters() {
        let h = hash(Cost::OWASP, "pw").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
    }
}
