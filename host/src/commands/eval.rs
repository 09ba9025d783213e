//! `clshost eval MODEL --data DIR [--set PATH=VALUE]... [--json] [--device cpu] [--batch N]`:
//! evaluate a trained model on an ImageFolder; `clshost eval --weights SOURCE [--model NAME]
//! [--classes FILE] --data DIR`: evaluate published weights, without a run.
//!
//! MODEL is a run directory or a checkpoint, loaded as `clshost predict` loads it
//! ([`crate::assemble::trained`]); `--weights` loads published weights with their own
//! preprocessing, loss and metrics ([`crate::assemble::pretrained`]). DIR (`DIR/<class>/<image>`) goes through the trainer's
//! validation path unchanged: [`eval_loader`] with
//! [`Pipeline::eval`](crate::data::Pipeline::eval) (resize the shorter side, center crop,
//! normalize), then [`train::evaluate`](crate::train::evaluate()) with the recipe's loss (`val_loss`) and
//! metrics plugins, for the raw weights and, when the recipe keeps an EMA, the EMA weights (the
//! `ema_` columns), exactly as the trainer evaluates after an epoch. So on the run's own
//! validation folder it reproduces the run's `metrics.jsonl` row of the checkpoint's epoch.
//!
//! The class folders of DIR are matched to the model's classes by name: any subset of them will
//! do; a folder the model does not know is an error naming it. When no folder is named after a
//! class and there are exactly as many folders as classes (ImageNet's validation set in
//! ImageFolder form, with WordNet ids as folder names), the sorted folders are the classes in
//! output order, as torchvision's ImageFolder numbers them. The per-class table is for the
//! weights that scored best in the run (raw or EMA). Unreadable images are named on stderr by the
//! loader, skipped and counted; the command fails when none could be read.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use serde::Serialize;

use crate::assemble::components::{new_loss, new_metrics};
use crate::assemble::loaders::eval_loader;
use crate::assemble::pretrained::Request;
use crate::assemble::trained::{Located, Trained, locate};
use crate::data::{ImageFolder, OnError, Sample};
use crate::distributed::World;
use crate::output;
use crate::registry::SearchPath;
use crate::report::console::{self, ClassLine};
use crate::train;

/// Arguments of `clshost eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A run directory (`runs/NAME/STAMP`) or a checkpoint (`.ckpt`).
    #[arg(required_unless_present = "weights", conflicts_with = "weights")]
    pub model: Option<PathBuf>,

    /// Evaluate published weights instead of a trained model: `torchvision:<arch>.<TAG>`
    /// (`clshost weights list`), an `https://`, `http://` or `file://` URL, or a path to a state
    /// dict or checkpoint.
    #[arg(long, value_name = "SOURCE")]
    pub weights: Option<String>,

    /// With `--weights`: the backbone component the weights are for (default: the zoo
    /// checkpoint's architecture).
    #[arg(long = "model", value_name = "NAME", requires = "weights")]
    pub model_name: Option<String>,

    /// With `--weights`: the class names, one per line in output order (default: the zoo
    /// checkpoint's, ImageNet-1k's).
    #[arg(long, value_name = "FILE", requires = "weights")]
    pub classes: Option<PathBuf>,

    /// The ImageFolder to evaluate on: `DIR/<class>/<image>`, with any of the model's classes.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// Override a field of the run's recipe (or the one `--weights` writes) with a RON value
    /// (repeatable), e.g. `--set data.eval_resize=256` or a different `metrics` list.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,

    /// Print one JSON object instead of the tables.
    #[arg(long)]
    pub json: bool,

    /// Where the backbone runs: `cpu`, `wgpu[:N]`, `cuda[:N]`, `libtorch:cpu`,
    /// `libtorch:cuda[:N]`.
    #[arg(long, default_value = "cpu")]
    pub device: String,

    /// Images per forward pass (default: the recipe's `eval_batch_size`, else `batch_size`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: Option<u32>,
}

