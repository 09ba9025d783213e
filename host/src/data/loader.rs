//! The parallel, deterministic loader: worker threads turn image files into contiguous
//! normalized batches ahead of the trainer.
//!
//! A [`Pipeline`] ([`super::pipeline`]) says what happens to one sample; its tensor-stage
//! augmentations run in place in the batch buffer. The augmentations are plugin components
//! handed in by the caller; nothing here names one.
//!
//! A [`Loader`] runs a pipeline over a list of samples. Each epoch visits the samples in an order
//! shuffled from (seed, epoch) and cuts it into batches; a worker builds a whole batch, writing
//! each sample straight into the batch buffer. The augmentation at position `k` of the pipeline
//! gets the seed derived from (seed, epoch, sample index, `k`), so a batch depends only on the
//! seed, the epoch and its index: the same for any worker count. At most `prefetch` batches
//! are in progress or waiting for the trainer at any time, which bounds memory by
//! `prefetch x batch size`, whatever the dataset size.
//!
//! A file that cannot be decoded is, with [`OnError::Skip`], left out of its batch (which is then
//! smaller), logged once with its path, and remembered so later epochs skip it without retrying;
//! with [`OnError::Fail`] the epoch stops with an error naming it. A loader made with
//! [`Loader::require_images`] (training and validation do) ends an epoch in which no file at all
//! could be read with [`LoaderError::NoneReadable`] instead of ending it empty, so that nothing
//! is trained or scored on no data. Errors from augmentations are always fatal: they mean a
//! broken plugin or config, not a bad file.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clshost_plugin_api::{ImageU8, TensorMut, TensorRef};

use super::cache::ImageCache;
use super::decode::{self, DecodeError};
use super::geometry::GeometryError;
use super::imagefolder::Sample;
use super::pipeline::Pipeline;
use super::seed::Seeds;
use super::settings::{DataSettings, OnError};
use crate::registry::ComponentError;

/// Why the loader stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// A file could not be decoded and `on_error` is `fail`.
    #[error("{0} (data.on_error is `fail`; use `skip` to leave such files out)")]
    Decode(DecodeError),
    /// The eval geometry failed on a file.
    #[error("{}: {error}", path.display())]
    Geometry {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: GeometryError,
    },
    /// An augmentation failed on a file.
    #[error("{}: {error}", path.display())]
    Augment {
        /// The file.
        path: PathBuf,
        /// The component's error.
        error: Box<ComponentError>,
    },
    /// After the image stage a sample does not have the input size.
    #[error(
        "{}: after {after} the image is {width}x{height}, but the pipeline needs \
         {want_width}x{want_height}; end the image stage with a crop or resize to the input size",
        path.display()
    )]
    WrongSize {
        /// The file.
        path: PathBuf,
        /// What produced the image (the last image-stage augmentation, or decoding).
        after: String,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The input width.
        want_width: u32,
        /// The input height.
        want_height: u32,
    },
    /// An image-stage augmentation comes after a tensor-stage one.
    #[error(
        "image-stage augmentation {image} comes after tensor-stage augmentation {tensor}; \
         list every image-stage augmentation first"
    )]
    Order {
        /// The image-stage augmentation.
        image: String,
        /// The tensor-stage augmentation before it.
        tensor: String,
    },
    /// Invalid loader settings.
    #[error("{0}")]
    Settings(String),
    /// No file of the epoch could be read (with `on_error: skip`) and the loader requires images.
    #[error(
        "every one of the {total} {set} images was unreadable (on_error: skip); the first: {}",
        first.reason
    )]
    NoneReadable {
        /// What the images are for (`training`, `validation`).
        set: String,
        /// The number of images.
        total: usize,
        /// The first of them, in dataset order, and why it could not be read.
        first: SkippedFile,
    },
    /// A worker thread panicked while building a batch.
    #[error("data worker panicked while building batch {batch}: {message}")]
    Panic {
        /// The batch index.
        batch: usize,
        /// The panic message.
        message: String,
    },
}

