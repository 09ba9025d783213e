//! Accuracy of each class, and balanced accuracy.

use clshost_plugin_api::prelude::*;

use crate::input::{Rows, argmax, check_zero_division, ratio};

/// The accuracy of each class (the share of its rows predicted right, i.e. its recall), as the
/// vector `accuracy_per_class`, and its mean over the classes that occur as the scalar
/// `balanced_accuracy` (scikit-learn's `balanced_accuracy_score`; higher is better). A class with
/// no rows gets `zero_division` in the vector. No rows: `balanced_accuracy` is NaN.
///
/// Time O(N * C) per epoch; memory O(C).
pub struct PerClassAccuracy {
    /// The value for a class without rows.
    zero_division: f64,
    /// Rows of each class predicted right.
    correct: Vec<u64>,
    /// Rows of each class.
    truth: Vec<u64>,
}

/// Configuration of [`PerClassAccuracy`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct PerClassAccuracyConfig {
    /// Value reported for a class with no rows: 0.0 (scikit-learn's recall default), 1.0 or NaN.
    /// Such classes never enter `balanced_accuracy`.
    pub zero_division: f64,
}

impl Default for PerClassAccuracyConfig {
    fn default() -> Self {
        PerClassAccuracyConfig { zero_division: 0.0 }
    }
}

impl Component for PerClassAccuracy {
    const NAME: &'static str = "per_class_accuracy";
    const DESCRIPTION: &'static str =
        "Accuracy of each class (its recall) and balanced accuracy (their mean)";
    type Config = PerClassAccuracyConfig;

    fn check(config: &PerClassAccuracyConfig) -> Result<(), PluginError> {
        check_zero_division(config.zero_division)
    }
}

impl Metric for PerClassAccuracy {
    fn new(config: PerClassAccuracyConfig, ctx: &MetricContext) -> Result<Self, PluginError> {
        let c = ctx.num_classes as usize;
        Ok(PerClassAccuracy {
            zero_division: config.zero_division,
            correct: vec![0; c],
            truth: vec![0; c],
        })
    }

    fn outputs(&self) -> Vec<MetricOutput> {
        vec![MetricOutput {
            name: "balanced_accuracy".into(),
            higher_is_better: true,
        }]
    }

    fn reset(&mut self) {
        self.correct.fill(0);
        self.truth.fill(0);
    }

    fn update(&mut self, logits: TensorRef<'_>, labels: &[u32]) -> Result<(), PluginError> {
        let rows = Rows::new(logits, labels, self.truth.len())?;
        for (row, y) in rows.iter() {
            self.truth[y] += 1;
            if argmax(row) == y {
                self.correct[y] += 1;
            }
        }
        Ok(())
    }

    fn compute(&self) -> Result<MetricReport, PluginError> {
        let per_class: Vec<f64> = self
            .correct
            .iter()
            .zip(&self.truth)
            .map(|(&ok, &n)| ratio(ok as f64, n as f64, self.zero_division))
            .collect();
        let occurring: Vec<f64> = self
            .correct
            .iter()
            .zip(&self.truth)
            .filter(|&(_, &n)| n > 0)
            .map(|(&ok, &n)| ok as f64 / n as f64)
            .collect();
        Ok(MetricReport {
            scalars: vec![MetricScalar {
                name: "balanced_accuracy".into(),
                value: occurring.iter().sum::<f64>() / occurring.len() as f64,
                higher_is_better: true,
            }]
            .into(),
            vectors: vec![MetricVector {
                name: "accuracy_per_class".into(),
                values: per_class.into(),
            }]
            .into(),
            ..MetricReport::default()
        })
    }
}
