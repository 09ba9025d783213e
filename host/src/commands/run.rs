//! `clshost run RECIPE [--set PATH=VALUE]... [--init-from CKPT] [--output DIR]` and
//! `clshost run --resume RUN_DIR`: train a recipe end to end.
//!
//! The recipe is loaded and validated exactly as `clshost check` does; any problem fails the
//! run before data is read or a model is built. Then the run directory is created (and probed
//! for writability), the loaders, the backbone and every other component are built, and the
//! [`Trainer`] runs the epochs. At the end the best weights are loaded back, evaluated for the
//! per-class table, exported and verified, and `summary.json` is written.
//!
//! Exit status: 0 when the run finished (all epochs, early stopping or time limit), 130 when it
//! was interrupted (Ctrl-C, SIGTERM, `--stop-after-epoch`) after saving `last`, 1 on any error.

use std::path::{Path, PathBuf};
use std::time::Instant;

use abi_stable::std_types::Tuple2;
use anyhow::{Context, Result, bail};
use clap::Args;
use clshost_plugin_api::{
    AugmentContext, BackboneContext, EmaSpec, ExportMeta, LoadWeightsOptions, LossContext,
    MetricContext, NamedTensor, OptimizerKind, OptimizerSpec, WeightSet,
};

use super::check::load_valid;
use super::trained::weights_name;
use crate::data::{DataSettings, Loader, LoaderOptions, Pipeline, Sample};
use crate::exit::Exit;
use crate::output;
use crate::recipe::schema::{Mode, OptimizerName};
use crate::recipe::{Recipe, Resolved};
use crate::registry::{Backbone, BatchAugment, Loss, Metric, Registry, SearchPath};
use crate::train::checkpoint::{is_checkpoint, read_weights_file};
use crate::train::export::export_all;
use crate::train::summary::Summary;
use crate::train::trainer::monitor_column;
use crate::train::{
    BestWeights, Checkpoint, Control, Direction, Ending, HostState, Monitor, Parts, RunDir,
    StopFlag, Trainer, provenance, rundir, signal,
};

/// Arguments of `clshost run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The recipe file.
    #[arg(required_unless_present = "resume")]
    pub recipe: Option<PathBuf>,

    /// Override a recipe field with a RON value, after `base:` composition (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,

    /// Continue the run in RUN_DIR from its `checkpoints/last.ckpt`, with its `recipe.ron`.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["recipe", "overrides", "init_from", "output"])]
    pub resume: Option<PathBuf>,

    /// Start from the weights (not the optimizer state) of a checkpoint or `.safetensors` file.
    #[arg(long, value_name = "CKPT")]
    pub init_from: Option<PathBuf>,

    /// The runs directory, instead of the recipe's `output`.
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Stop as if interrupted once epoch N (from 1) is saved: writes `last` and exits 130.
    /// For tests and scripted pauses; `--resume` continues exactly.
    #[arg(long, value_name = "N", hide = true)]
    pub stop_after_epoch: Option<u32>,
}

