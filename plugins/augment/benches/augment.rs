//! Per-op cost of the augmentations on a 224x224 and a 500x375 RGB image, and the
//! RandomResizedCrop(224) + flip + TrivialAugmentWide pipeline on 500x375, single-threaded.
//! Compare with `python3 scripts/bench/augment_torchvision.py`.
//!
//! Run with `cargo bench -p clshost-plugin-augment`.

use clshost_plugin_api::prelude::*;
use clshost_plugin_api::{AugmentContext, parse_config};
use clshost_plugin_augment::autoaug::{self, Op};
use clshost_plugin_augment::crop::{CenterCrop, RandomCrop, RandomResizedCrop, Resize};
use clshost_plugin_augment::erasing::RandomErasing;
use clshost_plugin_augment::flip::{HorizontalFlip, VerticalFlip};
use clshost_plugin_augment::geometry::Sampling;
use clshost_plugin_augment::mix::{Cutmix, Mixup};
use clshost_plugin_augment::photometric::{ColorJitter, GaussianBlur, RandomGrayscale};
use divan::{Bencher, black_box};
use std::sync::atomic::{AtomicU64, Ordering};

fn main() {
    divan::main();
}

/// The two benchmark sizes, as (width, height).
const SIZES: [(u32, u32); 2] = [(224, 224), (500, 375)];

/// A deterministic, textured test image.
fn image(width: u32, height: u32) -> ImageU8 {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    let mut state = 0x2545_f491_u32;
    for y in 0..height {
        for x in 0..width {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = state % 32;
            data.push(((x * 255 / width) + noise).min(255) as u8);
            data.push(((y * 255 / height) + noise).min(255) as u8);
            data.push((((x / 8 + y / 8) % 2) * 180 + noise) as u8);
        }
    }
    ImageU8::new(width, height, data).expect("consistent size")
}

fn ctx() -> AugmentContext {
    AugmentContext {
        input_height: 224,
        input_width: 224,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        num_classes: 1000,
    }
}

/// Builds an image-stage component from RON params.
fn make<T: ImageAugment>(params: &str) -> T {
    T::new(
        parse_config::<T::Config>(params).expect("valid params"),
        &ctx(),
    )
    .expect("builds")
}

/// Benchmarks one component on both sizes, cycling through seeds.
fn run<T: ImageAugment>(bencher: Bencher, size: (u32, u32), params: &str) {
    let op = make::<T>(params);
    let img = image(size.0, size.1);
    let seed = AtomicU64::new(0);
    bencher
        .with_inputs(|| (img.clone(), seed.fetch_add(1, Ordering::Relaxed)))
        .bench_values(|(img, seed)| black_box(op.apply(img, seed).expect("applies")));
}

#[divan::bench(args = SIZES)]
fn random_resized_crop(b: Bencher, size: (u32, u32)) {
    run::<RandomResizedCrop>(b, size, "()");
}

#[divan::bench(args = SIZES)]
fn resize_to_256(b: Bencher, size: (u32, u32)) {
    run::<Resize>(b, size, "(shorter_side: Some(256))");
}

#[divan::bench(args = SIZES)]
fn center_crop(b: Bencher, size: (u32, u32)) {
    run::<CenterCrop>(b, size, "()");
}

#[divan::bench(args = SIZES)]
fn random_crop_padded(b: Bencher, size: (u32, u32)) {
    run::<RandomCrop>(
        b,
        size,
        "(size: Some((200, 200)), padding: 4, pad_mode: reflect)",
    );
}

#[divan::bench(args = SIZES)]
fn horizontal_flip(b: Bencher, size: (u32, u32)) {
    run::<HorizontalFlip>(b, size, "(p: 1.0)");
}

#[divan::bench(args = SIZES)]
fn vertical_flip(b: Bencher, size: (u32, u32)) {
    run::<VerticalFlip>(b, size, "(p: 1.0)");
}

#[divan::bench(args = SIZES)]
fn color_jitter(b: Bencher, size: (u32, u32)) {
    run::<ColorJitter>(
        b,
        size,
        "(brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1)",
    );
}

#[divan::bench(args = SIZES)]
fn random_grayscale(b: Bencher, size: (u32, u32)) {
    run::<RandomGrayscale>(b, size, "(p: 1.0)");
}

#[divan::bench(args = SIZES)]
fn gaussian_blur(b: Bencher, size: (u32, u32)) {
    run::<GaussianBlur>(b, size, "(kernel_size: 9)");
}

