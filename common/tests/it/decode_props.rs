//! `decode` never panics, and classifies every line it refuses: the code
//! and id it answers are worked out independently (`support/oracle.rs`).
//! Longer runs: `make fuzz` (docs/security.md).

use proptest::collection::vec;
use proptest::prelude::*;

use crate::support::{budget, oracle, strategies};

#[test]
fn decode_takes_any_bytes() {
    budget::run(
        "decode arbitrary bytes",
        256,
        vec(any::<u8>(), 0..200),
        |bytes| oracle::check_decode(&bytes),
    );
}

#[test]
fn decode_takes_token_soup() {
    budget::run("decode token soup", 256, strategies::soup(), |bytes| {
        oracle::check_decode(&bytes)
    });
}

#[test]
fn decode_classifies_bent_frames() {
    budget::run("decode bent frames", 512, strategies::bent_line(), |line| {
        oracle::check_decode(&line)
    });
}

#[test]
fn nicknames_follow_the_rules() {
    let nick = prop_oneof![
        strategies::text(),
        "[a-zA-Z0-9_*#!/ ]{0,34}",
        proptest::collection::vec(any::<char>(), 30..35).prop_map(String::from_iter),
    ];
    budget::run("validate_nick", 256, nick, |nick| oracle::check_nick(&nick));
}

/// Known lines, so a change of classification is seen even without luck.
#[test]
fn decode_classifies_known_lines() {
    let lines: &[&[u8]] = &[
        b"",
        b" ",
        b"{}",
        b"[]",
        b"null",
        b"\"ping\"",
        b"[\"ping\",1]",
        b"{\"type\":\"ping\",\"id\":1}",
        b"{\"type\":\"ping\",\"id\":1}x",
        b"{\"type\":\"ping\",\"id\":1,\"id\":2}",
        b"{\"type\":\"ping\",\"type\":\"ping\",\"id\":1}",
        b"{\"type\":\"ping\",\"id\":\"missing field `type`\"}",
        b"{\"type\":5,\"id\":1}",
        b"{\"type\":\"dance\",\"id\":1}",
        b"{\"type\":\"p\\u0069ng\",\"id\":1}",
        b"{\"type\":\"ping\",\"id\":18446744073709551615}",
        b"{\"type\":\"ping\",\"id\":18446744073709551616}",
        b"{\"type\":\"ping\",\"id\":-0}",
        b"{\"type\":\"ping\",\"id\":1.0}",
        b"{\"type\":\"ping\",\"id\":1e2}",
        b"{\"type\":\"message\",\"id\":1,\"text\":\"\\ud800\"}",
        b"{\"type\":\"message\",\"id\":1,\"text\":\"\xff\"}",
        b"\xef\xbb\xbf{\"type\":\"ping\",\"id\":1}",
    ];
    for line in lines {
        oracle::check_decode(line);
    }
    let deep = format!(
        "{{\"type\":\"ping\",\"id\":1,\"x\":{}{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    oracle::check_decode(deep.as_bytes());
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    oracle::check_decode(deep.as_bytes());
}
