//! Conversions between host memory and Burn tensors, and the hash that derives per-name seeds.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use clshost_plugin_api::{NamedTensor, PluginError, TensorRef};

use crate::params::Entry;

/// A 64-bit FNV-1a hash, used to derive per-name and per-pass seeds.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Copies a host tensor of rank `D` onto `device`.
pub fn to_device<B: Backend, const D: usize>(
    t: TensorRef<'_>,
    device: &B::Device,
) -> Result<Tensor<B, D>, PluginError> {
    let expected: usize = t.shape.iter().product();
    if t.shape.len() != D || expected != t.data.len() {
        return Err(PluginError::input(format!(
            "expected a rank-{D} tensor, got shape {:?} with {} elements",
            t.shape.as_slice(),
            t.data.len()
        )));
    }
    let data = TensorData::new(t.data.to_vec(), t.shape.to_vec());
    Ok(Tensor::from_data(data, device))
}

/// Copies a Burn tensor into host memory.
pub fn to_host<B: Backend, const D: usize>(
    t: Tensor<B, D>,
) -> Result<clshost_plugin_api::Tensor, PluginError> {
    let shape = t.dims().to_vec();
    let data = t
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| PluginError::device(format!("cannot read a tensor back: {e:?}")))?;
    clshost_plugin_api::Tensor::new(shape, data)
}

/// Named host tensors from flattened entries.
pub(crate) fn to_named<B: Backend>(
    entries: Vec<Entry<B>>,
) -> Result<Vec<NamedTensor>, PluginError> {
    entries
        .into_iter()
        .map(|e| {
            let mut tensor = to_host(e.value)?;
            tensor.shape = e.shape.into();
            Ok(NamedTensor {
                name: e.name.into(),
                tensor,
            })
        })
        .collect()
}
