//! Groups as people use them: created, posted to with `#name message` and
//! `!group <name> message`, shown as `[#name] sender: text` to every member,
//! and Tab completion of `!group` subcommands, group names and nicknames on
//! a pseudo-terminal.
#![cfg(unix)]

use crate::support::term::Term;
use crate::support::{Pipe, Server};

/// A pipe-mode peer `nick` that stays (stdin open), welcomed.
fn join(server: &Server, nick: &str) -> Pipe {
    let mut pipe = server.client().nick(nick).spawn();
    pipe.expect_that("the welcome", |l| {
        l.starts_with(&format!("* welcome, {nick} — "))
    });
    pipe
}

#[test]
fn a_group_is_created_posted_to_and_completed() {
    let server = Server::start(false);
    let mut alice = join(&server, "alice");
    let mut carol = join(&server, "carol");
    let mut client = server.client();
    client.nick("bob").env("NO_COLOR", Some("1"));
    let mut term = Term::spawn(&client);
    term.expect("* welcome, bob — 3 online: alice, bob, carol");
    term.expect_editing("bob >> ");

    // Completion: the command, its subcommand, then nicknames.
    for (keys, line) in [
        ("!gr\t", "bob >> !group "),
        ("!group cr\t", "bob >> !group create "),
        (
            "!group create class al\t",
            "bob >> !group create class alice ",
        ),
    ] {
        term.type_keys(keys);
        term.expect_editing(line);
        term.type_keys("\x15");
        term.expect_editing("bob >> ");
    }
    term.type_keys("!group create class alice\r");
    term.expect("* created #class (private, 2 members, owner bob): alice, bob; online: alice, bob");
    term.expect_editing("bob >> ");
    // Now the group's name completes too.
    for (keys, line) in [
        ("!group mem\t", "bob >> !group members "),
        ("!group members cl\t", "bob >> !group members class "),
        ("!group add class c\t", "bob >> !group add class carol "),
    ] {
        term.type_keys(keys);
        term.expect_editing(line);
        term.type_keys("\x15");
        term.expect_editing("bob >> ");
    }

    // `#name message` from a pipe-mode member reaches every member.
    alice.send("#class when is the exam?");
    alice.expect("[#class] alice (you): when is the exam?");
    term.expect("[#class] alice: when is the exam?");
    term.type_keys("!group class on friday\r");
    term.expect("[#class] bob (you): on friday");
    alice.expect("[#class] bob: on friday");
    // Carol is not in it: she is told so, and sees none of it.
    carol.send("#class let me see");
    carol.expect("! #1 to #class not sent: you are not a member of #class");
    carol.send("!group list");
    carol.expect("* no groups yet: !group create <name> [--public] [nick…]");
    term.type_keys("!history #class\r");
    term.expect("| [#class] alice: when is the exam?");
    term.expect("| [#class] you: on friday");
    term.type_keys("!bye\r");
    term.assert_exit(0);
    // Everything carol was shown, up to the answer above: nothing of #class.
    let shown = carol.stdout.all();
    assert!(!shown.iter().any(|l| l.contains("[#class]")), "{shown:?}");
}
