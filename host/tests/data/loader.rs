//! The loader with real augmentation plugins: batches are bit-identical for 1, 2 and 4 workers
//! (and with the cache on), each sample's augmentations get the seeds derived from (seed, epoch,
//! index, position), bad files are skipped once or stop the run per `on_error`, and pipeline
//! mistakes are clear errors.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clshost::data::decode::{DecodeLimits, decode_file};
use clshost::data::imagefolder::{ImageFolder, Sample};
use clshost::data::{Batch, Loader, LoaderError, LoaderOptions, OnError, Pipeline, Seeds};
use clshost::registry::{Registry, SampleAugment, SearchPath};
use clshost_plugin_api::{AugmentContext, AugmentStage, TensorMut};
use image::{ImageFormat, RgbImage};

const SIZE: u32 = 32;
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The augmentation plugin, built once per test process into this workspace's target dir.
fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let profile = crate::common::augment_plugin_dir();
        let file = format!(
            "{}clshost_plugin_augment{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        let search = SearchPath {
            files: vec![profile.join(file)],
            ..SearchPath::default()
        };
        Registry::load(&search).unwrap()
    })
}

fn augment(name: &str, params: &str) -> SampleAugment {
    let ctx = AugmentContext {
        input_height: SIZE,
        input_width: SIZE,
        mean: MEAN,
        std: STD,
        num_classes: 3,
    };
    registry().new_sample_augment(name, params, &ctx).unwrap()
}

/// RandomResizedCrop + flip (image stage), random erasing (tensor stage).
fn train_pipeline() -> Pipeline {
    let augments = vec![
        augment("random_resized_crop", "()"),
        augment("horizontal_flip", "()"),
        augment("random_erasing", "(p: 0.5, value: per_pixel)"),
    ];
    Pipeline::new(augments, SIZE, SIZE, MEAN, STD).unwrap()
}

/// A folder of `per_class` noisy PNG and JPEG images of varying sizes in 3 classes.
fn dataset(root: &Path, per_class: usize) -> ImageFolder {
    let mut state = 12345u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for class in ["cat", "dog", "eel"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..per_class {
            let (w, h) = (24 + next() % 40, 24 + next() % 40);
            let img = RgbImage::from_fn(w, h, |_, _| {
                let v = next();
                image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
            });
            let (ext, format) = if i % 2 == 0 {
                ("png", ImageFormat::Png)
            } else {
                ("jpg", ImageFormat::Jpeg)
            };
            img.save_with_format(root.join(class).join(format!("{i}.{ext}")), format)
                .unwrap();
        }
    }
    ImageFolder::scan(root).unwrap()
}

fn options(workers: usize, prefetch: usize) -> LoaderOptions {
    LoaderOptions {
        batch_size: 5,
        workers,
        prefetch,
        shuffle: true,
        seed: 99,
        on_error: OnError::Skip,
        cache_bytes: 0,
    }
}

fn run_epochs(loader: &Loader, epochs: u64) -> Vec<Batch> {
    (0..epochs)
        .flat_map(|e| loader.epoch(e).collect::<Result<Vec<_>, _>>().unwrap())
        .collect()
}

#[test]
fn batches_are_identical_for_any_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path(), 8);
    let reference_loader =
        Loader::new(ds.samples.clone(), train_pipeline(), options(1, 1)).unwrap();
    let reference = run_epochs(&reference_loader, 2);
    assert_eq!(reference.len(), 2 * 24usize.div_ceil(5));
    assert!(reference.iter().all(|b| b.shape[1..] == [3, 32, 32]));
    for (workers, prefetch) in [(2, 2), (4, 3), (4, 8)] {
        let loader = Loader::new(
            ds.samples.clone(),
            train_pipeline(),
            options(workers, prefetch),
        )
        .unwrap();
        let batches = run_epochs(&loader, 2);
        assert_eq!(batches.len(), reference.len());
        for (a, b) in batches.iter().zip(&reference) {
            assert_eq!(
                (a.index, &a.labels, &a.indices),
                (b.index, &b.labels, &b.indices)
            );
            let same_bits = a
                .images
                .iter()
                .zip(&b.images)
                .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same_bits, "{workers} workers: batch {} differs", a.index);
        }
    }
    let cached = Loader::new(
        ds.samples.clone(),
        train_pipeline(),
        LoaderOptions {
            cache_bytes: 1 << 24,
            ..options(2, 4)
        },
    )
    .unwrap();
    assert_eq!(
        run_epochs(&cached, 2),
        reference,
        "the cache changes nothing"
    );
    assert!(cached.cached_bytes() > 0);

    // Every sample appears once per epoch, with its own label; epochs are shuffled differently.
    let per_epoch = reference.len() / 2;
    for epoch in reference.chunks(per_epoch) {
        let mut seen: Vec<usize> = epoch.iter().flat_map(|b| b.indices.clone()).collect();
        for b in epoch {
            for (i, l) in b.indices.iter().zip(&b.labels) {
                assert_eq!(ds.samples[*i].label, *l);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..24).collect::<Vec<_>>());
    }
    assert_ne!(reference[0].indices, reference[per_epoch].indices);
    let times = reference_loader.stage_times();
    assert_eq!(times.samples, 48);
}

