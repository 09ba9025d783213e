//! Data-parallel training (plugin ABI 1.5): the accumulated gradients of every rank summed in
//! one collective call before an optimizer step.
//!
//! The trainable parameters' gradients are laid end to end in module order into one flat
//! buffer, with a parameter the rank has no gradient for filled with zeros, followed by one
//! presence count per parameter. After the all-reduce, a parameter that no rank has a gradient
//! for stays without one (the optimizer leaves it alone, as in a single process); the others
//! get the sum. Each rank's logit gradients were already divided by the window's micro-batch
//! count, so the sum is the average of the window: with two ranks it equals, bit for bit, the
//! gradient one process accumulates over the same two micro-batches (a two-term sum does not
//! depend on its order).

use std::collections::HashMap;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use clshost_plugin_api::{CollectiveBox, PluginError};

use crate::params::Entry;

/// Sums the gradients in `accum` (by parameter name; those of frozen or unused parameters may
/// be missing) across the ranks of `collective`, and returns the summed gradient of every
/// trainable parameter of `entries` that at least one rank has, in `entries`' order.
pub fn all_reduce<B: Backend>(
    collective: &CollectiveBox,
    entries: &[Entry<B>],
    accum: &mut HashMap<String, Tensor<B, 1>>,
    device: &B::Device,
) -> Result<Vec<(String, Tensor<B, 1>)>, PluginError> {
    let trainable: Vec<&Entry<B>> = entries.iter().filter(|e| e.trainable).collect();
    let mut present = Vec::with_capacity(trainable.len());
    let parts: Vec<Tensor<B, 1>> = trainable
        .iter()
        .map(|e| match accum.remove(&e.name) {
            Some(g) => {
                present.push(1.0f32);
                g
            }
            None => {
                present.push(0.0);
                Tensor::zeros([e.shape.iter().product::<usize>()], device)
            }
        })
        .collect();
    let mut flat = if parts.is_empty() {
        Vec::new()
    } else {
        Tensor::cat(parts, 0)
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| PluginError::device(format!("cannot read the gradients back: {e:?}")))?
    };
    let values = flat.len();
    flat.extend_from_slice(&present);
    collective
        .all_reduce_sum(flat.as_mut_slice().into())
        .into_result()?;
    let counts = flat.split_off(values);
    let summed: Tensor<B, 1> = Tensor::from_data(TensorData::new(flat, [values]), device);
    let mut offset = 0;
    let mut grads = Vec::new();
    for (entry, count) in trainable.iter().zip(counts) {
        let len: usize = entry.shape.iter().product();
        if count > 0.0 {
            grads.push((
                entry.name.clone(),
                summed.clone().slice(offset..offset + len),
            ));
        }
        offset += len;
    }
    Ok(grads)
}