/// How a [`Loader`] batches and schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderOptions {
    /// Samples per batch.
    pub batch_size: usize,
    /// Worker threads.
    pub workers: usize,
    /// Batches in progress or ready at any time.
    pub prefetch: usize,
    /// Whether each epoch visits the samples in a seeded random order.
    pub shuffle: bool,
    /// The run seed.
    pub seed: u64,
    /// What to do with files that cannot be decoded.
    pub on_error: OnError,
    /// Bytes of decoded images to keep in memory; 0 disables the cache.
    pub cache_bytes: u64,
}

impl LoaderOptions {
    /// The options `settings` ask for, shuffled or not.
    pub fn from_settings(settings: &DataSettings, shuffle: bool, seed: u64) -> Self {
        LoaderOptions {
            batch_size: settings.batch_size,
            workers: settings.worker_count(),
            prefetch: settings.prefetch_depth(),
            shuffle,
            seed,
            on_error: settings.on_error,
            cache_bytes: settings.cache_mb.saturating_mul(1 << 20),
        }
    }
}

/// One batch: `[N, 3, H, W]` images in one contiguous buffer, with labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Position of the batch in its epoch.
    pub index: usize,
    /// `[N, 3, H, W]`.
    pub shape: [usize; 4],
    /// The normalized images, row-major.
    pub images: Vec<f32>,
    /// The class of each image.
    pub labels: Vec<u32>,
    /// The dataset index of each image.
    pub indices: Vec<usize>,
}

impl Batch {
    /// Number of images; smaller than the batch size for the last batch or after skips.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch has no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images as a tensor view.
    pub fn view(&self) -> TensorRef<'_> {
        TensorRef {
            shape: self.shape.as_slice().into(),
            data: self.images.as_slice().into(),
        }
    }

    /// The images as a writable tensor view (for batch augmentations).
    pub fn view_mut(&mut self) -> TensorMut<'_> {
        TensorMut {
            shape: self.shape.as_slice().into(),
            data: self.images.as_mut_slice().into(),
        }
    }
}

/// A file left out because it could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// Time the workers spent in each stage, summed over threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Reading and decoding files (and the eval geometry), or copying from the cache.
    pub decode: Duration,
    /// Running the augmentations.
    pub augment: Duration,
    /// Normalizing into the batch buffer.
    pub collate: Duration,
    /// Samples that went through.
    pub samples: u64,
}

impl std::ops::Sub for StageTimes {
    type Output = StageTimes;
    fn sub(self, rhs: StageTimes) -> StageTimes {
        StageTimes {
            decode: self.decode.saturating_sub(rhs.decode),
            augment: self.augment.saturating_sub(rhs.augment),
            collate: self.collate.saturating_sub(rhs.collate),
            samples: self.samples.saturating_sub(rhs.samples),
        }
    }
}

#[derive(Default)]
struct Counters {
    decode: AtomicU64,
    augment: AtomicU64,
    collate: AtomicU64,
    samples: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

struct Inner {
    samples: Vec<Sample>,
    pipeline: Pipeline,
    options: LoaderOptions,
    cache: Option<ImageCache>,
    bad: Vec<AtomicBool>,
    skipped: Mutex<Vec<SkippedFile>>,
    counters: Counters,
}

/// Outcome of preparing one sample.
enum Prepared {
    Image(ImageU8),
    Skipped,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    /// Decodes sample `i` (from the cache when it can), applying the eval geometry.
    fn prepare(&self, i: usize) -> Result<Prepared, LoaderError> {
        if self.bad[i].load(Ordering::Relaxed) {
            return Ok(Prepared::Skipped);
        }
        if let Some(image) = self.cache.as_ref().and_then(|c| c.get(i)) {
            return Ok(Prepared::Image((*image).clone()));
        }
        let path = &self.samples[i].path;
        let image = match decode::decode_file(path, &self.pipeline.limits) {
            Ok(image) => image,
            Err(e) if self.options.on_error == OnError::Skip => {
                if !self.bad[i].swap(true, Ordering::Relaxed) {
                    tracing::warn!("skipping {e}");
                    lock(&self.skipped).push(SkippedFile {
                        path: path.clone(),
                        reason: e.to_string(),
                    });
                }
                return Ok(Prepared::Skipped);
            }
            Err(e) => return Err(LoaderError::Decode(e)),
        };
        let image = match &self.pipeline.eval {
            Some(g) => g.apply(&image).map_err(|error| LoaderError::Geometry {
                path: path.clone(),
                error,
            })?,
            None => image,
        };
        if let Some(cache) = &self.cache {
            let image = Arc::new(image);
            cache.insert(i, image.clone());
            return Ok(Prepared::Image(Arc::unwrap_or_clone(image)));
        }
        Ok(Prepared::Image(image))
    }

