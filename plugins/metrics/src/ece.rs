//! Expected calibration error over equal-width confidence bins.

use clshost_plugin_api::prelude::*;

use crate::input::{Rows, Softmax, argmax};

/// Expected calibration error (Guo et al., 2017): rows are put in `bins` equal-width bins by
/// confidence (the largest softmax probability), bin `b` holding confidences in
/// `(b / bins, (b + 1) / bins]` with the edges of `numpy.linspace(0, 1, bins + 1)`; then
/// `ece = sum_b (n_b / N) |accuracy_b - mean confidence_b|`, where a row is accurate when its
/// argmax is its label. Reported as the scalar `ece` (lower is better) and the `bins x 3` matrix
/// `ece_reliability` with, per bin, its row count, mean confidence and accuracy (NaN for an empty
/// bin). No rows: NaN.
///
/// Time O(N * C) per epoch; memory O(bins).
pub struct Ece {
    /// Number of classes.
    classes: usize,
    /// Bin edges: `bins + 1` values from 0 to 1.
    edges: Vec<f64>,
    /// Rows in each bin.
    counts: Vec<u64>,
    /// Sum of the confidences in each bin.
    confidence: Vec<f64>,
    /// Accurate rows in each bin.
    correct: Vec<u64>,
}

/// Configuration of [`Ece`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct EceConfig {
    /// Number of equal-width confidence bins over [0, 1], at least 1 (15 is the standard).
    pub bins: u32,
}

impl Default for EceConfig {
    fn default() -> Self {
        EceConfig { bins: 15 }
    }
}

impl Component for Ece {
    const NAME: &'static str = "ece";
    const DESCRIPTION: &'static str =
        "Expected calibration error over equal-width confidence bins, with a reliability table";
    type Config = EceConfig;

    fn check(config: &EceConfig) -> Result<(), PluginError> {
        if config.bins == 0 {
            return Err(PluginError::config("bins", "must be at least 1"));
        }
        Ok(())
    }
}

impl Metric for Ece {
    fn new(config: EceConfig, ctx: &MetricContext) -> Result<Self, PluginError> {
        let bins = config.bins as usize;
        // numpy.linspace(0, 1, bins + 1): i * step, the last edge exactly 1.
        let step = 1.0 / bins as f64;
        let mut edges: Vec<f64> = (0..=bins).map(|i| i as f64 * step).collect();
        edges[bins] = 1.0;
        Ok(Ece {
            classes: ctx.num_classes as usize,
            edges,
            counts: vec![0; bins],
            confidence: vec![0.0; bins],
            correct: vec![0; bins],
        })
    }

    fn outputs(&self) -> Vec<MetricOutput> {
        vec![MetricOutput {
            name: "ece".into(),
            higher_is_better: false,
        }]
    }

    fn reset(&mut self) {
        self.counts.fill(0);
        self.confidence.fill(0.0);
        self.correct.fill(0);
    }

    fn update(&mut self, logits: TensorRef<'_>, labels: &[u32]) -> Result<(), PluginError> {
        let rows = Rows::new(logits, labels, self.classes)?;
        for (row, y) in rows.iter() {
            let predicted = argmax(row);
            let confidence = Softmax::of(row).prob(row[predicted]);
            // The bin whose edges satisfy lower < confidence <= upper; confidence > 0 always.
            let bin = self
                .edges
                .partition_point(|&e| e < confidence)
                .clamp(1, self.counts.len())
                - 1;
            self.counts[bin] += 1;
            self.confidence[bin] += confidence;
            if predicted == y {
                self.correct[bin] += 1;
            }
        }
        Ok(())
    }

    fn compute(&self) -> Result<MetricReport, PluginError> {
        let total: u64 = self.counts.iter().sum();
        let mut ece = if total == 0 { f64::NAN } else { 0.0 };
        let mut table = Vec::with_capacity(3 * self.counts.len());
        for ((&n, &confidence), &correct) in
            self.counts.iter().zip(&self.confidence).zip(&self.correct)
        {
            let mean_confidence = confidence / n as f64;
            let accuracy = correct as f64 / n as f64;
            if n > 0 {
                ece += n as f64 / total as f64 * (accuracy - mean_confidence).abs();
            }
            table.extend([n as f64, mean_confidence, accuracy]);
        }
        Ok(MetricReport {
            scalars: vec![MetricScalar {
                name: "ece".into(),
                value: ece,
                higher_is_better: false,
            }]
            .into(),
            matrices: vec![MetricMatrix {
                name: "ece_reliability".into(),
                rows: self.counts.len() as u32,
                cols: 3,
                values: table.into(),
            }]
            .into(),
            ..MetricReport::default()
        })
    }
}
