//! The components as the host sees them: listed params, config checks, determinism, and
//! statistical tests of the random parts over many seeds.

use clshost_plugin_api::authoring::root_module;
use clshost_plugin_api::prelude::*;
use clshost_plugin_api::{AugmentContext, parse_config};
use clshost_plugin_augment::autoaug::{AugMix, AutoAugment, RandAugment, TrivialAugmentWide};
use clshost_plugin_augment::crop::{
    CenterCrop, RandomCrop, RandomResizedCrop, Resize, sample_resized_crop,
};
use clshost_plugin_augment::erasing::{RandomErasing, sample_erase_box};
use clshost_plugin_augment::flip::{HorizontalFlip, VerticalFlip};
use clshost_plugin_augment::geometry;
use clshost_plugin_augment::mix::{Cutmix, Mixup};
use clshost_plugin_augment::photometric::{ColorJitter, GaussianBlur, RandomGrayscale};
use clshost_plugin_augment::rng::rng;

fn ctx() -> AugmentContext {
    AugmentContext {
        input_height: 24,
        input_width: 20,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        num_classes: 5,
    }
}

/// A deterministic textured test image.
fn image(width: u32, height: u32) -> ImageU8 {
    let data = (0..width * height * 3)
        .map(|i| ((i * 37 + (i / 7) * 11) % 251) as u8)
        .collect();
    ImageU8::new(width, height, data).expect("consistent size")
}

fn make<T: ImageAugment>(params: &str) -> T {
    let config = parse_config::<T::Config>(params).expect("parses");
    T::check(&config).expect("valid");
    T::new(config, &ctx()).expect("builds")
}

#[test]
fn every_component_is_listed_with_its_parameters_defaults() {
    let root = root_module("clshost-plugin-augment", "0.1.0", "test", None);
    let info = root.info()().unwrap();
    let mut names: Vec<&str> = info.components.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let mut expected = [
        RandomResizedCrop::NAME,
        Resize::NAME,
        CenterCrop::NAME,
        RandomCrop::NAME,
        HorizontalFlip::NAME,
        VerticalFlip::NAME,
        ColorJitter::NAME,
        RandomGrayscale::NAME,
        GaussianBlur::NAME,
        AutoAugment::NAME,
        RandAugment::NAME,
        TrivialAugmentWide::NAME,
        AugMix::NAME,
        RandomErasing::NAME,
        Mixup::NAME,
        Cutmix::NAME,
    ];
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert_eq!(info.params_without_default(), Vec::<String>::new());
}

#[test]
fn invalid_configs_are_rejected_with_the_field() {
    fn field<T: Component>(params: &str) -> String {
        let config = parse_config::<T::Config>(params).expect("parses");
        T::check(&config)
            .expect_err("rejected")
            .field_path
            .to_string()
    }
    assert_eq!(field::<RandomResizedCrop>("(scale: (0.5, 1.5))"), "scale");
    assert_eq!(field::<RandomResizedCrop>("(ratio: (2.0, 1.0))"), "ratio");
    assert_eq!(field::<HorizontalFlip>("(p: 1.5)"), "p");
    assert_eq!(field::<ColorJitter>("(hue: 0.7)"), "hue");
    assert_eq!(field::<GaussianBlur>("(kernel_size: 4)"), "kernel_size");
    assert_eq!(field::<RandAugment>("(magnitude: 31)"), "magnitude");
    assert_eq!(field::<AugMix>("(severity: 11)"), "severity");
    assert_eq!(field::<RandomErasing>("(scale: (0.1, 1.0))"), "scale");
    assert_eq!(field::<Mixup>("(alpha: 0.0)"), "alpha");
    assert_eq!(
        field::<Resize>("(shorter_side: Some(256), max_size: Some(200))"),
        "max_size"
    );
    assert!(parse_config::<RandomCropConfigAlias>("(pad_mode: mirror)").is_err());
}

type RandomCropConfigAlias = <RandomCrop as Component>::Config;

#[test]
fn sizes_default_to_the_recipe_input_size() {
    let img = image(40, 30);
    let out = make::<RandomResizedCrop>("()")
        .apply(img.clone(), 1)
        .expect("applies");
    assert_eq!((out.height, out.width), (24, 20));
    let out = make::<CenterCrop>("()")
        .apply(img.clone(), 1)
        .expect("applies");
    assert_eq!((out.height, out.width), (24, 20));
    let out = make::<RandomCrop>("(padding: 2)")
        .apply(img.clone(), 1)
        .expect("applies");
    assert_eq!((out.height, out.width), (24, 20));
    let out = make::<Resize>("(shorter_side: Some(15))")
        .apply(img, 1)
        .expect("applies");
    assert_eq!((out.height, out.width), (15, 20));
}