    /// The error for an epoch of `set` in which no file could be read, naming the first file in
    /// dataset order.
    fn none_readable(&self, set: String) -> LoaderError {
        let skipped = lock(&self.skipped);
        // Workers find bad files in any order; the flags are in dataset order.
        let first = self
            .bad
            .iter()
            .position(|b| b.load(Ordering::Relaxed))
            .and_then(|i| skipped.iter().find(|f| f.path == self.samples[i].path))
            .or(skipped.first())
            .cloned()
            .unwrap_or_else(|| SkippedFile {
                path: PathBuf::new(),
                reason: "no file could be read".into(),
            });
        LoaderError::NoneReadable {
            set,
            total: self.samples.len(),
            first,
        }
    }

    /// Runs sample `i` through the pipeline into `out` (`3 * H * W` floats). Returns false when
    /// the sample was skipped.
    fn sample_into(&self, epoch: u64, i: usize, out: &mut [f32]) -> Result<bool, LoaderError> {
        let p = &self.pipeline;
        let seeds = Seeds(self.options.seed);
        let path = &self.samples[i].path;
        let augment_error = |error| LoaderError::Augment {
            path: path.clone(),
            error: Box::new(error),
        };
        let t0 = Instant::now();
        let Prepared::Image(mut image) = self.prepare(i)? else {
            return Ok(false);
        };
        let t1 = Instant::now();
        for (k, a) in p.augments[..p.tensor_start].iter().enumerate() {
            image = a
                .apply_image(image, seeds.sample(epoch, i as u64, k as u64))
                .map_err(augment_error)?;
        }
        if (image.height, image.width) != (p.height, p.width) {
            return Err(LoaderError::WrongSize {
                path: path.clone(),
                after: p.augments[..p.tensor_start]
                    .last()
                    .map_or_else(|| "decoding".to_string(), |a| a.origin().to_string()),
                width: image.width,
                height: image.height,
                want_width: p.width,
                want_height: p.height,
            });
        }
        let t2 = Instant::now();
        p.normalize.write(&image, out);
        let t3 = Instant::now();
        let shape = [3, p.height as usize, p.width as usize];
        for (k, a) in p.augments.iter().enumerate().skip(p.tensor_start) {
            let view = TensorMut {
                shape: shape.as_slice().into(),
                data: (&mut *out).into(),
            };
            a.apply_tensor(view, seeds.sample(epoch, i as u64, k as u64))
                .map_err(augment_error)?;
        }
        let t4 = Instant::now();
        let c = &self.counters;
        c.decode.fetch_add(nanos(t1 - t0), Ordering::Relaxed);
        c.augment
            .fetch_add(nanos((t2 - t1) + (t4 - t3)), Ordering::Relaxed);
        c.collate.fetch_add(nanos(t3 - t2), Ordering::Relaxed);
        c.samples.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Builds batch `index` of `epoch` from the samples `order`.
    fn batch(
        &self,
        epoch: u64,
        index: usize,
        order: &[usize],
        mut buffer: Vec<f32>,
    ) -> Result<Batch, LoaderError> {
        let (h, w) = (self.pipeline.height as usize, self.pipeline.width as usize);
        let chw = 3 * h * w;
        buffer.clear();
        buffer.resize(order.len() * chw, 0.0);
        let mut labels = Vec::with_capacity(order.len());
        let mut indices = Vec::with_capacity(order.len());
        for &i in order {
            let k = labels.len();
            if self.sample_into(epoch, i, &mut buffer[k * chw..(k + 1) * chw])? {
                labels.push(self.samples[i].label);
                indices.push(i);
            }
        }
        buffer.truncate(labels.len() * chw);
        Ok(Batch {
            index,
            shape: [labels.len(), 3, h, w],
            images: buffer,
            labels,
            indices,
        })
    }
}

/// Runs a [`Pipeline`] over a list of samples, epoch by epoch.
pub struct Loader {
    inner: Arc<Inner>,
    /// The set named in [`LoaderError::NoneReadable`], when an epoch must yield an image.
    required: Option<String>,
}

impl Loader {
    /// A loader of `samples` through `pipeline`.
    pub fn new(
        samples: Vec<Sample>,
        pipeline: Pipeline,
        options: LoaderOptions,
    ) -> Result<Self, LoaderError> {
        if options.batch_size == 0 || options.workers == 0 || options.prefetch == 0 {
            return Err(LoaderError::Settings(format!(
                "batch size, workers and prefetch must be at least 1 (got {}, {}, {})",
                options.batch_size, options.workers, options.prefetch
            )));
        }
        let cache =
            (options.cache_bytes > 0).then(|| ImageCache::new(samples.len(), options.cache_bytes));
        Ok(Loader {
            inner: Arc::new(Inner {
                bad: samples.iter().map(|_| AtomicBool::new(false)).collect(),
                samples,
                pipeline,
                options,
                cache,
                skipped: Mutex::new(Vec::new()),
                counters: Counters::default(),
            }),
            required: None,
        })
    }

