//! [`BurnBackbone`]: a [`ModelFamily`] on the device the recipe names, with every method of the
//! backbone contract. A plugin's `Backbone` impl delegates to it.

use std::panic::{self, AssertUnwindSafe};

use burn::backend::Autodiff;
use burn_flex::{Flex, FlexDevice};
use clshost_plugin_api::{
    BackboneContext, BackboneSummary, LoadReport, LoadWeightsOptions, ModelGraph, NamedTensor,
    PluginError, StepParams, StepReport, Tensor, TensorRef, WeightSet,
};

use crate::model::ModelFamily;
use crate::optim::check_spec;
use crate::trainer::Trainer;

/// A compute device parsed from a recipe's `device` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// `cpu`: Burn's flex backend, on all cores through rayon.
    Cpu,
    /// `wgpu` (the default adapter) or `wgpu:N` (the N-th discrete GPU).
    Wgpu(Option<usize>),
    /// `cuda` or `cuda:N`.
    Cuda(usize),
    /// `libtorch:cpu`, `libtorch:cuda` or `libtorch:cuda:N`: PyTorch's ATen kernels.
    LibTorch(TorchDevice),
}

/// Where the LibTorch backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchDevice {
    /// `libtorch:cpu`.
    Cpu,
    /// `libtorch:cuda` (ordinal 0) or `libtorch:cuda:N`.
    Cuda(usize),
}

/// The devices this build can run on, in words.
pub fn available_devices() -> String {
    let mut devices = vec!["cpu"];
    if cfg!(feature = "wgpu") {
        devices.extend(["wgpu", "wgpu:N"]);
    }
    if cfg!(feature = "cuda") {
        devices.extend(["cuda", "cuda:N"]);
    }
    if cfg!(feature = "libtorch") {
        devices.extend(["libtorch:cpu", "libtorch:cuda", "libtorch:cuda:N"]);
    }
    devices.join(", ")
}

impl DeviceChoice {
    /// Parses `cpu`, `wgpu`, `wgpu:N`, `cuda`, `cuda:N`, `libtorch:cpu`, `libtorch:cuda` or
    /// `libtorch:cuda:N`, whether or not this build has the backend.
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        let bad = || {
            PluginError::config(
                "device",
                format!(
                    "unknown device `{text}`; this build offers {}",
                    available_devices()
                ),
            )
        };
        let ordinal = |n: Option<&str>| -> Result<Option<usize>, PluginError> {
            n.map(|n| n.parse::<usize>().map_err(|_| bad())).transpose()
        };
        let mut parts = text.splitn(3, ':');
        let (kind, rest) = (parts.next().unwrap_or(""), parts.next());
        let tail = parts.next();
        match (kind, rest, tail) {
            ("cpu", None, _) => Ok(DeviceChoice::Cpu),
            ("wgpu", n, None) => Ok(DeviceChoice::Wgpu(ordinal(n)?)),
            ("cuda", n, None) => Ok(DeviceChoice::Cuda(ordinal(n)?.unwrap_or(0))),
            ("libtorch", Some("cpu"), None) => Ok(DeviceChoice::LibTorch(TorchDevice::Cpu)),
            ("libtorch", Some("cuda"), n) => Ok(DeviceChoice::LibTorch(TorchDevice::Cuda(
                ordinal(n)?.unwrap_or(0),
            ))),
            _ => Err(bad()),
        }
    }
}

/// The trainer on the backend the device needs.
enum Engine<F: ModelFamily> {
    Cpu(Trainer<Autodiff<Flex>, F>),
    #[cfg(feature = "wgpu")]
    Wgpu(Trainer<Autodiff<burn::backend::Wgpu>, F>),
    #[cfg(feature = "cuda")]
    Cuda(Trainer<Autodiff<burn::backend::Cuda>, F>),
    #[cfg(feature = "libtorch")]
    LibTorch(Trainer<Autodiff<burn_tch::LibTorch>, F>),
}

