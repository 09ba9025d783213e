//! A training session: the whole backbone contract for one model on one Burn backend: training passes with gradient
//! accumulation, optimizer steps, EMA, evaluation, named weights, checkpoints and the graph.

use std::collections::{HashMap, HashSet};

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use clshost_plugin_api::{
    CollectiveBox, LoadReport, LoadWeightsOptions, ModelGraph, NamedTensor, OptimizerSpec,
    PluginError, RString, ShapeMismatch, StepParams, StepReport, TensorRef, TuneReport, TuneSpec,
    WeightSet,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::convert::{fnv1a, to_device, to_host, to_named};
use crate::distribute;
use crate::graph::GraphBuilder;
use crate::model::{ClassifierModel, ModelFamily};
use crate::nn::ForwardContext;
use crate::optim::{Optimizer, Update, clip_global_norm};
use crate::params::{
    Entry, assign, assign_inner, collect, collect_inner, gradients, set_trainable,
};
use crate::precision::{self, Precision};
use crate::state::{self, SavedState};
use crate::tune;
use crate::weights::{describe, is_ignored_key};

/// The exponential moving average of the weights.
struct Ema<M> {
    model: M,
    updates: u64,
}

/// The logits of `model` for `x`, computed in `precision` and returned in float32.
fn logits<B: Backend, M: ClassifierModel<B>>(
    precision: Precision,
    model: &M,
    x: Tensor<B, 4>,
    ctx: &ForwardContext,
) -> Tensor<B, 2> {
    let _scope = precision::Scope::enter(precision);
    match precision {
        Precision::Fp32 => model.forward(x, ctx),
        Precision::Bf16 => precision::full(model.forward(x, ctx)),
    }
}

/// The family's model on the inner (non-autodiff) backend of `AB`.
type InnerModel<AB, F> = <F as ModelFamily>::Model<<AB as AutodiffBackend>::InnerBackend>;

/// One model on one autodiff backend `AB`, with its optimizer, EMA and pending graph.
pub struct Session<AB: AutodiffBackend, F: ModelFamily> {
    device: AB::Device,
    num_classes: usize,
    seed: u64,
    model: F::Model<AB>,
    eval_model: InnerModel<AB, F>,
    eval_fresh: bool,
    ema: Option<Ema<InnerModel<AB, F>>>,
    optim: Optimizer<AB::InnerBackend>,
    accum: HashMap<String, Tensor<AB::InnerBackend, 1>>,
    pending: Option<Tensor<AB, 2>>,
    optimizer_steps: u64,
    forward_passes: u64,
    /// The model's trainable parameters (name, elements), in module order, frozen or not.
    params: Vec<(String, u64)>,
    /// Normalization statistics frozen by [`Session::tune`].
    frozen_norm: bool,
    /// The other ranks of a data-parallel run ([`Session::distribute`]).
    collective: Option<CollectiveBox>,
    /// The precision of the forward passes ([`Session::set_precision`]).
    precision: Precision,
}

type Inner<AB> = <AB as AutodiffBackend>::InnerBackend;

impl<AB: AutodiffBackend, F: ModelFamily> Session<AB, F> {
    /// Builds and initializes the model on `device`.
    pub fn new(
        family: &F,
        num_classes: usize,
        device: AB::Device,
        spec: OptimizerSpec,
        seed: u64,
    ) -> Result<Self, PluginError> {
        let model = family.init::<AB>(num_classes, &device);
        let values =
            initial_values::<Inner<AB>, F>(family, &collect_inner(&model), seed, &device, |_| true);
        let model = assign_inner(model, &values);
        let params = collect(&model)
            .iter()
            .filter(|e| e.trainable)
            .map(|e| (e.name.clone(), e.shape.iter().product::<usize>() as u64))
            .collect();
        let eval_model = inner_copy::<AB, F>(family, num_classes, &model, &device);
        let ema = spec.ema.into_option().map(|_| Ema {
            model: inner_copy::<AB, F>(family, num_classes, &model, &device),
            updates: 0,
        });
        Ok(Session {
            device,
            num_classes,
            seed,
            model,
            eval_model,
            eval_fresh: true,
            ema,
            optim: Optimizer::new(spec),
            accum: HashMap::new(),
            pending: None,
            optimizer_steps: 0,
            forward_passes: 0,
            params,
            frozen_norm: false,
            collective: None,
            precision: Precision::Fp32,
        })
    }

    /// Trains data-parallel from now on: every optimizer step first sums the accumulated
    /// gradients across the ranks of `collective` ([`crate::distribute`]).
    pub fn distribute(&mut self, collective: CollectiveBox) {
        self.collective = Some(collective);
    }

    /// Runs the forward passes (training and inference) in `precision` from now on
    /// ([`crate::precision`]); the caller checks that the backend supports it.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// Applies fine-tuning controls, replacing earlier ones ([`crate::tune`]): frozen
    /// parameters stop getting gradients and lose their optimizer state and accumulated
    /// gradients; the others learn at their group's rate.
    pub fn tune(&mut self, family: &F, spec: &TuneSpec) -> Result<TuneReport, PluginError> {
        let plan = tune::plan(spec, &self.params, |name| family.layer(name))?;
        let names: HashSet<String> = self.params.iter().map(|(n, _)| n.clone()).collect();
        self.model = set_trainable(self.model.clone(), &names, &plan.frozen);
        self.optim
            .state
            .retain(|name, _| !plan.frozen.contains(name));
        self.accum.retain(|name, _| !plan.frozen.contains(name));
        self.optim.rates = plan.rates;
        self.frozen_norm = spec.freeze_norm_stats;
        Ok(plan.report)
    }

    /// Number of trainable parameters.
    pub fn num_parameters(&self) -> u64 {
        collect(&self.model)
            .iter()
            .filter(|e| e.trainable)
            .map(|e| e.shape.iter().product::<usize>() as u64)
            .sum()
    }

    /// Training forward pass; keeps the graph for [`Session::backward_step`].
    pub fn forward(
        &mut self,
        images: TensorRef<'_>,
    ) -> Result<clshost_plugin_api::Tensor, PluginError> {
        check_images(images)?;
        let x = to_device::<AB, 4>(images, &self.device)?;
        let ctx = ForwardContext {
            train: true,
            frozen_norm: self.frozen_norm,
            seed: self.seed ^ fnv1a(&self.forward_passes.to_le_bytes()),
        };
        self.forward_passes += 1;
        let logits = logits(self.precision, &self.model, x, &ctx);
        self.eval_fresh = false;
        let host = to_host(logits.clone().inner())?;
        self.pending = Some(logits);
        Ok(host)
    }

    /// Backpropagates `sum(logits * grad)`, accumulates, and steps the optimizer when asked.
    /// In a data-parallel run, a zero-row `grad` without a forward pass before it is a rank
    /// without a batch in this window: it only takes part in the step.
    pub fn backward_step(
        &mut self,
        grad: TensorRef<'_>,
        step: StepParams,
    ) -> Result<StepReport, PluginError> {
        let idle =
            self.collective.is_some() && self.pending.is_none() && grad.shape.first() == Some(&0);
        if !idle {
            self.backward(grad)?;
        }
        if !step.apply_update {
            return Ok(StepReport {
                applied: false,
                grad_norm: None.into(),
            });
        }
        let grad_norm = self.apply(step.lr)?;
        Ok(StepReport {
            applied: true,
            grad_norm: grad_norm.into(),
        })
    }

    /// Backpropagates `sum(logits * grad)` through the pending forward pass and adds the
    /// parameters' gradients to the accumulated ones.
    fn backward(&mut self, grad: TensorRef<'_>) -> Result<(), PluginError> {
        let logits = self.pending.take().ok_or_else(|| {
            PluginError::input("backward_step called without a training forward pass before it")
        })?;
        if grad.shape.as_slice() != logits.dims().as_slice() {
            return Err(PluginError::input(format!(
                "the gradient has shape {:?} but the logits have {:?}",
                grad.shape.as_slice(),
                logits.dims()
            )));
        }
        let g = to_device::<AB, 2>(grad, &self.device)?;
        let mut grads = logits.mul(g).sum().backward();
        for (name, grad) in gradients(&self.model, &mut grads) {
            let sum = match self.accum.remove(&name) {
                Some(prev) => prev.add(grad),
                None => grad,
            };
            self.accum.insert(name, sum);
        }
        Ok(())
    }

    /// Applies the optimizer to the accumulated gradients (summed across ranks first in a
    /// data-parallel run) and updates the EMA; returns the global gradient norm when clipping
    /// computed it.
    fn apply(&mut self, lr: f64) -> Result<Option<f64>, PluginError> {
        let entries = collect_inner(&self.model);
        let mut grads: Vec<(String, Tensor<Inner<AB>, 1>)> = match &self.collective {
            Some(collective) => {
                distribute::all_reduce(collective, &entries, &mut self.accum, &self.device)?
            }
            None => entries
                .iter()
                .filter_map(|e| self.accum.remove(&e.name).map(|g| (e.name.clone(), g)))
                .collect(),
        };
        self.accum.clear();
        let norm = self
            .optim
            .spec()
            .clip_grad_norm
            .into_option()
            .map(|max| clip_global_norm(&mut grads, max));
        // The entries move into the updates: the optimizer may then write a parameter that
        // only the model and its update hold in place.
        let mut by_name: HashMap<String, Entry<Inner<AB>>> =
            entries.into_iter().map(|e| (e.name.clone(), e)).collect();
        let updates = grads
            .into_iter()
            .filter_map(|(name, grad)| {
                let entry = by_name.remove(&name)?;
                Some(Update {
                    name,
                    rank: entry.shape.len(),
                    param: entry.value,
                    grad,
                })
            })
            .collect();
        let updated: HashMap<String, Tensor<Inner<AB>, 1>> =
            self.optim.step(updates, lr)?.into_iter().collect();
        self.model = assign_inner(self.model.clone(), &updated);
        self.optimizer_steps += 1;
        self.eval_fresh = false;
        self.update_ema();
        Ok(norm)
    }

    /// Moves the EMA toward the current weights when its interval has come.
    fn update_ema(&mut self) {
        let Some(spec) = self.optim.spec().ema.into_option() else {
            return;
        };
        let Some(ema) = self.ema.as_mut() else {
            return;
        };
        if !self
            .optimizer_steps
            .is_multiple_of(u64::from(spec.update_interval))
        {
            return;
        }
        let n = ema.updates as f64;
        let decay = if spec.warmup {
            spec.decay.min((1.0 + n) / (10.0 + n))
        } else {
            spec.decay
        };
        let current: HashMap<String, Tensor<Inner<AB>, 1>> = collect_inner(&self.model)
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect();
        let averaged: HashMap<String, Tensor<Inner<AB>, 1>> = collect(&ema.model)
            .into_iter()
            .filter_map(|e| {
                let w = current.get(&e.name)?;
                let v = e
                    .value
                    .mul_scalar(decay)
                    .add(w.clone().mul_scalar(1.0 - decay));
                Some((e.name, v))
            })
            .collect();
        ema.model = assign(ema.model.clone(), &averaged);
        ema.updates += 1;
    }

    /// Brings the evaluation copy up to date with the trained weights.
    fn sync_eval(&mut self) {
        if self.eval_fresh {
            return;
        }
        let values: HashMap<String, Tensor<Inner<AB>, 1>> = collect_inner(&self.model)
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect();
        self.eval_model = assign(self.eval_model.clone(), &values);
        self.eval_fresh = true;
    }

    /// The inference model for `weights`.
    fn inference_model(&mut self, weights: WeightSet) -> Result<&F::Model<Inner<AB>>, PluginError> {
        match weights {
            WeightSet::Raw => {
                self.sync_eval();
                Ok(&self.eval_model)
            }
            WeightSet::Ema => self.ema.as_ref().map(|e| &e.model).ok_or_else(no_ema),
        }
    }

    /// Inference forward pass without autodiff.
    pub fn eval_forward(
        &mut self,
        images: TensorRef<'_>,
        weights: WeightSet,
    ) -> Result<clshost_plugin_api::Tensor, PluginError> {
        check_images(images)?;
        let x = to_device::<Inner<AB>, 4>(images, &self.device)?;
        let precision = self.precision;
        let model = self.inference_model(weights)?;
        to_host(logits(precision, model, x, &ForwardContext::EVAL))
    }

    /// The weights and buffers by name.
    pub fn named_weights(&self, weights: WeightSet) -> Result<Vec<NamedTensor>, PluginError> {
        match weights {
            WeightSet::Raw => to_named(collect_inner(&self.model)),
            WeightSet::Ema => to_named(collect(&self.ema.as_ref().ok_or_else(no_ema)?.model)),
        }
    }

    /// The graph with the chosen weights.
    pub fn graph(&self, weights: WeightSet) -> Result<ModelGraph, PluginError> {
        let named = self.named_weights(weights)?;
        let mut builder = GraphBuilder::new();
        let output = self.model.graph(&mut builder, "input")?;
        builder.finish("input", &output, self.num_classes, named)
    }

    /// Loads weights by name, reporting every key that did not fit. Resets the EMA to the new
    /// weights and drops accumulated gradients.
    pub fn load_weights(
        &mut self,
        family: &F,
        weights: Vec<NamedTensor>,
        options: LoadWeightsOptions,
    ) -> Result<LoadReport, PluginError> {
        let entries = collect_inner(&self.model);
        let mut provided: HashMap<String, NamedTensor> = weights
            .into_iter()
            .map(|w| (w.name.to_string(), w))
            .collect();
        let mut report = LoadReport::default();
        let mut values = HashMap::new();
        let mut reinit = HashSet::new();
        for e in &entries {
            match provided.remove(&e.name) {
                None => report.missing.push(e.name.clone().into()),
                Some(w) if w.tensor.shape.as_slice() != e.shape.as_slice() => {
                    if options.reinit_mismatched_head && family.is_head(&e.name) {
                        report.reinitialized.push(e.name.clone().into());
                        reinit.insert(e.name.clone());
                    } else {
                        report.mismatched.push(ShapeMismatch {
                            name: e.name.clone().into(),
                            expected: e.shape.clone().into(),
                            found: w.tensor.shape.clone(),
                        });
                    }
                }
                Some(w) => {
                    let numel = e.shape.iter().product::<usize>();
                    let data = TensorData::new(w.tensor.data.to_vec(), [numel]);
                    values.insert(e.name.clone(), Tensor::from_data(data, &self.device));
                }
            }
        }
        let mut unexpected: Vec<RString> = provided
            .into_keys()
            .filter(|k| !is_ignored_key(k))
            .map(RString::from)
            .collect();
        unexpected.sort();
        report.unexpected = unexpected.into();
        if options.strict
            && !(report.missing.is_empty()
                && report.unexpected.is_empty()
                && report.mismatched.is_empty())
        {
            return Err(PluginError::input(format!(
                "the weights do not fit the model: {}",
                describe(&report)
            )));
        }
        report.loaded = values.len() as u64;
        values.extend(initial_values::<Inner<AB>, F>(
            family,
            &entries,
            self.seed,
            &self.device,
            |name| reinit.contains(name),
        ));
        for name in &reinit {
            tracing::info!(
                "re-initialized `{name}`: the loaded weights have another shape (class count)"
            );
        }
        self.model = assign_inner(self.model.clone(), &values);
        self.after_weights_change(family);
        Ok(report)
    }

    /// Resets derived state after the weights were replaced.
    fn after_weights_change(&mut self, family: &F) {
        self.eval_fresh = false;
        self.accum.clear();
        self.pending = None;
        if let Some(ema) = self.ema.as_mut() {
            ema.model = inner_copy::<AB, F>(family, self.num_classes, &self.model, &self.device);
            ema.updates = 0;
        }
    }

    /// The complete training state as bytes.
    pub fn save_state(&self) -> Result<Vec<u8>, PluginError> {
        let saved = SavedState {
            model: to_named(collect_inner(&self.model))?,
            ema: match &self.ema {
                Some(ema) => Some((to_named(collect(&ema.model))?, ema.updates)),
                None => None,
            },
            optimizer_kind: self.optim.spec().kind,
            optimizer: self
                .optim
                .state
                .iter()
                .map(|(name, s)| {
                    Ok(state::SavedParamState {
                        name: name.clone(),
                        step: s.step,
                        first: s.first.clone().map(to_host).transpose()?,
                        second: s.second.clone().map(to_host).transpose()?,
                    })
                })
                .collect::<Result<_, PluginError>>()?,
            accum: self
                .accum
                .iter()
                .map(|(name, g)| Ok((name.clone(), to_host(g.clone())?)))
                .collect::<Result<_, PluginError>>()?,
            optimizer_steps: self.optimizer_steps,
            forward_passes: self.forward_passes,
            seed: self.seed,
        };
        state::encode(&saved)
    }

    /// Restores a state written by [`Session::save_state`].
    pub fn load_state(&mut self, family: &F, bytes: &[u8]) -> Result<(), PluginError> {
        let saved = state::decode(bytes)?;
        if saved.optimizer_kind != self.optim.spec().kind {
            return Err(PluginError::input(format!(
                "the state was saved with the {:?} optimizer, this run uses {:?}",
                saved.optimizer_kind,
                self.optim.spec().kind
            )));
        }
        let entries = collect_inner(&self.model);
        let values = self.exact_values(&entries, saved.model, "model")?;
        self.model = assign_inner(self.model.clone(), &values);
        self.after_weights_change(family);
        if let (Some(ema), Some((weights, updates))) = (self.ema.as_mut(), saved.ema) {
            let values = exact_values::<Inner<AB>>(&entries, weights, "ema", &self.device)?;
            ema.model = assign(ema.model.clone(), &values);
            ema.updates = updates;
        }
        let flat = |t: clshost_plugin_api::Tensor| {
            let n = t.data.len();
            Tensor::<Inner<AB>, 1>::from_data(TensorData::new(t.data.into_vec(), [n]), &self.device)
        };
        self.optim.state = saved
            .optimizer
            .into_iter()
            .map(|s| {
                let state = crate::optim::ParamState {
                    step: s.step,
                    first: s.first.map(flat),
                    second: s.second.map(flat),
                };
                (s.name, state)
            })
            .collect();
        self.accum = saved.accum.into_iter().map(|(n, t)| (n, flat(t))).collect();
        self.optimizer_steps = saved.optimizer_steps;
        self.forward_passes = saved.forward_passes;
        self.seed = saved.seed;
        Ok(())
    }

    fn exact_values(
        &self,
        entries: &[Entry<Inner<AB>>],
        saved: Vec<NamedTensor>,
        part: &str,
    ) -> Result<HashMap<String, Tensor<Inner<AB>, 1>>, PluginError> {
        exact_values::<Inner<AB>>(entries, saved, part, &self.device)
    }
}

/// Values for every entry from a saved list that must match the model exactly.
fn exact_values<B: Backend>(
    entries: &[Entry<B>],
    saved: Vec<NamedTensor>,
    part: &str,
    device: &B::Device,
) -> Result<HashMap<String, Tensor<B, 1>>, PluginError> {
    let mut saved: HashMap<String, clshost_plugin_api::Tensor> = saved
        .into_iter()
        .map(|w| (w.name.to_string(), w.tensor))
        .collect();
    let mut values = HashMap::new();
    for e in entries {
        let t = saved.remove(&e.name).ok_or_else(|| {
            PluginError::input(format!("the saved state lacks {part} weight `{}`", e.name))
        })?;
        if t.shape.as_slice() != e.shape.as_slice() {
            return Err(PluginError::input(format!(
                "saved {part} weight `{}` has shape {:?}, the model has {:?}",
                e.name,
                t.shape.as_slice(),
                e.shape
            )));
        }
        let n = t.data.len();
        values.insert(
            e.name.clone(),
            Tensor::from_data(TensorData::new(t.data.into_vec(), [n]), device),
        );
    }
    if let Some(extra) = saved.keys().next() {
        return Err(PluginError::input(format!(
            "the saved state has {part} weight `{extra}`, which this model lacks"
        )));
    }
    Ok(values)
}

fn no_ema() -> PluginError {
    PluginError::input("EMA weights were asked for, but the optimizer keeps no EMA")
}

/// Checks that an image batch is `[N, 3, H, W]`.
fn check_images(images: TensorRef<'_>) -> Result<(), PluginError> {
    let [_, c, _, _] = images.dims4()?;
    if c != 3 {
        return Err(PluginError::input(format!(
            "expected RGB images [N, 3, H, W], got shape {:?}",
            images.shape.as_slice()
        )));
    }
    Ok(())
}

/// The family's initial values of the entries `select` picks, each drawn from a generator seeded
/// by `seed` and the entry's name.
fn initial_values<B: Backend, F: ModelFamily>(
    family: &F,
    entries: &[Entry<B>],
    seed: u64,
    device: &B::Device,
    select: impl Fn(&str) -> bool,
) -> HashMap<String, Tensor<B, 1>> {
    entries
        .iter()
        .filter(|e| select(&e.name))
        .filter_map(|e| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv1a(e.name.as_bytes()));
            let values = family.initial_value(&e.name, &e.shape, &mut rng)?;
            let n = values.len();
            assert_eq!(
                n,
                e.shape.iter().product::<usize>(),
                "initial value of `{}` has the wrong size",
                e.name
            );
            Some((
                e.name.clone(),
                Tensor::from_data(TensorData::new(values, [n]), device),
            ))
        })
        .collect()
}

