//! The server reads its settings from a TOML file (`--config`), and a flag
//! on the command line wins over the file.

use crate::support::Options;

#[test]
fn settings_come_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.toml");
    // The file says 10-byte texts and 1 message a second; the command line
    // overrides the burst only.
    std::fs::write(&file, "max-text = 10\nflood-rate = 1\nflood-burst = 1\n").unwrap();
    let server = Options::plain()
        .flag("--config", file.display())
        .flag("--flood-burst", 3)
        .start();
    let mut alice = server.login("alice");
    let id = alice.send_message(None, "eleven byte");
    let refusal = alice.expect_error(Some(id), "bad_text");
    assert!(
        refusal["reason"]
            .as_str()
            .unwrap()
            .contains("the limit is 10"),
        "{refusal}"
    );
    // A burst of 3 (the flag; the refused text used one) then 1 a second
    // (the file): the last two of these wait about a second each.
    let started = std::time::Instant::now();
    for i in 0..4 {
        let id = alice.send_message(None, &format!("m{i}"));
        alice.expect_reply(id);
    }
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(1500),
        "4 messages took {took:?}"
    );
}
