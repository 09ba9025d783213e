//! Exact one-vs-rest area under the ROC curve.

use clshost_plugin_api::prelude::*;

use crate::input::{Rows, Softmax};

/// One-vs-rest AUROC of each class on the softmax probabilities, and their macro mean, matching
/// scikit-learn's `roc_auc_score` per class (ties between scores count one half, as its
/// trapezoidal ROC curve does).
///
/// Reports `auroc_per_class` and `auroc_macro` (higher is better). A class without positive or
/// without negative rows has no AUROC (scikit-learn raises): it is NaN in the vector and left out
/// of the macro mean; NaN when no class has one.
///
/// Exact, so it keeps every row: 4 * C + 4 bytes per row (the f32 logits and the label), e.g.
/// 4 GB for a million rows of 1000 classes. `compute` takes O(C * N log N) time (one sort per
/// class) and O(N) extra memory; `update` is O(N * C).
pub struct Auroc {
    /// Number of classes.
    classes: usize,
    /// Every row's logits, row-major.
    logits: Vec<f32>,
    /// Every row's label.
    labels: Vec<u32>,
}

/// Configuration of [`Auroc`] (it has no parameters).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct AurocConfig {}

impl Component for Auroc {
    const NAME: &'static str = "auroc";
    const DESCRIPTION: &'static str =
        "Exact one-vs-rest AUROC per class and macro-averaged, on softmax probabilities";
    type Config = AurocConfig;
}

impl Metric for Auroc {
    fn new(_config: AurocConfig, ctx: &MetricContext) -> Result<Self, PluginError> {
        Ok(Auroc {
            classes: ctx.num_classes as usize,
            logits: Vec::new(),
            labels: Vec::new(),
        })
    }

    fn outputs(&self) -> Vec<MetricOutput> {
        vec![MetricOutput {
            name: "auroc_macro".into(),
            higher_is_better: true,
        }]
    }

    fn reset(&mut self) {
        self.logits = Vec::new();
        self.labels = Vec::new();
    }

    fn update(&mut self, logits: TensorRef<'_>, labels: &[u32]) -> Result<(), PluginError> {
        let rows = Rows::new(logits, labels, self.classes)?;
        self.logits.extend_from_slice(rows.logits);
        self.labels.extend_from_slice(rows.labels);
        Ok(())
    }

    fn compute(&self) -> Result<MetricReport, PluginError> {
        let c = self.classes;
        let softmax: Vec<Softmax> = self.logits.chunks(c).map(Softmax::of).collect();
        let mut scored: Vec<(f64, bool)> = Vec::with_capacity(self.labels.len());
        let per_class: Vec<f64> = (0..c)
            .map(|class| {
                scored.clear();
                scored.extend(
                    self.logits
                        .chunks(c)
                        .zip(&softmax)
                        .zip(&self.labels)
                        .map(|((row, s), &y)| (s.prob(row[class]), y as usize == class)),
                );
                binary_auroc(&mut scored)
            })
            .collect();
        let defined: Vec<f64> = per_class.iter().copied().filter(|v| !v.is_nan()).collect();
        let macro_mean = defined.iter().sum::<f64>() / defined.len() as f64;
        Ok(MetricReport {
            scalars: vec![MetricScalar {
                name: "auroc_macro".into(),
                value: macro_mean,
                higher_is_better: true,
            }]
            .into(),
            vectors: vec![MetricVector {
                name: "auroc_per_class".into(),
                values: per_class.into(),
            }]
            .into(),
            ..MetricReport::default()
        })
    }
}

/// The AUROC of `(score, is_positive)` pairs: the Mann-Whitney statistic with ties counted one
/// half, divided by positives times negatives; NaN without positives or without negatives.
/// Sorts `scored` in place. Counts are exact in f64 below 2^53 rows.
fn binary_auroc(scored: &mut [(f64, bool)]) -> f64 {
    scored.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut negatives_below = 0.0;
    let mut pairs = 0.0;
    let mut positives = 0.0;
    for group in scored.chunk_by(|a, b| a.0 == b.0) {
        let pos = group.iter().filter(|(_, p)| *p).count() as f64;
        let neg = group.len() as f64 - pos;
        pairs += pos * (negatives_below + 0.5 * neg);
        negatives_below += neg;
        positives += pos;
    }
    if positives == 0.0 || negatives_below == 0.0 {
        f64::NAN
    } else {
        pairs / (positives * negatives_below)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_count_one_half() {
        let mut perfect = [(0.9, true), (0.1, false), (0.8, true), (0.2, false)];
        assert_eq!(binary_auroc(&mut perfect), 1.0);
        let mut all_tied = [(0.5, true), (0.5, false), (0.5, false)];
        assert_eq!(binary_auroc(&mut all_tied), 0.5);
        let mut one_sided = [(0.5, true), (0.7, true)];
        assert!(binary_auroc(&mut one_sided).is_nan());
    }
}
