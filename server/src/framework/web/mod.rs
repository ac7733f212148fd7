//! The web as another way a connection speaks: a browser's first bytes are
//! an HTTP request, answered with one of the site's files or upgraded to a
//! WebSocket whose text messages are protocol lines and whose binary
//! messages are chunks' raw bytes. The handler above sees the same lines
//! and bytes either way, so the chat never knows which kind of client it
//! talks to.

pub mod http;
pub mod ws;

/// One file of the site, embedded in the binary.
#[derive(Debug)]
pub struct Asset {
    /// Its path, as requested (`/index.html`; `/` is `/index.html`).
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// What the application serves over HTTP.
#[derive(Debug)]
pub struct Site {
    pub assets: &'static [Asset],
    /// The path the page opens its WebSocket on.
    pub socket_path: &'static str,
}

/// How a listener's connections may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speech {
    /// The line protocol only.
    Lines,
    /// The line protocol, or HTTP when the first bytes are a request.
    Either,
    /// HTTP only (a listener of its own for the web, `--web-bind`).
    Http,
}

/// How far a connection has got in choosing how it speaks, and the state
/// of the way it chose.
pub enum Wire {
    /// The first bytes, until they tell.
    Undecided(Vec<u8>),
    /// An HTTP request head, until it is complete.
    Head(Vec<u8>),
    /// Newline-delimited frames, as the terminal client sends them.
    Lines,
    /// A WebSocket after the upgrade.
    Socket(Box<ws::Socket>),
    /// A response was sent; the connection closes after it.
    Answered,
}

impl Wire {
    pub fn new(speech: Speech) -> Wire {
        match speech {
            Speech::Lines => Wire::Lines,
            Speech::Either => Wire::Undecided(Vec::new()),
            Speech::Http => Wire::Head(Vec::new()),
        }
    }

    /// Whether it is still deciding or reading a request head: the
    /// connection is then held to the handshake's deadline.
    pub fn is_settling(&self) -> bool {
        match self {
            // Nothing read yet: a line client that has not spoken is
            // waiting for its login deadline, not a handshake's.
            Wire::Undecided(bytes) => !bytes.is_empty(),
            Wire::Head(bytes) => !bytes.is_empty(),
            _ => false,
        }
    }
}
