//! `chat-bench file`: one file through the server on loopback — uploaded
//! into its spool, then downloaded out of it — timing each way, while two
//! other clients exchange private messages whose latency is measured.
//!
//! Plain blocking sockets, a thread per direction: four clients need no
//! event loop. The file is a 1 MiB pseudo-random block repeated, so its
//! chunks are encoded once and a download is checked byte for byte without
//! holding a gigabyte.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chat_common::codec::{decode, encode};
use chat_common::{Request, ServerFrame};
use sha2::{Digest, Sha256};

use crate::frames::ChunkTemplate;
use crate::histogram::Histogram;
use crate::report::Report;

/// Bytes of file per `chunk` frame and how many may be unacknowledged: the
/// protocol's (`CHUNK`, `UPLOAD_WINDOW`).
const CHUNK: usize = chat_common::protocol::CHUNK;
const WINDOW: u64 = chat_common::protocol::UPLOAD_WINDOW;
const BLOCK: usize = 1 << 20;

pub struct FileLoad {
    pub size: u64,
    /// Private messages a second during the transfer.
    pub rate: f64,
}

/// One logged-in client: lines in, lines out.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn login(addr: SocketAddr, nick: &str) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut client = Client {
            reader: BufReader::with_capacity(256 * 1024, stream.try_clone()?),
            writer: stream,
        };
        client.send(&Request::Login {
            id: 1,
            nick: nick.to_string(),
            password: "bench-password".into(),
            last_seq: None,
            last_public: None,
            register: None,
        })?;
        loop {
            match client.frame()? {
                ServerFrame::Welcome { .. } => return Ok(client),
                frame @ ServerFrame::Error { .. } => bail!("{nick} could not log in: {frame:?}"),
                _ => {}
            }
        }
    }

    fn send(&mut self, frame: &Request) -> anyhow::Result<()> {
        send_on(&mut self.writer, frame)
    }

    fn line(&mut self, buf: &mut Vec<u8>) -> anyhow::Result<()> {
        buf.clear();
        if self.reader.read_until(b'\n', buf)? == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }

    /// The next frame; a `chunk`'s raw bytes are left to the caller.
    fn frame(&mut self) -> anyhow::Result<ServerFrame> {
        let mut buf = Vec::new();
        self.line(&mut buf)?;
        frame_of(&buf)
    }
}

/// Decodes one line the server sent (newline included).
fn frame_of(line: &[u8]) -> anyhow::Result<ServerFrame> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    decode(line).with_context(|| format!("the server sent {}", String::from_utf8_lossy(line)))
}

/// The file's contents: `BLOCK` repeated.
struct Content {
    block: Vec<u8>,
}

