//! Fixes found by using the server as a class would (issue 16): protocol
//! corners where the code and docs/protocol.md disagreed, a class behind one
//! NAT address, registrations, and what a nickname may look like.

mod support;

use serde_json::json;
use support::{Options, Server};

/// `history` takes a group's name with or without the `#`, as every group
/// request does; a bare name that is an account's is still the account.
#[test]
fn history_takes_a_group_name_without_its_hash() {
    let server = Server::plain();
    let mut prof = server.login("prof");
    let mut ann = server.login("ann");
    prof.ask(json!({"type": "group_create", "name": "class", "members": ["ann"]}));
    ann.expect_type("group_changed");
    prof.ask(json!({"type": "message", "receiver": "#class", "text": "read chapter 2"}));
    ann.expect_type("message");
    let history = ann.ask(json!({"type": "history", "with": "class"}));
    assert_eq!(history["type"], "history", "{history}");
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{history}");
    assert_eq!(messages[0]["text"], "read chapter 2");
    assert_eq!(messages[0]["receiver"], "#class");
    // An account called like nothing at all is still no_such_user.
    let refused = ann.ask(json!({"type": "history", "with": "nobody"}));
    assert_eq!(refused["code"], "no_such_user", "{refused}");
}

/// Every request but `ping`, `received` and `pong` gets `not_logged_in`
/// before a login — file bytes and their flow control too.
#[test]
fn file_frames_before_login_get_not_logged_in() {
    let server = Server::plain();
    let mut eve = server.connect("eve");
    eve.send(json!({"type": "file_ack", "file": 1, "bytes": 0}));
    eve.expect_error(None, "not_logged_in");
    eve.send_chunk(1, 0, b"hello");
    eve.expect_error(None, "not_logged_in");
    // The connection is still good for a login.
    eve.login("eve");
}

/// A nickname must show: a lone combining mark, a Hangul filler or a
/// variation selector is refused with a reason, and the connection may try
/// another name.
#[test]
fn nicknames_that_render_as_nothing_are_refused() {
    let server = Server::plain();
    let mut eve = server.connect("eve");
    for nick in ["\u{0301}", "\u{3164}", "a\u{FE0F}", "\u{2800}"] {
        let refused = eve.ask(json!({"type": "login", "nick": nick, "password": "pw-eve"}));
        assert_eq!(refused["code"], "nick_invalid", "{nick:?}: {refused}");
    }
    eve.login("eve");
}

/// A class behind one address: one student's three typos lock out only
/// that student; classmates log in and newcomers register meanwhile.
#[test]
fn one_students_typos_do_not_lock_out_the_class() {
    let server = Options::plain().default_logins().start();
    server.login("ben").bye();
    server.login("ann").bye();
    let mut typist = server.connect("ann");
    for _ in 0..3 {
        let wrong = typist.ask(json!({"type": "login", "nick": "ann", "password": "oops"}));
        assert_eq!(wrong["code"], "bad_password", "{wrong}");
    }
    let locked = typist.ask(json!({"type": "login", "nick": "ann", "password": "pw-ann"}));
    assert_eq!(locked["code"], "too_many_attempts", "{locked}");
    server.login("ben");
    server.login("newcomer");
}
