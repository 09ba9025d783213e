//! First-party loggers (plugin ABI 1.4): experiment trackers that get a run's events.
//!
//! - `mlflow` ([`mlflow::Mlflow`]): MLflow's REST tracking API. The experiment by name, one
//!   MLflow run per clshost run (continued by `--resume`), the recipe's fields as params, every
//!   step and epoch scalar as metrics in batches within MLflow's limits, the environment as
//!   tags, and the recipe, exports and plots as artifacts.
//! - `tensorboard` ([`tensorboard::Tensorboard`]): TensorBoard event files in the run
//!   directory. Step and epoch scalars, the confusion matrix and the training samples as
//!   images, the recipe's fields as hyperparameters.
//! - `wandb` ([`wandb::Wandb`]): a Weights & Biases offline run that `wandb sync` uploads.
//!   Config, history, summary, files and exit code, continued by `--resume`.

pub mod images;
pub mod mlflow;
pub mod tensorboard;
pub mod values;
pub mod wandb;

use std::time::{SystemTime, UNIX_EPOCH};

use clshost_plugin_api::prelude::*;

register!(
    Logger: mlflow::Mlflow,
    Logger: tensorboard::Tensorboard,
    Logger: wandb::Wandb
);
export_plugin!(description: "Experiment trackers: MLflow, TensorBoard, Weights & Biases");

/// Seconds since the Unix epoch, the wall time trackers stamp events with.
pub fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The error of a logger given an event before its `start`: the host never does that.
fn not_started() -> PluginError {
    PluginError::internal("an event before the start of the run")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_plugin_lists_its_loggers_with_every_default() {
        let root = clshost_plugin_api::authoring::root_module("loggers", "0", "test", None);
        let list = root
            .loggers()
            .expect("an ABI 1.4 root module lists loggers");
        let loggers: Vec<(String, Vec<(String, String)>)> = list()
            .unwrap()
            .iter()
            .map(|l| {
                let params = l
                    .params
                    .iter()
                    .map(|p| (p.name.to_string(), p.default.to_string()))
                    .collect();
                (l.name.to_string(), params)
            })
            .collect();
        let expect = |name: &str, params: &[(&str, &str)]| {
            let params = params
                .iter()
                .map(|(n, d)| (n.to_string(), d.to_string()))
                .collect();
            (name.to_string(), params)
        };
        assert_eq!(
            loggers,
            [
                expect(
                    "mlflow",
                    &[
                        ("tracking_uri", "None"),
                        ("experiment", "None"),
                        ("run_name", "None"),
                        ("tags", "[]"),
                        ("artifacts", "true"),
                        ("timeout_s", "10.0")
                    ]
                ),
                expect(
                    "tensorboard",
                    &[("dir", "\"tensorboard\""), ("images", "true")]
                ),
                expect(
                    "wandb",
                    &[
                        ("project", "None"),
                        ("entity", "None"),
                        ("name", "None"),
                        ("group", "None"),
                        ("job_type", "None"),
                        ("tags", "[]"),
                        ("notes", "None"),
                        ("dir", "None"),
                        ("files", "true"),
                        ("images", "true")
                    ]
                ),
            ]
        );
    }
}
