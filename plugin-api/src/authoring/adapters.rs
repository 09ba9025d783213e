//! Adapters from the authoring traits to the ABI traits: each method runs the author's code
//! under [`guard`] and converts between plain Rust and the stable types.

use std::path::{Path, PathBuf};

use abi_stable::std_types::{RResult, RSlice, RStr, RString, RVec};

use super::guard::guard;
use super::{
    Backbone, BatchAugment, ExportedModel, Exporter, ImageAugment, Logger, Loss, Metric,
    TensorAugment,
};
use crate::{
    AbiBackbone, AbiBatchAugment, AbiExportedModel, AbiExporter, AbiLogger, AbiLoss, AbiMetric,
    AbiSampleAugment, AugmentStage, BackboneSummary, EpochLog, ExportMeta, FileLog, ImageU8,
    LoadReport, LoadWeightsOptions, MetricOutput, MetricReport, ModelGraph, NamedTensor,
    PluginError, RunEnd, RunStart, StepLog, StepParams, StepReport, Tensor, TensorMut, TensorRef,
    VerifyReport, WeightSet,
};

/// Wraps an authoring-trait value so it implements the matching ABI trait.
pub(super) struct Adapter<T>(pub(super) T);

impl<T: Backbone> AbiBackbone for Adapter<T> {
    fn summary(&self) -> RResult<BackboneSummary, PluginError> {
        guard(|| self.0.summary())
    }
    fn forward(&mut self, images: TensorRef<'_>) -> RResult<Tensor, PluginError> {
        guard(|| self.0.forward(images))
    }
    fn backward_step(
        &mut self,
        grad_logits: TensorRef<'_>,
        step: StepParams,
    ) -> RResult<StepReport, PluginError> {
        guard(|| self.0.backward_step(grad_logits, step))
    }
    fn eval_forward(
        &mut self,
        images: TensorRef<'_>,
        weights: WeightSet,
    ) -> RResult<Tensor, PluginError> {
        guard(|| self.0.eval_forward(images, weights))
    }
    fn save_state(&self) -> RResult<RVec<u8>, PluginError> {
        guard(|| self.0.save_state().map(RVec::from))
    }
    fn load_state(&mut self, state: RSlice<'_, u8>) -> RResult<(), PluginError> {
        guard(|| self.0.load_state(state.as_slice()))
    }
    fn named_weights(&self, weights: WeightSet) -> RResult<RVec<NamedTensor>, PluginError> {
        guard(|| self.0.named_weights(weights).map(RVec::from))
    }
    fn load_weights(
        &mut self,
        weights: RVec<NamedTensor>,
        options: LoadWeightsOptions,
    ) -> RResult<LoadReport, PluginError> {
        guard(|| self.0.load_weights(weights.into_vec(), options))
    }
    fn graph(&self, weights: WeightSet) -> RResult<ModelGraph, PluginError> {
        guard(|| self.0.graph(weights))
    }
}

/// An image-stage sample augmentation seen through the ABI.
pub(super) struct ImageStage<T>(pub(super) T);

impl<T: ImageAugment> AbiSampleAugment for ImageStage<T> {
    fn stage(&self) -> RResult<AugmentStage, PluginError> {
        RResult::ROk(AugmentStage::Image)
    }
    fn apply_image(&self, image: ImageU8, seed: u64) -> RResult<ImageU8, PluginError> {
        guard(|| self.0.apply(image, seed))
    }
    fn apply_tensor(&self, _tensor: TensorMut<'_>, _seed: u64) -> RResult<(), PluginError> {
        RResult::RErr(stage_error(T::NAME, "image", "tensor"))
    }
}

/// A tensor-stage sample augmentation seen through the ABI.
pub(super) struct TensorStage<T>(pub(super) T);

impl<T: TensorAugment> AbiSampleAugment for TensorStage<T> {
    fn stage(&self) -> RResult<AugmentStage, PluginError> {
        RResult::ROk(AugmentStage::Tensor)
    }
    fn apply_image(&self, _image: ImageU8, _seed: u64) -> RResult<ImageU8, PluginError> {
        RResult::RErr(stage_error(T::NAME, "tensor", "image"))
    }
    fn apply_tensor(&self, tensor: TensorMut<'_>, seed: u64) -> RResult<(), PluginError> {
        guard(|| self.0.apply(tensor, seed))
    }
}

