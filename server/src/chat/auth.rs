//! Password hashing off the dispatcher: argon2id takes tens of milliseconds
//! by design, so it runs on its own threads and the chat never waits for it.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// A new salted argon2id hash of `password` at `cost`, as a PHC string.
pub fn hash(cost: Cost, password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    let hasher = cost.hasher().map_err(|e| e.to_string())?;
    let output = digest(
        &hasher,
        password,
        salt.as_salt(),
        Params::DEFAULT_OUTPUT_LEN,
    )?;
    let params = ParamsString::try_from(hasher.params()).map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Compares in constant time: the guess is hashed with the stored salt and
/// parameters, and the two outputs are compared with `subtle`'s
/// `ConstantTimeEq` (`Output`'s `PartialEq`), so how much of a guess is
/// right does not show in the time taken.
pub fn verify(password: &str, hash: &str) -> Verdict {
    let unreadable =
        |err: &dyn std::fmt::Display| Verdict::Failed(format!("stored hash unreadable: {err}"));
    let parsed = match PasswordHash::new(hash) {
        Ok(parsed) => parsed,
        Err(err) => return unreadable(&err),
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return unreadable(&"no salt or no hash");
    };
    let hasher = match hasher_of(&parsed) {
        Ok(hasher) => hasher,
        Err(err) => return unreadable(&err),
    };
    match digest(&hasher, password, salt, expected.len()) {
        Ok(computed) if computed == expected => Verdict::Verified,
        Ok(_) => Verdict::WrongPassword,
        Err(err) => Verdict::Failed(err),
    }
}

/// The hasher a stored hash was made with (its algorithm, version and
/// parameters travel in its PHC string).
fn hasher_of(parsed: &PasswordHash) -> Result<Argon2<'static>, argon2::password_hash::Error> {
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    Ok(Argon2::new(algorithm, version, Params::try_from(parsed)?))
}

thread_local! {
    /// The hashing thread's argon2 memory (19 MiB at OWASP's cost), kept
    /// from one hash to the next: allocated per hash, glibc kept every
    /// thread's copy anyway and an idle server grew from 16 to 231 MB after
    /// a few dozen logins, while a fresh mapping per hash (returned at
    /// once) made each login 50 % slower (page faults).
    static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// argon2's output for `password` and `salt`, computed in this thread's
/// memory (grown to what `hasher` needs, never shrunk).
fn digest(hasher: &Argon2, password: &str, salt: Salt, len: usize) -> Result<Output, String> {
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| e.to_string())?;
    BLOCKS.with_borrow_mut(|blocks| {
        let needed = hasher.params().block_count();
        if blocks.len() < needed {
            blocks.resize(needed, Block::default());
        }
        Output::init_with(len, |out| {
            hasher
                .hash_password_into_with_memory(
                    password.as_bytes(),
                    salt,
                    out,
                    &mut blocks[..needed],
                )
                .map_err(|_| argon2::password_hash::Error::Crypto)
        })
        .map_err(|e| e.to_string())
    })
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

    /// Hashes made by the argon2 crate's own API (as every account before
    /// the thread's reused memory was) still verify, and ours verify there.
    #[test]
    fn compatible_with_the_crates_own_hashes() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let cheap = Cost {
            memory: 64,
            iterations: 1,
        };
        let salt = SaltString::generate(&mut OsRng);
        let theirs = cheap
            .hasher()
            .unwrap()
            .hash_password(b"secret", &salt)
            .unwrap()
            .to_string();
        assert_eq!(verify("secret", &theirs), Verdict::Verified);
        assert_eq!(verify("other", &theirs), Verdict::WrongPassword);
        let ours = hash(cheap, "secret").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"secret", &parsed)
            .is_ok());
        // A larger cost after a smaller one grows the thread's memory.
        let bigger = Cost {
            memory: 256,
            iterations: 1,
        };
        assert_eq!(
            verify("pw", &hash(bigger, "pw").unwrap()),
            Verdict::Verified
        );
        assert_eq!(verify("secret", &ours), Verdict::Verified, "and back");
    }

    /// The memory of one hash is the next one's: one allocation per thread
    /// for its lifetime, not one per login kept by the allocator.
    #[test]
    fn a_thread_hashes_in_the_same_memory() {
        let cost = Cost {
            memory: 1024,
            iterations: 1,
        };
        let buffer = || BLOCKS.with_borrow(|b| (b.as_ptr() as usize, b.len()));
        hash(cost, "one").unwrap();
        let first = buffer();
        assert_eq!(first.1, 1024, "1 KiB blocks");
        for password in ["two", "three"] {
            let stored = hash(cost, password).unwrap();
            assert_eq!(verify(password, &stored), Verdict::Verified);
            assert_eq!(buffer(), first, "the same memory");
        }
    }

    #[test]
    fn owasp_parameters() {
        let h = hash(Cost::OWASP, "pw").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
    }
}
