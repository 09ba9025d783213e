//! Exports at the end of a run: every exporter of the recipe writes its files into
//! `RUN_DIR/export/` from the chosen weights, then checks them against the backbone's own
//! eval logits on a sample validation batch. A failed check is an error: the run fails loudly
//! (its checkpoints are already on disk).

use std::path::{Path, PathBuf};

use clshost_plugin_api::{ExportMeta, WeightSet};
use serde::Serialize;

use crate::registry::{Backbone, ComponentError, Exporter};

/// What one exporter wrote and how its check went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exported {
    /// The exporter component.
    pub exporter: String,
    /// The files written.
    pub files: Vec<PathBuf>,
    /// Largest absolute logit difference of the check, when the format can be run.
    pub max_abs_diff: Option<f64>,
    /// What the check did, in the exporter's words.
    pub detail: String,
}

/// Exports `backbone`'s `weights` with every exporter into `out_dir`, verifying each against
/// the logits of `sample` (an `[N, 3, H, W]` batch).
pub fn export_all(
    exporters: &[Exporter],
    backbone: &mut Backbone,
    weights: WeightSet,
    meta: &ExportMeta,
    out_dir: &Path,
    sample: (&[usize], &[f32]),
) -> Result<Vec<Exported>, ComponentError> {
    let graph = backbone.graph(weights)?;
    let inputs = clshost_plugin_api::TensorRef {
        shape: sample.0.into(),
        data: sample.1.into(),
    };
    let expected = backbone.eval_forward(inputs, weights)?;
    let mut out = Vec::new();
    for exporter in exporters {
        let files = exporter.export(&graph, meta, out_dir)?;
        let report = exporter.verify(&files, &graph, inputs, expected.view())?;
        out.push(Exported {
            exporter: exporter.origin().name.clone(),
            files,
            max_abs_diff: report.max_abs_diff.into_option(),
            detail: report.detail.to_string(),
        });
    }
    Ok(out)
}
