//! The terminal chat client: connects (TLS by default), logs in, and then
//! either runs an interactive line editor or, when stdin is not a terminal,
//! reads lines from stdin and prints events on stdout (pipe mode).
//!
//! Code map, top down (each layer uses only those below it; `layers.rs`
//! checks): [`repl`] and [`pipe`] are the two user interfaces, with
//! [`complete`] completing from the [`roster`] and [`render`] saying how
//! events look; they hand the [`command`]s a line parses to into [`net`],
//! the network thread, which reconnects by itself and keeps the protocol
//! state in [`session`] — the numbered streams ([`streams`]) and the
//! messages not yet stored ([`outbox`]) — and the transfers in [`files`];
//! [`tls`] connects, [`known_hosts`] pins self-signed certificates.

pub mod command;
pub mod complete;
pub mod config_file;
pub mod digest;
pub mod files;
pub mod known_hosts;
#[cfg(test)]
mod layers;
pub mod net;
pub mod outbox;
pub mod pipe;
pub mod platform;
pub mod progress;
pub mod refusal;
pub mod render;
pub mod repl;
pub mod roster;
pub mod session;
pub mod status;
pub mod streams;
pub mod tls;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::net::{Dial, Options, Servers};
use crate::session::Ending;
pub use crate::tls::Security;

/// Everything the command line decides.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--server`: `host:port` each, tried in order.
    pub servers: Servers,
    pub nick: Option<String>,
    /// From `--password-file` or `CHAT_PASSWORD`; `None`: ask (interactive)
    /// or refuse to start (pipe mode).
    pub password: Option<Password>,
    pub security: Security,
    /// Pipe mode prints frames as received JSON.
    pub json: bool,
    /// `--reconnect-for`, in seconds; `None`: the mode's default.
    pub reconnect_for: Option<u64>,
    /// `--keepalive`, in seconds.
    pub keepalive: u64,
    /// `--bell`: interactive mode rings for private messages and mentions.
    pub bell: bool,
    /// `--downloads`: where accepted files land unless `!accept` names a
    /// directory.
    pub downloads: std::path::PathBuf,
}

/// A password and where it came from, which `Debug` does not print.
#[derive(Clone)]
pub struct Password {
    pub text: String,
    /// `--password-file` or `CHAT_PASSWORD`, for messages.
    pub source: &'static str,
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Password(<from {}>)", self.source)
    }
}

/// How long pipe mode keeps reconnecting unless told: long enough for a
/// server restart, short enough that a script whose server is gone ends.
pub const PIPE_RECONNECT_FOR: Duration = Duration::from_secs(60);

impl Config {
    /// The network thread's options; `default` is the mode's reconnect
    /// window (`None`: forever), `servers` the list standing at the server
    /// connected to.
    fn options(&self, default: Option<Duration>, servers: Servers) -> Options {
        Options {
            servers,
            reconnect_for: self.reconnect_for.map(Duration::from_secs).or(default),
            keepalive: Duration::from_secs(self.keepalive.max(1)),
            downloads: self.downloads.clone(),
        }
    }

    /// Connecting to a server of the list, the same way each time.
    fn dial(&self) -> Dial {
        let security = self.security.clone();
        Arc::new(move |server: &str, tell: &mut dyn FnMut(String)| {
            tls::connect(server, &security, tell)
        })
    }
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
/// connection was lost for good, 2 when logging in again was refused.
fn exit_code(ending: Ending) -> ExitCode {
    match ending {
        Ending::Left | Ending::Kicked | Ending::Shutdown | Ending::TakenOver => ExitCode::SUCCESS,
        Ending::Lost => ExitCode::FAILURE,
        Ending::Refused => ExitCode::from(EXIT_LOGIN_REFUSED),
    }
}
