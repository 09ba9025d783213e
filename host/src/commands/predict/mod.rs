//! `clshost predict MODEL IMAGES... [--top-k 5] [--json] [--device cpu] [--batch 32]`: classify
//! images with a trained model; `clshost predict --weights SOURCE [--model NAME] [--classes FILE]
//! IMAGES...`: with published weights, without a run.
//!
//! MODEL is a run directory, a checkpoint or an exported `.onnx` file ([`model`]). With
//! `--weights`, every positional argument is an image, and the model, class names and
//! preprocessing come from the weights ([`crate::assemble::pretrained`]):
//! `clshost predict --weights torchvision:resnet50.IMAGENET1K_V2 cat.jpg` prints ImageNet classes. The images
//! (files, and directories walked as a class folder of an ImageFolder is) go through training's
//! eval path unchanged: the [`Loader`] with [`Pipeline::eval`] (decode, resize the shorter side,
//! center crop, normalize), in batches on worker threads. Each image's `top_k` classes by softmax
//! probability are printed as soon as its batch is classified, in the order the images were
//! given. A file that cannot be read is named on stderr (by the loader's warning) and skipped;
//! the command fails only when no image at all could be classified.

pub mod model;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use crate::assemble::pretrained::Request;
use crate::data::imagefolder::{IMAGE_EXTENSIONS, images_in};
use crate::data::{Loader, LoaderOptions, OnError, Pipeline, Sample};
use crate::output;
use crate::registry::SearchPath;

/// Arguments of `clshost predict`.
#[derive(Debug, Args)]
#[command(override_usage = "clshost predict [OPTIONS] MODEL IMAGES...\n       \
                            clshost predict [OPTIONS] --weights SOURCE IMAGES...")]
pub struct PredictArgs {
    /// MODEL, then image files and directories to search for images (recursively). MODEL is a
    /// run directory (`runs/NAME/STAMP`), a checkpoint (`.ckpt`) or an `.onnx` export; with
    /// `--weights` there is no MODEL, only images.
    #[arg(required = true, value_name = "MODEL IMAGES")]
    pub inputs: Vec<PathBuf>,

    /// Classify with published weights instead of a trained model: `torchvision:<arch>.<TAG>`
    /// (`clshost weights list`), an `https://`, `http://` or `file://` URL, or a path to a state
    /// dict or checkpoint.
    #[arg(long, value_name = "SOURCE")]
    pub weights: Option<String>,

    /// With `--weights`: the backbone component the weights are for (default: the zoo
    /// checkpoint's architecture).
    #[arg(long, value_name = "NAME", requires = "weights")]
    pub model: Option<String>,

    /// With `--weights`: the class names, one per line in output order (default: the zoo
    /// checkpoint's, ImageNet-1k's).
    #[arg(long, value_name = "FILE", requires = "weights")]
    pub classes: Option<PathBuf>,

    /// With `--weights`: override a field of the recipe it writes (repeatable), e.g. the
    /// backbone's params `--set 'model.params=(small_input: true)'` or `--set data.eval_resize=256`.
    #[arg(long = "set", value_name = "PATH=VALUE", requires = "weights")]
    pub overrides: Vec<String>,

    /// How many of the most probable classes to print per image.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub top_k: u32,

    /// Print one JSON object per image instead of text.
    #[arg(long)]
    pub json: bool,

    /// Where a run directory's, checkpoint's or `--weights` backbone runs: `cpu`, `wgpu[:N]`,
    /// `cuda[:N]`, `libtorch:cpu`, `libtorch:cuda[:N]`.
    /// `.onnx` files run on the CPU.
    #[arg(long, default_value = "cpu")]
    pub device: String,

    /// Images per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
}

/// One class of an image's top k.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    /// The class name.
    pub class: String,
    /// The class index (the model's output position).
    pub index: usize,
    /// The softmax probability.
    pub probability: f64,
}

/// The prediction for one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The image file, as given or as found in a given directory.
    pub path: String,
    /// The most probable classes, most probable first.
    pub top_k: Vec<Ranked>,
}

impl Prediction {
    /// The text form: the path, then one `probability  class` line per class.
    fn text(&self) -> String {
        let mut out = format!("{}\n", self.path);
        for r in &self.top_k {
            out += &format!("  {:.4}  {}\n", r.probability, r.class);
        }
        out
    }
}

