//! The confusion matrix, in counts and row-normalised.

use clshost_plugin_api::prelude::*;

use crate::input::{Rows, argmax};

/// The confusion matrix of argmax predictions (rows: true class, columns: predicted class), as
/// scikit-learn's `confusion_matrix`: `confusion_matrix` holds counts and
/// `confusion_matrix_normalized` each row divided by its sum (`normalize="true"`; a class with
/// no rows gives a row of zeros, as scikit-learn's `nan_to_num`). It reports no scalar.
///
/// Time O(N * C) per epoch; memory O(C^2), allocated once when created (8 bytes per cell),
/// never per update.
pub struct ConfusionMatrix {
    /// Number of classes.
    classes: usize,
    /// Counts, row-major `[true][predicted]`.
    counts: Vec<u64>,
}

/// Configuration of [`ConfusionMatrix`] (it has no parameters).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct ConfusionMatrixConfig {}

impl Component for ConfusionMatrix {
    const NAME: &'static str = "confusion_matrix";
    const DESCRIPTION: &'static str =
        "Confusion matrix (rows: true, columns: predicted) in counts and row-normalized";
    type Config = ConfusionMatrixConfig;
}

impl Metric for ConfusionMatrix {
    fn new(_config: ConfusionMatrixConfig, ctx: &MetricContext) -> Result<Self, PluginError> {
        let classes = ctx.num_classes as usize;
        Ok(ConfusionMatrix {
            classes,
            counts: vec![0; classes * classes],
        })
    }

    fn outputs(&self) -> Vec<MetricOutput> {
        Vec::new()
    }

    fn reset(&mut self) {
        self.counts.fill(0);
    }

    fn update(&mut self, logits: TensorRef<'_>, labels: &[u32]) -> Result<(), PluginError> {
        let rows = Rows::new(logits, labels, self.classes)?;
        for (row, y) in rows.iter() {
            self.counts[y * self.classes + argmax(row)] += 1;
        }
        Ok(())
    }

    fn compute(&self) -> Result<MetricReport, PluginError> {
        let c = self.classes;
        let counts: Vec<f64> = self.counts.iter().map(|&n| n as f64).collect();
        let mut normalized = counts.clone();
        for row in normalized.chunks_mut(c.max(1)) {
            let total: f64 = row.iter().sum();
            if total > 0.0 {
                row.iter_mut().for_each(|v| *v /= total);
            }
        }
        let matrix = |name: &str, values: Vec<f64>| MetricMatrix {
            name: name.into(),
            rows: c as u32,
            cols: c as u32,
            values: values.into(),
        };
        Ok(MetricReport {
            matrices: vec![
                matrix("confusion_matrix", counts),
                matrix("confusion_matrix_normalized", normalized),
            ]
            .into(),
            ..MetricReport::default()
        })
    }
}
