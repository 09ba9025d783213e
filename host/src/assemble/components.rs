//! The components of a recipe other than the backbone's weights: the contexts plugins are
//! created with, the backbone's fine-tuning controls, the loss, the metrics, the batch
//! augmentations, and which way the monitored metric is better; and components given on the
//! command line as `NAME=PARAMS`.

use anyhow::Result;
use clshost_plugin_api::{
    AugmentContext, BackboneContext, EmaSpec, LossContext, MetricContext, OptimizerKind,
    OptimizerSpec, ParamGroup, TuneSpec,
};

use crate::data::DataSettings;
use crate::recipe::Recipe;
use crate::recipe::schema::{Component, Mode, OptimizerName};
use crate::registry::{BatchAugment, Loss, Metric, Registry};
use crate::train::{Direction, Tuning, monitor_column};

/// A component given on the command line as `NAME=PARAMS`: split at the first `=`, with `()`
/// params when there is none (`--augment random_erasing=(p: 1.0)`, `--logger tensorboard`).
pub fn from_spec(spec: &str) -> Component {
    let (name, params) = match spec.split_once('=') {
        Some((name, params)) => (name.trim(), params.trim()),
        None => (spec.trim(), "()"),
    };
    Component {
        name: name.to_string(),
        params: params.to_string(),
    }
}

/// What the backbone of `recipe` is created with.
pub fn backbone_context(recipe: &Recipe, num_classes: u32) -> BackboneContext {
    BackboneContext {
        num_classes,
        device: recipe.trainer.device.as_str().into(),
        optimizer: optimizer_spec(recipe),
        seed: recipe.seed,
    }
}

/// The fine-tuning controls of `recipe`; `None` when it sets none, so that backbones of plugins
/// older than ABI 1.3 train as before.
pub fn tuning(recipe: &Recipe) -> Option<Tuning> {
    let (m, o) = (&recipe.model, &recipe.optimizer);
    if m.freeze.is_empty()
        && !m.freeze_bn_stats
        && o.param_groups.is_empty()
        && o.layer_decay.is_none()
    {
        return None;
    }
    let spec = TuneSpec {
        freeze: m.freeze.iter().map(|p| p.as_str().into()).collect(),
        groups: o
            .param_groups
            .iter()
            .map(|g| ParamGroup {
                params: g.params.iter().map(|p| p.as_str().into()).collect(),
                lr_scale: g.lr_scale,
                weight_decay: g.weight_decay.into(),
            })
            .collect(),
        layer_decay: o.layer_decay.into(),
        freeze_norm_stats: m.freeze_bn_stats,
    };
    Some(Tuning::new(spec, m.unfreeze_epoch))
}

/// The optimizer spec of `recipe`.
fn optimizer_spec(recipe: &Recipe) -> OptimizerSpec {
    let o = &recipe.optimizer;
    OptimizerSpec {
        kind: match o.name {
            OptimizerName::Sgd => OptimizerKind::Sgd,
            OptimizerName::Adamw => OptimizerKind::AdamW,
        },
        momentum: o.momentum,
        nesterov: o.nesterov,
        beta1: o.betas.0,
        beta2: o.betas.1,
        eps: o.eps,
        weight_decay: o.weight_decay,
        norm_bias_weight_decay: o.norm_bias_weight_decay,
        clip_grad_norm: recipe.trainer.clip_grad_norm.into(),
        ema: recipe
            .trainer
            .ema
            .as_ref()
            .map(|e| EmaSpec {
                decay: e.decay,
                update_interval: e.interval,
                warmup: e.warmup,
            })
            .into(),
    }
}

/// The loss of `recipe` for `num_classes` classes.
pub fn new_loss(recipe: &Recipe, registry: &Registry, num_classes: u32) -> Result<Loss> {
    Ok(registry.new_loss(
        &recipe.loss.name,
        &recipe.loss.params,
        &LossContext { num_classes },
    )?)
}

/// The metrics of `recipe`, in its order, over the model's `classes`.
pub fn new_metrics(
    recipe: &Recipe,
    registry: &Registry,
    classes: &[String],
) -> Result<Vec<Metric>> {
    let ctx = MetricContext {
        num_classes: classes.len() as u32,
        class_names: classes.iter().map(|c| c.as_str().into()).collect(),
    };
    Ok(recipe
        .metrics
        .iter()
        .map(|c| registry.new_metric(&c.name, &c.params, &ctx))
        .collect::<Result<Vec<Metric>, _>>()?)
}

/// What the augmentations of a run with `settings` and `num_classes` classes are created with.
pub fn augment_context(settings: &DataSettings, num_classes: u32) -> AugmentContext {
    AugmentContext {
        input_height: settings.train_size,
        input_width: settings.train_size,
        mean: settings.mean,
        std: settings.std,
        num_classes,
    }
}

/// The batch augmentations of `recipe`, in its order.
pub fn batch_augments(
    recipe: &Recipe,
    registry: &Registry,
    ctx: &AugmentContext,
) -> Result<Vec<BatchAugment>> {
    Ok(recipe
        .batch_augment
        .entries
        .iter()
        .map(|e| registry.new_batch_augment(&e.name, &e.params, ctx))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Which way the monitored metric is better: the recipe's `mode`, or the metric's own
/// declaration (`loss`: smaller).
pub fn direction(recipe: &Recipe, metrics: &[Metric]) -> Result<Direction> {
    Ok(match recipe.trainer.mode {
        Mode::Max => Direction::Max,
        Mode::Min => Direction::Min,
        Mode::Auto => {
            let name = monitor_column(&recipe.trainer.monitor);
            let mut higher = None;
            for m in metrics {
                if let Some(o) = m.outputs()?.into_iter().find(|o| o.name.as_str() == name) {
                    higher = Some(o.higher_is_better);
                }
            }
            match higher {
                Some(true) => Direction::Max,
                _ => Direction::Min,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_specs_split_at_the_first_equals() {
        let split = |spec| {
            let c = from_spec(spec);
            (c.name, c.params)
        };
        assert_eq!(
            split("horizontal_flip"),
            ("horizontal_flip".into(), "()".into())
        );
        assert_eq!(
            split("random_erasing=(p: 1.0, value: \"a=b\")"),
            ("random_erasing".into(), "(p: 1.0, value: \"a=b\")".into())
        );
    }
}