/// Runs `clshost run`.
pub fn run(search: &SearchPath, args: &RunArgs, quiet: bool) -> Result<()> {
    let wall = Instant::now();
    let (recipe_path, overrides) = match (&args.resume, &args.recipe) {
        (Some(dir), _) => (dir.join("recipe.ron"), Vec::new()),
        (None, Some(path)) => (path.clone(), args.overrides.clone()),
        (None, None) => bail!("give a recipe, or --resume RUN_DIR"),
    };
    let (mut resolved, registry) = load_valid(search, &recipe_path, &overrides)?;
    anchor_paths(&mut resolved)?;
    let recipe = resolved.recipe.clone();
    let run = match &args.resume {
        Some(dir) => RunDir::open(dir)?,
        None => RunDir::create(
            args.output.as_deref().unwrap_or(&recipe.output),
            &recipe.name,
        )?,
    };
    let mut parts = build(&recipe, &registry)?;
    let state = match &args.resume {
        Some(_) => {
            let ckpt = Checkpoint::load(&run.file("checkpoints/last.ckpt"))?;
            parts.backbone.load_state(&ckpt.backbone)?;
            ckpt.host
        }
        None => {
            let ctx = backbone_context(&recipe, parts.classes.len() as u32);
            let sources = [
                (recipe.model.weights.as_deref(), "model.weights"),
                (args.init_from.as_deref(), "--init-from"),
            ];
            for (path, what) in sources {
                if let Some(path) = path {
                    let weights = weights_of(&registry, &recipe, &ctx, path)
                        .with_context(|| format!("{what} {}", path.display()))?;
                    load_weights(&mut parts.backbone, weights, path, what)?;
                }
            }
            rundir::atomic_write(&run.file("recipe.ron"), resolved.to_ron().as_bytes())?;
            fresh_state(&recipe, parts.direction, &parts.classes)
        }
    };
    let used = provenance::plugins_used(&recipe, &registry)?;
    rundir::atomic_write(
        &run.file("plugins.json"),
        (serde_json::to_string_pretty(&used)? + "\n").as_bytes(),
    )?;
    let stop = StopFlag::new();
    signal::on_interrupt(&stop)?;
    let summary = parts.backbone.summary()?;
    output::print(&format!(
        "{} {}: {} ({} parameters) on {}, {} train / {} val images in {} classes\nrun directory: {}\n",
        if args.resume.is_some() {
            "resuming"
        } else {
            "training"
        },
        recipe.name,
        recipe.model.name,
        summary.num_parameters,
        summary.device,
        parts.train.len(),
        parts.val.len(),
        parts.classes.len(),
        run.path().display()
    ))?;
    let control = Control {
        stop,
        stop_after_epoch: args.stop_after_epoch,
        quiet,
    };
    let fresh = args.resume.is_none();
    let mut trainer = Trainer::new(parts, run, state, control);
    if fresh {
        trainer.save_last()?;
    }
    let ending = trainer.train()?;
    let run_dir = trainer.run_dir().path().to_path_buf();
    if ending == Ending::Interrupted {
        let s = &trainer.state;
        let at = match s.batches_done {
            0 => format!("after epoch {}", s.epoch),
            n => format!("in epoch {} after step {n}", s.epoch + 1),
        };
        return Err(Exit {
            code: 130,
            message: format!(
                "stopped {at}; `last` is saved\nresume with: clshost run --resume {}",
                run_dir.display()
            ),
        }
        .into());
    }
    finish(trainer, &recipe, &registry, &resolved, ending, wall)
}

/// Makes the recipe's relative paths absolute, so the `recipe.ron` a run records resolves the
/// same from the run directory and from any working directory.
pub fn anchor_paths(resolved: &mut Resolved) -> Result<()> {
    let base = resolved
        .path
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let r = &mut resolved.recipe;
    r.data.root = std::path::absolute(&r.data.root)?;
    r.output = std::path::absolute(&r.output)?;
    for p in r.plugins.iter_mut() {
        *p = std::path::absolute(base.join(&p))?;
    }
    Ok(())
}

/// The optimizer spec of `recipe`.
fn optimizer_spec(recipe: &Recipe) -> OptimizerSpec {
    let o = &recipe.optimizer;
    OptimizerSpec {
        kind: match o.name {
            OptimizerName::Sgd => OptimizerKind::Sgd,
            OptimizerName::Adamw => OptimizerKind::AdamW,
        },
        momentum: o.momentum,
        nesterov: o.nesterov,
        beta1: o.betas.0,
        beta2: o.betas.1,
        eps: o.eps,
        weight_decay: o.weight_decay,
        norm_bias_weight_decay: o.norm_bias_weight_decay,
        clip_grad_norm: recipe.trainer.clip_grad_norm.into(),
        ema: recipe
            .trainer
            .ema
            .as_ref()
            .map(|e| EmaSpec {
                decay: e.decay,
                update_interval: e.interval,
                warmup: e.warmup,
            })
            .into(),
    }
}