/// A model on the inner backend holding the autodiff model's current values.
fn inner_copy<AB: AutodiffBackend, F: ModelFamily>(
    family: &F,
    num_classes: usize,
    model: &F::Model<AB>,
    device: &AB::Device,
) -> F::Model<Inner<AB>> {
    let values: HashMap<String, Tensor<Inner<AB>, 1>> = collect_inner(model)
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect();
    assign(family.init::<Inner<AB>>(num_classes, device), &values)
}

#[cfg(all(test, feature = "libtorch"))]
mod tests {
    //! The optimizer step on LibTorch ([`crate::libtorch::optim`]) writes the model's parameters in
    //! place once they are the model's alone, and never through memory the EMA or the evaluation
    //! copy share with them.

    use burn::backend::Autodiff;
    use burn::module::Module;
    use burn_tch::{LibTorch, LibTorchDevice};
    use clshost_plugin_api::{EmaSpec, OptimizerKind, StepParams, Tensor as HostTensor};
    use rand::Rng;

    use super::*;
    use crate::nn::Linear;

    /// A linear classifier over the flattened pixels.
    #[derive(Module, Debug)]
    struct Probe<B: Backend> {
        fc: Linear<B>,
    }

    impl<B: Backend> ClassifierModel<B> for Probe<B> {
        fn forward(&self, images: Tensor<B, 4>, _ctx: &ForwardContext) -> Tensor<B, 2> {
            let [n, c, h, w] = images.dims();
            self.fc.forward(images.reshape([n, c * h * w]))
        }

