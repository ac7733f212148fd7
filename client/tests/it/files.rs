//! File transfer between two real `chat-client`s in pipe mode through a
//! real server: `!send`, `!accept` (the SHA-256 checked, nothing
//! overwritten), `!reject`, each answer told to the sender.

use crate::support::proxy::Proxy;
use crate::support::{Client, Server};

fn content(len: usize) -> Vec<u8> {
    let mut x: u32 = 12345;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect()
}

#[test]
fn send_accept_reject_without_overwriting() {
    let server = Server::start(false);
    let temp = tempfile::tempdir().unwrap();
    let downloads = temp.path().join("downloads");
    std::fs::create_dir(&downloads).unwrap();
    // Bob already has a report.pdf: it must survive.
    std::fs::write(downloads.join("report.pdf"), b"bob's own report").unwrap();
    let report = temp.path().join("report.pdf");
    let bytes = content(5_000_000);
    std::fs::write(&report, &bytes).unwrap();
    let notes = temp.path().join("notes.txt");
    std::fs::write(&notes, b"not wanted").unwrap();

    let mut bob = server
        .client()
        .nick("bob")
        .arg("--downloads")
        .arg(&downloads)
        .spawn();
    bob.expect_that("the welcome", |l| l.starts_with("* welcome, bob"));
    let mut alice = server.client().nick("alice").spawn();
    alice.expect_that("the welcome", |l| l.starts_with("* welcome, alice"));

    alice.send(&format!("!send bob {}", report.display()));
    alice.expect("* sending report.pdf (5000000 bytes) to bob as file 1");
    alice.expect("* report.pdf is on the server; bob is offered it (file 1)");
    bob.expect("* alice offers you report.pdf (5000000 bytes): !accept 1 [dir] or !reject 1");
    bob.send("!accept 1");
    let saved = downloads.join("report (1).pdf");
    bob.expect(&format!(
        "* received {} (5000000 bytes, SHA-256 verified)",
        saved.display()
    ));
    assert_eq!(
        std::fs::read(&saved).unwrap(),
        bytes,
        "the bytes arrived intact"
    );
    assert_eq!(
        std::fs::read(downloads.join("report.pdf")).unwrap(),
        b"bob's own report",
        "an existing file is never overwritten"
    );
    assert!(!downloads.join("report.pdf.part").exists());
    alice.expect("* bob accepted report.pdf (file 1)");

    alice.send(&format!("!send bob {}", notes.display()));
    bob.expect("* alice offers you notes.txt (10 bytes): !accept 2 [dir] or !reject 2");
    bob.send("!reject 2");
    alice.expect("* bob rejected notes.txt (file 2)");
    assert!(!downloads.join("notes.txt").exists());

    // Something that is not a file name is refused before anything is sent.
    alice.send("!send bob /");
    alice.expect_that("a refusal", |l| l.contains("has no usable file name"));
    alice.finish().assert_code(0);
    bob.finish().assert_code(0);
}

/// A big file is hashed off the network thread: a private message typed
/// right after `!send` is delivered before the hash is done and the file
/// offered (hashing 1 GiB takes the better part of a second).
#[test]
fn chat_flows_while_a_big_file_is_hashed() {
    let server = Server::start(false);
    let temp = tempfile::tempdir().unwrap();
    let big = temp.path().join("big.bin");
    // Sparse: a gigabyte to read and hash, no gigabyte on disk.
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let mut bob = server.client().nick("bob").spawn();
    bob.expect_that("the welcome", |l| l.starts_with("* welcome, bob"));
    let mut alice = server.client().nick("alice").spawn();
    alice.expect_that("the welcome", |l| l.starts_with("* welcome, alice"));

    alice.send(&format!("!send bob {}", big.display()));
    alice.send("!private bob still here");
    bob.expect("[private from alice] still here");
    alice.expect("* #1 delivered to bob");
    let before: Vec<String> = alice.stdout.all();
    assert!(
        !before.iter().any(|l| l.contains("sending big.bin")),
        "the file was offered before the message went\n{}",
        alice.transcript()
    );
    alice.expect("* sending big.bin (1073741824 bytes) to bob as file 1");
    drop(alice); // Killed: the upload itself is not this test's.
    bob.finish().assert_code(0);
}