/// What the backbone of `recipe` is created with.
pub fn backbone_context(recipe: &Recipe, num_classes: u32) -> BackboneContext {
    BackboneContext {
        num_classes,
        device: recipe.trainer.device.as_str().into(),
        optimizer: optimizer_spec(recipe),
        seed: recipe.seed,
    }
}

/// The raw weights in the file at `path`: a clshost checkpoint (its backbone state is loaded
/// into a scratch backbone of the recipe's model to read them) or a `.safetensors` file.
fn weights_of(
    registry: &Registry,
    recipe: &Recipe,
    ctx: &BackboneContext,
    path: &Path,
) -> Result<Vec<NamedTensor>> {
    if !is_checkpoint(path) {
        return Ok(read_weights_file(path)?);
    }
    let ckpt = Checkpoint::load(path)?;
    let mut scratch = registry.new_backbone(&recipe.model.name, &recipe.model.params, ctx)?;
    scratch.load_state(&ckpt.backbone)?;
    Ok(scratch.named_weights(WeightSet::Raw)?)
}

/// Builds the loaders and every component of `recipe`.
fn build(recipe: &Recipe, registry: &Registry) -> Result<Parts> {
    let settings = DataSettings::from_recipe(&recipe.data, recipe.seed)?;
    let (train_set, val_set) = settings.datasets()?;
    let classes = train_set.classes.clone();
    let num_classes = recipe.model.num_classes.unwrap_or(classes.len() as u32);
    if num_classes as usize != classes.len() {
        bail!(
            "model.num_classes is {num_classes} but the data has {} classes",
            classes.len()
        );
    }
    let augment_ctx = augment_context(&settings, num_classes);
    let train = train_loader(recipe, registry, &settings, train_set.samples, &augment_ctx)?;
    let val = eval_loader(recipe, &settings, val_set.samples, None)?;
    if train.is_empty() || val.is_empty() {
        bail!(
            "the training and validation sets need at least one image each (found {} and {})",
            train.len(),
            val.len()
        );
    }
    let ctx = backbone_context(recipe, num_classes);
    let backbone = registry.new_backbone(&recipe.model.name, &recipe.model.params, &ctx)?;
    let loss = new_loss(recipe, registry, num_classes)?;
    let batch_augments = batch_augments(recipe, registry, &augment_ctx)?;
    let raw_metrics = new_metrics(recipe, registry, &classes)?;
    let ema_metrics = recipe
        .trainer
        .ema
        .as_ref()
        .map(|_| new_metrics(recipe, registry, &classes))
        .transpose()?;
    let direction = direction(recipe, &raw_metrics)?;
    Ok(Parts {
        recipe: recipe.clone(),
        backbone,
        loss,
        batch_augments,
        metrics: raw_metrics,
        ema_metrics,
        train,
        val,
        classes,
        direction,
    })
}

/// The loss of `recipe` for `num_classes` classes.
pub fn new_loss(recipe: &Recipe, registry: &Registry, num_classes: u32) -> Result<Loss> {
    Ok(registry.new_loss(
        &recipe.loss.name,
        &recipe.loss.params,
        &LossContext { num_classes },
    )?)
}

/// The metrics of `recipe`, in its order, over the model's `classes`.
pub fn new_metrics(
    recipe: &Recipe,
    registry: &Registry,
    classes: &[String],
) -> Result<Vec<Metric>> {
    let ctx = MetricContext {
        num_classes: classes.len() as u32,
        class_names: classes.iter().map(|c| c.as_str().into()).collect(),
    };
    Ok(recipe
        .metrics
        .iter()
        .map(|c| registry.new_metric(&c.name, &c.params, &ctx))
        .collect::<Result<Vec<Metric>, _>>()?)
}

/// What the augmentations of a run with `settings` and `num_classes` classes are created with.
pub fn augment_context(settings: &DataSettings, num_classes: u32) -> AugmentContext {
    AugmentContext {
        input_height: settings.train_size,
        input_width: settings.train_size,
        mean: settings.mean,
        std: settings.std,
        num_classes,
    }
}

