//! File transfer as a client does it, for the tests of one server
//! (`files.rs`) and of a cluster (`cluster_files.rs`): content with its
//! SHA-256, an offer, an upload within the window, a download acking every
//! chunk, and the spool directory emptied once everyone has answered.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use chat_common::protocol::{CHUNK, UPLOAD_WINDOW as WINDOW};

use super::Client;

/// `len` bytes that differ from run to run of the generator's seed only.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Offers `bytes` as `name` to `to`; returns the answer (`upload` or an
/// error).
pub fn offer(client: &mut Client, to: &str, name: &str, bytes: &[u8]) -> Value {
    let id = client.id();
    client.send(json!({"type": "offer", "id": id, "to": to, "name": name,
        "size": bytes.len(), "sha256": sha256(bytes)}));
    client.expect_reply(id)
}

/// Sends `bytes[from..until]` with at most [`WINDOW`] chunks unacknowledged;
/// returns the last `file_ack`.
pub fn upload_range(client: &mut Client, file: u64, bytes: &[u8], from: u64, until: u64) -> Value {
    let (mut sent, mut acked) = (from, from);
    let mut last = Value::Null;
    while acked < until {
        while sent < until && sent - acked < WINDOW * CHUNK as u64 {
            let end = (sent as usize + CHUNK).min(until as usize);
            client.send_chunk(file, sent, &bytes[sent as usize..end]);
            sent = end as u64;
        }
        let ack = client.expect("a file_ack", |f| {
            f["type"] == "file_ack" || f["type"] == "error"
        });
        assert_eq!(ack["type"], "file_ack", "{ack}");
        acked = ack["bytes"].as_u64().unwrap();
        last = ack;
    }
    last
}

/// Uploads the rest of `bytes` after an `upload` answer (from the offset it
/// names); returns the file's id once the server has verified it.
pub fn upload_rest(client: &mut Client, answer: &Value, bytes: &[u8]) -> u64 {
    assert_eq!(answer["type"], "upload", "{answer}");
    let file = answer["file"].as_u64().unwrap();
    let from = answer["offset"].as_u64().unwrap();
    let ack = upload_range(client, file, bytes, from, bytes.len() as u64);
    assert_eq!(ack["complete"], true, "{ack}");
    file
}

/// Accepts `file` from `offset` and reads chunks until `until` bytes, acking
/// each; returns the `download` answer and the bytes after `offset`.
pub fn download_range(client: &mut Client, file: u64, offset: u64, until: u64) -> (Value, Vec<u8>) {
    let id = client.id();
    client.send(json!({"type": "accept", "id": id, "file": file, "offset": offset}));
    let answer = client.expect_reply(id);
    assert_eq!(answer["type"], "download", "{answer}");
    let mut got = Vec::new();
    let mut at = offset;
    while at < until {
        let chunk = client.expect("a chunk", |f| f["type"] == "chunk");
        assert_eq!(chunk["offset"], at, "chunks come in order");
        let data = base64::engine::general_purpose::STANDARD
            .decode(chunk["data"].as_str().unwrap())
            .unwrap();
        at += data.len() as u64;
        got.extend(data);
        client.send(json!({"type": "file_ack", "file": file, "bytes": at}));
    }
    (answer, got)
}

pub fn downloaded(client: &mut Client, file: u64) {
    let id = client.id();
    client.send(json!({"type": "downloaded", "id": id, "file": file}));
    assert_eq!(client.expect_reply(id)["type"], "ack");
}

/// The files in the spool directory `spool`.
pub fn spooled(spool: &Path) -> Vec<String> {
    std::fs::read_dir(spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Waits until `spool` is empty (every receiver answered and the sender
/// was told: the file thread deletes after the dispatcher decides), or
/// fails.
pub fn expect_spool_empty(spool: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !spooled(spool).is_empty() {
        assert!(
            Instant::now() < deadline,
            "spool still holds {:?}",
            spooled(spool)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