impl Content {
    fn new() -> Content {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let block: Vec<u8> = (0..BLOCK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Content { block }
    }

    /// The `len` bytes at `offset`, which must not cross a block's end.
    fn at(&self, offset: u64, len: usize) -> &[u8] {
        let start = (offset % BLOCK as u64) as usize;
        &self.block[start..start + len]
    }

    fn sha256(&self, size: u64) -> String {
        let mut hasher = Sha256::new();
        let mut at = 0;
        while at < size {
            let len = (size - at).min(BLOCK as u64) as usize;
            hasher.update(&self.block[..len]);
            at += len as u64;
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The latency prober: `from` sends `to` a private message every 1/rate s
/// carrying its send time; the receiver records send → arrival.
fn probe(
    from: Client,
    mut to: Client,
    to_nick: String,
    rate: f64,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<Histogram> {
    let sender_stop = stop.clone();
    thread::spawn(move || {
        // The sender's answers (acks) are read and dropped.
        let Client {
            reader: mut drain,
            writer: mut out,
        } = from;
        thread::spawn(move || {
            let mut buf = Vec::new();
            while drain
                .read_until(b'\n', &mut buf)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                buf.clear();
            }
        });
        let receiver = thread::spawn(move || {
            let mut hist = Histogram::default();
            let mut buf = Vec::new();
            while to.line(&mut buf).is_ok() {
                let Ok(ServerFrame::Message { text, .. }) = frame_of(&buf) else {
                    continue;
                };
                let sent = text.strip_prefix("t=").and_then(|t| t.parse::<u64>().ok());
                if let Some(sent) = sent {
                    let now = epoch.elapsed().as_nanos() as u64;
                    hist.record(now.saturating_sub(sent));
                }
                if text == "stop" {
                    break;
                }
            }
            hist
        });
        let period = Duration::from_secs_f64(1.0 / rate);
        let mut next = Instant::now();
        let mut id = 10;
        let message = |id: u64, text: String| Request::Message {
            id,
            receiver: to_nick.clone(),
            text,
            cid: None,
        };
        while !sender_stop.load(Ordering::SeqCst) {
            let now = epoch.elapsed().as_nanos() as u64;
            id += 1;
            if send_on(&mut out, &message(id, format!("t={now}"))).is_err() {
                break;
            }
            next += period;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
        }
        let _ = send_on(&mut out, &message(id + 1, "stop".into()));
        receiver.join().unwrap_or_default()
    })
}

/// Uploads `size` bytes to `to`; returns the file's number once the server
/// says it is complete (hash checked, durable).
fn upload(mut alice: Client, to: &str, size: u64, content: &Content) -> anyhow::Result<u64> {
    let sha256 = content.sha256(size);
    alice.send(&Request::Offer {
        id: 2,
        to: to.to_string(),
        name: "bench.bin".into(),
        size,
        sha256,
    })?;
    let file = loop {
        match alice.frame()? {
            ServerFrame::Upload { file, .. } => break file,
            frame @ ServerFrame::Error { .. } => bail!("offer refused: {frame:?}"),
            _ => {}
        }
    };
    // The reader reports each acknowledged byte count; `None` once complete.
    let (acks, acked) = mpsc::channel::<Option<u64>>();
    let mut reader = alice.reader;
    let read = thread::spawn(move || -> anyhow::Result<()> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf)? == 0 {
                bail!("the server closed the uploader's connection");
            }
            match frame_of(&buf)? {
                ServerFrame::FileAck { complete: true, .. } => {
                    let _ = acks.send(None);
                    return Ok(());
                }
                ServerFrame::FileAck { bytes, .. } => {
                    let _ = acks.send(Some(bytes));
                }
                frame @ ServerFrame::Error { .. } => bail!("upload failed: {frame:?}"),
                _ => {}
            }
        }
    });
    let (mut sent, mut done) = (0u64, 0u64);
    let chunk = ChunkTemplate::new();
    let mut frame = Vec::with_capacity(CHUNK + 128);
    while sent < size {
        while sent - done >= WINDOW * CHUNK as u64 {
            match acked.recv() {
                Ok(Some(bytes)) => done = done.max(bytes),
                _ => break,
            }
        }
        let data = content.at(sent, (size - sent).min(CHUNK as u64) as usize);
        chunk.encode(&mut frame, file, sent, data);
        alice.writer.write_all(&frame)?;
        sent += data.len() as u64;
    }
    while let Ok(Some(_)) = acked.recv() {}
    read.join().expect("the upload reader")?;
    Ok(file)
}

/// Waits for the offer of `file`, accepts it and downloads it, checking
/// every byte; returns when the last one has arrived.
fn download(bob: &mut Client, file: u64, size: u64, content: &Content) -> anyhow::Result<()> {
    bob.send(&Request::Accept {
        id: 3,
        file,
        offset: 0,
    })?;
    let mut buf = Vec::new();
    let mut got = 0u64;
    let mut bytes = Vec::with_capacity(CHUNK);
    while got < size {
        bob.line(&mut buf)?;
        let (offset, len) = match frame_of(&buf)? {
            ServerFrame::Chunk { offset, data, .. } => (offset, data.len()),
            frame @ ServerFrame::Error { .. } => bail!("download failed: {frame:?}"),
            _ => continue,
        };
        bytes.resize(len, 0);
        bob.reader.read_exact(&mut bytes)?;
        let in_block = offset % BLOCK as u64 + len as u64 <= BLOCK as u64;
        if offset != got || !in_block || bytes != content.at(offset, len) {
            bail!("chunk at {offset} is not the file's bytes (expected offset {got})");
        }
        got += len as u64;
        bob.send(&Request::FileAck { file, bytes: got })?;
    }
    bob.send(&Request::Downloaded { id: 4, file })?;
    Ok(())
}

/// Writes `frame` as `chat_common` encodes it (a chunk's bytes included).
fn send_on(writer: &mut TcpStream, frame: &Request) -> anyhow::Result<()> {
    writer.write_all(&encode(frame))?;
    Ok(())
}

pub fn run(addr: SocketAddr, tls: bool, load: &FileLoad) -> anyhow::Result<Report> {
    if tls {
        bail!("the file scenario runs over plaintext only");
    }
    let run = format!("{:x}", std::process::id());
    let nick = |who: &str| format!("f{who}{run}");
    let alice = Client::login(addr, &nick("alice"))?;
    let mut bob = Client::login(addr, &nick("bob"))?;
    let carol = Client::login(addr, &nick("carol"))?;
    let dave = Client::login(addr, &nick("dave"))?;
    let content = Content::new();
    let epoch = Instant::now();

    // Upload, with the prober running.
    let stop = Arc::new(AtomicBool::new(false));
    let prober = probe(carol, dave, nick("dave"), load.rate, epoch, stop.clone());
    let started = Instant::now();
    let file = upload(alice, &nick("bob"), load.size, &content)?;
    let up = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let up_lat = prober.join().expect("the prober");

    // Download, with a fresh pair (the first pair's receiver would be sent
    // its unacknowledged messages again if it logged in again).
    let erin = Client::login(addr, &nick("erin"))?;
    let frank = Client::login(addr, &nick("frank"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let prober = probe(erin, frank, nick("frank"), load.rate, epoch, stop.clone());
    let started = Instant::now();
    download(&mut bob, file, load.size, &content)?;
    let down = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let down_lat = prober.join().expect("the prober");

    let mb = load.size as f64 / 1e6;
    let mut r = Report::new("file");
    r.add("size_bytes", load.size, "bytes");
    r.add_f("upload_s", up.as_secs_f64(), 2, "s");
    r.add_f("upload_mb_s", mb / up.as_secs_f64(), 0, "MB/s");
    r.add_f("download_s", down.as_secs_f64(), 2, "s");
    r.add_f("download_mb_s", mb / down.as_secs_f64(), 0, "MB/s");
    let ms = |ns: u64| ns as f64 / 1e6;
    for (phase, h) in [("upload", &up_lat), ("download", &down_lat)] {
        r.add(&format!("{phase}_pm_samples"), h.count(), "");
        r.add_f(
            &format!("{phase}_pm_p50_ms"),
            ms(h.percentile(0.5)),
            3,
            "ms",
        );
        r.add_f(
            &format!("{phase}_pm_p99_ms"),
            ms(h.percentile(0.99)),
            3,
            "ms",
        );
        r.add_f(&format!("{phase}_pm_max_ms"), ms(h.max()), 3, "ms");
    }
    Ok(r)
}