        fn graph(&self, _graph: &mut GraphBuilder, _input: &str) -> Result<String, PluginError> {
            Err(PluginError::unsupported("the probe model has no graph"))
        }
    }

    struct ProbeFamily;

    impl ModelFamily for ProbeFamily {
        type Model<B: Backend> = Probe<B>;

        fn init<B: Backend>(&self, num_classes: usize, device: &B::Device) -> Probe<B> {
            Probe {
                fc: Linear::new(12, num_classes, device),
            }
        }

        fn initial_value(
            &self,
            _: &str,
            shape: &[usize],
            rng: &mut ChaCha8Rng,
        ) -> Option<Vec<f32>> {
            let n = shape.iter().product();
            Some((0..n).map(|_| rng.random_range(-0.5..0.5)).collect())
        }

        fn is_head(&self, _: &str) -> bool {
            true
        }
    }

    type Probed = Session<Autodiff<LibTorch>, ProbeFamily>;

    fn session() -> Probed {
        let spec = OptimizerSpec {
            kind: OptimizerKind::Sgd,
            momentum: 0.9,
            nesterov: false,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-4,
            norm_bias_weight_decay: 0.0,
            clip_grad_norm: None.into(),
            ema: Some(EmaSpec {
                decay: 0.5,
                update_interval: 1,
                warmup: false,
            })
            .into(),
        };
        Session::new(&ProbeFamily, 3, LibTorchDevice::Cpu, spec, 7).unwrap()
    }

