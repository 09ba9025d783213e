//! One module per subcommand. Each exposes a `run` function taking the parsed arguments.

pub mod check;
pub mod plugins;
