//! Multi-class softmax focal loss (Lin et al., 2017) with per-class alpha.

use clshost_plugin_api::prelude::*;

use crate::targets::{Batch, check_class_count, check_class_values, log_softmax, one_hot_class};

/// Softmax focal loss: `mean_i(-alpha_y (1 - p_iy)^gamma log p_iy)` for the true class `y` of
/// each row, where `p` is the softmax of the logits.
///
/// Hard targets only: every target row must be one-hot, otherwise `compute` fails with an input
/// error (so MixUp, CutMix and label smoothing are refused). `1 - p` is computed as
/// `-expm1(log p)`, exact even when `p` rounds to 1. Time O(N * C), memory O(C).
pub struct Focal {
    /// Focusing parameter.
    gamma: f64,
    /// Per-class alpha, when given.
    alpha: Option<Vec<f64>>,
    /// Number of classes.
    classes: usize,
}

/// Configuration of [`Focal`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct FocalConfig {
    /// Focusing parameter >= 0: the loss of a row is scaled by (1 - p_true)^gamma; 0 gives
    /// cross-entropy.
    pub gamma: f64,
    /// None (1 for every class), or one non-negative weight per class multiplying the loss of rows
    /// of that class. The mean is over rows, not over weights.
    pub alpha: Option<Vec<f64>>,
}

impl Default for FocalConfig {
    fn default() -> Self {
        FocalConfig {
            gamma: 2.0,
            alpha: None,
        }
    }
}

impl Component for Focal {
    const NAME: &'static str = "focal";
    const DESCRIPTION: &'static str =
        "Multi-class softmax focal loss with per-class alpha; hard (one-hot) targets only";
    type Config = FocalConfig;

    fn check(config: &FocalConfig) -> Result<(), PluginError> {
        if !(config.gamma.is_finite() && config.gamma >= 0.0) {
            return Err(PluginError::config(
                "gamma",
                format!("must be finite and >= 0, got {}", config.gamma),
            ));
        }
        check_class_values("alpha", config.alpha.as_deref())
    }
}

impl Loss for Focal {
    fn new(config: FocalConfig, ctx: &LossContext) -> Result<Self, PluginError> {
        let classes = ctx.num_classes as usize;
        check_class_count("alpha", config.alpha.as_deref(), classes)?;
        Ok(Focal {
            gamma: config.gamma,
            alpha: config.alpha,
            classes,
        })
    }

    fn accepts_soft_targets(&self) -> bool {
        false
    }

    fn compute(
        &self,
        logits: TensorRef<'_>,
        targets: TensorRef<'_>,
        mut grad: TensorMut<'_>,
    ) -> Result<f64, PluginError> {
        let batch = Batch::new(logits, targets, &grad, self.classes)?;
        let (n, c) = (batch.n, batch.c);
        let gamma = self.gamma;
        let (mut log_p, mut probs) = (vec![0.0; c], vec![0.0; c]);
        let mut total = 0.0;
        for (i, g) in grad.data.chunks_mut(c).enumerate() {
            let y = one_hot_class(batch.targets(i)).ok_or_else(|| {
                PluginError::input(format!(
                    "`focal` accepts only one-hot targets, but target row {i} is soft \
                     (MixUp, CutMix and label smoothing need a loss that accepts soft targets, \
                     such as `cross_entropy`)"
                ))
            })?;
            log_softmax(batch.logits(i), &mut log_p, &mut probs);
            let a = self.alpha.as_ref().map_or(1.0, |w| w[y]);
            let lp = log_p[y];
            let p = lp.exp();
            let one_minus_p = -lp.exp_m1();
            let modulator = one_minus_p.powf(gamma);
            total -= a * modulator * lp;
            // d loss / d z_j = a [gamma (1-p)^(gamma-1) p log p - (1-p)^gamma] (delta_jy - p_j);
            // the first term tends to 0 as p -> 1, where the power alone would be 0 * inf.
            let focus = if gamma == 0.0 || one_minus_p == 0.0 {
                0.0
            } else {
                gamma * one_minus_p.powf(gamma - 1.0) * p * lp
            };
            let coef = a * (focus - modulator) / n as f64;
            for (j, (g, &pj)) in g.iter_mut().zip(&probs).enumerate() {
                let delta_minus_p = if j == y { one_minus_p } else { -pj };
                *g = (coef * delta_minus_p) as f32;
            }
        }
        Ok(total / n as f64)
    }
}
