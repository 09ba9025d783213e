//! Seeds for everything random in the data stage, derived from the run seed and the position of
//! the work (epoch, sample index, augmentation position), never from which thread does it.
//!
//! Each seed is a splitmix64 chain: the run seed is mixed with a purpose tag, then with each
//! coordinate in turn. splitmix64 is a bijective 64-bit finaliser with full avalanche, so
//! neighbouring coordinates (sample 7 and sample 8) give unrelated seeds.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// What a seed is for; keeps the streams of different purposes apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
enum Purpose {
    Sample = 0x5341_4d50,
    Shuffle = 0x5348_5546,
    Split = 0x5350_4c54,
    Batch = 0x4241_5443,
}

/// The splitmix64 output function applied to `x + golden gamma`.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mixes `parts` into `seed`, one splitmix64 round per part.
fn chain(seed: u64, purpose: Purpose, parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(splitmix64(seed ^ splitmix64(purpose as u64)), |h, &p| {
            splitmix64(h ^ splitmix64(p))
        })
}

/// The seed of a run, from which every data-stage seed is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeds(pub u64);

impl Seeds {
    /// The seed passed to the augmentation at `position` in the pipeline, for sample `index`
    /// (its index in the dataset, not in the shuffled order) in `epoch`.
    pub fn sample(self, epoch: u64, index: u64, position: u64) -> u64 {
        chain(self.0, Purpose::Sample, &[epoch, index, position])
    }

    /// The seed of a batch augmentation (MixUp, CutMix) for batch `batch` of `epoch`.
    pub fn batch(self, epoch: u64, batch: u64) -> u64 {
        chain(self.0, Purpose::Batch, &[epoch, batch])
    }

    /// The order in which `len` samples are visited in `epoch`: a Fisher-Yates shuffle driven
    /// by ChaCha8 seeded from (seed, epoch).
    pub fn permutation(self, epoch: u64, len: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..len).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(chain(self.0, Purpose::Shuffle, &[epoch]));
        order.shuffle(&mut rng);
        order
    }

    /// Shuffles `items` for the train/validation split of class `class`.
    pub fn split_shuffle<T>(self, class: u64, items: &mut [T]) {
        let mut rng = ChaCha8Rng::seed_from_u64(chain(self.0, Purpose::Split, &[class]));
        items.shuffle(&mut rng);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // Vigna's splitmix64 with state 1234567: the state advances by the golden gamma and
        // each output is the finaliser of the new state. First outputs of the C reference.
        let mut state: u64 = 1_234_567;
        let mut next = || {
            let out = splitmix64(state);
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            out
        };
        assert_eq!(next(), 6_457_827_717_110_365_317);
        assert_eq!(next(), 3_203_168_211_198_807_973);
        assert_eq!(next(), 9_817_491_932_198_370_423);
    }

    #[test]
    fn seeds_differ_by_every_coordinate() {
        let s = Seeds(42);
        let base = s.sample(1, 2, 3);
        assert_ne!(base, s.sample(0, 2, 3));
        assert_ne!(base, s.sample(1, 3, 3));
        assert_ne!(base, s.sample(1, 2, 4));
        assert_ne!(base, Seeds(43).sample(1, 2, 3));
        assert_ne!(s.sample(1, 2, 0), s.batch(1, 2));
        assert_eq!(base, Seeds(42).sample(1, 2, 3));
    }

    #[test]
    fn permutations_are_seeded_per_epoch() {
        let s = Seeds(7);
        let a = s.permutation(0, 100);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(a, Seeds(7).permutation(0, 100));
        assert_ne!(a, s.permutation(1, 100));
        assert_ne!(a, Seeds(8).permutation(0, 100));
    }
}
