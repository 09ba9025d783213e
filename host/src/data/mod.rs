//! The data stage: finds the images, decodes them, and feeds the trainer batches.
//!
//! - [`settings`]: [`DataSettings`], what a run asks of the data stage;
//! - [`imagefolder`]: `root/<class>/<image>` datasets with torchvision's class order, symbolic
//!   links followed except back into the dataset, and a seeded stratified split;
//! - [`decode`]: files to 8-bit RGB, with EXIF orientation and a decompression-bomb guard;
//! - [`geometry`]: the eval path's resize-then-center-crop;
//! - [`seed`]: every seed of the data stage, from (seed, epoch, sample, augmentation);
//! - [`pipeline`]: what happens to one sample, from file to normalized tensor;
//! - [`loader`]: worker threads running a pipeline into contiguous batches;
//! - [`cache`]: the optional in-memory cache of decoded images;
//! - [`stats`] and [`preview`]: what `clshost data stats` and `clshost data preview` show;
//! - [`synth`]: the generated dataset of `clshost data synth`.

pub mod cache;
pub mod decode;
pub mod geometry;
pub mod imagefolder;
pub mod loader;
pub mod pipeline;
pub mod preview;
pub mod seed;
pub mod settings;
pub mod stats;
pub mod synth;

pub use decode::{DecodeError, DecodeLimits};
pub use geometry::EvalGeometry;
pub use imagefolder::{ImageFolder, Sample, ScanError};
pub use loader::{Batch, Epoch, Loader, LoaderError, LoaderOptions, StageTimes};
pub use pipeline::Pipeline;
pub use seed::Seeds;
pub use settings::{DataSettings, OnError};