#[test]
fn the_shards_of_an_epoch_are_its_batches_dealt_out_by_index() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path(), 8);
    let loader = Loader::new(ds.samples.clone(), train_pipeline(), options(2, 2)).unwrap();
    let whole: Vec<Batch> = loader.epoch(1).collect::<Result<_, _>>().unwrap();
    assert_eq!(whole.len(), 5);
    for ranks in [2, 3, 7] {
        for rank in 0..ranks {
            let shard: Vec<Batch> = loader
                .epoch_shard(1, rank, ranks)
                .collect::<Result<_, _>>()
                .unwrap();
            let expected: Vec<&Batch> = whole.iter().skip(rank).step_by(ranks).collect();
            assert_eq!(
                shard.iter().collect::<Vec<_>>(),
                expected,
                "rank {rank} of {ranks}"
            );
        }
    }
}

#[test]
fn each_sample_gets_the_seeds_of_its_epoch_index_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path(), 3);
    let loader = Loader::new(ds.samples.clone(), train_pipeline(), options(2, 2)).unwrap();
    let epoch = 1;
    let batch = loader.epoch(epoch).next().unwrap().unwrap();
    let augments = [
        augment("random_resized_crop", "()"),
        augment("horizontal_flip", "()"),
        augment("random_erasing", "(p: 0.5, value: per_pixel)"),
    ];
    let plane = 3 * (SIZE * SIZE) as usize;
    for (k, &i) in batch.indices.iter().enumerate() {
        let seed = |position: u64| Seeds(99).sample(epoch, i as u64, position);
        let mut image = decode_file(&ds.samples[i].path, &DecodeLimits::default()).unwrap();
        for (p, a) in augments.iter().enumerate().take(2) {
            assert_eq!(a.stage(), AugmentStage::Image);
            image = a.apply_image(image, seed(p as u64)).unwrap();
        }
        let n = (SIZE * SIZE) as usize;
        let mut tensor = vec![0f32; plane];
        for (j, px) in image.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                tensor[c * n + j] = (f32::from(px[c]) / 255.0 - MEAN[c]) / STD[c];
            }
        }
        let shape = [3, SIZE as usize, SIZE as usize];
        augments[2]
            .apply_tensor(TensorMut::new(&shape, &mut tensor).unwrap(), seed(2))
            .unwrap();
        assert_eq!(&batch.images[k * plane..(k + 1) * plane], tensor.as_slice());
    }
}

/// Writes the bad files: zero-byte, truncated JPEG, and a BMP header declaring 60000x60000.
fn bad_files(root: &Path) -> Vec<PathBuf> {
    let class = root.join("dog");
    let empty = class.join("zero.png");
    std::fs::write(&empty, b"").unwrap();
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(RgbImage::from_pixel(40, 40, image::Rgb([9, 99, 199])))
        .write_to(&mut jpeg, ImageFormat::Jpeg)
        .unwrap();
    let jpeg = jpeg.into_inner();
    let cut = class.join("cut.jpg");
    std::fs::write(&cut, &jpeg[..jpeg.len() / 2]).unwrap();
    let mut bmp = b"BM".to_vec();
    for v in [54u32, 0, 54, 40, 60_000, 60_000] {
        bmp.extend_from_slice(&v.to_le_bytes());
    }
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp.extend_from_slice(&[0; 24]);
    let bomb = class.join("bomb.bmp");
    std::fs::write(&bomb, bmp).unwrap();
    vec![bomb, cut, empty]
}

