//! Published weights used without a run: `clshost predict --weights SOURCE` and
//! `clshost eval --weights SOURCE`, optionally with `--model NAME` and `--classes FILE`.
//!
//! The weight source (a zoo name, a Hub file, a URL, a path: [`crate::weights`]) is found in a
//! cache or downloaded, then loaded exactly (every key, the classifier included) into a fresh
//! backbone. What a run's recipe would say comes from the zoo for its checkpoints, and from the
//! timm `config.json` of a Hub repository that has one ([`crate::weights::hub::TimmConfig`]);
//! `--model` and `--classes` give it for any other source, and override a Hub config's:
//!
//! - the backbone: the checkpoint's architecture (`torchvision:resnet50.*` is `resnet50`);
//! - the class names: ImageNet-1k's for the zoo; a Hub config's own, or ImageNet-1k's for its
//!   1000-class heads;
//! - the eval preprocessing: the one the checkpoint's published accuracy was measured with
//!   (resize, crop, mean, std); without one, the recipe defaults (resize 256, crop 224,
//!   ImageNet's mean and std). clshost resizes bilinearly, whatever filter a Hub config names;
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
use crate::weights::zoo::Preprocessing;
use crate::weights::{Cache, WeightSource};

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
        if let (WeightSource::Torchvision(c), Some(model)) = (&source, request.model)
            && c.is_for_another_arch_than(model)
        {
            bail!(
                "torchvision:{} are weights for {}, not for --model {model}",
                c.name(),
                c.arch
            );
        }
        let needed = request.model.is_none() || request.classes.is_none();
        let described = Described::of(&source, needed, request.progress)?;
        let model = match (request.model, &described.arch) {
            (Some(model), _) => model,
            (None, Some(arch)) => arch.as_str(),
            (None, None) => bail!(
                "{} does not say which backbone it is for (the zoo's checkpoints and Hub \
                 repositories with a timm config.json do): give --model NAME (`clshost \
                 plugins` lists them)",
                request.weights
            ),
        };
        let classes = match (request.classes, described.classes) {
            (Some(file), _) => read_classes(file)?,
            (None, Some(classes)) => classes,
            (None, None) => bail!(
                "{} does not say which classes its outputs are: give --classes FILE, one class \
                 name per line in output order",
                request.weights
            ),
        };
        if let Some(p) = &described.preprocessing
            && p.interpolation != "bilinear"
        {
            tracing::warn!(
                "{} was evaluated after a {} resize; clshost resizes bilinearly, so its \
                 predictions can differ slightly",
                request.weights,
                p.interpolation
            );
        }
        let resolved = Resolved::from_text(
            &recipe_text(
                model,
                &classes,
                described.preprocessing.as_ref(),
                request.device,
            ),
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

/// What a weight source says about the model its weights are for.
#[derive(Default)]
struct Described {
    /// The backbone.
    arch: Option<String>,
    /// The class names, in output order.
    classes: Option<Vec<String>>,
    /// The eval preprocessing its weights were measured with.
    preprocessing: Option<Preprocessing>,
}

impl Described {
    /// What `source` says: the zoo's entry, a Hub repository's timm config, or nothing. A Hub
    /// config that cannot be fetched is an error only where it is `needed`, a warning otherwise.
    fn of(source: &WeightSource, needed: bool, progress: bool) -> Result<Described> {
        Ok(match source {
            WeightSource::Torchvision(c) => Described {
                arch: Some(c.arch.to_string()),
                classes: Some(c.classes().iter().map(|c| c.to_string()).collect()),
                preprocessing: Some(c.preprocessing),
            },
            WeightSource::Hub(file) => match Cache::from_env()?.hub().config(file, progress) {
                Ok(Some(config)) => Described {
                    classes: config.classes(),
                    preprocessing: config.preprocessing(),
                    arch: config.architecture,
                },
                Ok(None) => Described::default(),
                Err(e) if !needed => {
                    tracing::warn!("{e}; going on with the recipe defaults' preprocessing");
                    Described::default()
                }
                Err(e) => return Err(e.into()),
            },
            WeightSource::Url { .. } | WeightSource::File(_) => Described::default(),
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
    preprocessing: Option<&Preprocessing>,
    device: &str,
) -> String {
    let n = classes.len();
    let data = match preprocessing {
        Some(p) => {
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
    use crate::weights::zoo;

    #[test]
    fn the_written_recipe_carries_the_checkpoints_preprocessing() {
        let c = zoo::find("resnet50.IMAGENET1K_V2").unwrap();
        let classes: Vec<String> = zoo::imagenet_classes()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let text = recipe_text("resnet50", &classes, Some(&c.preprocessing), "cpu");
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