/// The training loader of `recipe` over `samples`: its sample augmentations, shuffling and
/// batching, exactly as `run` trains.
pub fn train_loader(
    recipe: &Recipe,
    registry: &Registry,
    settings: &DataSettings,
    samples: Vec<Sample>,
    ctx: &AugmentContext,
) -> Result<Loader> {
    let augments = recipe
        .augment
        .iter()
        .map(|c| registry.new_sample_augment(&c.name, &c.params, ctx))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Loader::new(
        samples,
        Pipeline::train(augments, settings)?,
        LoaderOptions::from_settings(settings, true, recipe.seed),
    )?)
}

/// The evaluation loader of `recipe` over `samples`: its eval preprocessing, in order, `batch`
/// images at a time (default: `data.eval_batch_size`, else `data.batch_size`).
pub fn eval_loader(
    recipe: &Recipe,
    settings: &DataSettings,
    samples: Vec<Sample>,
    batch: Option<u32>,
) -> Result<Loader> {
    let mut options = LoaderOptions::from_settings(settings, false, recipe.seed);
    options.batch_size = batch
        .or(recipe.data.eval_batch_size)
        .unwrap_or(recipe.data.batch_size) as usize;
    Ok(Loader::new(samples, Pipeline::eval(settings)?, options)?)
}