/// What `clshost eval` reports.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The checkpoint evaluated (with `--weights`, the state dict file).
    pub checkpoint: String,
    /// With `--weights`, the weight source as given; `null` for a trained model.
    pub source: Option<String>,
    /// The backbone component.
    pub model: String,
    /// The epochs the checkpoint had trained (from 1).
    pub epoch: u32,
    /// The weights the per-class report is for: `raw` or `ema` (the run's best).
    pub weights: String,
    /// The evaluated folder.
    pub data: String,
    /// Images evaluated.
    pub images: u64,
    /// Images that could not be read and were skipped.
    pub skipped: usize,
    /// `val_loss` and every metric scalar (`ema_` ones for the EMA weights); `null` when not
    /// finite.
    pub metrics: BTreeMap<String, Option<f64>>,
    /// Precision, recall, F1 and support of each of the model's classes.
    pub per_class: Vec<ClassLine>,
    /// The scalars in the training table's order, for the text form.
    #[serde(skip)]
    values: Vec<(String, Option<f64>)>,
}

impl EvalReport {
    /// The text form: what was evaluated, the evaluation table and the per-class table.
    fn text(&self) -> String {
        let skipped = match self.skipped {
            0 => String::new(),
            n => format!(" ({n} unreadable, skipped)"),
        };
        let model = match &self.source {
            Some(source) => format!("{} with {source}", self.model),
            None => format!(
                "{} from {} (epoch {})",
                self.model, self.checkpoint, self.epoch
            ),
        };
        format!(
            "{model} on {}: {} images{skipped}\n{}\nper class ({} weights):\n{}",
            self.data,
            self.images,
            console::values_table(&self.values),
            self.weights.replace("ema", "EMA"),
            console::class_table(&self.per_class),
        )
    }
}

/// The samples of `folder` labelled with the index of their class among the model's
/// `classes`: by name, or by sorted position when no folder is named after a class and the
/// counts agree (module documentation); a class folder the model does not know is an error.
fn relabel(folder: ImageFolder, classes: &[String]) -> Result<Vec<Sample>> {
    let by_name: Vec<Option<usize>> = folder
        .classes
        .iter()
        .map(|class| classes.iter().position(|c| c == class))
        .collect();
    let labels: Vec<u32> = if by_name.iter().all(Option::is_none)
        && folder.classes.len() == classes.len()
    {
        tracing::info!(
            "no class folder of {} is named after a class: its {} sorted folders are taken as the \
             classes in output order ({} is {})",
            folder.root.display(),
            classes.len(),
            folder.classes[0],
            classes[0]
        );
        (0..classes.len() as u32).collect()
    } else {
        let mut labels = Vec::with_capacity(by_name.len());
        for (class, index) in folder.classes.iter().zip(by_name) {
            match index {
                Some(i) => labels.push(i as u32),
                None => bail!(
                    "class folder `{class}` of {} is not a class of the model (its classes: {})",
                    folder.root.display(),
                    summary(classes)
                ),
            }
        }
        labels
    };
    Ok(folder
        .samples
        .into_iter()
        .map(|s| Sample {
            label: labels[s.label as usize],
            path: s.path,
        })
        .collect())
}

/// `classes` joined with commas, the first ten and a count of the rest for long lists.
fn summary(classes: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = classes[..classes.len().min(SHOWN)].join(", ");
    if classes.len() > SHOWN {
        text += &format!(" and {} more", classes.len() - SHOWN);
    }
    text
}

/// The model `args` names: a run's, or published weights.
fn load(search: &SearchPath, args: &EvalArgs, quiet: bool) -> Result<Trained> {
    if let Some(weights) = &args.weights {
        let request = Request {
            weights,
            model: args.model_name.as_deref(),
            classes: args.classes.as_deref(),
            device: &args.device,
            overrides: &args.overrides,
            progress: !quiet && std::io::stderr().is_terminal(),
        };
        return Trained::pretrained(search, &request);
    }
    let model = args
        .model
        .as_deref()
        .ok_or_else(|| anyhow!("give MODEL or --weights SOURCE"))?;
    match locate(model)? {
        Located::Checkpoint { recipe, checkpoint } => {
            Trained::load(search, &recipe, &checkpoint, &args.device, &args.overrides)
        }
        Located::Onnx(path) => bail!(
            "{} is an .onnx export, which holds no loss or metrics; give the run directory or \
             one of its checkpoints",
            path.display()
        ),
    }
}

