//! [`BurnBackbone`]: a [`ModelFamily`] on the device the recipe names, with every method of the
//! backbone contract. A plugin's `Backbone` impl delegates to it.

use std::panic::{self, AssertUnwindSafe};

use burn::backend::Autodiff;
use burn_flex::{Flex, FlexDevice};
use clshost_plugin_api::{
    BackboneContext, BackboneSummary, CollectiveBox, LoadReport, LoadWeightsOptions, ModelGraph,
    NamedTensor, PluginError, StepParams, StepReport, Tensor, TensorRef, TuneReport, TuneSpec,
    WeightSet,
};

use crate::device::{DeviceChoice, available_devices, cpu_threads};
use crate::model::ModelFamily;
use crate::optim::check_spec;
use crate::precision::Precision;
use crate::session::Session;

/// The training session on the backend the device needs.
enum Engine<F: ModelFamily> {
    Cpu(Session<Autodiff<Flex>, F>),
    #[cfg(feature = "wgpu")]
    Wgpu(Session<Autodiff<burn::backend::Wgpu>, F>),
    #[cfg(feature = "cuda")]
    Cuda(Session<Autodiff<burn::backend::Cuda>, F>),
    #[cfg(feature = "libtorch")]
    LibTorch(Session<Autodiff<burn_tch::LibTorch>, F>),
}

/// Runs `$body` with `$t` bound to the engine's session, whatever its backend.
macro_rules! with_session {
    ($engine:expr, $t:ident => $body:expr) => {
        match $engine {
            Engine::Cpu($t) => $body,
            #[cfg(feature = "wgpu")]
            Engine::Wgpu($t) => $body,
            #[cfg(feature = "cuda")]
            Engine::Cuda($t) => $body,
            #[cfg(feature = "libtorch")]
            Engine::LibTorch($t) => $body,
        }
    };
}

/// A Burn model family trained on one device: the whole backbone contract.
pub struct BurnBackbone<F: ModelFamily> {
    family: F,
    engine: Engine<F>,
    device: String,
}

impl<F: ModelFamily> BurnBackbone<F> {
    /// Builds the family's model on the context's device, initialized from its seed.
    pub fn new(family: F, ctx: &BackboneContext) -> Result<Self, PluginError> {
        check_spec(&ctx.optimizer)?;
        if ctx.num_classes == 0 {
            return Err(PluginError::config("num_classes", "must be at least 1"));
        }
        let choice = DeviceChoice::parse(ctx.device.as_str())?;
        let classes = ctx.num_classes as usize;
        let (spec, seed) = (ctx.optimizer, ctx.seed);
        let built = panic::catch_unwind(AssertUnwindSafe(|| -> Result<_, PluginError> {
            Ok(match choice {
                DeviceChoice::Cpu => {
                    let threads = cpu_threads();
                    let label = format!("cpu (flex, {threads} threads)");
                    (
                        Engine::Cpu(Session::new(&family, classes, FlexDevice, spec, seed)?),
                        label,
                    )
                }
                #[cfg(feature = "wgpu")]
                DeviceChoice::Wgpu(index) => {
                    use burn::backend::wgpu::WgpuDevice;
                    let device = match index {
                        None => WgpuDevice::DefaultDevice,
                        Some(n) => WgpuDevice::DiscreteGpu(n),
                    };
                    let label = format!("{} (wgpu, {device:?})", ctx.device);
                    (
                        Engine::Wgpu(Session::new(&family, classes, device, spec, seed)?),
                        label,
                    )
                }
                #[cfg(feature = "cuda")]
                DeviceChoice::Cuda(index) => {
                    let found = crate::devices::cuda_device(index).map_err(|problem| {
                        PluginError::device(format!(
                            "device `{}` is unavailable on this machine: {problem}",
                            ctx.device
                        ))
                    })?;
                    let device = burn::backend::cuda::CudaDevice::new(index);
                    let label = format!("cuda:{index} ({}, {})", found.name, found.detail);
                    (
                        Engine::Cuda(Session::new(&family, classes, device, spec, seed)?),
                        label,
                    )
                }
                #[cfg(feature = "libtorch")]
                DeviceChoice::LibTorch(torch) => {
                    let (device, label) = crate::libtorch::open(torch).map_err(|problem| {
                        PluginError::device(format!(
                            "device `{}` is unavailable on this machine: {problem}",
                            ctx.device
                        ))
                    })?;
                    (
                        Engine::LibTorch(Session::new(&family, classes, device, spec, seed)?),
                        label,
                    )
                }
                #[allow(unreachable_patterns)]
                other => {
                    let feature = match other {
                        DeviceChoice::LibTorch(_) => {
                            "`--features libtorch` (after `eval \"$(scripts/setup-libtorch.sh)\"`)"
                        }
                        DeviceChoice::Cuda(_) => "`--features cuda`",
                        _ => "`--features wgpu`",
                    };
                    return Err(PluginError::unsupported(format!(
                        "device `{}` is not in this build, which offers {}; rebuild the plugin \
                         with {feature}",
                        ctx.device,
                        available_devices()
                    )));
                }
            })
        }));
        let (engine, device) = match built {
            Ok(result) => result?,
            Err(payload) => {
                return Err(PluginError::device(format!(
                    "device `{}` is unavailable on this machine: {}",
                    ctx.device,
                    clshost_plugin_api::panic_message(payload.as_ref())
                )));
            }
        };
        Ok(BurnBackbone {
            family,
            engine,
            device,
        })
    }

