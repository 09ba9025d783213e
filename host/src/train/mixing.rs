//! Targets and batch mixing: one-hot targets, and the recipe's batch augmentation policy
//! (MixUp, CutMix) applied to a batch and its targets.
//!
//! When batch augmentation is on for the epoch, a draw from the batch's seed decides whether
//! the batch is mixed (`prob`), which entry mixes it (`switch_prob` picks the second of two) and
//! whether that entry applies (its own `prob`). The draws depend only on (seed, epoch, batch
//! index), so a batch is mixed the same way in any run of the recipe, resumed or not, and in
//! `clshost data preview`.

use clshost_plugin_api::TensorMut;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::{Batch, Seeds};
use crate::recipe::Recipe;
use crate::registry::{BatchAugment, ComponentError};

/// One-hot targets of `labels` over `classes` classes.
pub fn one_hot(labels: &[u32], classes: usize) -> Vec<f32> {
    let mut t = vec![0.0; labels.len() * classes];
    for (row, &label) in labels.iter().enumerate() {
        if let Some(v) = t.get_mut(row * classes + label as usize) {
            *v = 1.0;
        }
    }
    t
}

/// Whether the recipe's batch augmentation is on in `epoch` (from 0).
pub fn mixing_in(recipe: &Recipe, augments: &[BatchAugment], epoch: u32) -> bool {
    !augments.is_empty() && recipe.batch_augment.stop_epoch.is_none_or(|s| epoch < s)
}

/// Applies the recipe's batch augmentation policy to one batch of epoch `epoch` and its
/// `targets` (`[N, classes]`): whether to mix, and MixUp or CutMix, are drawn from
/// (seed, epoch, batch index), so a batch is mixed the same way in any run of the recipe.
pub fn mix(
    recipe: &Recipe,
    augments: &[BatchAugment],
    classes: usize,
    epoch: u32,
    batch: &mut Batch,
    targets: &mut [f32],
) -> Result<(), ComponentError> {
    let policy = &recipe.batch_augment;
    let seed = Seeds(recipe.seed).batch(u64::from(epoch), batch.index as u64);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (apply, switch, entry_draw): (f64, f64, f64) = (rng.random(), rng.random(), rng.random());
    let plugin_seed: u64 = rng.random();
    if apply >= policy.prob {
        return Ok(());
    }
    let which = usize::from(augments.len() > 1 && switch < policy.switch_prob);
    let entry_prob = policy.entries.get(which).map_or(1.0, |e| e.prob);
    if entry_draw >= entry_prob {
        return Ok(());
    }
    let shape = [batch.len(), classes];
    augments[which].apply(
        batch.view_mut(),
        TensorMut {
            shape: shape.as_slice().into(),
            data: targets.into(),
        },
        plugin_seed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hot_rows() {
        assert_eq!(one_hot(&[1, 0], 3), [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
    }
}
