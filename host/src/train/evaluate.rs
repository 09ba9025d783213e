//! Evaluation: a loader's images through the backbone's raw (and EMA) weights, scored with the
//! loss and the metric plugins. The trainer's validation after an epoch and `clshost eval` both
//! use [`evaluate`], so the two always agree; in a data-parallel run the ranks share the batches
//! and score the gathered logits, so they agree with one process too.

use clshost_plugin_api::{MetricReport, Tensor, TensorMut, TensorRef, WeightSet};

use super::checkpoint::BestWeights;
use super::mixing::one_hot;
use super::trainer::TrainError;
use crate::data::{Batch, Loader};
use crate::distributed::World;
use crate::registry::{Backbone, ComponentError, Loss, Metric};
use crate::report::console::{self, ClassLine};
use crate::report::history::finite;

/// One evaluation pass.
pub struct Evaluation {
    /// `val_loss` and every metric scalar (then the `ema_` ones), in column order.
    pub values: Vec<(String, Option<f64>)>,
    /// The raw weights' metric reports.
    pub reports: Vec<MetricReport>,
    /// The EMA weights' metric reports, when EMA is on.
    pub ema_reports: Vec<MetricReport>,
    /// Validation images per class.
    pub support: Vec<u64>,
}

impl Evaluation {
    /// The per-class lines of the weights in `which`, over the model's `classes`.
    pub fn class_lines(&self, classes: &[String], which: BestWeights) -> Vec<ClassLine> {
        let reports = match which {
            BestWeights::Raw => &self.reports,
            BestWeights::Ema => &self.ema_reports,
        };
        console::class_lines(classes, reports, &self.support)
    }
}

/// The loss of `logits` against `targets` (same shape) and its gradient.
pub(super) fn loss_and_grad(
    loss: &Loss,
    logits: &Tensor,
    targets: &[f32],
) -> Result<(f64, Vec<f32>), ComponentError> {
    let mut grad = vec![0.0f32; logits.data.len()];
    let value = loss.compute(
        logits.view(),
        TensorRef {
            shape: logits.shape.as_slice().into(),
            data: targets.into(),
        },
        TensorMut {
            shape: logits.shape.as_slice().into(),
            data: grad.as_mut_slice().into(),
        },
    )?;
    Ok((value, grad))
}

/// Runs `loader` through `backbone` and scores it: the raw weights with `loss` and `metrics`,
/// and, when `ema_metrics` is given, the EMA weights with those (their columns prefixed `ema_`).
/// Labels index the `classes` outputs. The trainer's validation and `clshost eval` both use it.
///
/// In a data-parallel run every rank of `world` runs its share of the batches (batch `i` on rank
/// `i mod ranks`), then every rank gathers the logits and labels of all of them and scores them
/// batch by batch in the loader's order, exactly as one process would: every rank ends with the
/// single-process values.
///
/// A pass in which no image could be read fails with the loader's error when the loader
/// requires images (those of [`crate::assemble::loaders`] do); otherwise its `val_loss` is
/// missing, never 0.
pub fn evaluate(
    backbone: &mut Backbone,
    loss: &Loss,
    loader: &Loader,
    classes: usize,
    metrics: &mut [Metric],
    mut ema_metrics: Option<&mut [Metric]>,
    world: &World,
) -> Result<Evaluation, TrainError> {
    let ema_on = ema_metrics.is_some();
    for m in metrics.iter_mut() {
        m.reset()?;
    }
    for m in ema_metrics.iter_mut().flat_map(|m| m.iter_mut()) {
        m.reset()?;
    }
    let sets: &[WeightSet] = if ema_on {
        &[WeightSet::Raw, WeightSet::Ema]
    } else {
        &[WeightSet::Raw]
    };
    let (rank, ranks) = (world.rank() as usize, world.size() as usize);
    let mut loss_sum = [0.0f64; 2];
    let mut count = 0u64;
    let mut support = vec![0u64; classes];
    let mut batches = loader.epoch_shard(0, rank, ranks);
    loop {
        let mine = match batches.next() {
            Some(Ok(batch)) => infer(backbone, &batch, sets).map(Some),
            Some(Err(e)) => Err(e.into()),
            None => Ok(None),
        };
        let gathered = world.all_gather_f32(&Scored::encode(&mine, classes, sets.len()));
        let parts: Vec<Scored> = gathered
            .iter()
            .map(|part| Scored::decode(part, classes, sets.len()))
            .collect();
        if let Some(failed) = parts.iter().position(|p| p.failed) {
            return Err(match mine {
                Err(e) => e,
                Ok(_) => TrainError::Rank {
                    rank: failed as u32,
                    at: "in an evaluation".into(),
                },
            });
        }
        if parts.iter().all(|p| p.done) {
            break;
        }
        for part in parts.iter().filter(|p| !p.done) {
            for &l in &part.labels {
                if let Some(s) = support.get_mut(l as usize) {
                    *s += 1;
                }
            }
            let targets = one_hot(&part.labels, classes);
            for (k, (&set, logits)) in sets.iter().zip(&part.logits).enumerate() {
                if let Some(&value) = logits.data.iter().find(|v| !v.is_finite()) {
                    let weights = match set {
                        WeightSet::Ema => BestWeights::Ema,
                        _ => BestWeights::Raw,
                    };
                    return Err(TrainError::NonFiniteLogits {
                        weights: weights.name(),
                        value,
                    });
                }
                let (value, _) = loss_and_grad(loss, logits, &targets)?;
                loss_sum[k] += value * part.labels.len() as f64;
                let scored = match (set, ema_metrics.as_deref_mut()) {
                    (WeightSet::Ema, Some(ema)) => ema,
                    _ => &mut *metrics,
                };
                for m in scored.iter_mut() {
                    m.update(logits.view(), &part.labels)?;
                }
            }
            count += part.labels.len() as u64;
        }
    }
    let mut values = Vec::new();
    // No image gives NaN, which `finite` turns into a missing value.
    let mean_loss = |k: usize| loss_sum[k] / count as f64;
    let reports = scores(metrics, "", mean_loss(0), &mut values)?;
    let ema_reports = match ema_metrics {
        Some(ema) => scores(ema, "ema_", mean_loss(1), &mut values)?,
        None => Vec::new(),
    };
    Ok(Evaluation {
        values,
        reports,
        ema_reports,
        support,
    })
}