    /// The family the model belongs to.
    pub fn family(&self) -> &F {
        &self.family
    }

    /// Where it runs and how many trainable parameters it has.
    pub fn summary(&self) -> Result<BackboneSummary, PluginError> {
        let num_parameters = with_session!(&self.engine, t => t.num_parameters());
        Ok(BackboneSummary {
            device: self.device.clone().into(),
            num_parameters,
        })
    }

    /// Training forward pass, keeping the autodiff graph.
    pub fn forward(&mut self, images: TensorRef<'_>) -> Result<Tensor, PluginError> {
        with_session!(&mut self.engine, t => t.forward(images))
    }

    /// Backpropagates `sum(logits * grad_logits)`, accumulates, and steps when asked.
    pub fn backward_step(
        &mut self,
        grad_logits: TensorRef<'_>,
        step: StepParams,
    ) -> Result<StepReport, PluginError> {
        with_session!(&mut self.engine, t => t.backward_step(grad_logits, step))
    }

    /// Inference forward pass with the raw or EMA weights.
    pub fn eval_forward(
        &mut self,
        images: TensorRef<'_>,
        weights: WeightSet,
    ) -> Result<Tensor, PluginError> {
        with_session!(&mut self.engine, t => t.eval_forward(images, weights))
    }

    /// The complete training state as bytes.
    pub fn save_state(&self) -> Result<Vec<u8>, PluginError> {
        with_session!(&self.engine, t => t.save_state())
    }

    /// Restores a state written by [`BurnBackbone::save_state`].
    pub fn load_state(&mut self, state: &[u8]) -> Result<(), PluginError> {
        let family = &self.family;
        with_session!(&mut self.engine, t => t.load_state(family, state))
    }

    /// The weights and buffers by name.
    pub fn named_weights(&self, weights: WeightSet) -> Result<Vec<NamedTensor>, PluginError> {
        with_session!(&self.engine, t => t.named_weights(weights))
    }

    /// Loads weights by name with a report of what did not fit.
    pub fn load_weights(
        &mut self,
        weights: Vec<NamedTensor>,
        options: LoadWeightsOptions,
    ) -> Result<LoadReport, PluginError> {
        let family = &self.family;
        with_session!(&mut self.engine, t => t.load_weights(family, weights, options))
    }

    /// The framework-neutral graph with the chosen weights.
    pub fn graph(&self, weights: WeightSet) -> Result<ModelGraph, PluginError> {
        with_session!(&self.engine, t => t.graph(weights))
    }

    /// Applies fine-tuning controls (plugin ABI 1.3): freezing, parameter groups, layer-wise
    /// learning-rate decay, frozen normalization statistics; see [`crate::tune`].
    pub fn tune(&mut self, spec: &TuneSpec) -> Result<TuneReport, PluginError> {
        let family = &self.family;
        with_session!(&mut self.engine, t => t.tune(family, spec))
    }

    /// Trains data-parallel through `collective` (plugin ABI 1.5): gradients are summed across
    /// ranks before each optimizer step; see [`crate::distribute`].
    pub fn distribute(&mut self, collective: CollectiveBox) -> Result<(), PluginError> {
        with_session!(&mut self.engine, t => t.distribute(collective));
        Ok(())
    }

    /// Computes in `precision` (plugin ABI 1.6; `fp32` or `bf16`, see [`crate::precision`]) from
    /// now on. `bf16` runs on the LibTorch backend only; the other devices refuse it.
    pub fn set_precision(&mut self, precision: &str) -> Result<(), PluginError> {
        let precision = Precision::parse(precision)?;
        match &mut self.engine {
            #[cfg(feature = "libtorch")]
            Engine::LibTorch(t) => t.set_precision(precision),
            _ if precision == Precision::Fp32 => {}
            _ => {
                return Err(PluginError::unsupported(format!(
                    "precision `bf16` runs on the LibTorch backend only (`libtorch:cpu`, \
                     `libtorch:cuda`), and this backbone runs on {}: build the plugin with \
                     `--features libtorch` and choose a libtorch device, or train in `fp32`",
                    self.device
                )));
            }
        }
        Ok(())
    }
}