/// The error for calling a sample augmentation at the wrong stage (a host bug).
fn stage_error(name: &str, stage: &str, called: &str) -> PluginError {
    PluginError::unsupported(format!(
        "`{name}` runs at the {stage} stage and was called at the {called} stage"
    ))
}

impl<T: BatchAugment> AbiBatchAugment for Adapter<T> {
    fn apply(
        &self,
        images: TensorMut<'_>,
        targets: TensorMut<'_>,
        seed: u64,
    ) -> RResult<(), PluginError> {
        guard(|| self.0.apply(images, targets, seed))
    }
}

impl<T: Loss> AbiLoss for Adapter<T> {
    fn accepts_soft_targets(&self) -> RResult<bool, PluginError> {
        guard(|| Ok(self.0.accepts_soft_targets()))
    }
    fn compute(
        &self,
        logits: TensorRef<'_>,
        targets: TensorRef<'_>,
        grad: TensorMut<'_>,
    ) -> RResult<f64, PluginError> {
        guard(|| self.0.compute(logits, targets, grad))
    }
}

impl<T: Metric> AbiMetric for Adapter<T> {
    fn outputs(&self) -> RResult<RVec<MetricOutput>, PluginError> {
        guard(|| Ok(self.0.outputs().into()))
    }
    fn reset(&mut self) -> RResult<(), PluginError> {
        guard(|| {
            self.0.reset();
            Ok(())
        })
    }
    fn update(
        &mut self,
        logits: TensorRef<'_>,
        labels: RSlice<'_, u32>,
    ) -> RResult<(), PluginError> {
        guard(|| self.0.update(logits, labels.as_slice()))
    }
    fn compute(&self) -> RResult<MetricReport, PluginError> {
        guard(|| self.0.compute())
    }
}

impl<T: Logger> AbiLogger for Adapter<T> {
    fn start(&mut self, run: &RunStart) -> RResult<(), PluginError> {
        guard(|| self.0.start(run))
    }
    fn step(&mut self, step: &StepLog) -> RResult<(), PluginError> {
        guard(|| self.0.step(step))
    }
    fn epoch(&mut self, epoch: &EpochLog) -> RResult<(), PluginError> {
        guard(|| self.0.epoch(epoch))
    }
    fn file(&mut self, file: &FileLog) -> RResult<(), PluginError> {
        guard(|| self.0.file(file))
    }
    fn end(&mut self, end: &RunEnd) -> RResult<(), PluginError> {
        guard(|| self.0.end(end))
    }
}

impl<T: Exporter> AbiExporter for Adapter<T> {
    fn export(
        &self,
        graph: &ModelGraph,
        meta: &ExportMeta,
        out_dir: RStr<'_>,
    ) -> RResult<RVec<RString>, PluginError> {
        guard(|| {
            let files = self.0.export(graph, meta, Path::new(out_dir.as_str()))?;
            Ok(files
                .into_iter()
                .map(|p| RString::from(p.to_string_lossy().into_owned()))
                .collect())
        })
    }
    fn verify(
        &self,
        files: RSlice<'_, RString>,
        graph: &ModelGraph,
        inputs: TensorRef<'_>,
        expected: TensorRef<'_>,
    ) -> RResult<VerifyReport, PluginError> {
        guard(|| {
            let files: Vec<PathBuf> = files.iter().map(|f| PathBuf::from(f.as_str())).collect();
            self.0.verify(&files, graph, inputs, expected)
        })
    }
}

/// An [`ExportedModel`] behind the ABI trait.
pub(super) struct Opened(pub(super) Box<dyn ExportedModel>);

impl AbiExportedModel for Opened {
    fn meta(&self) -> ExportMeta {
        self.0.meta()
    }
    fn run(&mut self, images: TensorRef<'_>) -> RResult<Tensor, PluginError> {
        guard(|| self.0.run(images))
    }
    fn runner(&self) -> RString {
        self.0.runner().into()
    }
}
