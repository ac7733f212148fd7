//! The terminal chat client: connects (TLS by default), logs in, and then
//! either runs an interactive line editor or, when stdin is not a terminal,
//! reads lines from stdin and prints events on stdout (pipe mode).
//!
//! Code map: [`tls`] connects; [`net`] is the network thread, with the
//! protocol state in [`session`]; [`repl`] and [`pipe`] are the two user
//! interfaces, sharing [`command`] (what can be typed) and [`render`] (how
//! events look); [`complete`] completes from the [`roster`];
//! [`known_hosts`] pins self-signed certificates.

pub mod command;
pub mod complete;
pub mod known_hosts;
pub mod net;
pub mod pipe;
pub mod platform;
pub mod render;
pub mod repl;
pub mod roster;
pub mod session;
pub mod tls;

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::session::Ending;
pub use crate::tls::Security;

/// Everything the command line decides.
#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port`.
    pub server: String,
    pub nick: Option<String>,
    pub security: Security,
    /// Pipe mode prints frames as received JSON.
    pub json: bool,
}

/// Exit status when the login is refused in pipe mode.
pub const EXIT_LOGIN_REFUSED: u8 = 2;

/// Runs the client until the user leaves or the server goes; returns the
/// process exit status.
pub fn run(config: Config) -> anyhow::Result<ExitCode> {
    if std::io::stdin().is_terminal() {
        repl::run(&config)
    } else {
        pipe::run(&config)
    }
}

/// 0 when the session ended on purpose (ours or the server's), 1 when the
/// connection was lost.
fn exit_code(ending: Ending) -> ExitCode {
    match ending {
        Ending::Left | Ending::Kicked | Ending::Shutdown => ExitCode::SUCCESS,
        Ending::Lost => ExitCode::FAILURE,
    }
}