    fn step(session: &mut Probed) {
        let images = HostTensor::new(vec![2, 3, 2, 2], (0..24).map(|i| i as f32 / 24.0).collect());
        let grad = HostTensor::new(vec![2, 3], vec![0.1, -0.2, 0.3, -0.1, 0.2, -0.3]).unwrap();
        session.forward(images.unwrap().view()).unwrap();
        let params = StepParams {
            lr: 0.1,
            apply_update: true,
        };
        session.backward_step(grad.view(), params).unwrap();
    }

    /// The elements of `fc.weight` in `weights`.
    fn weight(session: &Probed, weights: WeightSet) -> Vec<f32> {
        let named = session.named_weights(weights).unwrap();
        let found = named.iter().find(|t| t.name.as_str() == "fc.weight");
        found.unwrap().tensor.data.to_vec()
    }

    /// Where the model's `fc.weight` lives.
    fn address(session: &Probed) -> usize {
        let entries = collect_inner(&session.model);
        let entry = entries.into_iter().find(|e| e.name == "fc.weight").unwrap();
        entry.value.into_primitive().tensor().tensor.data_ptr() as usize
    }

    #[test]
    fn steps_write_parameters_in_place_but_not_what_the_ema_and_evaluation_share() {
        let mut session = session();
        let initial = weight(&session, WeightSet::Raw);
        step(&mut session);
        // The EMA started as the model's own tensors: the first step must not write them.
        let trained = weight(&session, WeightSet::Raw);
        let ema = weight(&session, WeightSet::Ema);
        for ((e, w0), w1) in ema.iter().zip(&initial).zip(&trained) {
            assert!(
                (e - (w0 + w1) / 2.0).abs() < 1e-6,
                "EMA {e}, from {w0} and {w1}"
            );
        }
        assert_ne!(initial, trained);

        let before = address(&session);
        step(&mut session);
        assert_eq!(
            address(&session),
            before,
            "the second step copied the weights"
        );

        // The evaluation copy now shares the weights: the next step writes a copy.
        let x = HostTensor::new(vec![1, 3, 2, 2], vec![0.5; 12]).unwrap();
        session.eval_forward(x.view(), WeightSet::Raw).unwrap();
        let evaluated = collect(&session.eval_model);
        let shared = evaluated.iter().find(|e| e.name == "fc.weight").unwrap();
        let seen: Vec<f32> = shared.value.to_data().to_vec().unwrap();
        step(&mut session);
        let kept: Vec<f32> = shared.value.to_data().to_vec().unwrap();
        assert_eq!(seen, kept, "the step wrote the evaluation copy's weights");
        assert_ne!(weight(&session, WeightSet::Raw), seen);
    }
}
