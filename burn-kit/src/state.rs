//! The checkpoint format: one safetensors buffer holding the weights (`model.<name>`), the EMA
//! (`ema.<name>`), the optimizer state (`optim.<name>.first` / `.second`) and pending
//! accumulated gradients (`accum.<name>`), with counters in the header's metadata. Values are
//! stored as the `f32` bits they have in memory, so a resumed run continues exactly.

use std::collections::HashMap;

use clshost_plugin_api::{NamedTensor, OptimizerKind, PluginError, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// The format tag written in every checkpoint.
const FORMAT: &str = "clshost-burn-kit-state/1";

/// One parameter's optimizer state in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedParamState {
    /// The weight name.
    pub name: String,
    /// Updates applied so far.
    pub step: u64,
    /// Momentum buffer or first moment.
    pub first: Option<Tensor>,
    /// Second moment.
    pub second: Option<Tensor>,
}

/// A complete training state in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedState {
    /// Weights and buffers.
    pub model: Vec<NamedTensor>,
    /// EMA weights and the number of EMA updates, when EMA is on.
    pub ema: Option<(Vec<NamedTensor>, u64)>,
    /// The optimizer the state belongs to.
    pub optimizer_kind: OptimizerKind,
    /// Per-parameter optimizer state.
    pub optimizer: Vec<SavedParamState>,
    /// Gradients accumulated since the last update.
    pub accum: Vec<(String, Tensor)>,
    /// Optimizer updates applied so far.
    pub optimizer_steps: u64,
    /// Training forward passes so far (they seed dropout).
    pub forward_passes: u64,
    /// The backbone seed (with the pass count, it seeds dropout).
    pub seed: u64,
}

fn kind_name(kind: OptimizerKind) -> &'static str {
    match kind {
        OptimizerKind::Sgd => "sgd",
        OptimizerKind::AdamW => "adamw",
    }
}

fn corrupt(message: impl std::fmt::Display) -> PluginError {
    PluginError::input(format!("not a valid clshost Burn state: {message}"))
}