/// A component's `apply`, boxed.
type ApplyFn = Box<dyn Fn(ImageU8, u64) -> ImageU8>;

#[test]
fn image_ops_are_deterministic_given_the_seed() {
    let img = image(48, 40);
    let ops: Vec<(&str, ApplyFn)> = vec![
        ("random_resized_crop", {
            let op = make::<RandomResizedCrop>("()");
            Box::new(move |i, s| op.apply(i, s).expect("applies"))
        }),
        ("color_jitter", {
            let op =
                make::<ColorJitter>("(brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1)");
            Box::new(move |i, s| op.apply(i, s).expect("applies"))
        }),
        ("trivial_augment_wide", {
            let op = make::<TrivialAugmentWide>("()");
            Box::new(move |i, s| op.apply(i, s).expect("applies"))
        }),
        ("rand_augment", {
            let op = make::<RandAugment>("()");
            Box::new(move |i, s| op.apply(i, s).expect("applies"))
        }),
        ("auto_augment", {
            let op = make::<AutoAugment>("(policy: svhn)");
            Box::new(move |i, s| op.apply(i, s).expect("applies"))
        }),
        ("aug_mix", {
            let op = make::<AugMix>("()");
            Box::new(move |i, s| op.apply(i, s).expect("applies"))
        }),
        ("gaussian_blur", {
            let op = make::<GaussianBlur>("(kernel_size: 7)");
            Box::new(move |i, s| op.apply(i, s).expect("applies"))
        }),
        ("random_crop", {
            let op = make::<RandomCrop>("(padding: 4, pad_mode: reflect)");
            Box::new(move |i, s| op.apply(i, s).expect("applies"))
        }),
    ];
    for (name, op) in ops {
        let a = op(img.clone(), 42);
        assert_eq!(a, op(img.clone(), 42), "{name}: same seed, same output");
        let differs = (0..8u64).any(|s| op(img.clone(), 100 + s) != a);
        assert!(differs, "{name}: different seeds give different outputs");
    }
}

#[test]
fn crop_area_and_aspect_follow_their_definitions() {
    let (h, w) = (1000u32, 1000u32);
    let (scale, ratio) = ((0.08, 1.0), (3.0 / 4.0, 4.0 / 3.0));
    let n = 20_000;
    let (mut area_sum, mut log_ratio_sum) = (0.0, 0.0);
    for seed in 0..n {
        let b = sample_resized_crop(h, w, scale, ratio, &mut rng(seed));
        assert!(b.inside(w, h));
        let area = f64::from(b.height * b.width) / f64::from(h * w);
        let aspect = f64::from(b.width) / f64::from(b.height);
        assert!((scale.0 * 0.97..=scale.1).contains(&area), "area {area}");
        assert!(
            (ratio.0 * 0.98..=ratio.1 * 1.02).contains(&aspect),
            "aspect {aspect}"
        );
        area_sum += area;
        log_ratio_sum += aspect.ln();
    }
    // A try is kept when the box fits: area <= min(r, 1/r) on a square image. The expected
    // kept area is therefore E[a | a <= min(r, 1/r)] with a ~ U(0.08, 1) and log r uniform,
    // integrated here over a fine grid of log r.
    let (lo, hi) = (ratio.0.ln(), ratio.1.ln());
    let steps = 10_000;
    let (mut num, mut den) = (0.0, 0.0);
    for i in 0..steps {
        let r: f64 = (lo + (hi - lo) * (i as f64 + 0.5) / steps as f64).exp();
        let m = r.min(1.0 / r).min(scale.1);
        num += (m * m - scale.0 * scale.0) / 2.0;
        den += m - scale.0;
    }
    let want = num / den;
    let mean_area = area_sum / n as f64;
    assert!(
        (mean_area - want).abs() < 0.006,
        "mean area {mean_area} vs {want}"
    );
    // log(aspect) is uniform on a range symmetric about 0.
    let mean_log = log_ratio_sum / n as f64;
    assert!(mean_log.abs() < 0.01, "mean log aspect {mean_log}");
}

#[test]
fn crop_falls_back_to_the_clamped_centre_crop() {
    // A 1x100 strip cannot hold any 4:3..3:4 box: the fallback takes the full height and
    // width = round(1 * 4/3) = 1, centred.
    let b = sample_resized_crop(1, 100, (0.9, 1.0), (3.0 / 4.0, 4.0 / 3.0), &mut rng(3));
    assert_eq!(b, geometry::CropBox::new(0, 49, 1, 1));
}