/// Runs `$body` with `$t` bound to the engine's trainer, whatever its backend.
macro_rules! with_trainer {
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

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown failure".to_string()
    }
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
                    let threads = crate::devices::cpu_threads();
                    let label = format!("cpu (flex, {threads} threads)");
                    (
                        Engine::Cpu(Trainer::new(&family, classes, FlexDevice, spec, seed)?),
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
                        Engine::Wgpu(Trainer::new(&family, classes, device, spec, seed)?),
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
                        Engine::Cuda(Trainer::new(&family, classes, device, spec, seed)?),
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
                        Engine::LibTorch(Trainer::new(&family, classes, device, spec, seed)?),
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
                    panic_message(payload.as_ref())
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
        let num_parameters = with_trainer!(&self.engine, t => t.num_parameters());
        Ok(BackboneSummary {
            device: self.device.clone().into(),
            num_parameters,
        })
    }

    /// Training forward pass, keeping the autodiff graph.
    pub fn forward(&mut self, images: TensorRef<'_>) -> Result<Tensor, PluginError> {
        with_trainer!(&mut self.engine, t => t.forward(images))
    }

    /// Backpropagates `sum(logits * grad_logits)`, accumulates, and steps when asked.
    pub fn backward_step(
        &mut self,
        grad_logits: TensorRef<'_>,
        step: StepParams,
    ) -> Result<StepReport, PluginError> {
        with_trainer!(&mut self.engine, t => t.backward_step(grad_logits, step))
    }

    /// Inference forward pass with the raw or EMA weights.
    pub fn eval_forward(
        &mut self,
        images: TensorRef<'_>,
        weights: WeightSet,
    ) -> Result<Tensor, PluginError> {
        with_trainer!(&mut self.engine, t => t.eval_forward(images, weights))
    }

    /// The complete training state as bytes.
    pub fn save_state(&self) -> Result<Vec<u8>, PluginError> {
        with_trainer!(&self.engine, t => t.save_state())
    }

    /// Restores a state written by [`BurnBackbone::save_state`].
    pub fn load_state(&mut self, state: &[u8]) -> Result<(), PluginError> {
        let family = &self.family;
        with_trainer!(&mut self.engine, t => t.load_state(family, state))
    }

    /// The weights and buffers by name.
    pub fn named_weights(&self, weights: WeightSet) -> Result<Vec<NamedTensor>, PluginError> {
        with_trainer!(&self.engine, t => t.named_weights(weights))
    }

    /// Loads weights by name with a report of what did not fit.
    pub fn load_weights(
        &mut self,
        weights: Vec<NamedTensor>,
        options: LoadWeightsOptions,
    ) -> Result<LoadReport, PluginError> {
        let family = &self.family;
        with_trainer!(&mut self.engine, t => t.load_weights(family, weights, options))
    }

    /// The framework-neutral graph with the chosen weights.
    pub fn graph(&self, weights: WeightSet) -> Result<ModelGraph, PluginError> {
        with_trainer!(&self.engine, t => t.graph(weights))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_unknown_ones_name_the_choices() {
        assert_eq!(DeviceChoice::parse("cpu").unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            DeviceChoice::parse("wgpu").unwrap(),
            DeviceChoice::Wgpu(None)
        );
        assert_eq!(
            DeviceChoice::parse("wgpu:1").unwrap(),
            DeviceChoice::Wgpu(Some(1))
        );
        assert_eq!(DeviceChoice::parse("cuda").unwrap(), DeviceChoice::Cuda(0));
        assert_eq!(
            DeviceChoice::parse("cuda:2").unwrap(),
            DeviceChoice::Cuda(2)
        );
        assert_eq!(
            DeviceChoice::parse("libtorch:cpu").unwrap(),
            DeviceChoice::LibTorch(TorchDevice::Cpu)
        );
        assert_eq!(
            DeviceChoice::parse("libtorch:cuda").unwrap(),
            DeviceChoice::LibTorch(TorchDevice::Cuda(0))
        );
        assert_eq!(
            DeviceChoice::parse("libtorch:cuda:3").unwrap(),
            DeviceChoice::LibTorch(TorchDevice::Cuda(3))
        );
        for bad in [
            "tpu",
            "cpu:1",
            "cuda:x",
            "cuda:1:2",
            "wgpu:0:1",
            "libtorch",
            "libtorch:gpu",
            "libtorch:cpu:0",
            "libtorch:cuda:x",
            "",
        ] {
            let err = DeviceChoice::parse(bad).unwrap_err();
            assert_eq!(err.field_path.as_str(), "device");
            assert!(err.message.contains(&available_devices()), "{err}");
        }
    }
}
