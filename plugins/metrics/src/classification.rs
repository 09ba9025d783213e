//! Precision, recall and F1 from per-class counts, with scikit-learn's averages and
//! `zero_division` conventions.

use std::marker::PhantomData;

use clshost_plugin_api::prelude::*;

use crate::input::{Rows, argmax, check_zero_division, ratio};

/// How per-class values are combined into one scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Average {
    /// Unweighted mean over the classes that occur (as label or prediction).
    Macro,
    /// The score of the pooled counts of all classes.
    Micro,
    /// Mean over the classes that occur, weighted by their number of true rows.
    Weighted,
    /// No scalar; only the per-class vector.
    None,
}

impl Average {
    /// The suffix of the scalar's name.
    fn as_str(self) -> &'static str {
        match self {
            Average::Macro => "macro",
            Average::Micro => "micro",
            Average::Weighted => "weighted",
            Average::None => "none",
        }
    }
}

/// Which score a [`Classification`] metric computes from one class's counts.
pub trait Score: Send + 'static {
    /// The component name, also the prefix of its outputs.
    const NAME: &'static str;
    /// One line for `clshost plugins`.
    const DESCRIPTION: &'static str;
    /// The score from true positives, predicted count and true count; `zero_division` when
    /// its denominator is 0.
    fn of(tp: u64, predicted: u64, truth: u64, zero_division: f64) -> f64;
}

/// Precision: `tp / predicted`.
pub struct PrecisionScore;

impl Score for PrecisionScore {
    const NAME: &'static str = "precision";
    const DESCRIPTION: &'static str = "Precision per class and averaged (macro, micro, weighted)";
    fn of(tp: u64, predicted: u64, _truth: u64, zero_division: f64) -> f64 {
        ratio(tp as f64, predicted as f64, zero_division)
    }
}

/// Recall: `tp / truth`.
pub struct RecallScore;

impl Score for RecallScore {
    const NAME: &'static str = "recall";
    const DESCRIPTION: &'static str = "Recall per class and averaged (macro, micro, weighted)";
    fn of(tp: u64, _predicted: u64, truth: u64, zero_division: f64) -> f64 {
        ratio(tp as f64, truth as f64, zero_division)
    }
}

/// F1: `2 tp / (truth + predicted)`, which is 0 when either precision or recall is 0 and
/// undefined only when the class neither occurs nor is predicted (as scikit-learn >= 1.3).
pub struct F1Score;

impl Score for F1Score {
    const NAME: &'static str = "f1";
    const DESCRIPTION: &'static str = "F1 score per class and averaged (macro, micro, weighted)";
    fn of(tp: u64, predicted: u64, truth: u64, zero_division: f64) -> f64 {
        ratio(2.0 * tp as f64, (truth + predicted) as f64, zero_division)
    }
}

/// Precision, as a metric component.
pub type Precision = Classification<PrecisionScore>;
/// Recall, as a metric component.
pub type Recall = Classification<RecallScore>;
/// F1, as a metric component.
pub type F1 = Classification<F1Score>;

/// A per-class score from the counts of argmax predictions, matching scikit-learn's
/// `precision_score`, `recall_score` and `f1_score` with `labels=None`.
///
/// Reports the vector `{name}_per_class` (every class, `zero_division` where undefined) and,
/// unless `average` is `none`, the scalar `{name}_{average}` (higher is better). As in
/// scikit-learn, the averages run over the classes that occur as a label or a prediction
/// (absent classes do not count), NaN values (`zero_division: NaN`) are left out, and `micro`
/// pools the counts (equal to accuracy for single-label data). No rows: NaN.
///
/// Time O(N * C) per epoch; memory O(C) (three counters per class, no C x C matrix).
pub struct Classification<S> {
    /// How the scalar is averaged.
    average: Average,
    /// The value of an undefined ratio.
    zero_division: f64,
    /// Rows that are of and predicted as each class.
    true_positives: Vec<u64>,
    /// Rows predicted as each class.
    predicted: Vec<u64>,
    /// Rows of each class.
    truth: Vec<u64>,
    /// The score computed.
    score: PhantomData<S>,
}

