//! The servers to connect to (`--server a:50445,b:50445,c:50445`), like an
//! IRC client's server list, and which one comes next: a try that fails
//! moves on to the next at once, and only a whole round of failures waits
//! for the backoff; a connection that drops moves on too, since the server
//! it was to may be the one that died. The list's nodes are one cluster
//! sharing a database, so a session resumes on any of them.

use std::fmt;

use crate::tls::with_default_port;

/// The list, in the order given, and where the client stands in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servers {
    /// `host:port` each, without repeats; never empty.
    list: Vec<String>,
    /// The server connected to, or the one to try next.
    at: usize,
    /// Tries that failed in a row since the last connection or loss.
    failed: usize,
}

/// What follows a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try [`Servers::current`] now.
    Now,
    /// Every server failed in this round: wait (the backoff), then try
    /// [`Servers::current`].
    AfterRound,
}

/// A `--server` value that names no server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerListError {
    #[error("an empty entry in {0:?}: servers are separated by commas, as in a:50445,b:50445")]
    EmptyEntry(String),
}

impl Servers {
    /// `host[:port]` entries separated by commas (spaces around them are
    /// ignored), each with the default port unless it names one; an entry
    /// given twice counts once.
    pub fn parse(text: &str) -> Result<Servers, ServerListError> {
        let mut list: Vec<String> = Vec::new();
        for entry in text.split(',') {
            if entry.trim().is_empty() {
                return Err(ServerListError::EmptyEntry(text.to_string()));
            }
            let server = with_default_port(entry);
            if !list.contains(&server) {
                list.push(server);
            }
        }
        Ok(Servers {
            list,
            at: 0,
            failed: 0,
        })
    }

    /// A list of one: `server` is `host:port`.
    pub fn one(server: &str) -> Servers {
        Servers {
            list: vec![server.to_string()],
            at: 0,
            failed: 0,
        }
    }

    /// The server connected to, or the one to try next.
    pub fn current(&self) -> &str {
        &self.list[self.at]
    }

    /// More than one server: worth saying which one each line is about.
    pub fn is_list(&self) -> bool {
        self.list.len() > 1
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Connected to [`Servers::current`]: a new round begins with the
    /// next failure.
    pub fn connected(&mut self) {
        self.failed = 0;
    }

    /// The connection to [`Servers::current`] was lost: the next server is
    /// tried first, and this one last in the round.
    pub fn dropped(&mut self) {
        self.advance();
        self.failed = 0;
    }

    /// The try at [`Servers::current`] failed: move to the next one, now,
    /// or after the backoff if that was the last of a round.
    pub fn failed(&mut self) -> Next {
        self.advance();
        self.failed += 1;
        if self.failed >= self.list.len() {
            self.failed = 0;
            Next::AfterRound
        } else {
            Next::Now
        }
    }

    fn advance(&mut self) {
        self.at = (self.at + 1) % self.list.len();
    }
}

/// The list as `--server` would take it.
impl fmt::Display for Servers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.list.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Servers {
        Servers::parse(text).expect("a valid list")
    }

    #[test]
    fn a_list_is_entries_with_their_ports() {
        let cases = [
            ("a", "a:50445"),
            ("a:1,b:2,c:3", "a:1,b:2,c:3"),
            (
                "a, b:6000 ,[::1]:7,::1",
                "a:50445,b:6000,[::1]:7,[::1]:50445",
            ),
            ("10.0.0.5,10.0.0.6:50445", "10.0.0.5:50445,10.0.0.6:50445"),
            // The same server twice counts once, however it is written.
            ("a,a:50445,b,a", "a:50445,b:50445"),
        ];
        for (typed, want) in cases {
            assert_eq!(list(typed).to_string(), want, "{typed:?}");
        }
        assert!(!list("a").is_list());
        assert!(list("a,b").is_list());
        assert_eq!(list("a,b,a").len(), 2);
    }

    #[test]
    fn an_empty_entry_is_refused() {
        for typed in ["", " ", "a,", ",a", "a,,b", "a, ,b"] {
            assert_eq!(
                Servers::parse(typed),
                Err(ServerListError::EmptyEntry(typed.to_string())),
                "{typed:?}"
            );
        }
        let said = Servers::parse("a,,b").unwrap_err().to_string();
        assert!(said.contains("separated by commas"), "{said}");
    }

    /// The first connection: each server in order, the next at once after
    /// a failure, until a whole round failed.
    #[test]
    fn failures_move_on_at_once_until_a_round_is_done() {
        let mut servers = list("a,b,c");
        assert_eq!(servers.current(), "a:50445");
        assert_eq!(servers.failed(), Next::Now);
        assert_eq!(servers.current(), "b:50445");
        assert_eq!(servers.failed(), Next::Now);
        assert_eq!(servers.current(), "c:50445");
        assert_eq!(servers.failed(), Next::AfterRound);
        // The next round starts over from the first.
        assert_eq!(servers.current(), "a:50445");
        assert_eq!(servers.failed(), Next::Now);
        assert_eq!(servers.current(), "b:50445");
        servers.connected();
        assert_eq!(servers.current(), "b:50445");
    }

    /// A dropped connection goes on with the next server, wraps around,
    /// and tries the one that dropped last in its round.
    #[test]
    fn a_drop_starts_with_the_next_server() {
        let mut servers = list("a,b,c");
        servers.failed();
        servers.connected();
        assert_eq!(servers.current(), "b:50445");
        servers.dropped();
        assert_eq!(servers.current(), "c:50445");
        assert_eq!(servers.failed(), Next::Now);
        assert_eq!(servers.current(), "a:50445");
        assert_eq!(servers.failed(), Next::Now);
        // b, which dropped, closes the round.
        assert_eq!(servers.current(), "b:50445");
        assert_eq!(servers.failed(), Next::AfterRound);
        assert_eq!(servers.current(), "c:50445");
        // A connection, then a drop, counts the next round afresh.
        servers.connected();
        servers.dropped();
        assert_eq!(servers.current(), "a:50445");
        assert_eq!(servers.failed(), Next::Now);
        assert_eq!(servers.failed(), Next::Now);
        assert_eq!(servers.failed(), Next::AfterRound);
    }

    /// One server is a round of one: every failure waits, as before lists.
    #[test]
    fn one_server_always_waits() {
        let mut servers = Servers::one("127.0.0.1:50445");
        assert!(!servers.is_list());
        for _ in 0..3 {
            assert_eq!(servers.failed(), Next::AfterRound);
            assert_eq!(servers.current(), "127.0.0.1:50445");
        }
        servers.dropped();
        assert_eq!(servers.current(), "127.0.0.1:50445");
        assert_eq!(servers.failed(), Next::AfterRound);
    }
}
