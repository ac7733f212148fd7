//! The server's integration tests, all in one test binary: one module per
//! subject, sharing `support`. One binary builds and links `support` once
//! instead of once per file, and lets the test harness run tests of
//! different subjects side by side.
//!
//! Tests run in parallel threads of this one process. The few that measure
//! latency or deadlines against a quiet baseline, and used to be alone in
//! their own binary, take [`support::serial`] so that they still run with
//! no other test beside them. Run one subject with, say,
//! `cargo test -p chat-server --test it attack_flood::`.

// `both!` is declared in `support`, so it comes first.
#[macro_use]
mod support;

mod accounts;
mod admin;
mod attack_flood;
mod attack_identity;
mod attack_malformed;
mod attack_slowloris;
mod attack_stuck_reader;
mod attack_tls;
mod bad_input;
mod browser;
mod chat;
mod cluster;
mod cluster_away;
mod cluster_fence;
mod cluster_files;
mod cluster_hardening;
mod cluster_moderation;
mod cluster_proof;
mod cluster_throttle;
mod config_file;
mod console;
mod delivery;
mod files;
mod framework;
mod groups;
mod half_close;
mod keepalive;
mod kill9;
mod layering;
mod limits;
mod login_policy;
mod moderation;
mod postgres;
mod presence;
mod real_use;
mod shutdown;
mod tls;
mod web;