#[divan::bench(args = SIZES)]
fn trivial_augment_wide(b: Bencher, size: (u32, u32)) {
    run::<autoaug::TrivialAugmentWide>(b, size, "()");
}

#[divan::bench(args = SIZES)]
fn rand_augment(b: Bencher, size: (u32, u32)) {
    run::<autoaug::RandAugment>(b, size, "()");
}

#[divan::bench(args = SIZES)]
fn auto_augment(b: Bencher, size: (u32, u32)) {
    run::<autoaug::AutoAugment>(b, size, "()");
}

#[divan::bench(args = SIZES)]
fn aug_mix(b: Bencher, size: (u32, u32)) {
    run::<autoaug::AugMix>(b, size, "()");
}

/// Each auto-augment op at a mid magnitude, so their individual costs are visible.
#[divan::bench(args = ["ShearX", "TranslateX", "Rotate", "Brightness", "Color", "Contrast",
    "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize"])]
fn auto_op_500x375(b: Bencher, name: &str) {
    let op = Op::from_name(name).expect("known op");
    let magnitude = match op {
        Op::Posterize => 4.0,
        Op::Rotate => 20.0,
        Op::TranslateX => 10.0,
        _ => 0.3,
    };
    let img = image(500, 375);
    b.with_inputs(|| img.clone())
        .bench_values(|img| black_box(autoaug::apply_op(img, op, magnitude, Sampling::Nearest)));
}

#[divan::bench(args = SIZES)]
fn random_erasing(b: Bencher, size: (u32, u32)) {
    let op = RandomErasing::new(
        parse_config("(p: 1.0, value: per_pixel)").expect("valid"),
        &ctx(),
    )
    .expect("builds");
    let shape = [3, size.1 as usize, size.0 as usize];
    let data = vec![0.5f32; shape.iter().product()];
    let seed = AtomicU64::new(0);
    b.with_inputs(|| (data.clone(), seed.fetch_add(1, Ordering::Relaxed)))
        .bench_values(|(mut data, seed)| {
            op.apply(TensorMut::new(&shape, &mut data).expect("shape"), seed)
                .expect("applies");
            data
        });
}

/// MixUp and CutMix on a batch of 64 at 224x224.
#[divan::bench(args = ["mixup", "cutmix"])]
fn batch_mix_64x224(b: Bencher, name: &str) {
    let c = ctx();
    let shape = [64, 3, 224, 224];
    let tshape = [64, 1000];
    let images = vec![0.25f32; shape.iter().product()];
    let targets = vec![0.001f32; tshape.iter().product()];
    let apply = |img: &mut Vec<f32>, tgt: &mut Vec<f32>, seed: u64| {
        let i = TensorMut::new(&shape, img).expect("shape");
        let t = TensorMut::new(&tshape, tgt).expect("shape");
        if name == "mixup" {
            Mixup::new(Default::default(), &c)
                .expect("builds")
                .apply(i, t, seed)
        } else {
            Cutmix::new(Default::default(), &c)
                .expect("builds")
                .apply(i, t, seed)
        }
        .expect("applies");
    };
    let seed = AtomicU64::new(0);
    b.with_inputs(|| {
        (
            images.clone(),
            targets.clone(),
            seed.fetch_add(1, Ordering::Relaxed),
        )
    })
    .bench_values(|(mut img, mut tgt, seed)| {
        apply(&mut img, &mut tgt, seed);
        (img, tgt)
    });
}

/// The recipe pipeline of the target: RandomResizedCrop(224) + horizontal flip +
/// TrivialAugmentWide on a 500x375 image.
#[divan::bench]
fn pipeline_rrc_flip_ta_500x375(b: Bencher) {
    let rrc = make::<RandomResizedCrop>("()");
    let flip = make::<HorizontalFlip>("()");
    let ta = make::<autoaug::TrivialAugmentWide>("()");
    let img = image(500, 375);
    let seed = AtomicU64::new(0);
    b.with_inputs(|| (img.clone(), seed.fetch_add(1, Ordering::Relaxed)))
        .bench_values(|(img, seed)| {
            let img = rrc.apply(img, seed).expect("crop");
            let img = flip.apply(img, seed ^ 0x9e37).expect("flip");
            black_box(ta.apply(img, seed ^ 0x7f4a).expect("ta"))
        });
}
