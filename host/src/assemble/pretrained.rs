//! Published weights used without a run: `clshost predict --weights SOURCE` and
//! `clshost eval --weights SOURCE`, optionally with `--model NAME` and `--classes FILE`.
//!
//! The weight source (a zoo name, a URL, a path: [`crate::weights`]) is found in a cache or
//! downloaded, then loaded exactly (every key, the classifier included) into a fresh backbone.
//! What a run's recipe would say comes from the zoo for its checkpoints:
//!
//! - the backbone: the checkpoint's architecture (`torchvision:resnet50.*` is `resnet50`), or
//!   `--model` for any other source;
//! - the class names: ImageNet-1k's, or the lines of `--classes` for any other source;
//! - the eval preprocessing: the one the checkpoint's published accuracy was measured with
//!   (resize, crop, mean, std); any other source gets the recipe defaults (resize 256, crop
//!   224, ImageNet's mean and std);
//! - the loss and metrics of `eval`: cross-entropy, top-1 and top-5 accuracy (top-1 only below
//!   five classes), macro F1.
//!
//! It is written as a recipe (`name: "pretrained"`), so `--set` overrides it as it overrides a
//! run's: `--set data.eval_resize=256`, another `metrics` list.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};

use super::components::backbone_context;
use super::parts::{self, fetch, load_weights, weights_of};
use super::trained::Trained;
use crate::data::DataSettings;
use crate::recipe::Resolved;
use crate::registry::{Registry, SearchPath};
use crate::train::Direction;
use crate::weights::{WeightSource, zoo};

/// What to load: the weights and what the command line says about them.
pub struct Request<'a> {
    /// The weight source, as given.
    pub weights: &'a str,
    /// The backbone component (required unless the source is a zoo checkpoint).
    pub model: Option<&'a str>,
    /// A file of class names, one per line in output order (required unless the source is a
    /// zoo checkpoint).
    pub classes: Option<&'a Path>,
    /// Where the backbone runs.
    pub device: &'a str,
    /// `--set` overrides of the written recipe.
    pub overrides: &'a [String],
    /// Whether a download shows a progress bar.
    pub progress: bool,
}

impl Trained {
    /// A fresh backbone holding the published weights `request` names (module documentation).
    pub fn pretrained(search: &SearchPath, request: &Request<'_>) -> Result<Trained> {
        let source: WeightSource = request.weights.parse()?;
        let checkpoint = match &source {
            WeightSource::Torchvision(c) => Some(*c),
            _ => None,
        };
        let model = match (request.model, checkpoint) {
            (Some(model), Some(c)) if c.is_for_another_arch_than(model) => bail!(
                "torchvision:{} are weights for {}, not for --model {model}",
                c.name(),
                c.arch
            ),
            (Some(model), _) => model,
            (None, Some(c)) => c.arch,
            (None, None) => bail!(
                "{} is not one of the zoo's checkpoints, so it does not say which backbone it is \
                 for: give --model NAME (`clshost plugins` lists them)",
                request.weights
            ),
        };
        let classes = match (request.classes, checkpoint) {
            (Some(file), _) => read_classes(file)?,
            (None, Some(c)) => c.classes().iter().map(|c| c.to_string()).collect(),
            (None, None) => bail!(
                "{} does not say which classes its outputs are: give --classes FILE, one class \
                 name per line in output order",
                request.weights
            ),
        };
        let resolved = Resolved::from_text(
            &recipe_text(model, &classes, checkpoint, request.device),
            &format!("the recipe for --weights {}", request.weights),
            request.overrides,
        )
        .map_err(|e| anyhow!("{e}"))?;
        let recipe = resolved.recipe;
        let registry = Registry::load(search)?;
        let ctx = backbone_context(&recipe, classes.len() as u32);
        let mut backbone = registry.new_backbone(&recipe.model.name, &recipe.model.params, &ctx)?;
        let path = fetch(&source, request.progress)
            .with_context(|| format!("--weights {}", request.weights))?;
        let weights = weights_of(&registry, &recipe, &ctx, &path)
            .with_context(|| format!("--weights {}", path.display()))?;
        load_weights(&mut backbone, weights, &path, "--weights", false)?;
        let settings = DataSettings::from_recipe(&recipe.data, recipe.seed)?;
        let host = parts::fresh_state(&recipe, Direction::Max, &classes);
        Ok(Trained {
            recipe,
            registry,
            backbone,
            host,
            classes,
            settings,
            checkpoint: path,
            source: Some(source.to_string()),
        })
    }
}

/// The class names in `file`: one per line, surrounding blanks trimmed, empty lines skipped.
fn read_classes(file: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read --classes {}", file.display()))?;
    let classes: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if classes.len() < 2 {
        bail!(
            "--classes {} names {} classes; a classifier has at least 2, one per line",
            file.display(),
            classes.len()
        );
    }
    Ok(classes)
}

/// The recipe that says what the module documentation says, as RON.
fn recipe_text(
    model: &str,
    classes: &[String],
    checkpoint: Option<&zoo::Checkpoint>,
    device: &str,
) -> String {
    let n = classes.len();
    let data = match checkpoint {
        Some(c) => {
            let p = &c.preprocessing;
            format!(
                "eval_resize: {}, eval_crop: ({}, {}), mean: {:?}, std: {:?}",
                p.resize,
                p.crop,
                p.crop,
                (p.mean[0], p.mean[1], p.mean[2]),
                (p.std[0], p.std[1], p.std[2]),
            )
        }
        None => String::new(),
    };
    let top_k = if n >= 5 { "[1, 5]" } else { "[1]" };
    format!(
        "(name: \"pretrained\", data: ({data}), model: (name: {model:?}, num_classes: {n}), \
         loss: (name: \"cross_entropy\"), trainer: (device: {device:?}, monitor: \"top1\"), \
         metrics: [(name: \"accuracy\", params: (top_k: {top_k})), (name: \"f1\", params: \
         (average: macro))])"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_recipe_carries_the_checkpoints_preprocessing() {
        let c = zoo::find("resnet50.IMAGENET1K_V2").unwrap();
        let classes: Vec<String> = zoo::imagenet_classes()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let text = recipe_text("resnet50", &classes, Some(c), "cpu");
        let r = Resolved::from_text(&text, "test", &["data.eval_crop=(200, 200)".into()])
            .unwrap()
            .recipe;
        assert_eq!(r.model.name, "resnet50");
        assert_eq!(r.model.num_classes, Some(1000));
        assert_eq!(r.data.eval_resize, 232);
        assert_eq!(r.data.eval_crop, (200, 200));
        assert_eq!(r.data.mean, (0.485, 0.456, 0.406));
        assert_eq!(r.data.std, (0.229, 0.224, 0.225));
        assert_eq!(r.metrics.len(), 2);
        assert_eq!(r.metrics[0].params, "(top_k: [1, 5])");
    }

    #[test]
    fn class_files_need_two_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("classes.txt");
        std::fs::write(&file, "cat\n\n  dog \n").unwrap();
        assert_eq!(read_classes(&file).unwrap(), ["cat", "dog"]);
        std::fs::write(&file, "cat\n").unwrap();
        let err = read_classes(&file).unwrap_err().to_string();
        assert!(err.ends_with("names 1 classes; a classifier has at least 2, one per line"));
    }
}