/// Configuration of [`Precision`], [`Recall`] and [`F1`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct ClassificationConfig {
    /// macro (mean over classes that occur), micro (pooled counts), weighted (mean weighted by true
    /// counts) or none (per-class vector only); as scikit-learn.
    pub average: Average,
    /// Value of a class's ratio when its denominator is 0: 0.0 (scikit-learn's default), 1.0, or
    /// NaN (then left out of averages).
    pub zero_division: f64,
}

impl Default for ClassificationConfig {
    fn default() -> Self {
        ClassificationConfig {
            average: Average::Macro,
            zero_division: 0.0,
        }
    }
}

impl<S: Score> Component for Classification<S> {
    const NAME: &'static str = S::NAME;
    const DESCRIPTION: &'static str = S::DESCRIPTION;
    type Config = ClassificationConfig;

    fn check(config: &ClassificationConfig) -> Result<(), PluginError> {
        check_zero_division(config.zero_division)
    }
}

impl<S: Score> Metric for Classification<S> {
    fn new(config: ClassificationConfig, ctx: &MetricContext) -> Result<Self, PluginError> {
        let c = ctx.num_classes as usize;
        Ok(Classification {
            average: config.average,
            zero_division: config.zero_division,
            true_positives: vec![0; c],
            predicted: vec![0; c],
            truth: vec![0; c],
            score: PhantomData,
        })
    }

    fn outputs(&self) -> Vec<MetricOutput> {
        if self.average == Average::None {
            return Vec::new();
        }
        vec![MetricOutput {
            name: self.scalar_name().into(),
            higher_is_better: true,
        }]
    }

    fn reset(&mut self) {
        self.true_positives.fill(0);
        self.predicted.fill(0);
        self.truth.fill(0);
    }

    fn update(&mut self, logits: TensorRef<'_>, labels: &[u32]) -> Result<(), PluginError> {
        let rows = Rows::new(logits, labels, self.truth.len())?;
        for (row, y) in rows.iter() {
            let p = argmax(row);
            self.truth[y] += 1;
            self.predicted[p] += 1;
            if p == y {
                self.true_positives[y] += 1;
            }
        }
        Ok(())
    }

    fn compute(&self) -> Result<MetricReport, PluginError> {
        let zd = self.zero_division;
        let per_class: Vec<f64> = (0..self.truth.len())
            .map(|c| S::of(self.true_positives[c], self.predicted[c], self.truth[c], zd))
            .collect();
        // scikit-learn's `labels=None`: the classes seen as a label or as a prediction.
        let present = (0..self.truth.len()).filter(|&c| self.truth[c] + self.predicted[c] > 0);
        let value = match self.average {
            Average::None => None,
            Average::Micro => {
                let rows: u64 = self.truth.iter().sum();
                let tp: u64 = self.true_positives.iter().sum();
                Some(if rows == 0 {
                    f64::NAN
                } else {
                    S::of(tp, rows, rows, zd)
                })
            }
            Average::Macro => Some(nan_average(present.map(|c| (per_class[c], 1.0)))),
            Average::Weighted => Some(nan_average(
                present.map(|c| (per_class[c], self.truth[c] as f64)),
            )),
        };
        let scalars = value
            .map(|value| MetricScalar {
                name: self.scalar_name().into(),
                value,
                higher_is_better: true,
            })
            .into_iter()
            .collect();
        Ok(MetricReport {
            scalars,
            vectors: vec![MetricVector {
                name: format!("{}_per_class", S::NAME).into(),
                values: per_class.into(),
            }]
            .into(),
            ..MetricReport::default()
        })
    }
}

impl<S: Score> Classification<S> {
    /// `{name}_{average}`.
    fn scalar_name(&self) -> String {
        format!("{}_{}", S::NAME, self.average.as_str())
    }
}

/// scikit-learn's `_nanaverage`: the weighted mean of the non-NaN values; if their weights are
/// all 0, their plain mean; NaN when there is no non-NaN value.
fn nan_average(values: impl Iterator<Item = (f64, f64)>) -> f64 {
    let kept: Vec<(f64, f64)> = values.filter(|(v, _)| !v.is_nan()).collect();
    if kept.is_empty() {
        return f64::NAN;
    }
    let weight: f64 = kept.iter().map(|(_, w)| w).sum();
    if weight == 0.0 {
        kept.iter().map(|(v, _)| v).sum::<f64>() / kept.len() as f64
    } else {
        kept.iter().map(|(v, w)| v * w).sum::<f64>() / weight
    }
}
