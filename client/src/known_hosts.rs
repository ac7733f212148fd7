//! The known_hosts file: one pinned certificate fingerprint per server, so a
//! self-signed server is trusted on first use and a changed one is refused.
//!
//! Format: one `host:port FINGERPRINT` per line, where the fingerprint is the
//! SHA-256 of the DER certificate as uppercase hex bytes joined by `:` (what
//! the server prints as `SHA-256 AB:CD:…`). A `SHA-256` word between the two
//! is accepted, so the server's line can be pasted; `#` starts a comment.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// `AB:CD:…`: the SHA-256 of a DER certificate, as the server prints it.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// What the file said about a server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The fingerprint matches the pinned one.
    Known,
    /// The server was not in the file; it has been added.
    Pinned,
}

#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    /// Worded like ssh's warning, because it means the same thing.
    #[error(
        "refusing to connect: the certificate of {server} has changed\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         @    WARNING: SERVER CERTIFICATE HAS CHANGED!           @\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         The certificate of {server} is not the one pinned on first use.\n\
         Someone could be intercepting the connection, or the server got a new certificate.\n\
         \x20 pinned:    SHA-256 {pinned}\n\
         \x20 presented: SHA-256 {presented}\n\
         If you know the server's certificate was changed on purpose, delete line {line} \
         of {} and connect again",
        path.display()
    )]
    Mismatch {
        server: String,
        pinned: String,
        presented: String,
        path: PathBuf,
        line: usize,
    },
}

/// A known_hosts file at a path; it need not exist yet.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
}

impl KnownHosts {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        KnownHosts { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pinned fingerprint of `server` and its line number (from 1).
    pub fn lookup(&self, server: &str) -> Result<Option<(String, usize)>, KnownHostsError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KnownHostsError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        for (index, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(host), Some(mut print)) = (words.next(), words.next()) else {
                continue;
            };
            if print.eq_ignore_ascii_case("SHA-256") {
                print = words.next().unwrap_or("");
            }
            if host == server {
                return Ok(Some((print.to_ascii_uppercase(), index + 1)));
            }
        }
        Ok(None)
    }

    /// Checks `presented` against the pin for `server`, pinning it if there
    /// is none.
    pub fn check(&self, server: &str, presented: &str) -> Result<Verdict, KnownHostsError> {
        match self.lookup(server)? {
            Some((pinned, _)) if pinned.eq_ignore_ascii_case(presented) => Ok(Verdict::Known),
            Some((pinned, line)) => Err(KnownHostsError::Mismatch {
                server: server.to_string(),
                pinned,
                presented: presented.to_string(),
                path: self.path.clone(),
                line,
            }),
            None => {
                self.append(server, presented)?;
                Ok(Verdict::Pinned)
            }
        }
    }

    fn append(&self, server: &str, fingerprint: &str) -> Result<(), KnownHostsError> {
        let write_error = |source| KnownHostsError::Write {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(write_error)?;
        }
        // A file that does not end in a newline (edited by hand) must not
        // glue our line onto its last one.
        let needs_newline = fs::read(&self.path)
            .map(|bytes| bytes.last().is_some_and(|&b| b != b'\n'))
            .unwrap_or(false);
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(write_error)?;
        let newline = if needs_newline { "\n" } else { "" };
        writeln!(file, "{newline}{server} {fingerprint}").map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("chat-client-test-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn fingerprint_is_uppercase_hex_pairs() {
        let print = fingerprint(b"");
        assert!(print.starts_with("E3:B0:C4:42:98:FC:1C:14"), "{print}");
        assert_eq!(print.len(), 32 * 3 - 1);
    }

    #[test]
    fn pins_on_first_use_then_recognises() {
        let dir = TempDir::new("pin");
        let hosts = KnownHosts::new(dir.0.join("sub/known_hosts"));
        assert_eq!(hosts.lookup("h:1").unwrap(), None);
        assert_eq!(hosts.check("h:1", "AA:BB").unwrap(), Verdict::Pinned);
        assert_eq!(hosts.check("h:2", "CC:DD").unwrap(), Verdict::Pinned);
        assert_eq!(hosts.check("h:1", "aa:bb").unwrap(), Verdict::Known);
        assert_eq!(hosts.check("h:2", "CC:DD").unwrap(), Verdict::Known);
        let text = fs::read_to_string(hosts.path()).unwrap();
        assert_eq!(text, "h:1 AA:BB\nh:2 CC:DD\n");
    }

    #[test]
    fn mismatch_names_both_prints_and_the_line() {
        let dir = TempDir::new("mismatch");
        fs::create_dir_all(&dir.0).unwrap();
        let path = dir.0.join("known_hosts");
        fs::write(&path, "# pins\n\nother:1 11:22\nh:1 SHA-256 AA:BB").unwrap();
        let hosts = KnownHosts::new(&path);
        let err = hosts.check("h:1", "CC:DD").unwrap_err();
        assert!(
            matches!(err, KnownHostsError::Mismatch { line: 4, .. }),
            "{err:?}"
        );
        let text = err.to_string();
        for want in [
            "HAS CHANGED",
            "h:1",
            "pinned:    SHA-256 AA:BB",
            "presented: SHA-256 CC:DD",
            &format!("delete line 4 of {}", path.display()),
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        // A refused certificate is never written.
        assert_eq!(hosts.lookup("h:1").unwrap(), Some(("AA:BB".into(), 4)));
        // A file without a final newline still gets whole lines.
        assert_eq!(hosts.check("h:2", "EE").unwrap(), Verdict::Pinned);
        assert_eq!(hosts.lookup("h:2").unwrap(), Some(("EE".into(), 5)));
    }
}
