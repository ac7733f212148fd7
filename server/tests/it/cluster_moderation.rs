//! The operator's moderation across the nodes of a cluster: a `/ban` on
//! n1 cuts the user on n2 (with a local ban's frames) and refuses their
//! login on n3, a `/mute` on n1 stops the user on n2 from sending until
//! `/unmute`, and a `/kick` on n1 closes the session on n2. Without
//! PostgreSQL these skip; under `CI=true` they fail.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::postgres::node;
use crate::support::{self, postgres};

fn done(line: &str) -> bool {
    !line.is_empty()
}

/// Asks `client`'s node who is online until it says `want` (5 s at most).
fn online_becomes(client: &mut support::Client, want: serde_json::Value) {
    let started = Instant::now();
    loop {
        let online = client.ask(json!({"type": "online"}));
        if online["users"] == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "online is {}, not {want}",
            online["users"]
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Bob, registered on n1, is online on n2; the ban on n1's console cuts
/// him there with the frames of a local ban, and n3 refuses his login.
#[test]
fn a_ban_on_one_node_cuts_the_user_on_another_and_refuses_a_third() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut n1 = node(&url, "n1", dirs[0].path());
    let n2 = node(&url, "n2", dirs[1].path());
    let n3 = node(&url, "n3", dirs[2].path());
    n1.login("bob").bye();
    let mut alice = n2.login("alice");
    let mut bob = n2.connect("bob");
    bob.login("bob");
    alice.expect_joined("bob");

    let started = Instant::now();
    let output = n1.admin_output("/ban bob", done);
    assert_eq!(output, "banned bob until the operator lifts it");
    let kicked = bob.expect_within("kicked", Duration::from_secs(3), |f| f["type"] == "kicked");
    let took = started.elapsed();
    assert_eq!(kicked["nick"], "bob", "{kicked}");
    assert_eq!(kicked["reason"], "banned until the operator lifts it");
    bob.expect_eof();
    assert_eq!(alice.expect_type("kicked")["nick"], "bob");
    eprintln!("cluster moderation: bob on n2 cut {took:?} after n1's /ban");

    // n3 heard the same doorbell; a login there is refused before its
    // password is checked.
    let refusal = n3.connect("bob on n3").try_login("bob");
    assert_eq!(refusal["code"], "banned", "{refusal}");
    assert_eq!(
        refusal["reason"],
        "bob is banned until the operator lifts it"
    );

    // Lifted on n1: n3 lets him in again.
    assert_eq!(
        n1.admin_output("/unban bob", done),
        "bob is no longer banned"
    );
    let started = Instant::now();
    loop {
        let mut again = n3.connect("bob again");
        let answer = again.try_login("bob");
        if answer["type"] == "welcome" {
            break;
        }
        assert_eq!(answer["code"], "banned", "{answer}");
        assert!(started.elapsed() < Duration::from_secs(3), "never unbanned");
        thread::sleep(Duration::from_millis(50));
    }
    drop((n1, n2, n3));
}

/// A mute on n1 reaches bob on n2: he is told, his messages are refused;
/// after `/unmute` on n1 he speaks again.
#[test]
fn a_mute_on_one_node_silences_the_user_on_another() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut n1, n2) = (node(&url, "n1", d1.path()), node(&url, "n2", d2.path()));
    n1.login("bob").bye();
    // Not `login`, which waits for bob's arrival to be announced: n2 saw
    // him come from n1 and leave, and a return within the presence
    // interval is no news.
    let mut bob = n2.connect("bob");
    bob.login("bob");

    assert_eq!(
        n1.admin_output("/mute bob 10m", done),
        "muted bob for another 10 min"
    );
    let told = bob.expect_within("announce", Duration::from_secs(3), |f| {
        f["type"] == "announce"
    });
    assert_eq!(told["text"], "the operator muted you for another 10 min");
    let id = bob.send_message(None, "can anyone hear me?");
    let refusal = bob.expect_error(Some(id), "muted");
    assert_eq!(refusal["reason"], "you are muted for another 10 min");

    assert_eq!(
        n1.admin_output("/unmute bob", done),
        "bob is no longer muted"
    );
    let started = Instant::now();
    loop {
        let id = bob.send_message(None, "back");
        let answer = bob.expect_reply(id);
        if answer["type"] == "ack" {
            break;
        }
        assert_eq!(answer["code"], "muted", "{answer}");
        assert!(started.elapsed() < Duration::from_secs(3), "never unmuted");
        thread::sleep(Duration::from_millis(50));
    }
    drop((n1, n2));
}

/// `/kick` on n1 of bob on n2 closes his session there with a local
/// kick's frames, the reason intact; a nick online nowhere gets today's
/// answer.
#[test]
fn a_kick_on_one_node_closes_the_session_on_another() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut n1, n2) = (node(&url, "n1", d1.path()), node(&url, "n2", d2.path()));
    let mut ann = n1.login("ann");
    let mut carol = n2.login("carol");
    let mut bob = n2.connect("bob");
    bob.login("bob");
    carol.expect_joined("bob");
    online_becomes(&mut ann, json!(["ann", "bob", "carol"]));

    let reason = "spam; 100% : again";
    let output = n1.admin_output(&format!("/kick bob {reason}"), done);
    assert_eq!(output, "kicked bob");
    let kicked = bob.expect_within("kicked", Duration::from_secs(3), |f| f["type"] == "kicked");
    assert_eq!(kicked["nick"], "bob", "{kicked}");
    assert_eq!(kicked["reason"], reason, "{kicked}");
    bob.expect_eof();
    let seen = carol.expect_type("kicked");
    assert_eq!(seen["reason"], reason, "{seen}");
    // On n1 bob leaves as n2 said why (a departure's doorbell, `l:`,
    // carries a reason with `;` as `,`).
    assert_eq!(
        ann.expect_left("bob"),
        format!("kicked: {}", reason.replace(';', ","))
    );

    assert_eq!(
        n1.admin_output("/kick bob", done),
        "error: bob is not online"
    );
    assert_eq!(
        n1.admin_output("/kick nobody", done),
        "error: nobody is not online"
    );
    drop((n1, n2));
}
