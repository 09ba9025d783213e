//! An in-memory cache of decoded images, for datasets small enough to keep in RAM.
//!
//! Each sample has one slot, filled at most once by whichever worker decodes it first; the
//! total size of the cached pixels stays within a byte budget, after which new images are simply
//! not cached. Cached images are the decoder's output, so caching never changes a batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use clshost_plugin_api::ImageU8;

/// Decoded images by sample index, within a memory budget.
#[derive(Debug)]
pub struct ImageCache {
    slots: Vec<OnceLock<Arc<ImageU8>>>,
    budget: u64,
    used: AtomicU64,
}

impl ImageCache {
    /// A cache for `len` samples holding at most `budget` bytes of pixels.
    pub fn new(len: usize, budget: u64) -> Self {
        ImageCache {
            slots: (0..len).map(|_| OnceLock::new()).collect(),
            budget,
            used: AtomicU64::new(0),
        }
    }

    /// The cached image of sample `index`, if any.
    pub fn get(&self, index: usize) -> Option<Arc<ImageU8>> {
        self.slots.get(index)?.get().cloned()
    }

    /// Caches `image` as sample `index` if the budget allows; returns whether it was cached.
    pub fn insert(&self, index: usize, image: Arc<ImageU8>) -> bool {
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        let size = image.data.len() as u64;
        let before = self.used.fetch_add(size, Ordering::Relaxed);
        if before + size > self.budget || slot.set(image).is_err() {
            self.used.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Bytes of pixels cached so far.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_within_budget() {
        let image = Arc::new(ImageU8::new(2, 2, vec![7; 12]).unwrap());
        let cache = ImageCache::new(3, 24);
        assert!(cache.insert(0, image.clone()));
        assert!(!cache.insert(0, image.clone()), "a slot is filled once");
        assert!(cache.insert(1, image.clone()));
        assert!(!cache.insert(2, image.clone()), "over budget");
        assert_eq!(cache.used_bytes(), 24);
        assert_eq!(cache.get(1).as_deref(), Some(&*image));
        assert!(cache.get(2).is_none());
        assert!(cache.get(9).is_none());
    }
}
