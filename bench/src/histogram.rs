//! A fixed log-linear latency histogram in nanoseconds: every power of two
//! is split into 128 equal buckets, so a reported value is within 0.8 % of
//! the true one, recording is a shift and an add, and two histograms merge by
//! adding their counts.

/// Values below `2^SUB_BITS` get a bucket each.
const SUB_BITS: u32 = 8;
const HALF: usize = 1 << (SUB_BITS - 1);
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * HALF + HALF;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < (1 << SUB_BITS) {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS + 1;
    let mantissa = (v >> shift) as usize; // in HALF..2 * HALF
    shift as usize * HALF + mantissa
}

/// The highest value that falls in bucket `i`.
fn highest(i: usize) -> u64 {
    if i < (1 << SUB_BITS) {
        return i as u64;
    }
    let shift = (i / HALF - 1) as u32;
    let mantissa = (i - shift as usize * HALF) as u64;
    (((mantissa + 1) as u128) << shift)
        .saturating_sub(1)
        .min(u64::MAX as u128) as u64
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            (self.sum / u128::from(self.total)) as u64
        }
    }

    /// The smallest value that at least `p` (0.0–1.0) of the samples do not
    /// exceed, to the bucket's precision; 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return highest(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut v = 0u64;
        let mut last = 0;
        while v < u64::MAX / 3 {
            let b = bucket(v);
            assert!(b == last || b == last + 1, "gap at {v}");
            assert!(highest(b) >= v, "{v} above its bucket");
            // Relative error of the reported value.
            assert!((highest(b) - v) as f64 <= v as f64 / 128.0 + 1.0, "{v}");
            last = b;
            v += 1 + v / 300;
        }
        assert!(bucket(u64::MAX) < BUCKETS);
        assert_eq!(highest(bucket(u64::MAX)), u64::MAX);
    }

    #[test]
    fn percentiles() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(0.99), 0);
        // 1..=100_000 ns: p50 = 50 µs, p99 = 99 µs, p99.9 = 99.9 µs.
        for v in 1..=100_000u64 {
            h.record(v);
        }
        let close = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 / 100.0;
        assert!(close(h.percentile(0.5), 50_000), "{}", h.percentile(0.5));
        assert!(close(h.percentile(0.99), 99_000), "{}", h.percentile(0.99));
        assert!(
            close(h.percentile(0.999), 99_900),
            "{}",
            h.percentile(0.999)
        );
        assert_eq!(h.percentile(1.0), 100_000);
        assert_eq!(h.percentile(0.0), 1);
        assert_eq!(h.mean(), 50_000);

        // Merging two halves gives the same answers.
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        for v in 1..=100_000u64 {
            if v % 2 == 0 { &mut a } else { &mut b }.record(v);
        }
        a.merge(&b);
        for p in [0.5, 0.99, 0.999, 1.0] {
            assert_eq!(a.percentile(p), h.percentile(p));
        }
    }

    #[test]
    fn one_slow_sample_shows_in_the_tail() {
        let mut h = Histogram::default();
        for _ in 0..999 {
            h.record(100_000);
        }
        h.record(5_000_000);
        assert!(h.percentile(0.99) < 101_000);
        assert_eq!(h.percentile(1.0), 5_000_000);
        assert_eq!(h.max(), 5_000_000);
    }
}
