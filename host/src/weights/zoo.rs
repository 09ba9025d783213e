//! The torchvision checkpoints of the architectures clshost ships (resnet18, resnet34,
//! resnet50), as torchvision 0.26 publishes them in `torchvision/models/resnet.py`: where each
//! file is, the hash its name carries, what it scores on ImageNet-1k, and the eval
//! preprocessing it was made for.
//!
//! A checkpoint is named `<arch>.<TAG>` as torchvision's weight enums are
//! (`ResNet50_Weights.IMAGENET1K_V2` is `resnet50.IMAGENET1K_V2`), and `<arch>.DEFAULT` names
//! the best one of an architecture, as torchvision's `DEFAULT` does.

use std::sync::OnceLock;

/// Where torchvision publishes its checkpoints; [`crate::weights::cache::MIRROR_VAR`] replaces it.
pub const TORCHVISION_BASE: &str = "https://download.pytorch.org/models/";

/// The 1000 ImageNet-1k class names, in output order, one per line: torchvision's
/// `_IMAGENET_CATEGORIES`, written by `scripts/fixtures/imagenet_classes.py`.
const IMAGENET_CLASSES: &str = include_str!("imagenet_classes.txt");

/// ImageNet's per-channel mean, on the 0..1 scale.
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];

/// ImageNet's per-channel standard deviation, on the 0..1 scale.
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The eval preprocessing a checkpoint was made for (torchvision's `ImageClassification`
/// preset): resize the shorter side to `resize`, crop the centre `crop` x `crop`, scale to 0..1
/// and normalize with `mean` and `std`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Preprocessing {
    /// Shorter side after the resize, in pixels.
    pub resize: u32,
    /// Side of the centre crop, in pixels.
    pub crop: u32,
    /// The resize filter (torchvision: bilinear with antialiasing).
    pub interpolation: &'static str,
    /// Per-channel mean, on the 0..1 scale.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, on the 0..1 scale.
    pub std: [f32; 3],
}

impl Preprocessing {
    /// ImageNet normalization after a bilinear resize to `resize` and a centre crop of `crop`.
    const fn imagenet(resize: u32, crop: u32) -> Self {
        Preprocessing {
            resize,
            crop,
            interpolation: "bilinear",
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }
}

/// One published checkpoint.
#[derive(Debug, PartialEq)]
pub struct Checkpoint {
    /// The architecture, as the resnet plugin names its backbone (`resnet50`).
    pub arch: &'static str,
    /// torchvision's tag (`IMAGENET1K_V2`).
    pub tag: &'static str,
    /// The file name under [`TORCHVISION_BASE`], also its name in every cache.
    pub file: &'static str,
    /// The start of the file's SHA-256, in lower-case hex: the hex digits between `-` and `.`
    /// in the file name, which torch.hub checks.
    pub sha256_prefix: &'static str,
    /// Top-1 accuracy on ImageNet-1k val, in percent, as published.
    pub acc1: f64,
    /// Top-5 accuracy on ImageNet-1k val, in percent, as published.
    pub acc5: f64,
    /// Number of parameters.
    pub params: u64,
    /// The eval preprocessing the accuracies were measured with.
    pub preprocessing: Preprocessing,
}

/// Every checkpoint, in torchvision's order.
pub static CHECKPOINTS: [Checkpoint; 4] = [
    Checkpoint {
        arch: "resnet18",
        tag: "IMAGENET1K_V1",
        file: "resnet18-f37072fd.pth",
        sha256_prefix: "f37072fd",
        acc1: 69.758,
        acc5: 89.078,
        params: 11_689_512,
        preprocessing: Preprocessing::imagenet(256, 224),
    },
    Checkpoint {
        arch: "resnet34",
        tag: "IMAGENET1K_V1",
        file: "resnet34-b627a593.pth",
        sha256_prefix: "b627a593",
        acc1: 73.314,
        acc5: 91.420,
        params: 21_797_672,
        preprocessing: Preprocessing::imagenet(256, 224),
    },
    Checkpoint {
        arch: "resnet50",
        tag: "IMAGENET1K_V1",
        file: "resnet50-0676ba61.pth",
        sha256_prefix: "0676ba61",
        acc1: 76.130,
        acc5: 92.862,
        params: 25_557_032,
        preprocessing: Preprocessing::imagenet(256, 224),
    },
    Checkpoint {
        arch: "resnet50",
        tag: "IMAGENET1K_V2",
        file: "resnet50-11ad3fa6.pth",
        sha256_prefix: "11ad3fa6",
        acc1: 80.858,
        acc5: 95.434,
        params: 25_557_032,
        preprocessing: Preprocessing::imagenet(232, 224),
    },
];

/// The tag `<arch>.DEFAULT` stands for, per architecture.
const DEFAULTS: [(&str, &str); 3] = [
    ("resnet18", "IMAGENET1K_V1"),
    ("resnet34", "IMAGENET1K_V1"),
    ("resnet50", "IMAGENET1K_V2"),
];

/// The alias of every default checkpoint.
pub const DEFAULT_TAG: &str = "DEFAULT";

impl Checkpoint {
    /// Its name, `<arch>.<TAG>`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.arch, self.tag)
    }

    /// Whether `<arch>.DEFAULT` names it.
    pub fn is_default(&self) -> bool {
        DEFAULTS.contains(&(self.arch, self.tag))
    }

