//! A client that sends its requests and then closes its side of the
//! connection (`shutdown(SHUT_WR)`, `nc -N`, a script) still gets an answer
//! to every request before the server closes.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::support::Server;

/// Sends `lines`, half-closes, and returns every frame received until EOF.
fn send_then_half_close(server: &Server, lines: &[&str]) -> Vec<Value> {
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for line in lines {
        tcp.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
    tcp.shutdown(Shutdown::Write).unwrap();
    BufReader::new(tcp)
        .lines()
        .map(|line| serde_json::from_str(&line.expect("frames, then EOF in time")).unwrap())
        .collect()
}

fn types(frames: &[Value]) -> Vec<&str> {
    frames.iter().map(|f| f["type"].as_str().unwrap()).collect()
}

/// Login, a public message and bye, then a half-close: welcome, ack, the
/// message and the bye's ack all arrive, and the others saw the message.
#[test]
fn every_request_is_answered_before_the_close() {
    let server = Server::plain();
    let mut bob = server.login("bob");
    let frames = send_then_half_close(
        &server,
        &[
            r#"{"type":"login","id":1,"nick":"script","password":"pw"}"#,
            r#"{"type":"message","id":2,"text":"built"}"#,
            r#"{"type":"bye","id":3}"#,
        ],
    );
    let answered: Vec<u64> = frames.iter().filter_map(|f| f["id"].as_u64()).collect();
    assert_eq!(answered, [1, 2, 3], "{frames:?}");
    assert!(types(&frames).contains(&"message"), "{frames:?}");
    let message = bob.expect_type("message");
    assert_eq!(message["text"], "built");
}

/// Without a bye: the answers still come, then the server closes, and the
/// others learn the script left because its connection closed.
#[test]
fn a_half_close_without_bye_is_a_departure() {
    let server = Server::plain();
    let mut bob = server.login("bob");
    let frames = send_then_half_close(
        &server,
        &[
            r#"{"type":"login","id":1,"nick":"script","password":"pw"}"#,
            r#"{"type":"online","id":2}"#,
            r#"{"type":"message","id":3,"receiver":"nobody","text":"x"}"#,
        ],
    );
    let answered: Vec<u64> = frames.iter().filter_map(|f| f["id"].as_u64()).collect();
    assert_eq!(answered, [1, 2, 3], "{frames:?}");
    assert_eq!(frames.last().unwrap()["code"], "no_such_user", "{frames:?}");
    assert_eq!(bob.expect_left("script"), "connection closed");
}
