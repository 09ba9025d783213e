//! Seeded randomness: every op draws from a ChaCha8 stream built from the seed the host passes,
//! and Python's rounding rule (`round` rounds halves to even) where torchvision uses it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The random stream of one call, determined by `seed` alone.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A uniform draw from `[lo, hi)` (or exactly `lo` when the range is empty).
pub fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// A uniform integer from `lo..=hi`.
pub fn int_inclusive(rng: &mut impl Rng, lo: i64, hi: i64) -> i64 {
    rng.random_range(lo..=hi)
}

/// Python's `int(round(x))`: rounds halves to even.
pub fn round_half_even(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// A Bernoulli draw: true with probability `p`.
pub fn chance(rng: &mut impl Rng, p: f64) -> bool {
    rng.random::<f64>() < p
}
