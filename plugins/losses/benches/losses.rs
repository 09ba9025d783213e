//! Cost of one loss-and-gradient call on a batch of 256 rows of 1000 classes, with one-hot and
//! with mixed targets, single-threaded.
//!
//! Run with `cargo bench -p clshost-plugin-losses`.

use clshost_plugin_api::prelude::*;
use clshost_plugin_api::{LossContext, parse_config};
use clshost_plugin_losses::{Bce, CrossEntropy, Focal};
use divan::{Bencher, black_box};

fn main() {
    divan::main();
}

const ROWS: usize = 256;
const CLASSES: usize = 1000;

/// Deterministic pseudo-random logits in [-4, 4) and one-hot or half-and-half mixed targets.
fn batch(mixed: bool) -> (Vec<f32>, Vec<f32>) {
    let mut state = 0x9e37_79b9_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let logits = (0..ROWS * CLASSES)
        .map(|_| (next() % 8192) as f32 / 1024.0 - 4.0)
        .collect();
    let mut targets = vec![0.0; ROWS * CLASSES];
    for row in targets.chunks_mut(CLASSES) {
        let a = next() as usize % CLASSES;
        if mixed {
            let b = (a + 1 + next() as usize % (CLASSES - 1)) % CLASSES;
            row[a] = 0.5;
            row[b] = 0.5;
        } else {
            row[a] = 1.0;
        }
    }
    (logits, targets)
}

fn bench_loss<T: Loss>(bencher: Bencher, config: &str, mixed: bool) {
    let (logits, targets) = batch(mixed);
    let shape = [ROWS, CLASSES];
    let loss = T::new(
        parse_config(config).unwrap(),
        &LossContext {
            num_classes: CLASSES as u32,
        },
    )
    .unwrap();
    let mut grad = vec![0.0; ROWS * CLASSES];
    bencher.bench_local(|| {
        loss.compute(
            TensorRef::new(&shape, black_box(&logits)).unwrap(),
            TensorRef::new(&shape, &targets).unwrap(),
            TensorMut::new(&shape, &mut grad).unwrap(),
        )
        .unwrap()
    });
}

#[divan::bench(args = [false, true])]
fn cross_entropy_smoothed(bencher: Bencher, mixed: bool) {
    bench_loss::<CrossEntropy>(bencher, "(label_smoothing: 0.1)", mixed);
}

#[divan::bench(args = [false, true])]
fn bce_thresholded(bencher: Bencher, mixed: bool) {
    bench_loss::<Bce>(
        bencher,
        "(label_smoothing: 0.1, target_thresh: Some(0.2))",
        mixed,
    );
}

#[divan::bench]
fn focal(bencher: Bencher) {
    bench_loss::<Focal>(bencher, "()", false);
}