    /// Where torchvision publishes it.
    pub fn url(&self) -> String {
        format!("{TORCHVISION_BASE}{}", self.file)
    }

    /// Whether these are the weights of another architecture than `model`, a backbone the zoo
    /// also has weights for (a backbone of another name may well take them).
    pub fn is_for_another_arch_than(&self, model: &str) -> bool {
        self.arch != model && CHECKPOINTS.iter().any(|c| c.arch == model)
    }

    /// The names of its classes, in output order (every checkpoint here is ImageNet-1k's).
    pub fn classes(&self) -> &'static [&'static str] {
        imagenet_classes()
    }
}

/// The 1000 ImageNet-1k class names, in the order of a torchvision classifier's outputs.
pub fn imagenet_classes() -> &'static [&'static str] {
    static CLASSES: OnceLock<Vec<&'static str>> = OnceLock::new();
    CLASSES.get_or_init(|| IMAGENET_CLASSES.lines().collect())
}

/// The checkpoint named `name` (`resnet50.IMAGENET1K_V2` or `resnet50.DEFAULT`, exactly).
pub fn find(name: &str) -> Option<&'static Checkpoint> {
    let (arch, tag) = name.split_once('.')?;
    let tag = if tag == DEFAULT_TAG {
        DEFAULTS.iter().find(|(a, _)| *a == arch)?.1
    } else {
        tag
    };
    CHECKPOINTS.iter().find(|c| c.arch == arch && c.tag == tag)
}

/// Every name [`find`] knows: each `<arch>.<TAG>`, then each `<arch>.DEFAULT`.
pub fn names() -> Vec<String> {
    let tags = CHECKPOINTS.iter().map(Checkpoint::name);
    let defaults = DEFAULTS
        .iter()
        .map(|(arch, _)| format!("{arch}.{DEFAULT_TAG}"));
    tags.chain(defaults).collect()
}

/// Up to three known names close to `name`, best first (case does not count against a name).
pub fn suggestions(name: &str) -> Vec<String> {
    let wanted = name.to_ascii_lowercase();
    let mut scored: Vec<(f64, String)> = names()
        .into_iter()
        .map(|n| (strsim::jaro_winkler(&wanted, &n.to_ascii_lowercase()), n))
        .filter(|(score, _)| *score > 0.75)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_conflict_only_with_another_zoo_architecture() {
        let r50 = find("resnet50.DEFAULT").unwrap();
        assert!(r50.is_for_another_arch_than("resnet18"));
        assert!(!r50.is_for_another_arch_than("resnet50"));
        assert!(!r50.is_for_another_arch_than("acme_resnet50"));
    }

    #[test]
    fn names_find_their_checkpoints_and_default_is_the_best_of_each_architecture() {
        for c in &CHECKPOINTS {
            assert_eq!(find(&c.name()), Some(c));
        }
        for (arch, _) in DEFAULTS {
            let default = find(&format!("{arch}.DEFAULT")).unwrap();
            let best = CHECKPOINTS
                .iter()
                .filter(|c| c.arch == arch)
                .max_by(|a, b| a.acc1.total_cmp(&b.acc1))
                .unwrap();
            assert_eq!(default, best);
            assert!(default.is_default());
        }
        assert_eq!(find("resnet50.DEFAULT").unwrap().tag, "IMAGENET1K_V2");
        assert_eq!(find("resnet50.imagenet1k_v2"), None);
        assert_eq!(find("resnet50"), None);
        assert_eq!(names().len(), CHECKPOINTS.len() + DEFAULTS.len());
    }

    #[test]
    fn files_are_torchvision_urls_whose_names_carry_the_hash_prefix() {
        for c in &CHECKPOINTS {
            assert_eq!(
                c.url(),
                format!("https://download.pytorch.org/models/{}", c.file)
            );
            assert_eq!(
                crate::weights::download::hash_prefix(c.file),
                Some(c.sha256_prefix)
            );
        }
        let v2 = find("resnet50.IMAGENET1K_V2").unwrap();
        assert_eq!((v2.preprocessing.resize, v2.preprocessing.crop), (232, 224));
        let v1 = find("resnet18.IMAGENET1K_V1").unwrap();
        assert_eq!((v1.preprocessing.resize, v1.preprocessing.crop), (256, 224));
    }

    #[test]
    fn imagenet_has_1000_distinct_names_in_torchvision_order() {
        let classes = imagenet_classes();
        assert_eq!(classes.len(), 1000);
        assert_eq!(&classes[..3], ["tench", "goldfish", "great white shark"]);
        assert_eq!(classes[999], "toilet tissue");
        let distinct: std::collections::BTreeSet<_> = classes.iter().collect();
        assert_eq!(distinct.len(), 1000);
        assert!(classes.iter().all(|c| !c.is_empty() && c.trim() == *c));
    }

    #[test]
    fn suggestions_put_the_closest_name_first_whatever_its_case() {
        assert_eq!(
            suggestions("resnet50.imagenet1k_v2")[0],
            "resnet50.IMAGENET1K_V2"
        );
        assert_eq!(
            suggestions("resnt50.IMAGENET1K_V2")[0],
            "resnet50.IMAGENET1K_V2"
        );
        assert_eq!(
            suggestions("resnet34.IMAGENET1K_V2")[0],
            "resnet34.IMAGENET1K_V1"
        );
        assert!(suggestions("swin").is_empty());
    }
}
