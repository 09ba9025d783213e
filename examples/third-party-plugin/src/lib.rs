//! An example of a third-party clshost plugin, built outside the clshost workspace.
//!
//! It offers one loss and one metric:
//!
//! - `poly1`: PolyLoss (Leng et al., ICLR 2022), cross-entropy plus `epsilon * (1 - p_t)`, where
//!   `p_t` is the probability the model gives the target (for soft targets, `sum_j t_j p_j`);
//! - `balanced_accuracy`: the mean of per-class recall over the classes present in the labels,
//!   as scikit-learn's `balanced_accuracy_score`, optionally adjusted for chance.
//!
//! Build it with `cargo build --release` in this directory, then point clshost at
//! `target/release/` with `--plugin-dir` or `CLSHOST_PLUGIN_PATH`.

use clshost_plugin_api::prelude::*;

/// PolyLoss: cross-entropy plus `epsilon * (1 - p_t)`.
pub struct Poly1 {
    epsilon: f64,
}

/// Config of [`Poly1`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Poly1Config {
    /// Weight of the `(1 - p_t)` term; 0 gives plain cross-entropy.
    pub epsilon: f64,
}

impl Default for Poly1Config {
    fn default() -> Self {
        Poly1Config { epsilon: 1.0 }
    }
}

impl Component for Poly1 {
    const NAME: &'static str = "poly1";
    const DESCRIPTION: &'static str = "PolyLoss: cross-entropy + epsilon * (1 - p_target)";
    const PARAMS: &'static [Param] = &[Param::new(
        "epsilon",
        "Weight of the (1 - p_t) term; 0 is plain cross-entropy, the paper uses 1 or -1.",
    )];
    type Config = Poly1Config;

    fn check(config: &Poly1Config) -> Result<(), PluginError> {
        if config.epsilon.is_finite() && config.epsilon >= -1.0 {
            Ok(())
        } else {
            Err(PluginError::config(
                "epsilon",
                "must be a finite number >= -1",
            ))
        }
    }
}

impl Loss for Poly1 {
    fn new(config: Poly1Config, _ctx: &LossContext) -> Result<Self, PluginError> {
        Ok(Poly1 {
            epsilon: config.epsilon,
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
        let (n, c) = logits.dims2()?;
        if targets.dims2()? != (n, c) || grad.dims2()? != (n, c) {
            return Err(PluginError::input(
                "logits, targets and grad must have one shape",
            ));
        }
        let mut total = 0.0;
        for i in 0..n {
            let z = &logits.data[i * c..(i + 1) * c];
            let t = &targets.data[i * c..(i + 1) * c];
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum_exp: f64 = z.iter().map(|&v| (v as f64 - max).exp()).sum();
            let log_sum = max + sum_exp.ln();
            let p: Vec<f64> = z.iter().map(|&v| (v as f64 - log_sum).exp()).collect();
            let ce: f64 = t
                .iter()
                .zip(z)
                .map(|(&t, &z)| -(t as f64) * (z as f64 - log_sum))
                .sum();
            let p_t: f64 = t.iter().zip(&p).map(|(&t, p)| t as f64 * p).sum();
            total += ce + self.epsilon * (1.0 - p_t);
            for k in 0..c {
                let t_k = t[k] as f64;
                let g = (p[k] - t_k) - self.epsilon * p[k] * (t_k - p_t);
                grad.data[i * c + k] = (g / n as f64) as f32;
            }
        }
        Ok(total / n as f64)
    }
}

/// Balanced accuracy: mean recall over the classes present in the labels.
///
/// Memory is two counters per class; each update is O(N x C) for the argmax.
pub struct BalancedAccuracy {
    adjusted: bool,
    correct: Vec<u64>,
    support: Vec<u64>,
}

/// Config of [`BalancedAccuracy`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BalancedAccuracyConfig {
    /// Rescale so that chance level is 0 and perfect is 1.
    pub adjusted: bool,
}

impl Component for BalancedAccuracy {
    const NAME: &'static str = "balanced_accuracy";
    const DESCRIPTION: &'static str =
        "Mean per-class recall, as scikit-learn's balanced_accuracy_score";
    const PARAMS: &'static [Param] = &[Param::new(
        "adjusted",
        "Rescale as (score - 1/k) / (1 - 1/k) for k present classes, so chance is 0.",
    )];
    type Config = BalancedAccuracyConfig;
}