/// Runs `clshost eval`; `quiet` hides a download's progress bar.
pub fn run(search: &SearchPath, args: &EvalArgs, quiet: bool) -> Result<()> {
    let mut trained = load(search, args, quiet)?;
    tracing::info!("{}", trained.description()?);
    let samples = relabel(ImageFolder::scan_eval(&args.data)?, &trained.classes)?;
    let total = samples.len();
    let recipe = &trained.recipe;
    let mut settings = trained.settings.clone();
    settings.on_error = OnError::Skip;
    settings.cache_mb = 0;
    let loader = eval_loader(recipe, &settings, samples, args.batch)?.require_images("evaluation");
    let loss = new_loss(recipe, &trained.registry, trained.classes.len() as u32)?;
    let mut metrics = new_metrics(recipe, &trained.registry, &trained.classes)?;
    let mut ema_metrics = recipe
        .trainer
        .ema
        .as_ref()
        .map(|_| new_metrics(recipe, &trained.registry, &trained.classes))
        .transpose()?;
    let eval = train::evaluate(
        &mut trained.backbone,
        &loss,
        &loader,
        trained.classes.len(),
        &mut metrics,
        ema_metrics.as_deref_mut(),
        &World::single(),
    )?;
    let skipped = loader.skipped().len();
    let images: u64 = eval.support.iter().sum();
    if skipped > 0 {
        tracing::warn!("{skipped} of {total} images could not be read and were skipped");
    }
    let which = trained.host.best_weights;
    let report = EvalReport {
        checkpoint: trained.checkpoint.display().to_string(),
        source: trained.source.clone(),
        model: trained.recipe.model.name.clone(),
        epoch: trained.host.epoch,
        weights: which.name().to_lowercase(),
        data: args.data.display().to_string(),
        images,
        skipped,
        metrics: eval.values.iter().cloned().collect(),
        per_class: eval.class_lines(&trained.classes, which),
        values: eval.values,
    };
    output::print_report(args.json, &report, EvalReport::text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(classes: &[&str]) -> ImageFolder {
        ImageFolder {
            root: PathBuf::from("d"),
            classes: classes.iter().map(|c| c.to_string()).collect(),
            samples: (0..classes.len())
                .map(|i| Sample {
                    path: PathBuf::from(format!("d/{i}.png")),
                    label: i as u32,
                })
                .collect(),
            skipped: Default::default(),
        }
    }

    #[test]
    fn class_folders_map_to_the_model_classes_by_name() {
        let model: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let samples = relabel(folder(&["b", "c"]), &model).unwrap();
        let labels: Vec<u32> = samples.iter().map(|s| s.label).collect();
        assert_eq!(labels, [1, 2]);
        let err = relabel(folder(&["a", "z"]), &model).unwrap_err();
        assert_eq!(
            err.to_string(),
            "class folder `z` of d is not a class of the model (its classes: a, b, c)"
        );
    }

    #[test]
    fn folders_named_after_no_class_map_by_sorted_position_when_the_counts_agree() {
        let model: Vec<String> = ["tench", "goldfish"].map(String::from).to_vec();
        let samples = relabel(folder(&["n01440764", "n01443537"]), &model).unwrap();
        let labels: Vec<u32> = samples.iter().map(|s| s.label).collect();
        assert_eq!(labels, [0, 1]);
        let err = relabel(folder(&["n01440764"]), &model).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("class folder `n01440764` of d is not a class")
        );
        let many: Vec<String> = (0..12).map(|i| format!("c{i}")).collect();
        let err = relabel(folder(&["x"]), &many).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("(its classes: c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 and 2 more)"),
            "{err}"
        );
    }
}
