//! A busy room for the attack tests: chatters on plain TCP who each post a
//! public message at a steady pace and time how long it takes to come back
//! to them (send → stored → fanned out → read), per phase of a test.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{password_of, Server};

/// Latencies in microseconds, per phase.
pub type Samples = Vec<Vec<u64>>;

pub struct Room {
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Samples>>,
    threads: Vec<JoinHandle<()>>,
    sockets: Vec<TcpStream>,
    /// Messages the chatters saw, by sender kind: [chatters', others'].
    pub seen: Arc<[AtomicU64; 2]>,
    /// Messages the chatters sent.
    pub sent: Arc<AtomicU64>,
}

/// Logs in over plain TCP and returns the stream once welcomed.
pub fn raw_login(server: &Server, nick: &str) -> (TcpStream, BufReader<TcpStream>) {
    let tcp = TcpStream::connect(server.addr).expect("connect");
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(tcp.try_clone().unwrap());
    let login = json!({"type": "login", "id": 0, "nick": nick, "password": password_of(nick)});
    (&tcp).write_all(format!("{login}\n").as_bytes()).unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "{nick}: closed at login"
        );
        let frame: Value = serde_json::from_str(&line).unwrap();
        if frame["type"] == "welcome" {
            return (tcp, reader);
        }
        assert_ne!(frame["type"], "error", "{nick}: {frame}");
    }
}

impl Room {
    /// `n` chatters, each posting every `every`.
    pub fn start(server: &Server, n: usize, every: Duration) -> Room {
        let base = Instant::now();
        let phase = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(vec![Vec::new(); 8]));
        let seen: Arc<[AtomicU64; 2]> = Arc::default();
        let sent: Arc<AtomicU64> = Arc::default();
        let mut threads = Vec::new();
        let mut sockets = Vec::new();
        for i in 0..n {
            let nick = format!("chatter{i}");
            let (tcp, mut reader) = raw_login(server, &nick);
            sockets.push(tcp.try_clone().unwrap());
            let (phase, samples, seen) = (phase.clone(), samples.clone(), seen.clone());
            let me = nick.clone();
            threads.push(thread::spawn(move || {
                let mut line = String::new();
                while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                    if line.contains("\"type\":\"message\"") {
                        let frame: Value = serde_json::from_str(&line).unwrap();
                        let sender = frame["sender"].as_str().unwrap_or("");
                        let text = frame["text"].as_str().unwrap_or("");
                        let ours = sender.starts_with("chatter");
                        seen[usize::from(!ours)].fetch_add(1, Ordering::Relaxed);
                        if let (true, Some(t)) = (sender == me, text.strip_prefix("lat ")) {
                            let sent_at: u64 = t.parse().unwrap();
                            let now = base.elapsed().as_micros() as u64;
                            let p = phase.load(Ordering::Relaxed);
                            samples.lock().unwrap()[p].push(now - sent_at);
                        }
                    }
                    line.clear();
                }
            }));
            let (stop, sent) = (stop.clone(), sent.clone());
            let mut writer = tcp;
            // Spread the chatters over the interval.
            let offset = every * i as u32 / n as u32;
            threads.push(thread::spawn(move || {
                thread::sleep(offset);
                let mut id = 1u64;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let t = base.elapsed().as_micros();
                    let frame = json!({"type": "message", "id": id, "text": format!("lat {t}")});
                    if writer.write_all(format!("{frame}\n").as_bytes()).is_err() {
                        return;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    id += 1;
                    next += every;
                    thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            }));
        }
        Room {
            phase,
            stop,
            samples,
            threads,
            sockets,
            seen,
            sent,
        }
    }

    /// Records the latencies from now on under phase `p` (0–7).
    pub fn phase(&self, p: usize) {
        self.phase.store(p, Ordering::Relaxed);
    }

    /// Stops the chatters and returns the latencies per phase.
    pub fn stop(self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        thread::sleep(Duration::from_millis(300));
        for socket in &self.sockets {
            let _ = socket.shutdown(Shutdown::Both);
        }
        for thread in self.threads {
            let _ = thread.join();
        }
        let samples = self.samples.lock().unwrap().clone();
        samples
    }
}

/// The `q`-quantile (0–1) of `samples`, in milliseconds.
pub fn quantile_ms(samples: &[u64], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}
