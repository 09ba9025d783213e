//! One module per subcommand. Each holds its clap `*Args` and a `run` function taking them;
//! what a command builds from a recipe comes from [`crate::assemble`], so no command imports
//! another.

pub mod bench;
pub mod check;
pub mod data;
pub mod doctor;
pub mod eval;
pub mod plugins;
pub mod predict;
pub mod run;
pub mod weights;