#[test]
fn bad_files_are_skipped_once_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 4);
    let mut bad = bad_files(dir.path());
    let ds = ImageFolder::scan(dir.path()).unwrap();
    assert_eq!(ds.samples.len(), 15);
    let loader = Loader::new(ds.samples.clone(), train_pipeline(), options(2, 2)).unwrap();
    let batches = run_epochs(&loader, 2);
    let images: usize = batches.iter().map(Batch::len).sum();
    assert_eq!(
        images,
        2 * 12,
        "the three bad files are left out of both epochs"
    );
    let mut skipped: Vec<PathBuf> = loader.skipped().into_iter().map(|s| s.path).collect();
    skipped.sort();
    bad.sort();
    assert_eq!(skipped, bad, "each bad file is recorded once");
    let reasons: Vec<String> = loader.skipped().into_iter().map(|s| s.reason).collect();
    assert!(
        reasons.iter().any(|r| r.contains("60000x60000")),
        "{reasons:?}"
    );

    let failing = Loader::new(
        ds.samples.clone(),
        train_pipeline(),
        LoaderOptions {
            on_error: OnError::Fail,
            shuffle: false,
            ..options(1, 1)
        },
    )
    .unwrap();
    let results: Vec<_> = failing.epoch(0).collect();
    let err = results.last().unwrap().as_ref().unwrap_err();
    assert!(matches!(err, LoaderError::Decode(_)), "{err}");
    let message = err.to_string();
    assert!(
        bad.iter()
            .any(|p| message.contains(&p.display().to_string())),
        "{message}"
    );
    assert!(results[..results.len() - 1].iter().all(Result::is_ok));
}

#[test]
fn pipeline_mistakes_are_clear_errors() {
    let err = Pipeline::new(
        vec![
            augment("random_erasing", "()"),
            augment("horizontal_flip", "()"),
        ],
        SIZE,
        SIZE,
        MEAN,
        STD,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("`horizontal_flip`"), "{err}");
    assert!(
        err.to_string()
            .contains("list every image-stage augmentation first"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path(), 1);
    let flip_only = Pipeline::new(
        vec![augment("horizontal_flip", "()")],
        SIZE,
        SIZE,
        MEAN,
        STD,
    )
    .unwrap();
    let loader = Loader::new(ds.samples.clone(), flip_only, options(1, 1)).unwrap();
    let err = loader.epoch(0).next().unwrap().unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, LoaderError::WrongSize { .. }), "{message}");
    assert!(
        message.contains("horizontal_flip") && message.contains("needs 32x32"),
        "{message}"
    );
    let named = ds
        .samples
        .iter()
        .any(|s: &Sample| message.contains(&s.path.display().to_string()));
    assert!(named, "{message}");
}

#[test]
fn an_epoch_with_no_readable_image_fails_when_the_loader_requires_images() {
    let dir = tempfile::tempdir().unwrap();
    let samples: Vec<Sample> = ["c.png", "a.png", "b.jpg"]
        .iter()
        .enumerate()
        .map(|(label, name)| {
            let path = dir.path().join(name);
            std::fs::write(&path, b"hello world").unwrap();
            Sample {
                path,
                label: label as u32,
            }
        })
        .collect();
    let pipeline = || Pipeline::new(Vec::new(), SIZE, SIZE, MEAN, STD).unwrap();
    let options = LoaderOptions {
        batch_size: 1,
        ..options(2, 2)
    };

    // Not required: the epoch just ends, without a batch.
    let loader = Loader::new(samples.clone(), pipeline(), options).unwrap();
    assert!(loader.epoch(0).next().is_none());

    // Required: every epoch ends with one error naming the set and the first file in dataset
    // order, whichever worker found it.
    let loader = Loader::new(samples.clone(), pipeline(), options)
        .unwrap()
        .require_images("validation");
    let expected = format!(
        "every one of the 3 validation images was unreadable (on_error: skip); the first: {} \
         is not a PNG image (it starts with `hello wo`)",
        dir.path().join("c.png").display()
    );
    for epoch in 0..2 {
        let results: Vec<_> = loader.epoch(epoch).collect();
        assert_eq!(results.len(), 1, "epoch {epoch}");
        let err = results[0].as_ref().unwrap_err();
        assert!(matches!(err, LoaderError::NoneReadable { .. }), "{err}");
        assert_eq!(err.to_string(), expected);
    }

    // One readable image is enough.
    let good = dir.path().join("good.png");
    RgbImage::new(SIZE, SIZE).save(&good).unwrap();
    let mut some = samples;
    some.push(Sample {
        path: good,
        label: 0,
    });
    let loader = Loader::new(some, pipeline(), options)
        .unwrap()
        .require_images("training");
    let batches = loader.epoch(0).collect::<Result<Vec<_>, _>>().unwrap();
    assert_eq!(batches.iter().map(Batch::len).sum::<usize>(), 1);
}
