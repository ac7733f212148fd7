//! File transfer through the real server: a file is uploaded into the
//! spool with its SHA-256, offered to its receiver (at once, or at login),
//! downloaded with flow control, and deleted once everyone has answered.

use std::path::PathBuf;
use std::time::Instant;

use base64::Engine as _;
use serde_json::json;

use chat_common::protocol::{CHUNK, UPLOAD_WINDOW as WINDOW};

use crate::support::files::{
    content, download_range, downloaded, expect_spool_empty, offer, sha256, spooled, upload_range,
    upload_rest,
};
use crate::support::{Client, Options, Server};

/// Offers and uploads a whole file; returns its id once the server has
/// verified it.
fn upload(client: &mut Client, to: &str, name: &str, bytes: &[u8]) -> u64 {
    let answer = offer(client, to, name, bytes);
    upload_rest(client, &answer, bytes)
}

/// The spool of a server that has no `--spool-dir`.
fn spool(server: &Server) -> PathBuf {
    server.data_dir.join("spool")
}

both! {
    /// 50 MB from alice to bob, who is online: bob is offered it with its
    /// name, size, sender and hash, downloads exactly those bytes, alice is
    /// told he accepted, a private message still gets through in the
    /// middle of the download, and the spool is emptied afterwards.
    fn fifty_megabytes_to_a_user(tls) {
        let server = Server::with_tls(tls);
        let mut alice = server.login("alice");
        let mut bob = server.login("bob");
        let bytes = content(50 * 1000 * 1000, 7);
        let started = Instant::now();
        let file = upload(&mut alice, "bob", "lecture.mp4", &bytes);
        let up = started.elapsed();
        let offered = bob.expect_type("file_offer");
        assert_eq!(offered["file"], file);
        assert_eq!(offered["sender"], "alice");
        assert_eq!(offered["name"], "lecture.mp4");
        assert_eq!(offered["size"], bytes.len());
        assert_eq!(offered["sha256"], sha256(&bytes));

        let half = (bytes.len() / 2) as u64;
        let started = Instant::now();
        let (answer, mut got) = download_range(&mut bob, file, 0, half);
        assert_eq!(answer["sha256"], sha256(&bytes));
        assert_eq!(alice.expect_type("file_answer"),
            json!({"type": "file_answer", "file": file, "name": "lecture.mp4", "to": "bob", "accepted": true}));
        // Chat interleaves with the chunks on bob's connection.
        let id = alice.id();
        alice.send(json!({"type": "message", "id": id, "receiver": "bob", "text": "halfway?"}));
        let mut at = got.len() as u64;
        let mut saw_message = false;
        while at < bytes.len() as u64 {
            let f = bob.expect("a chunk or message", |f| f["type"] == "chunk" || f["type"] == "message");
            if f["type"] == "message" {
                assert_eq!(f["text"], "halfway?");
                saw_message = true;
                continue;
            }
            let data = base64::engine::general_purpose::STANDARD.decode(f["data"].as_str().unwrap()).unwrap();
            at += data.len() as u64;
            got.extend(data);
            bob.send(json!({"type": "file_ack", "file": file, "bytes": at}));
        }
        let down = started.elapsed();
        if !saw_message {
            bob.expect("the private message", |f| f["type"] == "message" && f["text"] == "halfway?");
        }
        assert_eq!(got.len(), bytes.len());
        assert_eq!(sha256(&got), sha256(&bytes), "the downloaded bytes are the uploaded ones");
        downloaded(&mut bob, file);
        expect_spool_empty(&spool(&server));
        eprintln!("50 MB (debug build): upload {up:?}, download {down:?}");
    }
}