impl Metric for BalancedAccuracy {
    fn new(config: BalancedAccuracyConfig, ctx: &MetricContext) -> Result<Self, PluginError> {
        let c = ctx.num_classes as usize;
        Ok(BalancedAccuracy {
            adjusted: config.adjusted,
            correct: vec![0; c],
            support: vec![0; c],
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
        self.support.fill(0);
    }

    fn update(&mut self, logits: TensorRef<'_>, labels: &[u32]) -> Result<(), PluginError> {
        let (n, c) = logits.dims2()?;
        if labels.len() != n || c != self.support.len() {
            return Err(PluginError::input(format!(
                "expected {} labels and {} classes, got {} and {c}",
                n,
                self.support.len(),
                labels.len()
            )));
        }
        for (row, &label) in logits.data.chunks(c).zip(labels) {
            let label = label as usize;
            if label >= c {
                return Err(PluginError::input(format!(
                    "label {label} is not below {c}"
                )));
            }
            let predicted = row
                .iter()
                .enumerate()
                .fold(0, |best, (j, &v)| if v > row[best] { j } else { best });
            self.support[label] += 1;
            self.correct[label] += u64::from(predicted == label);
        }
        Ok(())
    }

    fn compute(&self) -> Result<MetricReport, PluginError> {
        let recalls: Vec<f64> = self
            .correct
            .iter()
            .zip(&self.support)
            .map(|(&hit, &n)| {
                if n == 0 {
                    f64::NAN
                } else {
                    hit as f64 / n as f64
                }
            })
            .collect();
        let present: Vec<f64> = recalls.iter().copied().filter(|r| !r.is_nan()).collect();
        let mut score = if present.is_empty() {
            f64::NAN
        } else {
            present.iter().sum::<f64>() / present.len() as f64
        };
        if self.adjusted && !present.is_empty() {
            let chance = 1.0 / present.len() as f64;
            score = (score - chance) / (1.0 - chance);
        }
        Ok(MetricReport {
            scalars: vec![MetricScalar {
                name: "balanced_accuracy".into(),
                value: score,
                higher_is_better: true,
            }]
            .into(),
            vectors: vec![MetricVector {
                name: "recall_per_class".into(),
                values: recalls.into(),
            }]
            .into(),
            matrices: Vec::new().into(),
        })
    }
}

register!(Loss: Poly1, Metric: BalancedAccuracy);
export_plugin!(description: "Example third-party plugin: PolyLoss and balanced accuracy");

#[cfg(test)]
mod tests {
    use super::*;
    use clshost_plugin_api::authoring::undocumented_params;

    #[test]
    fn params_are_documented() {
        assert!(undocumented_params::<Poly1>().is_empty());
        assert!(undocumented_params::<BalancedAccuracy>().is_empty());
    }

    /// The analytic gradient agrees with central finite differences of the loss.
    #[test]
    fn poly1_gradient_matches_finite_differences() {
        let loss = Poly1::new(
            Poly1Config { epsilon: 0.7 },
            &LossContext { num_classes: 3 },
        )
        .unwrap();
        let shape = [2usize, 3];
        let logits = vec![0.3f32, -1.2, 2.0, 0.1, 0.4, -0.5];
        let targets = vec![0.0f32, 0.25, 0.75, 1.0, 0.0, 0.0];
        let value = |z: &[f32]| {
            let mut g = vec![0.0f32; 6];
            loss.compute(
                TensorRef::new(&shape, z).unwrap(),
                TensorRef::new(&shape, &targets).unwrap(),
                TensorMut::new(&shape, &mut g).unwrap(),
            )
            .unwrap()
        };
        let mut grad = vec![0.0f32; 6];
        loss.compute(
            TensorRef::new(&shape, &logits).unwrap(),
            TensorRef::new(&shape, &targets).unwrap(),
            TensorMut::new(&shape, &mut grad).unwrap(),
        )
        .unwrap();
        for k in 0..6 {
            let h = 1e-3f32;
            let mut up = logits.clone();
            up[k] += h;
            let mut down = logits.clone();
            down[k] -= h;
            let numeric = (value(&up) - value(&down)) / (2.0 * h as f64);
            assert!(
                (numeric - grad[k] as f64).abs() < 1e-4,
                "{k}: {numeric} vs {}",
                grad[k]
            );
        }
    }

    /// Matches `sklearn.metrics.balanced_accuracy_score([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2])`
    /// = mean(1/2, 1/1, 2/3) = 0.722222...
    #[test]
    fn balanced_accuracy_matches_scikit_learn() {
        let ctx = MetricContext {
            num_classes: 3,
            class_names: Vec::new().into(),
        };
        let mut metric = BalancedAccuracy::new(BalancedAccuracyConfig::default(), &ctx).unwrap();
        let predicted = [0usize, 1, 1, 2, 0, 2];
        let mut logits = vec![0.0f32; 18];
        for (i, &p) in predicted.iter().enumerate() {
            logits[i * 3 + p] = 1.0;
        }
        let shape = [6usize, 3];
        metric
            .update(
                TensorRef::new(&shape, &logits).unwrap(),
                &[0, 0, 1, 2, 2, 2],
            )
            .unwrap();
        let report = metric.compute().unwrap();
        assert!((report.scalars[0].value - 0.722_222_222_222_222_2).abs() < 1e-12);
    }
}
