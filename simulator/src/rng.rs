//! A small deterministic random generator (SplitMix64): the same seed gives the
//! same plant, the same state process and the same ground truth on every
//! machine and every version, which a library RNG does not promise.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and statistically good
/// enough for simulated shop-floor events.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator for one named stream under a seed (one per device), so
    /// adding a device does not shift the events of the others.
    pub fn for_stream(seed: u64, name: &str) -> Rng {
        Rng(seed ^ fnv1a(name).rotate_left(17))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Uniform integer in [0, n); 0 when n is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Exponentially distributed with the given mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// FNV-1a, to turn names into stream seeds.
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_streams_differ() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::for_stream(7, "press-1");
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::for_stream(7, "press-1");
        assert_eq!(a, (0..5).map(|_| r.next_u64()).collect::<Vec<_>>());
        let mut other = Rng::for_stream(7, "press-2");
        assert_ne!(a[0], other.next_u64());
    }

    #[test]
    fn uniform_and_exponential_have_the_right_means() {
        let mut r = Rng::new(1);
        let n = 20_000;
        let u: f64 = (0..n).map(|_| r.f64()).sum::<f64>() / f64::from(n);
        assert!((u - 0.5).abs() < 0.01, "{u}");
        let e: f64 = (0..n).map(|_| r.exp(10.0)).sum::<f64>() / f64::from(n);
        assert!((e - 10.0).abs() < 0.3, "{e}");
    }
}