/// A batch's labels and its logits with each weight set.
type Inferred = (Vec<u32>, Vec<Tensor>);

/// The logits of `batch` with each of the weight `sets`, and its labels.
fn infer(
    backbone: &mut Backbone,
    batch: &Batch,
    sets: &[WeightSet],
) -> Result<Inferred, TrainError> {
    let logits = sets
        .iter()
        .map(|&set| backbone.eval_forward(batch.view(), set))
        .collect::<Result<_, _>>()?;
    Ok((batch.labels.clone(), logits))
}

/// One rank's part of an evaluation round, as the ranks exchange it: whether it failed or has
/// no batch left, else its batch's labels and logits with each weight set.
struct Scored {
    failed: bool,
    done: bool,
    labels: Vec<u32>,
    logits: Vec<Tensor>,
}

impl Scored {
    /// `[status, n, labels (n), logits of each set (n x classes each)]`, with status 0 for a
    /// batch, 1 for none left and 2 for a failure. Labels below 2^24 are exact as `f32`.
    fn encode(
        mine: &Result<Option<Inferred>, TrainError>,
        classes: usize,
        sets: usize,
    ) -> Vec<f32> {
        match mine {
            Err(_) => vec![2.0, 0.0],
            Ok(None) => vec![1.0, 0.0],
            Ok(Some((labels, logits))) => {
                let n = labels.len();
                let mut out = Vec::with_capacity(2 + n + n * classes * sets);
                out.extend([0.0, n as f32]);
                out.extend(labels.iter().map(|&l| l as f32));
                for t in logits {
                    out.extend_from_slice(&t.data);
                }
                out
            }
        }
    }

    /// The part [`Scored::encode`] wrote.
    fn decode(part: &[f32], classes: usize, sets: usize) -> Scored {
        let n = part[1] as usize;
        let labels = part[2..2 + n].iter().map(|&l| l as u32).collect();
        let logits = (0..sets)
            .map(|k| {
                let at = 2 + n + k * n * classes;
                Tensor {
                    shape: vec![n, classes].into(),
                    data: part[at..at + n * classes].to_vec().into(),
                }
            })
            .collect();
        Scored {
            failed: part[0] == 2.0,
            done: part[0] == 1.0,
            labels,
            logits,
        }
    }
}

/// Appends `<prefix>val_loss` (`loss`) and every scalar of `metrics` (named with `prefix`) to
/// `values`, and returns the metrics' reports.
fn scores(
    metrics: &[Metric],
    prefix: &str,
    loss: f64,
    values: &mut Vec<(String, Option<f64>)>,
) -> Result<Vec<MetricReport>, TrainError> {
    values.push((format!("{prefix}val_loss"), finite(loss)));
    let mut reports = Vec::new();
    for m in metrics {
        let report = m.compute()?;
        values.extend(
            report
                .scalars
                .iter()
                .map(|s| (format!("{prefix}{}", s.name), finite(s.value))),
        );
        reports.push(report);
    }
    Ok(reports)
}

/// The history column of the monitored metric (`loss` is the validation loss).
pub fn monitor_column(monitor: &str) -> String {
    match monitor {
        "loss" => "val_loss".into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loss_monitor_is_the_validation_loss() {
        assert_eq!(monitor_column("loss"), "val_loss");
    }
}
