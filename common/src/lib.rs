//! What the chat server and client share: the wire protocol ([`protocol`]),
//! the newline-delimited JSON codec ([`codec`]) and the per-connection
//! [`RequestHandler`] trait with its driver ([`handler`]).
//!
//! This is the only crate that knows the wire format.

pub mod codec;
pub mod config_file;
pub mod handler;
pub mod payload;
pub mod protocol;

pub use codec::{Frame, FrameError, LineReader, DEFAULT_MAX_FRAME};
pub use handler::{Connection, Driver, RequestHandler};
pub use protocol::{Departure, ErrorCode, Request, ServerFrame, Stored, EVERYONE};