/// The softmax of `logits`, computed in `f64`.
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let exp: Vec<f64> = logits.iter().map(|&v| (f64::from(v) - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The `k` most probable of `probabilities` (by `classes`), most probable first; ties go to
/// the lower index.
pub fn top_k(probabilities: &[f64], k: usize, classes: &[String]) -> Vec<Ranked> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| {
        probabilities[b]
            .total_cmp(&probabilities[a])
            .then(a.cmp(&b))
    });
    order
        .into_iter()
        .take(k)
        .map(|index| Ranked {
            class: classes[index].clone(),
            index,
            probability: probabilities[index],
        })
        .collect()
}

/// The image files named by `paths`: files as they are, directories walked recursively in
/// torchvision's order, keeping files with an image extension.
fn image_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = images_in(path, &mut Default::default())?;
            if found.is_empty() {
                tracing::warn!(
                    "no images in {} (extensions: {})",
                    path.display(),
                    IMAGE_EXTENSIONS.join(", ")
                );
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Runs `clshost predict`; `quiet` hides a download's progress bar.
pub fn run(search: &SearchPath, args: &PredictArgs, quiet: bool) -> Result<()> {
    let (mut classifier, images) = match &args.weights {
        Some(weights) => {
            let request = Request {
                weights,
                model: args.model.as_deref(),
                classes: args.classes.as_deref(),
                device: &args.device,
                overrides: &args.overrides,
                progress: !quiet && std::io::stderr().is_terminal(),
            };
            (model::pretrained(search, &request)?, &args.inputs[..])
        }
        None => match &args.inputs[..] {
            [model, images @ ..] if !images.is_empty() => {
                (model::load(search, model, &args.device)?, images)
            }
            _ => bail!("give MODEL and at least one image (or --weights SOURCE and images)"),
        },
    };
    tracing::info!("{}", classifier.description);
    let files = image_files(images)?;
    if files.is_empty() {
        bail!("no images to classify");
    }
    let mut settings = classifier.settings.clone();
    settings.batch_size = args.batch as usize;
    settings.on_error = OnError::Skip;
    settings.cache_mb = 0;
    let samples = files
        .iter()
        .map(|path| Sample {
            path: path.clone(),
            label: 0,
        })
        .collect();
    let loader = Loader::new(
        samples,
        Pipeline::eval(&settings)?,
        LoaderOptions::from_settings(&settings, false, 0),
    )?;
    let classes = classifier.classes.clone();
    let k = (args.top_k as usize).min(classes.len());
    let mut predicted = 0;
    for batch in loader.epoch(0) {
        let batch = batch?;
        let logits = classifier.logits(batch.view())?;
        for (row, &i) in logits.chunks_exact(classes.len()).zip(&batch.indices) {
            let prediction = Prediction {
                path: files[i].display().to_string(),
                top_k: top_k(&softmax(row), k, &classes),
            };
            output::print_report(args.json, &prediction, Prediction::text)?;
            predicted += 1;
        }
    }
    let skipped = loader.skipped().len();
    if predicted == 0 {
        bail!("none of the {} images could be read", files.len());
    }
    if skipped > 0 {
        tracing::warn!(
            "{skipped} of {} images could not be read and were skipped",
            files.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_matches_the_formula_and_survives_large_logits() {
        let p = softmax(&[1.0, 2.0, 3.0]);
        let e: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).collect();
        let sum: f64 = e.iter().sum();
        for (a, b) in p.iter().zip(&e) {
            assert!((a - b / sum).abs() < 1e-15);
        }
        let big = softmax(&[1000.0, 1000.0]);
        assert_eq!(big, [0.5, 0.5]);
    }

    #[test]
    fn top_k_orders_by_probability_then_index() {
        let classes: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let ranked = top_k(&[0.1, 0.4, 0.1, 0.4], 3, &classes);
        let order: Vec<(usize, &str)> =
            ranked.iter().map(|r| (r.index, r.class.as_str())).collect();
        assert_eq!(order, [(1, "b"), (3, "d"), (0, "a")]);
        assert_eq!(ranked[0].probability, 0.4);
    }
}