/// 50 MB to a group of three: one upload, every other member is offered
/// it; two accept and get the same bytes, one rejects; the sender hears
/// each answer, and the spool is emptied once all three have answered.
/// Someone outside the group cannot send to it.
#[test]
fn fifty_megabytes_to_a_group_of_three() {
    let server = Server::plain();
    let mut prof = server.login("prof");
    let mut members: Vec<Client> = ["ann", "ben", "cat"].map(|n| server.login(n)).into();
    let mut eve = server.login("eve");
    let created = prof.ask(json!({"type": "group_create", "name": "#class",
        "members": ["ann", "ben", "cat"]}));
    assert_eq!(created["type"], "group", "{created}");
    let refused = offer(&mut eve, "#class", "x.bin", b"x");
    assert_eq!(refused["code"], "not_a_member", "{refused}");

    let bytes = content(50 * 1000 * 1000, 11);
    let file = upload(&mut prof, "#class", "slides.pdf", &bytes);
    for member in members.iter_mut() {
        let offered = member.expect_type("file_offer");
        assert_eq!(offered["file"], file);
        assert_eq!(offered["sender"], "prof");
        assert_eq!(offered["sha256"], sha256(&bytes));
    }
    let (ann, rest) = members.split_at_mut(1);
    let (ben, cat) = rest.split_at_mut(1);
    for reader in [&mut ann[0], &mut ben[0]] {
        let (_, got) = download_range(reader, file, 0, bytes.len() as u64);
        assert_eq!(sha256(&got), sha256(&bytes), "{}", reader.name);
        downloaded(reader, file);
    }
    assert_eq!(
        spooled(&spool(&server)),
        vec![file.to_string()],
        "cat has not answered"
    );
    let id = cat[0].id();
    cat[0].send(json!({"type": "reject", "id": id, "file": file}));
    assert_eq!(cat[0].expect_reply(id)["type"], "ack");
    let mut answers: Vec<(String, bool)> = (0..3)
        .map(|_| {
            let a = prof.expect_type("file_answer");
            (
                a["to"].as_str().unwrap().to_string(),
                a["accepted"].as_bool().unwrap(),
            )
        })
        .collect();
    answers.sort();
    assert_eq!(
        answers,
        [
            ("ann".into(), true),
            ("ben".into(), true),
            ("cat".into(), false)
        ]
    );
    expect_spool_empty(&spool(&server));
}

/// An offer to someone offline reaches them at login; a rejection is told
/// to the sender (at her next login when she is away), and the file is
/// deleted from the spool.
#[test]
fn offline_receiver_rejects_and_sender_is_told_at_login() {
    let server = Server::plain();
    drop(server.login("carol"));
    let mut alice = server.login("alice");
    let bytes = content(100_000, 3);
    let file = upload(&mut alice, "carol", "notes.pdf", &bytes);
    assert_eq!(spooled(&spool(&server)), vec![file.to_string()]);
    drop(alice);

    let mut carol = server.connect("carol");
    carol.login("carol");
    let offered = carol.expect_type("file_offer");
    assert_eq!(offered["file"], file);
    assert_eq!(offered["sender"], "alice");
    let id = carol.id();
    carol.send(json!({"type": "reject", "id": id, "file": file}));
    assert_eq!(carol.expect_reply(id)["type"], "ack");
    expect_spool_empty(&spool(&server));
    // A rejected file cannot be fetched any more.
    let id = carol.id();
    carol.send(json!({"type": "accept", "id": id, "file": file}));
    carol.expect_error(Some(id), "no_such_file");

    let mut alice = server.connect("alice");
    alice.login("alice");
    assert_eq!(
        alice.expect_type("file_answer"),
        json!({"type": "file_answer", "file": file, "name": "notes.pdf", "to": "carol", "accepted": false})
    );
}

/// Offers survive a restart of the server; the receiver is offered the
/// file at login and downloads it intact.
#[test]
fn offers_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = content(300_000, 11);
    let file = {
        let server = Options::plain().data_dir(dir.path()).start();
        drop(server.login("dave"));
        let mut alice = server.login("alice");
        upload(&mut alice, "dave", "slides.pdf", &bytes)
    };
    let server = Options::plain().data_dir(dir.path()).start();
    let mut dave = server.connect("dave");
    dave.login("dave");
    assert_eq!(dave.expect_type("file_offer")["file"], file);
    let (_, got) = download_range(&mut dave, file, 0, bytes.len() as u64);
    assert_eq!(sha256(&got), sha256(&bytes));
}

/// Names that would escape the downloads directory, or that no file can
/// have, are refused before a byte is sent; so are files over the size
/// limit, over the quota, and an unknown receiver.
#[test]
fn bad_names_sizes_and_receivers_are_refused() {
    let server = Options::plain()
        .flag("--max-file-size", 1000)
        .flag("--spool-quota", 1500)
        .start();
    drop(server.login("bob"));
    let mut alice = server.login("alice");
    for name in [
        "../etc/passwd",
        "a/b",
        "..",
        ".",
        "",
        "a\\b",
        "bell\u{7}",
        "new\nline",
    ] {
        let answer = offer(&mut alice, "bob", name, b"x");
        assert_eq!(answer["code"], "bad_file_name", "{name:?}: {answer}");
    }
    let answer = offer(&mut alice, "bob", "big.bin", &[0; 1001]);
    assert_eq!(answer["code"], "file_too_large", "{answer}");
    assert!(
        answer["reason"].as_str().unwrap().contains("1000"),
        "{answer}"
    );
    let answer = offer(&mut alice, "nobody", "a.txt", b"x");
    assert_eq!(answer["code"], "no_such_user", "{answer}");
    upload(&mut alice, "bob", "one.bin", &[1; 1000]);
    let answer = offer(&mut alice, "bob", "two.bin", &[2; 600]);
    assert_eq!(answer["code"], "quota_exceeded", "{answer}");
}