/// Both connections are cut in the middle of the transfer (by proxies that
/// end them after so many bytes from the client): the upload resumes where
/// the server's spool stopped, the download where the `.part` file stopped,
/// and the file arrives whole, its SHA-256 verified.
#[test]
fn upload_and_download_resume_after_a_cut() {
    let server = Server::start(false);
    let temp = tempfile::tempdir().unwrap();
    let downloads = temp.path().join("downloads");
    let big = temp.path().join("big.bin");
    let bytes = content(12_000_000);
    std::fs::write(&big, &bytes).unwrap();

    let to_bob = Proxy::start(&server.addr);
    // bob sends a `file_ack` (about 40 bytes) a chunk: cut a few MB in.
    to_bob.cut_next_after(4_000);
    let mut bob = Client::new(&to_bob.addr)
        .args(["--no-tls", "--nick", "bob", "--downloads"])
        .arg(&downloads)
        .spawn();
    bob.expect_that("the welcome", |l| l.starts_with("* welcome, bob"));
    let to_alice = Proxy::start(&server.addr);
    to_alice.cut_next_after(4_000_000);
    let mut alice = Client::new(&to_alice.addr)
        .args(["--no-tls", "--nick", "alice"])
        .spawn();
    alice.expect_that("the welcome", |l| l.starts_with("* welcome, alice"));

    alice.send(&format!("!send bob {}", big.display()));
    alice.expect("* sending big.bin (12000000 bytes) to bob as file 1");
    let resumed = alice.expect_that("the upload resumed", |l| {
        l.starts_with("* resuming big.bin at byte ")
    });
    let at: u64 = resumed.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(at > 0 && at < 4_000_000, "{resumed}");
    alice.expect("* big.bin is on the server; bob is offered it (file 1)");

    bob.expect("* alice offers you big.bin (12000000 bytes): !accept 1 [dir] or !reject 1");
    bob.send("!accept 1");
    let resumed = bob.expect_that("the download resumed", |l| {
        l.starts_with("* resuming big.bin at byte ")
    });
    let at: u64 = resumed.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(at > 0 && at < 12_000_000, "{resumed}");
    bob.expect(&format!(
        "* received {} (12000000 bytes, SHA-256 verified)",
        downloads.join("big.bin").display()
    ));
    assert_eq!(std::fs::read(downloads.join("big.bin")).unwrap(), bytes);
    assert!(to_alice.accepted() >= 2 && to_bob.accepted() >= 2);
    alice.expect("* bob accepted big.bin (file 1)");
    alice.finish().assert_code(0);
    bob.finish().assert_code(0);
}

/// `~` and `~/` mean the home directory wherever a path is typed: alice
/// sends `~/notes.txt`, bob accepts into `~/incoming`, and nothing named
/// `~` is ever made in the current directory (which is the home here).
#[test]
fn tilde_is_the_home_directory() {
    let server = Server::start(false);
    let alice_home = tempfile::tempdir().unwrap();
    let bob_home = tempfile::tempdir().unwrap();
    std::fs::write(alice_home.path().join("notes.txt"), b"tilde notes").unwrap();

    let mut bob = server.client();
    let mut bob = bob.nick("bob").home(bob_home.path()).spawn();
    bob.expect_that("the welcome", |l| l.starts_with("* welcome, bob"));
    let mut alice = server.client();
    let mut alice = alice.nick("alice").home(alice_home.path()).spawn();
    alice.expect_that("the welcome", |l| l.starts_with("* welcome, alice"));

    alice.send("!send bob ~/notes.txt");
    bob.expect("* alice offers you notes.txt (11 bytes): !accept 1 [dir] or !reject 1");
    bob.send("!accept 1 ~/incoming");
    let incoming = bob_home.path().join("incoming");
    bob.expect(&format!(
        "* receiving notes.txt (11 bytes) into {}",
        incoming.display()
    ));
    bob.expect(&format!(
        "* received {} (11 bytes, SHA-256 verified)",
        incoming.join("notes.txt").display()
    ));
    assert_eq!(
        std::fs::read(incoming.join("notes.txt")).unwrap(),
        b"tilde notes"
    );
    // Another user's home is not looked up: refused before anything is sent.
    alice.send("!send bob ~carol/x");
    alice.expect_stderr("~carol/x: ~user is not expanded here");
    for home in [alice_home.path(), bob_home.path()] {
        assert!(!home.join("~").exists(), "a directory named ~");
    }
    alice.finish().assert_code(0);
    bob.finish().assert_code(0);
}

/// Without --downloads, a file goes to ~/Downloads if there is one, else
/// to `downloads/` in the client's data directory — never the current
/// directory — and the client says where.
#[test]
fn downloads_go_to_the_download_directory_and_say_where() {
    let server = Server::start(false);
    let alice_home = tempfile::tempdir().unwrap();
    std::fs::write(alice_home.path().join("a.txt"), b"one").unwrap();
    let mut alice = server.client();
    let mut alice = alice.nick("alice").home(alice_home.path()).spawn();
    alice.expect_that("the welcome", |l| l.starts_with("* welcome, alice"));
    for (number, with_downloads) in [(1, false), (2, true)] {
        let home = tempfile::tempdir().unwrap();
        let want = if with_downloads {
            std::fs::create_dir(home.path().join("Downloads")).unwrap();
            home.path().join("Downloads")
        } else {
            home.path().join(".local/share/chat/downloads")
        };
        let mut bob = server.client();
        let mut bob = bob.nick("bob").home(home.path()).spawn();
        bob.expect_that("the welcome", |l| l.starts_with("* welcome, bob"));
        alice.send("!send bob ~/a.txt");
        bob.expect(&format!(
            "* alice offers you a.txt (3 bytes): !accept {number} [dir] or !reject {number}"
        ));
        bob.send(&format!("!accept {number}"));
        bob.expect(&format!(
            "* receiving a.txt (3 bytes) into {}",
            want.display()
        ));
        bob.expect(&format!(
            "* received {} (3 bytes, SHA-256 verified)",
            want.join("a.txt").display()
        ));
        assert!(
            !home.path().join("a.txt").exists(),
            "in the current directory"
        );
        bob.finish().assert_code(0);
    }
    alice.finish().assert_code(0);
}
