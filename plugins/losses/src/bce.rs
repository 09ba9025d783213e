//! One-vs-rest binary cross-entropy on sigmoid outputs, as timm's `BinaryCrossEntropy`.

use clshost_plugin_api::prelude::*;

use crate::targets::{Batch, check_class_count, check_class_values, check_smoothing, smooth};

/// Binary cross-entropy with logits on every class independently, matching timm's
/// `BinaryCrossEntropy` on top of `torch.nn.functional.binary_cross_entropy_with_logits`.
///
/// Targets are smoothed (`t' = t * (1 - eps) + eps / C`, which for one-hot rows is timm's
/// `off = eps / C`, `on = 1 - eps + eps / C`), then, with `target_thresh`, binarised to
/// `t' > thresh`. Per element `l = (1 - t) x + (1 + (pw - 1) t) softplus(-x)`, computed stably;
/// the loss is the mean over all `N * C` elements, or with `sum_classes` the sum over classes
/// averaged over rows. Time O(N * C), memory O(1).
pub struct Bce {
    /// The parsed configuration.
    config: BceConfig,
    /// Number of classes.
    classes: usize,
}

/// Configuration of [`Bce`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct BceConfig {
    /// Smoothing factor eps in [0, 1]: targets become t * (1 - eps) + eps / classes.
    pub label_smoothing: f64,
    /// None, or a threshold in [0, 1]: smoothed targets above it become 1, the rest 0 (timm's
    /// `bce_target_thresh`, e.g. 0.2 with MixUp).
    pub target_thresh: Option<f64>,
    /// None, or one non-negative weight per class multiplying the positive term (PyTorch's
    /// `pos_weight`).
    pub pos_weight: Option<Vec<f64>>,
    /// false: mean over all N x classes elements (PyTorch's `mean`); true: sum over classes, mean
    /// over rows (timm's `sum_classes`).
    pub sum_classes: bool,
}

impl Default for BceConfig {
    fn default() -> Self {
        BceConfig {
            label_smoothing: 0.0,
            target_thresh: None,
            pos_weight: None,
            sum_classes: false,
        }
    }
}

impl Component for Bce {
    const NAME: &'static str = "bce";
    const DESCRIPTION: &'static str =
        "One-vs-rest sigmoid binary cross-entropy with smoothing and target threshold (timm's)";
    type Config = BceConfig;

    fn check(config: &BceConfig) -> Result<(), PluginError> {
        check_smoothing(config.label_smoothing)?;
        if let Some(thresh) = config.target_thresh
            && !(0.0..=1.0).contains(&thresh)
        {
            return Err(PluginError::config(
                "target_thresh",
                format!("must be in [0, 1], got {thresh}"),
            ));
        }
        check_class_values("pos_weight", config.pos_weight.as_deref())
    }
}

impl Loss for Bce {
    fn new(config: BceConfig, ctx: &LossContext) -> Result<Self, PluginError> {
        let classes = ctx.num_classes as usize;
        check_class_count("pos_weight", config.pos_weight.as_deref(), classes)?;
        Ok(Bce { config, classes })
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
        let c = batch.c;
        let denom = if self.config.sum_classes {
            batch.n as f64
        } else {
            (batch.n * c) as f64
        };
        let mut total = 0.0;
        for (k, ((&z, &t), g)) in batch
            .logits
            .iter()
            .zip(batch.targets)
            .zip(grad.data.iter_mut())
            .enumerate()
        {
            let mut t = smooth(t, self.config.label_smoothing, c);
            if let Some(thresh) = self.config.target_thresh {
                t = if t > thresh { 1.0 } else { 0.0 };
            }
            let pw = self.config.pos_weight.as_ref().map_or(1.0, |w| w[k % c]);
            let x = f64::from(z);
            let log_weight = 1.0 + (pw - 1.0) * t;
            // softplus(-x) = -log(sigmoid(x)) and sigmoid(-x), from one exp(-|x|) that cannot
            // overflow.
            let e = (-x.abs()).exp();
            let softplus_neg = (-x).max(0.0) + e.ln_1p();
            let sigmoid_neg = if x >= 0.0 {
                e / (1.0 + e)
            } else {
                1.0 / (1.0 + e)
            };
            total += (1.0 - t) * x + log_weight * softplus_neg;
            *g = (((1.0 - t) - log_weight * sigmoid_neg) / denom) as f32;
        }
        Ok(total / denom)
    }
}