/// Bytes that do not hash to the offer's SHA-256 are refused and thrown away.
#[test]
fn a_wrong_hash_is_refused() {
    let server = Server::plain();
    drop(server.login("bob"));
    let mut alice = server.login("alice");
    let bytes = content(70_000, 5);
    let id = alice.id();
    alice.send(
        json!({"type": "offer", "id": id, "to": "bob", "name": "x.bin",
        "size": bytes.len(), "sha256": sha256(b"something else")}),
    );
    let file = alice.expect_reply(id)["file"].as_u64().unwrap();
    alice.send_chunk(file, 0, &bytes[..30_000]);
    alice.send_chunk(file, 30_000, &bytes[30_000..60_000]);
    alice.send_chunk(file, 60_000, &bytes[60_000..]);
    let error = alice.expect_error(None, "hash_mismatch");
    assert!(
        error["reason"].as_str().unwrap().contains("SHA-256"),
        "{error}"
    );
    expect_spool_empty(&spool(&server));
}

/// An upload cut off halfway resumes where the server stopped writing when
/// the sender offers the same file again; a download cut off resumes from
/// the bytes the receiver has.
#[test]
fn interrupted_transfers_resume() {
    let server = Server::plain();
    drop(server.login("bob"));
    let mut alice = server.login("alice");
    let bytes = content(2_000_000, 9);
    let answer = offer(&mut alice, "bob", "big.bin", &bytes);
    let file = answer["file"].as_u64().unwrap();
    upload_range(&mut alice, file, &bytes, 0, 1_000_000);
    drop(alice);

    // Back at once: a reconnect, which presence does not announce.
    let mut alice = server.connect("alice");
    alice.login("alice");
    let answer = offer(&mut alice, "bob", "big.bin", &bytes);
    assert_eq!(answer["file"], file, "the same offer resumes the same file");
    let from = answer["offset"].as_u64().unwrap();
    assert_eq!(from, 1_000_000, "the upload resumes where it stopped");
    let ack = upload_range(&mut alice, file, &bytes, from, bytes.len() as u64);
    assert_eq!(ack["complete"], true);

    let mut bob = server.connect("bob");
    bob.login("bob");
    bob.expect_type("file_offer");
    let (_, mut got) = download_range(&mut bob, file, 0, 600_000);
    drop(bob);
    let mut bob = server.connect("bob");
    bob.login("bob");
    let (answer, rest) = download_range(&mut bob, file, got.len() as u64, bytes.len() as u64);
    assert_eq!(answer["offset"], got.len());
    got.extend(rest);
    assert_eq!(sha256(&got), sha256(&bytes));
    downloaded(&mut bob, file);
    expect_spool_empty(&spool(&server));
}

/// A chunk's bytes travel raw after its line; one announcing more than
/// the most a chunk may carry is refused like an over-long line, and the
/// connection closes (its bytes could not be skipped safely).
#[test]
fn an_oversized_chunk_closes_the_connection() {
    let server = Server::plain();
    drop(server.login("bob"));
    let mut alice = server.login("alice");
    let bytes = content(10_000, 3);
    let file = offer(&mut alice, "bob", "x.bin", &bytes)["file"]
        .as_u64()
        .unwrap();
    let over = chat_common::payload::MAX_PAYLOAD + 1;
    alice.send_raw(
        format!("{{\"type\":\"chunk\",\"file\":{file},\"offset\":0,\"len\":{over}}}\n").as_bytes(),
    );
    let error = alice.expect_error(None, "too_large");
    assert!(
        error["reason"].as_str().unwrap().contains("262144"),
        "{error}"
    );
    alice.expect_eof();
}

/// A sender that ignores the upload window is stopped with an error, not
/// queued without end; its next offer of the file resumes from what the
/// server wrote.
#[test]
fn chunks_beyond_the_window_stop_the_upload() {
    let server = Server::plain();
    drop(server.login("bob"));
    let mut alice = server.login("alice");
    let bytes = content(3 * 1024 * 1024, 4);
    let file = offer(&mut alice, "bob", "x.bin", &bytes)["file"]
        .as_u64()
        .unwrap();
    let beyond = WINDOW * CHUNK as u64;
    alice.send_chunk(file, beyond, &bytes[beyond as usize..beyond as usize + 10]);
    let error = alice.expect_error(None, "bad_frame");
    assert!(
        error["reason"].as_str().unwrap().contains("window"),
        "{error}"
    );
    let answer = offer(&mut alice, "bob", "x.bin", &bytes);
    assert_eq!(
        (answer["file"].as_u64(), answer["offset"].as_u64()),
        (Some(file), Some(0))
    );
    let ack = upload_range(&mut alice, file, &bytes, 0, bytes.len() as u64);
    assert_eq!(ack["complete"], true, "{ack}");
}
