//! The framework on its own, with a test handler: a panic in one handler
//! costs only its connection, and `finish` is still called for it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_common::codec::encode;
use chat_common::{Connection, Request, RequestHandler, ServerFrame};
use chat_server::framework::{self, ConnInfo, Limits};

/// Answers `ping` with `pong`; panics on a login as "boom".
struct Touchy {
    finished: Arc<AtomicUsize>,
}

impl RequestHandler for Touchy {
    type Request = Request;

    fn handle(&mut self, request: Request, conn: &mut dyn Connection) {
        match request {
            Request::Login { nick, .. } if nick == "boom" => panic!("the handler broke"),
            Request::Ping { id } => conn.send(encode(&ServerFrame::Pong { id })),
            _ => {}
        }
    }

    fn finish(&mut self, _reason: &str) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

fn connect(addr: std::net::SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

fn line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("a line or EOF in time");
    line
}

/// A handler panics: its client sees the connection close, `finish` runs, and
/// another client on the same single worker is still served.
#[test]
fn a_panicking_handler_costs_only_its_connection() {
    let finished = Arc::new(AtomicUsize::new(0));
    let counter = finished.clone();
    let limits = Limits {
        max_frame: 1024,
        queue_limit: 64 * 1024,
        handshake_timeout: Duration::from_secs(5),
        close_grace: Duration::from_secs(1),
        stall_timeout: Duration::from_secs(10),
        send_buffer: None,
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (mut router, running) =
        framework::start(listener, None, 1, limits, move |_: ConnInfo| Touchy {
            finished: counter.clone(),
        })
        .unwrap();
    let addr = running.local_addr;

    let (mut calm, mut calm_reader) = connect(addr);
    calm.write_all(b"{\"type\":\"ping\",\"id\":1}\n").unwrap();
    assert_eq!(line(&mut calm_reader), "{\"type\":\"pong\",\"id\":1}\n");

    let (mut doomed, mut doomed_reader) = connect(addr);
    doomed
        .write_all(b"{\"type\":\"login\",\"id\":1,\"nick\":\"boom\",\"password\":\"pw\"}\n")
        .unwrap();
    assert_eq!(
        line(&mut doomed_reader),
        "",
        "the panicking connection is closed"
    );

    calm.write_all(b"{\"type\":\"ping\",\"id\":2}\n").unwrap();
    assert_eq!(line(&mut calm_reader), "{\"type\":\"pong\",\"id\":2}\n");
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "finish ran for the panicked one"
    );

    router.shutdown();
    running.join();
    assert_eq!(line(&mut calm_reader), "", "shutdown closes the rest");
    assert_eq!(finished.load(Ordering::SeqCst), 2);
}
