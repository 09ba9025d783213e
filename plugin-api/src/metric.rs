//! The metric contract: accumulate over an epoch, then report named values.

// abi_stable 0.11's `#[sabi_trait]` expands to impls inside a generated const.
#![allow(non_local_definitions)]

use abi_stable::StableAbi;
use abi_stable::sabi_trait;
use abi_stable::std_types::{RBox, RResult, RSlice, RString, RVec};

use crate::{PluginError, TensorRef};

/// The data a metric is created with.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct MetricContext {
    /// Number of classes.
    pub num_classes: u32,
    /// Class names in class-index order.
    pub class_names: RVec<RString>,
}

/// A scalar a metric promises to report, declared before any data is seen, so the host can
/// check that a monitored metric exists.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct MetricOutput {
    /// The scalar's name (`top1`, `f1_macro`, ...).
    pub name: RString,
    /// Whether larger values are better.
    pub higher_is_better: bool,
}

/// One reported scalar.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct MetricScalar {
    /// The scalar's name, one of the declared [`MetricOutput`]s.
    pub name: RString,
    /// Its value; NaN when undefined (e.g. no samples).
    pub value: f64,
    /// Whether larger values are better.
    pub higher_is_better: bool,
}

/// A per-class vector of values.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct MetricVector {
    /// The vector's name (`f1_per_class`, ...).
    pub name: RString,
    /// One value per class, in class-index order.
    pub values: RVec<f64>,
}

/// A matrix of values, such as a confusion matrix (rows: true class, columns: predicted).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct MetricMatrix {
    /// The matrix's name (`confusion_matrix`, ...).
    pub name: RString,
    /// Number of rows.
    pub rows: u32,
    /// Number of columns.
    pub cols: u32,
    /// The values in row-major order.
    pub values: RVec<f64>,
}

/// Everything a metric reports at the end of an epoch.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Default)]
pub struct MetricReport {
    /// Named scalars.
    pub scalars: RVec<MetricScalar>,
    /// Named per-class vectors.
    pub vectors: RVec<MetricVector>,
    /// Named matrices.
    pub matrices: RVec<MetricMatrix>,
}

/// The metric contract, as crossed by the ABI. Plugin authors implement
/// [`crate::authoring::Metric`] instead.
#[sabi_trait]
pub trait AbiMetric: Send {
    /// The scalars [`AbiMetric::compute`] reports.
    fn outputs(&self) -> RResult<RVec<MetricOutput>, PluginError>;

    /// Forgets everything accumulated.
    fn reset(&mut self) -> RResult<(), PluginError>;

    /// Accumulates a batch of `[N, classes]` logits and their `N` true class indices.
    fn update(
        &mut self,
        logits: TensorRef<'_>,
        labels: RSlice<'_, u32>,
    ) -> RResult<(), PluginError>;

    /// Reports the values over everything accumulated since the last reset.
    #[sabi(last_prefix_field)]
    fn compute(&self) -> RResult<MetricReport, PluginError>;
}

/// An owned metric object.
pub type MetricBox = AbiMetric_TO<'static, RBox<()>>;
