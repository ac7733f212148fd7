//! The web side of the port, without a browser: pages over HTTP(S), the
//! WebSocket carrying protocol frames (text) and chunk bytes (binary), the
//! Origin check, and malformed HTTP and WebSocket input. The browser
//! itself is driven in `browser.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::support::{password_of, tls_handshake, Options, Server, Stream, TIMEOUT};

/// A browser's WebSocket, played by tungstenite.
struct Ws {
    name: String,
    socket: WebSocket<Stream>,
    next_id: u64,
}

fn stream(addr: SocketAddr, tls: bool) -> Stream {
    let tcp = TcpStream::connect(addr).expect("connecting");
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(TIMEOUT)).unwrap();
    if tls {
        Stream::Tls(Box::new(tls_handshake(tcp)))
    } else {
        Stream::Plain(tcp)
    }
}

/// The page's own origin on `server`.
fn origin(server: &Server) -> String {
    let scheme = if server.is_tls() { "https" } else { "http" };
    format!("{scheme}://{}", server.addr)
}

impl Ws {
    /// Opens the WebSocket as a page of `origin` would (none: not a browser).
    fn open(server: &Server, name: &str, origin: Option<&str>) -> Result<Ws, String> {
        let scheme = if server.is_tls() { "wss" } else { "ws" };
        let mut request = format!("{scheme}://{}/ws", server.addr)
            .into_client_request()
            .unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("Origin", origin.parse().unwrap());
        }
        let config = WebSocketConfig::default().max_message_size(Some(1 << 20));
        match tungstenite::client::client_with_config(
            request,
            stream(server.addr, server.is_tls()),
            Some(config),
        ) {
            Ok((socket, _)) => Ok(Ws {
                name: name.into(),
                socket,
                next_id: 1,
            }),
            Err(tungstenite::HandshakeError::Failure(err)) => Err(err.to_string()),
            Err(err) => Err(format!("{err}")),
        }
    }

    fn connect(server: &Server, name: &str) -> Ws {
        Ws::open(server, name, Some(&origin(server))).unwrap_or_else(|err| panic!("{name}: {err}"))
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn send(&mut self, frame: Value) {
        self.socket
            .send(Message::text(frame.to_string()))
            .unwrap_or_else(|err| panic!("{}: sending: {err}", self.name));
    }

    fn send_chunk(&mut self, file: u64, offset: u64, bytes: &[u8]) {
        self.send(json!({"type": "chunk", "file": file, "offset": offset, "len": bytes.len()}));
        self.socket
            .send(Message::binary(bytes.to_vec()))
            .unwrap_or_else(|err| panic!("{}: sending bytes: {err}", self.name));
    }

    /// The next protocol frame; a chunk's bytes (the binary message after
    /// it) are put into it as `bytes`.
    fn recv(&mut self) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "{}: nothing came", self.name);
            match self.socket.read() {
                Ok(Message::Text(text)) => {
                    let mut frame: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|err| panic!("{}: not JSON ({err}): {text}", self.name));
                    if frame["type"] == "chunk" {
                        match self.socket.read() {
                            Ok(Message::Binary(bytes)) => {
                                assert_eq!(bytes.len() as u64, frame["len"].as_u64().unwrap());
                                frame["bytes"] = json!(bytes.to_vec());
                            }
                            other => panic!("{}: a chunk's bytes, got {other:?}", self.name),
                        }
                    }
                    return frame;
                }
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                other => panic!("{}: expected a text message, got {other:?}", self.name),
            }
        }
    }

    fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut seen = Vec::new();
        for _ in 0..200 {
            let frame = self.recv();
            if pred(&frame) {
                return frame;
            }
            seen.push(frame.to_string());
        }
        panic!("{}: no {what} among {seen:?}", self.name);
    }

    fn login(&mut self, nick: &str) -> Value {
        let id = self.id();
        self.send(json!({"type": "login", "id": id, "nick": nick, "password": password_of(nick)}));
        let welcome = self.expect("the welcome", |f| f["id"] == id);
        assert_eq!(welcome["type"], "welcome", "{nick}: {welcome}");
        welcome
    }

    /// Reads until the server closes; returns the close frame's code.
    fn expect_close(&mut self) -> Option<u16> {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            match self.socket.read() {
                Ok(Message::Close(frame)) => return frame.map(|f| f.code.into()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        panic!("{}: still open", self.name);
    }
}

/// One HTTP request on its own connection; the whole response.
fn http(addr: SocketAddr, tls: bool, request: &[u8]) -> String {
    let mut stream = stream(addr, tls);
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn the_page_is_served_over_tls_with_a_strict_policy() {
    let server = Options::tls().start();
    let printed = server.web_url.clone().expect("the web address is printed");
    assert_eq!(printed, format!("https://{}/", server.addr));
    let page = http(
        server.addr,
        true,
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Content-Type: text/html"), "{page}");
    assert!(page.contains("Content-Security-Policy: default-src 'none'; script-src 'self'"));
    assert!(page.contains("X-Content-Type-Options: nosniff"));
    assert!(!page.to_ascii_lowercase().contains("set-cookie"));
    assert!(page.to_ascii_lowercase().contains("<html"), "{page}");
    let missing = http(server.addr, true, b"GET /secret HTTP/1.1\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    // The line protocol on the same port is as it was.
    let mut client = server.login("carol");
    let id = client.id();
    client.send(json!({"type": "ping", "id": id}));
    assert_eq!(client.expect_reply(id)["type"], "pong");
}

#[test]
fn browser_and_terminal_users_chat_through_one_server() {
    let server = Options::plain().start();
    let mut carol = server.login("carol");
    let mut ann = Ws::connect(&server, "ann");
    let welcome = ann.login("ann");
    assert_eq!(welcome["nick"], "ann");
    // ann → everyone, carol → ann privately.
    let id = ann.id();
    ann.send(json!({"type": "message", "id": id, "text": "hello from a browser", "cid": "w-1"}));
    assert_eq!(ann.expect("the ack", |f| f["id"] == id)["type"], "ack");
    let got = carol.expect("ann's message", |f| f["type"] == "message");
    assert_eq!(got["sender"], "ann");
    assert_eq!(got["text"], "hello from a browser");
    let id = carol.id();
    carol.send(json!({"type": "message", "id": id, "receiver": "ann", "text": "hi <b>ann</b>", "cid": "t-1"}));
    let private = ann.expect("carol's private message", |f| {
        f["type"] == "message" && f["receiver"] == "ann"
    });
    assert_eq!(private["text"], "hi <b>ann</b>");
    ann.send(json!({"type": "received", "seq": private["seq"]}));
    let delivered = carol.expect("delivered", |f| f["type"] == "delivered");
    assert_eq!(delivered["to"], "ann");
    // A text message may end with a newline or not, and carry blank lines.
    let id = ann.id();
    ann.send(json!({"type": "ping", "id": id}));
    ann.socket
        .send(Message::text(format!(
            "{}\n\n",
            json!({"type": "ping", "id": id + 1})
        )))
        .unwrap();
    ann.next_id += 1;
    assert_eq!(ann.expect("pong", |f| f["id"] == id)["type"], "pong");
    assert_eq!(ann.expect("pong", |f| f["id"] == id + 1)["type"], "pong");
}

#[test]
fn a_file_goes_from_a_browser_to_a_terminal_user_and_back() {
    let server = Options::tls().start();
    let mut carol = server.login("carol");
    let mut ann = Ws::connect(&server, "ann");
    ann.login("ann");
    let data: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let hash = hex(&Sha256::digest(&data));

    let id = ann.id();
    ann.send(
        json!({"type": "offer", "id": id, "to": "carol", "name": "notes.bin",
        "size": data.len(), "sha256": hash}),
    );
    let upload = ann.expect("upload", |f| f["id"] == id);
    let file = upload["file"].as_u64().expect("a file id");
    for (i, chunk) in data.chunks(256 * 1024).enumerate() {
        ann.send_chunk(file, (i * 256 * 1024) as u64, chunk);
    }
    ann.expect("the upload complete", |f| {
        f["type"] == "file_ack" && f["complete"] == true
    });
    let offer = carol.expect("the offer", |f| f["type"] == "file_offer");
    assert_eq!(offer["sha256"], hash);
    let id = carol.id();
    carol.send(json!({"type": "accept", "id": id, "file": file}));
    let mut got = Vec::new();
    while got.len() < data.len() {
        let chunk = carol.expect("a chunk", |f| f["type"] == "chunk");
        got.extend(base64_decode(chunk["data"].as_str().unwrap()));
        carol.send(json!({"type": "file_ack", "file": file, "bytes": got.len()}));
    }
    assert_eq!(hex(&Sha256::digest(&got)), hash, "carol's copy");

    // And back: carol offers, the browser downloads binary messages.
    let back: Vec<u8> = data.iter().rev().copied().collect();
    let back_hash = hex(&Sha256::digest(&back));
    let id = carol.id();
    carol.send(
        json!({"type": "offer", "id": id, "to": "ann", "name": "back.bin",
        "size": back.len(), "sha256": back_hash}),
    );
    let file = carol.expect_reply(id)["file"].as_u64().unwrap();
    for (i, chunk) in back.chunks(256 * 1024).enumerate() {
        carol.send_chunk(file, (i * 256 * 1024) as u64, chunk);
    }
    let offer = ann.expect("carol's offer", |f| f["type"] == "file_offer");
    assert_eq!(offer["name"], "back.bin");
    let id = ann.id();
    ann.send(json!({"type": "accept", "id": id, "file": file}));
    let mut got = Vec::new();
    while got.len() < back.len() {
        let chunk = ann.expect("a chunk", |f| f["type"] == "chunk");
        let bytes: Vec<u8> = serde_json::from_value(chunk["bytes"].clone()).unwrap();
        got.extend(bytes);
        ann.send(json!({"type": "file_ack", "file": file, "bytes": got.len()}));
    }
    assert_eq!(hex(&Sha256::digest(&got)), back_hash, "the browser's copy");
    let id = ann.id();
    ann.send(json!({"type": "downloaded", "id": id, "file": file}));
    assert_eq!(ann.expect("the ack", |f| f["id"] == id)["type"], "ack");
}

#[test]
fn a_foreign_origin_is_refused() {
    let server = Options::tls().start();
    for origin in ["https://evil.example", "null", "http://127.0.0.1"] {
        let refused = Ws::open(&server, "mallory", Some(origin)).err();
        let refused = refused.unwrap_or_else(|| panic!("{origin} was let in"));
        assert!(refused.contains("403"), "{origin}: {refused}");
    }
    // Not a browser (no Origin) and the page's own origin are let in.
    Ws::open(&server, "tool", None).unwrap().login("tool");
    Ws::connect(&server, "ann").login("ann");
}

/// Every malformed request gets an answer or a close, and the server goes
/// on serving everyone else.
#[test]
fn malformed_http_and_websocket_input() {
    let server = Options::plain().flag("--handshake-timeout", 1).start();
    let mut carol = server.login("carol");
    let addr = server.addr;
    for (request, status) in [
        (&b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"[..], "400"),
        (b"GET /\x01 HTTP/1.1\r\n\r\n", "400"),
        (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", "405"),
        (b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", "426"),
        (
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "400",
        ),
    ] {
        let response = http(addr, false, request);
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status} ")),
            "{:?}: {response}",
            String::from_utf8_lossy(request)
        );
    }
    let many: String = (0..100).map(|i| format!("X-H{i}: y\r\n")).collect();
    let response = http(
        addr,
        false,
        format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes(),
    );
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
    let huge = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(20_000));
    assert!(http(addr, false, huge.as_bytes()).starts_with("HTTP/1.1 431 "));

    // A request head that never ends is cut at the handshake deadline.
    let mut slow = stream(addr, false);
    slow.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "held {:?}",
        started.elapsed()
    );

    // WebSocket frames that break the rules are closed, with a code.
    let mut raw = Ws::connect(&server, "raw");
    raw.socket.send(Message::binary(vec![1, 2, 3])).unwrap();
    assert_eq!(raw.expect_close(), Some(1008), "bytes with no chunk");

    let mut raw = Ws::connect(&server, "raw2");
    raw.login("raw2");
    let id = raw.id();
    raw.send(
        json!({"type": "offer", "id": id, "to": "carol", "name": "x", "size": 10,
        "sha256": "0".repeat(64)}),
    );
    let file = raw.expect("upload", |f| f["id"] == id)["file"].clone();
    raw.send(json!({"type": "chunk", "file": file, "offset": 0, "len": 4}));
    raw.socket.send(Message::binary(vec![0; 9])).unwrap();
    assert_eq!(
        raw.expect_close(),
        Some(1008),
        "bytes longer than their chunk"
    );

    let mut raw = Ws::connect(&server, "raw3");
    raw.send(json!({"type": "login", "id": 1, "nick": "x".repeat(70_000), "password": "p"}));
    let frame = raw.recv();
    assert_eq!(frame["code"], "too_large", "{frame}");

    // Unmasked frames are refused: written by hand, as no client library would.
    let mut bare = stream(addr, false);
    bare.write_all(
        format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    bare.write_all(&[0x81, 2, b'{', b'}']).unwrap();
    let mut response = Vec::new();
    let _ = bare.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    let close = &response[text.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(&close[..1], [0x88], "a close frame: {close:?}");
    assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1002);

    // Through all that, carol's connection was never touched.
    let id = carol.id();
    carol.send(json!({"type": "ping", "id": id}));
    assert_eq!(carol.expect_reply(id)["type"], "pong");
}

/// A masked client frame, written by hand.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [9, 8, 7, 6];
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// The server's frames in `bytes` (after the 101's head): (opcode, payload).
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let (opcode, len) = (bytes[0] & 0x0f, (bytes[1] & 0x7f) as usize);
        let (len, start) = match len {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => panic!("no 64-bit lengths here"),
            n => (n, 2),
        };
        frames.push((opcode, bytes[start..start + len].to_vec()));
        bytes = &bytes[start + len..];
    }
    frames
}

fn upgraded(addr: SocketAddr) -> Stream {
    let mut raw = stream(addr, false);
    raw.write_all(
        format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    raw
}

/// What the independent review found, each once broken: a request head in
/// two segments, a frame over the queue limit, a pong after the close, a
/// chat frame in an HTTP response.
#[test]
fn review_findings_stay_fixed() {
    let server = Options::plain()
        .flag("--max-frame", 1024)
        .flag("--login-timeout", 1)
        .flag("--handshake-timeout", 4)
        .start();
    let addr = server.addr;
    // A head that arrives in pieces is answered.
    for cut in [2, 20] {
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut split = stream(addr, false);
        split.write_all(&request[..cut]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        split.write_all(&request[cut..]).unwrap();
        let mut response = Vec::new();
        let started = Instant::now();
        let _ = split.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response);
        assert!(
            response.starts_with("HTTP/1.1 200 "),
            "cut at {cut}: {response:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // A frame larger than the queue limit reaches a WebSocket peer as it
    // reaches a line peer (into an empty queue).
    let small = Options::plain().flag("--queue-limit", 2048).start();
    let mut carol = small.login("carol");
    let mut bob = small.login("bob");
    let mut ann = Ws::connect(&small, "ann");
    ann.login("ann");
    let big = "x".repeat(3000);
    let id = carol.id();
    carol.send(json!({"type": "message", "id": id, "text": big}));
    let got = ann.expect("the big message", |f| f["type"] == "message");
    assert_eq!(got["text"].as_str().map(str::len), Some(3000));
    let got = bob.expect("the big message", |f| f["type"] == "message");
    assert_eq!(got["text"].as_str().map(str::len), Some(3000));

    // A ping and an over-long line in one write: the close frame is last.
    let mut raw = upgraded(addr);
    let mut both = client_frame(0x9, b"hi");
    both.extend(client_frame(0x1, &[b' '; 2000]));
    raw.write_all(&both).unwrap();
    let mut bytes = Vec::new();
    let _ = raw.read_to_end(&mut bytes);
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let frames = server_frames(&bytes[head_end..]);
    assert_eq!(frames.last().map(|f| f.0), Some(0x8), "{frames:?}");

    // A head still being read at the login deadline gets no chat frame.
    let mut partial = stream(addr, false);
    partial.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut response = Vec::new();
    let _ = partial.read_to_end(&mut response);
    assert!(
        !response.contains(&b'{'),
        "{:?}",
        String::from_utf8_lossy(&response)
    );
}

#[test]
fn no_web_and_a_web_port_of_its_own() {
    let server = Options::plain().switch("--no-web").start();
    let mut client = server.connect("curl");
    client.send_raw(b"GET / HTTP/1.1\r\n\r\n");
    client.expect_error(None, "bad_json");

    let server = Options::plain().flag("--web-bind", "127.0.0.1:0").start();
    let line = server.web_url.clone().expect("the web address is printed");
    let web: SocketAddr = line
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    assert_ne!(web, server.addr);
    let page = http(web, false, b"GET / HTTP/1.1\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    let mut client = server.connect("curl");
    client.send_raw(b"GET / HTTP/1.1\r\n\r\n");
    client.expect_error(None, "bad_json");
    // The web port speaks nothing else.
    let lines = http(web, false, b"{\"type\":\"ping\",\"id\":1}\n\r\n\r\n");
    assert!(lines.starts_with("HTTP/1.1 400 "), "{lines}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// A peer that never stops sending (empty WebSocket messages, blank lines)
/// gets its worker's turns in shares: another connection on the same
/// worker is still answered at once.
#[test]
fn a_peer_that_never_stops_sending_does_not_starve_its_worker() {
    let server = Options::plain().flag("--workers", 1).start();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flooders = Vec::new();
    for websocket in [true, false] {
        let (addr, stop) = (server.addr, stop.clone());
        flooders.push(std::thread::spawn(move || {
            let mut raw = if websocket {
                upgraded(addr)
            } else {
                stream(addr, false)
            };
            let burst: Vec<u8> = if websocket {
                client_frame(0x1, b"").repeat(10_000)
            } else {
                vec![b'\n'; 64 * 1024]
            };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if raw.write_all(&burst).is_err() {
                    break;
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut carol = server.login("carol");
    for _ in 0..5 {
        let id = carol.id();
        let asked = Instant::now();
        carol.send(json!({"type": "ping", "id": id}));
        carol.expect_reply(id);
        // Without the shares no pong came within 5 s; with them the
        // slowest took 1.4 s in a debug build at load average 30.
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "a pong took {:?}",
            asked.elapsed()
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for flooder in flooders {
        let _ = flooder.join();
    }
}

/// The bad-input table of `bad_input.rs`, each line as one WebSocket text
/// message: the same error codes as on the line protocol, and the socket
/// stays open. (Lines that are not UTF-8 cannot be a text message: the
/// WebSocket itself refuses them, close 1002, checked above.)
#[test]
fn the_bad_input_table_over_a_websocket() {
    let server = Options::plain().start();
    let mut ws = Ws::connect(&server, "fuzzy");
    for (line, code, id) in crate::bad_input::MALFORMED {
        let Ok(text) = std::str::from_utf8(line) else {
            continue;
        };
        ws.socket.send(Message::text(text)).unwrap();
        let error = ws.expect(&format!("the answer to {text:?}"), |f| f["type"] == "error");
        assert_eq!(error["code"], *code, "{text:?}: {error}");
        assert_eq!(error["id"].as_u64(), *id, "{text:?}: {error}");
    }
    let welcome = ws.login("fuzzy");
    assert_eq!(welcome["nick"], "fuzzy", "the socket still works");
}