/// Serializes a state.
pub fn encode(state: &SavedState) -> Result<Vec<u8>, PluginError> {
    let mut tensors: Vec<(String, &Tensor)> = Vec::new();
    for w in &state.model {
        tensors.push((format!("model.{}", w.name), &w.tensor));
    }
    if let Some((ema, _)) = &state.ema {
        for w in ema {
            tensors.push((format!("ema.{}", w.name), &w.tensor));
        }
    }
    let mut steps = serde_json::Map::new();
    for s in &state.optimizer {
        steps.insert(s.name.clone(), s.step.into());
        if let Some(t) = &s.first {
            tensors.push((format!("optim.{}.first", s.name), t));
        }
        if let Some(t) = &s.second {
            tensors.push((format!("optim.{}.second", s.name), t));
        }
    }
    for (name, t) in &state.accum {
        tensors.push((format!("accum.{name}"), t));
    }
    let buffers: Vec<Vec<u8>> = tensors.iter().map(|(_, t)| t.to_le_bytes()).collect();
    let views = tensors
        .iter()
        .zip(&buffers)
        .map(|((name, t), bytes)| {
            TensorView::new(Dtype::F32, t.shape.to_vec(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| PluginError::internal(format!("cannot write `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert(
        "optimizer".to_string(),
        kind_name(state.optimizer_kind).to_string(),
    );
    meta.insert(
        "optimizer_steps".to_string(),
        state.optimizer_steps.to_string(),
    );
    meta.insert(
        "forward_passes".to_string(),
        state.forward_passes.to_string(),
    );
    meta.insert("seed".to_string(), state.seed.to_string());
    meta.insert(
        "param_steps".to_string(),
        serde_json::Value::Object(steps).to_string(),
    );
    if let Some((_, updates)) = &state.ema {
        meta.insert("ema_updates".to_string(), updates.to_string());
    }
    safetensors::serialize(views, Some(meta))
        .map_err(|e| PluginError::internal(format!("cannot write the state: {e}")))
}

/// Reads an `f32` tensor view into host memory.
fn read_view(name: &str, view: &TensorView<'_>) -> Result<Tensor, PluginError> {
    if view.dtype() != Dtype::F32 {
        return Err(corrupt(format!("`{name}` is {:?}, not F32", view.dtype())));
    }
    Tensor::from_le_bytes(view.shape().to_vec(), view.data())
}

/// Parses a state written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<SavedState, PluginError> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(corrupt)?;
    let meta = header.metadata().clone().unwrap_or_default();
    let get = |key: &str| {
        meta.get(key)
            .ok_or_else(|| corrupt(format!("the header lacks `{key}`")))
    };
    let format = get("format")?;
    if format != FORMAT {
        return Err(corrupt(format!("format `{format}`, expected `{FORMAT}`")));
    }
    let number = |key: &str| -> Result<u64, PluginError> {
        get(key)?
            .parse()
            .map_err(|e| corrupt(format!("`{key}`: {e}")))
    };
    let optimizer_kind = match get("optimizer")?.as_str() {
        "sgd" => OptimizerKind::Sgd,
        "adamw" => OptimizerKind::AdamW,
        other => return Err(corrupt(format!("unknown optimizer `{other}`"))),
    };
    let steps: HashMap<String, u64> = serde_json::from_str(get("param_steps")?)
        .map_err(|e| corrupt(format!("`param_steps`: {e}")))?;
    let tensors = SafeTensors::deserialize(bytes).map_err(corrupt)?;
    let mut model = Vec::new();
    let mut ema = Vec::new();
    let mut accum = Vec::new();
    let mut moments: HashMap<String, (Option<Tensor>, Option<Tensor>)> = HashMap::new();
    for (name, view) in tensors.tensors() {
        let t = read_view(&name, &view)?;
        let named = |rest: &str| NamedTensor {
            name: rest.into(),
            tensor: t.clone(),
        };
        if let Some(rest) = name.strip_prefix("model.") {
            model.push(named(rest));
        } else if let Some(rest) = name.strip_prefix("ema.") {
            ema.push(named(rest));
        } else if let Some(rest) = name.strip_prefix("accum.") {
            accum.push((rest.to_string(), t));
        } else if let Some(rest) = name.strip_prefix("optim.") {
            if let Some(param) = rest.strip_suffix(".first") {
                moments.entry(param.to_string()).or_default().0 = Some(t);
            } else if let Some(param) = rest.strip_suffix(".second") {
                moments.entry(param.to_string()).or_default().1 = Some(t);
            } else {
                return Err(corrupt(format!("unknown tensor `{name}`")));
            }
        } else {
            return Err(corrupt(format!("unknown tensor `{name}`")));
        }
    }
    let optimizer = steps
        .into_iter()
        .map(|(name, step)| {
            let (first, second) = moments.remove(&name).unwrap_or_default();
            SavedParamState {
                name,
                step,
                first,
                second,
            }
        })
        .collect();
    let ema = match meta.get("ema_updates") {
        Some(_) => Some((ema, number("ema_updates")?)),
        None => None,
    };
    Ok(SavedState {
        model,
        ema,
        optimizer_kind,
        optimizer,
        accum,
        optimizer_steps: number("optimizer_steps")?,
        forward_passes: number("forward_passes")?,
        seed: number("seed")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(values: &[f32]) -> Tensor {
        Tensor::new(vec![values.len()], values.to_vec()).unwrap()
    }

    #[test]
    fn a_state_round_trips_bit_exactly() {
        let named = |name: &str, values: &[f32]| NamedTensor {
            name: name.into(),
            tensor: tensor(values),
        };
        let state = SavedState {
            model: vec![named("fc.weight", &[1.5, -0.0, f32::MIN_POSITIVE])],
            ema: Some((vec![named("fc.weight", &[0.25, 1e-30, -7.0])], 3)),
            optimizer_kind: OptimizerKind::AdamW,
            optimizer: vec![SavedParamState {
                name: "fc.weight".into(),
                step: 4,
                first: Some(tensor(&[0.1, 0.2, 0.3])),
                second: Some(tensor(&[1e-8, 2e-8, 3e-8])),
            }],
            accum: vec![("fc.weight".into(), tensor(&[9.0, 8.0, 7.0]))],
            optimizer_steps: 4,
            forward_passes: 9,
            seed: 42,
        };
        let decoded = decode(&encode(&state).unwrap()).unwrap();
        assert_eq!(decoded, state);
        assert!(decode(b"garbage").is_err());
    }
}
