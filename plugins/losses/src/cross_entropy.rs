//! Cross-entropy with soft targets, PyTorch's label smoothing and optional class weights.

use clshost_plugin_api::prelude::*;

use crate::targets::{
    Batch, check_class_count, check_class_values, check_smoothing, log_softmax, smooth,
};

/// Softmax cross-entropy, matching `torch.nn.functional.cross_entropy` with
/// `reduction="mean"`.
///
/// Targets are smoothed first (`t' = t * (1 - eps) + eps / C`). Without class weights the loss
/// is `mean_i(-sum_c t'_ic log p_ic)`. With weights it follows PyTorch's two target forms: when
/// every row of the batch is one-hot it is PyTorch's class-index form (each row weighted by its
/// class's weight, divided by the sum of those weights); otherwise the probability form
/// (`-sum_c w_c t'_ic log p_ic`, divided by N). Time O(N * C), memory O(C).
pub struct CrossEntropy {
    /// Smoothing factor `eps`.
    label_smoothing: f64,
    /// Per-class weights, when given.
    class_weights: Option<Vec<f64>>,
    /// Number of classes.
    classes: usize,
}

/// Configuration of [`CrossEntropy`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct CrossEntropyConfig {
    /// Smoothing factor eps in [0, 1]: targets become t * (1 - eps) + eps / classes (PyTorch's
    /// definition), applied to hard and mixed targets alike.
    pub label_smoothing: f64,
    /// One non-negative weight per class, or None. As PyTorch's `weight=`: a batch of one-hot rows
    /// is averaged with the target classes' weights, a soft batch is divided by N.
    pub class_weights: Option<Vec<f64>>,
}

impl Default for CrossEntropyConfig {
    fn default() -> Self {
        CrossEntropyConfig {
            label_smoothing: 0.0,
            class_weights: None,
        }
    }
}

impl Component for CrossEntropy {
    const NAME: &'static str = "cross_entropy";
    const DESCRIPTION: &'static str =
        "Softmax cross-entropy with soft targets, label smoothing and class weights (PyTorch's)";
    type Config = CrossEntropyConfig;

    fn check(config: &CrossEntropyConfig) -> Result<(), PluginError> {
        check_smoothing(config.label_smoothing)?;
        check_class_values("class_weights", config.class_weights.as_deref())
    }
}

impl Loss for CrossEntropy {
    fn new(config: CrossEntropyConfig, ctx: &LossContext) -> Result<Self, PluginError> {
        let classes = ctx.num_classes as usize;
        check_class_count("class_weights", config.class_weights.as_deref(), classes)?;
        Ok(CrossEntropy {
            label_smoothing: config.label_smoothing,
            class_weights: config.class_weights,
            classes,
        })
    }

    fn accepts_soft_targets(&self) -> bool {
        true
    }

    fn compute(
        &self,
        logits: TensorRef<'_>,
        targets: TensorRef<'_>,
        mut grad: TensorMut<'_>,
    ) -> Result<f64, PluginError> {
        let batch = Batch::new(logits, targets, &grad, self.classes)?;
        let (n, c) = (batch.n, batch.c);
        let eps = self.label_smoothing;
        // Row i's loss is -sum_c q_ic log p_ic; the batch loss is the sum of rows over `denom`.
        let mut q = vec![0.0; n * c];
        let denom = match (&self.class_weights, batch.hard_labels()) {
            (Some(w), Some(labels)) => {
                let denom: f64 = labels.iter().map(|&y| w[y]).sum();
                if denom == 0.0 {
                    return Err(PluginError::input(
                        "every target class of the batch has weight 0, so the weighted mean \
                         is undefined",
                    ));
                }
                for (row, &y) in q.chunks_mut(c).zip(&labels) {
                    for (j, qj) in row.iter_mut().enumerate() {
                        *qj = eps / c as f64 * w[j];
                    }
                    row[y] += (1.0 - eps) * w[y];
                }
                denom
            }
            (weights, _) => {
                for (qj, (j, &t)) in q.iter_mut().zip(batch.targets.iter().enumerate()) {
                    let w = weights.as_ref().map_or(1.0, |w| w[j % c]);
                    *qj = w * smooth(t, eps, c);
                }
                n as f64
            }
        };
        let (mut log_p, mut p) = (vec![0.0; c], vec![0.0; c]);
        let mut total = 0.0;
        for (i, (q, g)) in q.chunks(c).zip(grad.data.chunks_mut(c)).enumerate() {
            log_softmax(batch.logits(i), &mut log_p, &mut p);
            let q_sum: f64 = q.iter().sum();
            total -= q.iter().zip(&log_p).map(|(q, lp)| q * lp).sum::<f64>();
            for ((g, &qj), &pj) in g.iter_mut().zip(q).zip(&p) {
                *g = ((q_sum * pj - qj) / denom) as f32;
            }
        }
        Ok(total / denom)
    }
}
