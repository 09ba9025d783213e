//! Cost of `update` for a batch of 256 rows of 1000 classes, for every metric, and of the
//! AUROC `compute` over an epoch of 10,000 rows of 100 classes, single-threaded.
//!
//! Run with `cargo bench -p clshost-plugin-metrics`.

use clshost_plugin_api::prelude::*;
use clshost_plugin_api::{MetricContext, parse_config};
use clshost_plugin_metrics::{
    Accuracy, Auroc, AurocConfig, ConfusionMatrix, Ece, F1, PerClassAccuracy, Precision, Recall,
};
use divan::{Bencher, black_box};

fn main() {
    divan::main();
}

/// Deterministic pseudo-random logits in [-4, 4) and labels.
fn batch(rows: usize, classes: usize) -> (Vec<f32>, Vec<u32>) {
    let mut state = 0x9e37_79b9_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let logits = (0..rows * classes)
        .map(|_| (next() % 8192) as f32 / 1024.0 - 4.0)
        .collect();
    let labels = (0..rows).map(|_| next() % classes as u32).collect();
    (logits, labels)
}

fn context(classes: usize) -> MetricContext {
    MetricContext {
        num_classes: classes as u32,
        class_names: (0..classes).map(|c| format!("c{c}").into()).collect(),
    }
}

fn bench_update<T: Metric>(bencher: Bencher) {
    const ROWS: usize = 256;
    const CLASSES: usize = 1000;
    let (logits, labels) = batch(ROWS, CLASSES);
    let shape = [ROWS, CLASSES];
    let mut metric = T::new(parse_config("()").unwrap(), &context(CLASSES)).unwrap();
    bencher.bench_local(|| {
        metric
            .update(TensorRef::new(&shape, black_box(&logits)).unwrap(), &labels)
            .unwrap();
    });
}

#[divan::bench(types = [Accuracy, Precision, Recall, F1, Auroc, ConfusionMatrix, PerClassAccuracy, Ece])]
fn update_256x1000<T: Metric>(bencher: Bencher) {
    bench_update::<T>(bencher);
}

#[divan::bench(sample_count = 10)]
fn auroc_compute_10000x100(bencher: Bencher) {
    const ROWS: usize = 10_000;
    const CLASSES: usize = 100;
    let (logits, labels) = batch(ROWS, CLASSES);
    let mut metric = Auroc::new(AurocConfig::default(), &context(CLASSES)).unwrap();
    metric
        .update(TensorRef::new(&[ROWS, CLASSES], &logits).unwrap(), &labels)
        .unwrap();
    bencher.bench_local(|| black_box(metric.compute().unwrap()));
}
