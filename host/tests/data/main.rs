//! The host's integration tests of the data stage, in one test binary: decoding, ImageFolder
//! scanning, the eval geometry against torchvision, the loader with real augmentation plugins,
//! and the data commands through the `clshost` binary.

mod common;

mod cli;
mod decode;
mod eval;
mod folder;
mod loader;
