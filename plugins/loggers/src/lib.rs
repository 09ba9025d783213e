//! First-party loggers (plugin ABI 1.4): experiment trackers that get a run's events.
//!
//! - `mlflow` ([`mlflow::Mlflow`]): MLflow's REST tracking API. The experiment by name, one
//!   MLflow run per clshost run (continued by `--resume`), the recipe's fields as params, every
//!   step and epoch scalar as metrics in batches within MLflow's limits, the environment as
//!   tags, and the recipe, exports and plots as artifacts.

pub mod mlflow;

use clshost_plugin_api::prelude::*;

register!(Logger: mlflow::Mlflow);
export_plugin!(description: "Experiment trackers: MLflow");
