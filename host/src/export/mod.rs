//! The export stage, at the end of a finished run: it takes the trained backbone and the
//! weights that scored best, and gives the files of every exporter of the recipe in
//! `RUN_DIR/export/`. Each exporter writes its files from the chosen weights into a staging
//! folder, `RUN_DIR/.export-staging/`, where they are checked against the backbone's own eval
//! logits on a sample validation batch; only checked files are moved into `export/`, each
//! synced and renamed into place ([`rundir::publish`]). So a kill or a full disk during an
//! export never leaves a truncated file in `export/` (a previous export's file stays whole),
//! and what a killed export left in the staging folder is cleared by the next one. A failed
//! check is an error: the run fails loudly (its checkpoints are already on disk).

use std::fs;
use std::path::{Path, PathBuf};

use abi_stable::std_types::Tuple2;
use anyhow::Context;
use clshost_plugin_api::{ExportMeta, ModelGraph, TensorRef, WeightSet};
use serde::Serialize;

use crate::recipe::{Recipe, Resolved};
use crate::registry::{Backbone, ComponentError, Exporter, Registry};
use crate::rundir::{self, WriteError};
use crate::train::{Monitor, Trainer};

/// Why the export stage failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// An exporter or the backbone failed; the error names the component.
    #[error(transparent)]
    Component(#[from] ComponentError),
    /// A file could not be moved into place, or the staging folder prepared.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// An exporter named a file outside the folder it was given.
    #[error(
        "exporter `{exporter}` wrote {} outside the folder it was given ({})",
        file.display(),
        dir.display()
    )]
    Outside {
        /// The exporter component.
        exporter: String,
        /// The file it reported.
        file: PathBuf,
        /// The folder it was given.
        dir: PathBuf,
    },
}

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
/// the logits of `sample` (an `[N, 3, H, W]` batch). Exporters write into `staging` (emptied
/// first, removed at the end); each exporter's files move into `out_dir` once verified. The
/// exported models compute in float32, so a backbone trained in another precision is switched
/// to `fp32` first and checked in it.
pub fn export_all(
    exporters: &[Exporter],
    backbone: &mut Backbone,
    weights: WeightSet,
    meta: &ExportMeta,
    (staging, out_dir): (&Path, &Path),
    sample: (&[usize], &[f32]),
) -> Result<Vec<Exported>, ExportError> {
    backbone.set_precision("fp32")?;
    let graph = backbone.graph(weights)?;
    let inputs = TensorRef {
        shape: sample.0.into(),
        data: sample.1.into(),
    };
    let expected = backbone.eval_forward(inputs, weights)?;
    let _ = fs::remove_dir_all(staging);
    fs::create_dir_all(staging).map_err(rundir::at(staging))?;
    let result = exporters
        .iter()
        .map(|exporter| {
            export_one(
                exporter,
                (&graph, meta),
                (inputs, expected.view()),
                (staging, out_dir),
            )
        })
        .collect();
    let _ = fs::remove_dir_all(staging);
    result
}

/// Runs `exporter` into `staging`, verifies its files against `expected` and moves them into
/// `out_dir`.
fn export_one(
    exporter: &Exporter,
    (graph, meta): (&ModelGraph, &ExportMeta),
    (inputs, expected): (TensorRef<'_>, TensorRef<'_>),
    (staging, out_dir): (&Path, &Path),
) -> Result<Exported, ExportError> {
    let name = exporter.origin().name.clone();
    let staged = exporter.export(graph, meta, staging)?;
    let report = exporter.verify(&staged, graph, inputs, expected)?;
    let mut files = Vec::with_capacity(staged.len());
    for file in staged {
        let Ok(relative) = file.strip_prefix(staging) else {
            return Err(ExportError::Outside {
                exporter: name,
                file,
                dir: staging.to_path_buf(),
            });
        };
        let target = out_dir.join(relative);
        rundir::publish(&file, &target)?;
        files.push(target);
    }
    Ok(Exported {
        exporter: name,
        files,
        max_abs_diff: report.max_abs_diff.into_option(),
        detail: report.detail.to_string(),
    })
}

/// Exports the weights `weights` of `trainer`'s backbone with every exporter of the recipe
/// (`resolved`, whose plugins `registry` holds), checked on the first validation batch. A
/// recipe without exporters writes nothing.
pub fn export_run(
    trainer: &mut Trainer,
    registry: &Registry,
    resolved: &Resolved,
    weights: WeightSet,
) -> anyhow::Result<Vec<Exported>> {
    let recipe = &resolved.recipe;
    let exporters = recipe
        .export
        .iter()
        .map(|c| registry.new_exporter(&c.name, &c.params))
        .collect::<Result<Vec<_>, _>>()?;
    if exporters.is_empty() {
        return Ok(Vec::new());
    }
    let sample = trainer
        .parts()
        .val
        .epoch(0)
        .next()
        .context("no validation image could be read for the export check")??;
    let out_dir = trainer.run_dir()?.subdir("export")?;
    let staging = trainer.run_dir()?.file(".export-staging");
    let meta = export_meta(resolved, &trainer.parts().classes, &trainer.state.monitor);
    export_all(
        &exporters,
        trainer.backbone(),
        weights,
        &meta,
        (&staging, &out_dir),
        (&sample.shape, &sample.images),
    )
    .context("export failed (the checkpoints are saved)")
}

/// What the exporters record beside the model: the recipe, the classes, the eval
/// preprocessing, and the best value of the monitored metric.
fn export_meta(resolved: &Resolved, classes: &[String], monitor: &Monitor) -> ExportMeta {
    let recipe: &Recipe = &resolved.recipe;
    let d = &recipe.data;
    let mut extra = vec![
        Tuple2("clshost_version".into(), env!("CARGO_PKG_VERSION").into()),
        Tuple2("eval_resize".into(), d.eval_resize.to_string().into()),
    ];
    if let (Some(v), Some(e)) = (monitor.best, monitor.best_epoch) {
        extra.push(Tuple2(
            format!("best_{}", recipe.trainer.monitor).into(),
            v.to_string().into(),
        ));
        extra.push(Tuple2("best_epoch".into(), e.to_string().into()));
    }
    ExportMeta {
        recipe_name: recipe.name.as_str().into(),
        recipe: resolved.to_ron().into(),
        backbone: recipe.model.name.as_str().into(),
        class_names: classes.iter().map(|c| c.as_str().into()).collect(),
        input_height: d.eval_crop.0,
        input_width: d.eval_crop.1,
        mean: [d.mean.0, d.mean.1, d.mean.2],
        std: [d.std.0, d.std.1, d.std.2],
        extra: extra.into(),
    }
}
