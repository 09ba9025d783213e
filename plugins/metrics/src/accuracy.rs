//! Top-k accuracy.

use clshost_plugin_api::prelude::*;

use crate::input::Rows;

/// Top-k accuracy for each `k` of `top_k`, reported as `top{k}` (higher is better).
///
/// A row is a hit for `k` when fewer than `k` classes rank before its true class, ranking by
/// logit, larger first, and among equal logits the lower class index first. So `top1` is the
/// accuracy of `argmax` (first maximum, as numpy and torch) and agrees with the confusion matrix.
/// scikit-learn's `top_k_accuracy_score` breaks ties toward the higher index instead; the
/// fixtures apply it to the columns in reverse order to get this convention. `k >= classes`
/// counts every row as a hit. No rows: NaN.
///
/// Time O(N * C) per epoch; memory O(len(top_k)).
pub struct Accuracy {
    /// The `k`s, as configured.
    top_k: Vec<u32>,
    /// Number of classes.
    classes: usize,
    /// Rows seen.
    rows: u64,
    /// Hits for each `k`.
    hits: Vec<u64>,
}

/// Configuration of [`Accuracy`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct AccuracyConfig {
    /// The k values, each >= 1, no repeats; each is reported as `top{k}`. A row is a hit when its
    /// true class is among the k largest logits (ties: lower class index first).
    pub top_k: Vec<u32>,
}

impl Default for AccuracyConfig {
    fn default() -> Self {
        AccuracyConfig { top_k: vec![1, 5] }
    }
}

impl Component for Accuracy {
    const NAME: &'static str = "accuracy";
    const DESCRIPTION: &'static str = "Top-k accuracy, reported as top1, top5, ...";
    type Config = AccuracyConfig;

    fn check(config: &AccuracyConfig) -> Result<(), PluginError> {
        if config.top_k.is_empty() {
            return Err(PluginError::config("top_k", "must list at least one k"));
        }
        if config.top_k.contains(&0) {
            return Err(PluginError::config("top_k", "every k must be at least 1"));
        }
        for (i, k) in config.top_k.iter().enumerate() {
            if config.top_k[..i].contains(k) {
                return Err(PluginError::config(
                    "top_k",
                    format!("k = {k} is listed twice"),
                ));
            }
        }
        Ok(())
    }
}

impl Metric for Accuracy {
    fn new(config: AccuracyConfig, ctx: &MetricContext) -> Result<Self, PluginError> {
        Ok(Accuracy {
            hits: vec![0; config.top_k.len()],
            top_k: config.top_k,
            classes: ctx.num_classes as usize,
            rows: 0,
        })
    }

    fn outputs(&self) -> Vec<MetricOutput> {
        self.top_k
            .iter()
            .map(|k| MetricOutput {
                name: format!("top{k}").into(),
                higher_is_better: true,
            })
            .collect()
    }

    fn reset(&mut self) {
        self.rows = 0;
        self.hits.fill(0);
    }

    fn update(&mut self, logits: TensorRef<'_>, labels: &[u32]) -> Result<(), PluginError> {
        let rows = Rows::new(logits, labels, self.classes)?;
        for (row, y) in rows.iter() {
            let s = row[y];
            let rank = row
                .iter()
                .enumerate()
                .filter(|&(j, &z)| z > s || (z == s && j < y))
                .count();
            for (hits, &k) in self.hits.iter_mut().zip(&self.top_k) {
                if rank < k as usize {
                    *hits += 1;
                }
            }
            self.rows += 1;
        }
        Ok(())
    }

    fn compute(&self) -> Result<MetricReport, PluginError> {
        let scalars = self
            .outputs()
            .into_iter()
            .zip(&self.hits)
            .map(|(out, &hits)| MetricScalar {
                name: out.name,
                value: hits as f64 / self.rows as f64,
                higher_is_better: true,
            })
            .collect();
        Ok(MetricReport {
            scalars,
            ..MetricReport::default()
        })
    }
}