    /// Makes an epoch in which no file could be read end with [`LoaderError::NoneReadable`]
    /// naming `set` (`training`, `validation`), instead of ending without a batch.
    pub fn require_images(mut self, set: impl Into<String>) -> Self {
        self.required = Some(set.into());
        self
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.inner.samples.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.inner.samples.is_empty()
    }

    /// Number of batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.len().div_ceil(self.inner.options.batch_size)
    }

    /// Files skipped so far, in the order they were found bad.
    pub fn skipped(&self) -> Vec<SkippedFile> {
        lock(&self.inner.skipped).clone()
    }

    /// Time spent per stage so far, summed over all workers and epochs.
    pub fn stage_times(&self) -> StageTimes {
        let c = &self.inner.counters;
        let d = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
        StageTimes {
            decode: d(&c.decode),
            augment: d(&c.augment),
            collate: d(&c.collate),
            samples: c.samples.load(Ordering::Relaxed),
        }
    }

    /// Bytes of decoded images held by the cache.
    pub fn cached_bytes(&self) -> u64 {
        self.inner.cache.as_ref().map_or(0, ImageCache::used_bytes)
    }

    /// Starts `epoch`: the workers begin preparing its first batches at once.
    pub fn epoch(&self, epoch: u64) -> Epoch {
        self.epoch_shard(epoch, 0, 1)
    }

    /// Starts rank `rank`'s share of `epoch` in a job of `ranks`: the batches whose index (in
    /// the whole epoch's order) leaves `rank` when divided by `ranks`, each exactly as
    /// [`Loader::epoch`] builds it.
    pub fn epoch_shard(&self, epoch: u64, rank: usize, ranks: usize) -> Epoch {
        let inner = &self.inner;
        let n = inner.samples.len();
        let order = if inner.options.shuffle {
            Seeds(inner.options.seed).permutation(epoch, n)
        } else {
            (0..n).collect()
        };
        let shared = Arc::new(EpochShared {
            inner: Arc::clone(inner),
            epoch,
            order,
            jobs: (rank..self.batches_per_epoch())
                .step_by(ranks.max(1))
                .collect(),
            state: Mutex::new(State {
                next_job: 0,
                next_out: 0,
                done: BTreeMap::new(),
                stop: false,
            }),
            work: Condvar::new(),
            ready: Condvar::new(),
            pool: Mutex::new(Vec::new()),
        });
        let workers = (0..inner.options.workers.min(shared.jobs.len().max(1)))
            .map(|w| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("clshost-data-{w}"))
                    .spawn(move || shared.work())
                    .expect("spawning a data worker thread")
            })
            .collect();
        Epoch {
            shared,
            workers,
            finished: false,
            required: self.required.clone(),
            delivered: false,
        }
    }
}

