//! The client's integration tests: one binary, so `support` (a real server,
//! clients in pipe mode and on a pseudo-terminal, a proxy that cuts
//! connections) is compiled once rather than once per subject.

mod support;

mod connect;
mod delivery;
mod files;
mod groups;
mod interactive;
mod net;
mod pipe;
mod servers;
