//! The chat: what a connection's requests mean, and the one thread that
//! owns everything they touch.
//!
//! [`handler`] is each connection's [`RequestHandler`] on the I/O workers
//! (parsing, [`flood`] control); [`dispatcher`] is the thread that owns the
//! [`state`] and drives the store, the password hasher ([`auth`]) and the
//! file thread; [`clock`] is the only place the chat reads the time. The
//! state itself does no I/O and reads no clock: every call gets `now`.
//!
//! [`RequestHandler`]: chat_common::RequestHandler

pub mod auth;
pub mod clock;
pub mod dispatcher;
pub mod flood;
pub mod handler;
pub mod state;
