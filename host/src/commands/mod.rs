//! One module per subcommand. Each exposes a `run` function taking the parsed arguments;
//! [`trained`] loads the trained model that `predict` and `eval` take.

pub mod bench;
pub mod check;
pub mod data;
pub mod doctor;
pub mod eval;
pub mod plugins;
pub mod predict;
pub mod run;
pub mod trained;