#[test]
fn flip_rate_matches_p() {
    let img = image(4, 3);
    let mut flipped = img.clone();
    geometry::horizontal_flip(&mut flipped);
    for p in [0.0, 0.3, 0.5, 1.0] {
        let op = make::<HorizontalFlip>(&format!("(p: {p})"));
        let n = 10_000;
        let count = (0..n)
            .filter(|&s| op.apply(img.clone(), s).expect("applies") == flipped)
            .count();
        let rate = count as f64 / n as f64;
        assert!((rate - p).abs() < 0.015, "p={p}: rate {rate}");
    }
}

#[test]
fn erasing_rate_and_box_follow_their_definitions() {
    let op = RandomErasing::new(parse_config("(p: 0.5)").expect("parses"), &ctx()).expect("builds");
    let shape = [3usize, 32, 32];
    let n = 10_000;
    let mut erased = 0;
    for seed in 0..n {
        let mut data = vec![1.0f32; 3 * 32 * 32];
        op.apply(TensorMut::new(&shape, &mut data).expect("shape"), seed)
            .expect("applies");
        if data.contains(&0.0) {
            erased += 1;
        }
    }
    // Each try fails only when the box does not fit, which is rare at scale (0.02, 0.33).
    let rate = erased as f64 / n as f64;
    assert!((rate - 0.5).abs() < 0.02, "erasing rate {rate}");
    let (mut area, mut count) = (0.0, 0);
    for seed in 0..n {
        if let Some(b) = sample_erase_box(200, 200, (0.02, 0.33), (0.3, 3.3), &mut rng(seed)) {
            area += f64::from(b.height * b.width) / 40_000.0;
            count += 1;
        }
    }
    let mean = area / f64::from(count);
    assert!((mean - 0.175).abs() < 0.01, "mean erased area {mean}");
}

/// Mixes one-hot targets of a 2-sample batch and reads lambda back from the first row.
fn mixed_lambda(apply: &dyn Fn(TensorMut<'_>, TensorMut<'_>, u64), seed: u64) -> f64 {
    let shape = [2usize, 3, 16, 16];
    let mut images = vec![0.0f32; 2 * 3 * 16 * 16];
    let tshape = [2usize, 5];
    let mut targets = vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
    apply(
        TensorMut::new(&shape, &mut images).expect("shape"),
        TensorMut::new(&tshape, &mut targets).expect("shape"),
        seed,
    );
    let sum: f32 = targets[..5].iter().sum();
    assert!((sum - 1.0).abs() < 1e-5, "mixed rows sum to 1");
    f64::from(targets[0])
}

#[test]
fn mixup_lambda_follows_beta() {
    for alpha in [0.2, 0.8, 2.0] {
        let op = Mixup::new(
            parse_config(&format!("(alpha: {alpha})")).expect("parses"),
            &ctx(),
        )
        .expect("builds");
        let apply =
            |i: TensorMut<'_>, t: TensorMut<'_>, s: u64| op.apply(i, t, s).expect("applies");
        let n = 20_000;
        let lams: Vec<f64> = (0..n).map(|s| mixed_lambda(&apply, s)).collect();
        let mean = lams.iter().sum::<f64>() / n as f64;
        let var = lams.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n as f64;
        // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)).
        let want_var = 1.0 / (4.0 * (2.0 * alpha + 1.0));
        assert!((mean - 0.5).abs() < 0.01, "alpha={alpha}: mean {mean}");
        assert!(
            (var - want_var).abs() < 0.05 * want_var + 0.002,
            "alpha={alpha}: var {var} vs {want_var}"
        );
    }
}

#[test]
fn cutmix_lambda_is_the_kept_area() {
    let op = Cutmix::new(Default::default(), &ctx()).expect("builds");
    let shape = [2usize, 1, 16, 16];
    for seed in 0..500 {
        let mut images: Vec<f32> = (0..2 * 16 * 16)
            .map(|i| if i < 256 { 1.0 } else { 0.0 })
            .collect();
        let tshape = [2usize, 2];
        let mut targets = vec![1.0, 0.0, 0.0, 1.0];
        op.apply(
            TensorMut::new(&shape, &mut images).expect("shape"),
            TensorMut::new(&tshape, &mut targets).expect("shape"),
            seed,
        )
        .expect("applies");
        let kept = images[..256].iter().filter(|&&v| v == 1.0).count() as f32 / 256.0;
        assert!(
            (targets[0] - kept).abs() < 1e-6,
            "lambda {} vs kept area {kept}",
            targets[0]
        );
    }
}