/// Progress through an epoch's jobs, by position in [`EpochShared::jobs`].
struct State {
    next_job: usize,
    next_out: usize,
    done: BTreeMap<usize, Result<Batch, LoaderError>>,
    stop: bool,
}

struct EpochShared {
    inner: Arc<Inner>,
    epoch: u64,
    order: Vec<usize>,
    /// The indices of the batches to build, in order.
    jobs: Vec<usize>,
    state: Mutex<State>,
    work: Condvar,
    ready: Condvar,
    pool: Mutex<Vec<Vec<f32>>>,
}

impl EpochShared {
    /// A worker: takes the next job while fewer than `prefetch` batches are pending, builds its
    /// batch, hands it over.
    fn work(&self) {
        let depth = self.inner.options.prefetch;
        let bs = self.inner.options.batch_size;
        loop {
            let job = {
                let mut st = lock(&self.state);
                loop {
                    if st.stop || st.next_job >= self.jobs.len() {
                        return;
                    }
                    if st.next_job < st.next_out + depth {
                        st.next_job += 1;
                        break st.next_job - 1;
                    }
                    st = self.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                }
            };
            let index = self.jobs[job];
            let order = &self.order[index * bs..((index + 1) * bs).min(self.order.len())];
            let buffer = lock(&self.pool).pop().unwrap_or_default();
            let result = panic::catch_unwind(AssertUnwindSafe(|| {
                self.inner.batch(self.epoch, index, order, buffer)
            }))
            .unwrap_or_else(|p| {
                Err(LoaderError::Panic {
                    batch: index,
                    message: clshost_plugin_api::panic_message(p.as_ref()),
                })
            });
            lock(&self.state).done.insert(job, result);
            self.ready.notify_one();
        }
    }
}

/// The batches of one epoch, in order. Dropping it stops the workers.
pub struct Epoch {
    shared: Arc<EpochShared>,
    workers: Vec<JoinHandle<()>>,
    finished: bool,
    /// The set to name when the epoch must yield an image and none could be read.
    required: Option<String>,
    /// Whether a batch has been handed out.
    delivered: bool,
}

impl Epoch {
    /// Gives a batch's buffer back for reuse by a later batch of this epoch.
    pub fn recycle(&self, batch: Batch) {
        lock(&self.shared.pool).push(batch.images);
    }

    fn stop(&mut self) {
        self.finished = true;
        lock(&self.shared.state).stop = true;
        self.shared.work.notify_all();
    }
}

impl Iterator for Epoch {
    type Item = Result<Batch, LoaderError>;

    /// The next batch, waiting for it if needed. Batches whose every file was skipped are
    /// passed over; when that was every batch and the loader requires images, the epoch ends
    /// with [`LoaderError::NoneReadable`]. After an error the epoch ends.
    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let shared = Arc::clone(&self.shared);
        let mut st = lock(&shared.state);
        loop {
            if st.next_out >= shared.jobs.len() {
                drop(st);
                self.finished = true;
                return self
                    .required
                    .take()
                    .filter(|_| !self.delivered && !shared.jobs.is_empty())
                    .map(|set| Err(shared.inner.none_readable(set)));
            }
            let next = st.next_out;
            let Some(result) = st.done.remove(&next) else {
                st = shared
                    .ready
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            st.next_out += 1;
            shared.work.notify_all();
            match result {
                Ok(batch) if batch.is_empty() => continue,
                Ok(batch) => {
                    self.delivered = true;
                    return Some(Ok(batch));
                }
                Err(e) => {
                    drop(st);
                    self.stop();
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        self.stop();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
