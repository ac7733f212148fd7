//! The chat's one clock. The state never reads a clock itself: the
//! dispatcher reads this one and passes `now` to every call, so a test's
//! fake time covers every path.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, by a clock that never jumps: the wall
/// clock read once, then a monotonic one. The login and keepalive deadlines
/// and timed bans count with it, so setting the system clock forward cannot
/// cut every connection at once; message times stay the wall clock's (an
/// adjustment made while the server runs shows after a restart).
pub fn now_ms() -> u64 {
    static START: OnceLock<(u64, Instant)> = OnceLock::new();
    let (wall, at) = START.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        (wall, Instant::now())
    });
    wall + at.elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_is_the_wall_clock_and_never_goes_back() {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let first = now_ms();
        assert!(first.abs_diff(wall) < 5_000, "{first} vs {wall}");
        let mut last = first;
        for _ in 0..10_000 {
            let now = now_ms();
            assert!(now >= last);
            last = now;
        }
    }
}
