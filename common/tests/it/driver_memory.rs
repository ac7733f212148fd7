//! The driver's memory is bounded by the frame limit, not by what the peer
//! sends: measured with a counting allocator while megabytes of hostile
//! input go through. The allocator counts each thread apart, so the tests
//! that run beside this one in the same binary do not count; the driver
//! runs on the test's own thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;

use chat_common::codec::{Frame, DEFAULT_MAX_FRAME};
use chat_common::handler::{Connection, Driver, RequestHandler};
use chat_common::protocol::Request;

struct Counting;

thread_local! {
    /// Heap bytes this thread allocated and has not freed (below zero when
    /// it frees what another thread allocated), and the most since the
    /// measurement started. `const`, without a destructor, so using them
    /// never allocates.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grew(by: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + by as isize;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrank(by: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - by as isize));
}

// SAFETY: every call is passed on to the system allocator unchanged; only
// the sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Counts what it is sent and drops it, like a peer that reads everything.
#[derive(Default)]
struct Sink {
    sent: usize,
    closing: bool,
}

impl Connection for Sink {
    fn send(&mut self, _frame: Frame) {
        self.sent += 1;
    }
    fn close(&mut self, _reason: &str) {
        self.closing = true;
    }
    fn is_closing(&self) -> bool {
        self.closing
    }
    fn peer_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }
}

/// Counts requests and keeps none.
struct Counter(usize);

impl RequestHandler for Counter {
    type Request = Request;
    fn handle(&mut self, _request: Request, _conn: &mut dyn Connection) {
        self.0 += 1;
    }
}

/// Feeds `stream` in reads of `read` bytes; returns the peak of live heap
/// bytes above what was live before, and how many requests and frames.
fn peak_while_feeding(stream: &[u8], read: usize) -> (usize, usize, usize) {
    let mut conn = Sink::default();
    let mut driver = Driver::new(Counter(0), DEFAULT_MAX_FRAME);
    let base = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    for chunk in stream.chunks(read) {
        driver.feed(chunk, &mut conn);
    }
    let peak = (PEAK.with(Cell::get) - base) as usize;
    (peak, driver.handler().0, conn.sent)
}

#[test]
fn memory_is_bounded_by_the_frame_limit() {
    let limit = DEFAULT_MAX_FRAME;
    let ping = b"{\"type\":\"ping\",\"id\":1}\n";
    let big_text = format!(
        "{{\"type\":\"message\",\"id\":1,\"text\":\"{}\"}}\n",
        "é".repeat((limit - 64) / 2)
    );
    let nested = format!("{}\n", "[".repeat(limit));
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        // 4 MiB with no newline: refused at 64 KiB, the rest never held.
        ("4 MiB, no newline", vec![b'x'; 4 << 20], 16 * 1024),
        (
            "4 MiB, no newline, 1 MiB reads",
            vec![b'x'; 4 << 20],
            1 << 20,
        ),
        // Lines just under the limit, each an error frame.
        (
            "64 lines of 64 KiB junk",
            [vec![b'x'; limit], vec![b'\n']].concat().repeat(64),
            16 * 1024,
        ),
        (
            "64 messages of 64 KiB",
            big_text.repeat(64).into_bytes(),
            16 * 1024,
        ),
        (
            "64 nestings 64 KiB deep",
            nested.repeat(64).into_bytes(),
            16 * 1024,
        ),
        ("128 Ki pings", ping.repeat(1 << 17), 16 * 1024),
    ];
    for (name, stream, read) in cases {
        let (peak, requests, sent) = peak_while_feeding(&stream, read);
        eprintln!(
            "{name}: {} MiB fed, peak {} KiB above the start ({requests} requests, {sent} frames sent)",
            stream.len() >> 20,
            peak >> 10
        );
        // The partial line (at most the limit, in a vector that may have
        // doubled) and one line's decoding: a few times the limit, however
        // much was sent.
        assert!(
            peak <= 4 * limit,
            "{name}: peak {peak} bytes for a {limit}-byte limit"
        );
    }
}
