//! The end-to-end tests: one test binary that drives the built `clshost` binary and plugins as
//! a user does. The host, the first-party plugins and the out-of-tree workspaces (the broken
//! plugin fixtures, the third-party example) are built once per test process by [`support`];
//! each module below covers one command or concern.

mod nested_cargo;
mod support;

mod bench_gpu_check;
mod distributed;
mod dockerfile;
mod doctor;
mod eval;
mod export_keys;
mod finetune;
mod hostile;
#[cfg(unix)]
mod mlflow;
mod plugin_failures;
mod plugins_cli;
mod predict;
mod preview;
mod recipes_check;
mod run;
mod tensorboard;
mod third_party;
mod wandb;
mod weights;