/// The batch augmentations of `recipe`, in its order.
pub fn batch_augments(
    recipe: &Recipe,
    registry: &Registry,
    ctx: &AugmentContext,
) -> Result<Vec<BatchAugment>> {
    Ok(recipe
        .batch_augment
        .entries
        .iter()
        .map(|e| registry.new_batch_augment(&e.name, &e.params, ctx))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Which way the monitored metric is better: the recipe's `mode`, or the metric's own
/// declaration (`loss`: smaller).
fn direction(recipe: &Recipe, metrics: &[Metric]) -> Result<Direction> {
    Ok(match recipe.trainer.mode {
        Mode::Max => Direction::Max,
        Mode::Min => Direction::Min,
        Mode::Auto => {
            let name = monitor_column(&recipe.trainer.monitor);
            let mut higher = None;
            for m in metrics {
                if let Some(o) = m.outputs()?.into_iter().find(|o| o.name.as_str() == name) {
                    higher = Some(o.higher_is_better);
                }
            }
            match higher {
                Some(true) => Direction::Max,
                _ => Direction::Min,
            }
        }
    })
}

/// The state of a run that has not trained yet, over `classes`.
fn fresh_state(recipe: &Recipe, direction: Direction, classes: &[String]) -> HostState {
    let t = &recipe.trainer;
    let mut notes = std::collections::BTreeMap::new();
    notes.insert("clshost".into(), env!("CARGO_PKG_VERSION").into());
    notes.insert("device".into(), t.device.clone());
    HostState {
        recipe: recipe.name.clone(),
        seed: recipe.seed,
        epoch: 0,
        batches_done: 0,
        global_step: 0,
        epoch_loss_sum: 0.0,
        epoch_images: 0,
        epoch_seconds: 0.0,
        total_images: 0,
        train_seconds: 0.0,
        monitor: Monitor::new(
            direction,
            t.early_stopping.as_ref().map_or(0.0, |e| e.min_delta),
            t.early_stopping.as_ref().map(|e| e.patience),
        ),
        best_weights: BestWeights::Raw,
        history: Vec::new(),
        top_k: Vec::new(),
        notes,
        classes: classes.to_vec(),
    }
}

/// Loads `weights` (read from `path`) into `backbone`, failing on keys that do not fit (a
/// classifier of another class count is started fresh instead).
fn load_weights(
    backbone: &mut Backbone,
    weights: Vec<NamedTensor>,
    path: &Path,
    what: &str,
) -> Result<()> {
    let report = backbone
        .load_weights(
            weights,
            LoadWeightsOptions {
                strict: true,
                reinit_mismatched_head: true,
            },
        )
        .with_context(|| format!("{what} {}", path.display()))?;
    tracing::info!(
        "{what}: loaded {} weights from {}{}",
        report.loaded,
        path.display(),
        if report.reinitialized.is_empty() {
            String::new()
        } else {
            format!(
                " (classifier started fresh: {})",
                report.reinitialized.len()
            )
        }
    );
    Ok(())
}

/// The end of a finished run: best weights back, per-class table, exports, summary.
fn finish(
    mut trainer: Trainer,
    recipe: &Recipe,
    registry: &Registry,
    resolved: &Resolved,
    ending: Ending,
    wall: Instant,
) -> Result<()> {
    let best_path = trainer.run_dir().file("checkpoints/best.ckpt");
    let which = if best_path.is_file() {
        // The backbone already holds the best state when the last epoch was the best.
        if trainer.state.monitor.best_epoch != Some(trainer.state.epoch) {
            let best = Checkpoint::load(&best_path)?;
            trainer.backbone().load_state(&best.backbone)?;
        }
        trainer.state.best_weights
    } else {
        BestWeights::Raw
    };
    let weights = WeightSet::from(which);
    let eval = trainer.evaluate()?;
    output::print(&format!(
        "\nper class ({} weights of epoch {}):\n{}",
        weights_name(which),
        trainer
            .state
            .monitor
            .best_epoch
            .map_or_else(|| "-".to_string(), |e| e.to_string()),
        crate::train::report::class_table(&trainer.class_lines(&eval, which))
    ))?;
    let exporters = recipe
        .export
        .iter()
        .map(|c| registry.new_exporter(&c.name, &c.params))
        .collect::<Result<Vec<_>, _>>()?;
    let mut exports = Vec::new();
    if !exporters.is_empty() {
        let sample = trainer
            .parts()
            .val
            .epoch(0)
            .next()
            .context("no validation image could be read for the export check")??;
        let out_dir = trainer.run_dir().subdir("export")?;
        let d = &recipe.data;
        let mut extra = vec![
            Tuple2("clshost_version".into(), env!("CARGO_PKG_VERSION").into()),
            Tuple2("eval_resize".into(), d.eval_resize.to_string().into()),
        ];
        if let (Some(v), Some(e)) = (trainer.state.monitor.best, trainer.state.monitor.best_epoch) {
            extra.push(Tuple2(
                format!("best_{}", recipe.trainer.monitor).into(),
                v.to_string().into(),
            ));
            extra.push(Tuple2("best_epoch".into(), e.to_string().into()));
        }
        let meta = ExportMeta {
            recipe_name: recipe.name.as_str().into(),
            recipe: resolved.to_ron().into(),
            backbone: recipe.model.name.as_str().into(),
            class_names: trainer
                .parts()
                .classes
                .iter()
                .map(|c| c.as_str().into())
                .collect(),
            input_height: d.eval_crop.0,
            input_width: d.eval_crop.1,
            mean: [d.mean.0, d.mean.1, d.mean.2],
            std: [d.std.0, d.std.1, d.std.2],
            extra: extra.into(),
        };
        exports = export_all(
            &exporters,
            trainer.backbone(),
            weights,
            &meta,
            &out_dir,
            (&sample.shape, &sample.images),
        )
        .context("export failed (the checkpoints are saved)")?;
    }
    let parts = trainer.parts();
    let summary = Summary {
        recipe: recipe.name.clone(),
        run_dir: trainer.run_dir().path().display().to_string(),
        ending: ending.as_str().into(),
        epochs: trainer.state.epoch,
        monitor: recipe.trainer.monitor.clone(),
        best_value: trainer.state.monitor.best,
        best_epoch: trainer.state.monitor.best_epoch,
        best_weights: which,
        wall_seconds: wall.elapsed().as_secs_f64(),
        images_per_s: trainer.state.total_images as f64 / trainer.state.train_seconds.max(1e-9),
        skipped_files: parts.train.skipped().len() + parts.val.skipped().len(),
        exports,
    };
    rundir::atomic_write(
        &trainer.run_dir().file("summary.json"),
        (serde_json::to_string_pretty(&summary)? + "\n").as_bytes(),
    )?;
    output::print(&format!("\n{}", summary.text()))?;
    Ok(())
}
