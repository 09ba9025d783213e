//! `summary.json` and the closing lines of a run: how it ended, the best epoch and metric,
//! wall time, throughput, skipped files, and the exported files with their check results.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::console;
use crate::export::Exported;
use crate::train::BestWeights;

/// The run summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The recipe's name.
    pub recipe: String,
    /// The run directory.
    pub run_dir: String,
    /// `completed`, `early_stopping`, `time_limit` or `interrupted`.
    pub ending: String,
    /// Epochs trained.
    pub epochs: u32,
    /// The monitored metric.
    pub monitor: String,
    /// Its best value.
    pub best_value: Option<f64>,
    /// The epoch (from 1) of the best value.
    pub best_epoch: Option<u32>,
    /// Which weights scored it.
    pub best_weights: BestWeights,
    /// Wall time of the run, in seconds: every invocation of a resumed run (each earlier one
    /// up to its last checkpoint).
    pub wall_seconds: f64,
    /// Training images per second over the whole run.
    pub images_per_s: f64,
    /// Files the loaders left out because they could not be read.
    pub skipped_files: usize,
    /// The exports.
    pub exports: Vec<Exported>,
}

impl Summary {
    /// The closing lines printed to stdout.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let best = match (self.best_value, self.best_epoch) {
            (Some(v), Some(e)) => format!(
                "best {} {v:.4} at epoch {e}{}",
                self.monitor,
                if self.best_weights == BestWeights::Ema {
                    " (EMA weights)"
                } else {
                    ""
                }
            ),
            _ => format!("no evaluation of {} yet", self.monitor),
        };
        let _ = writeln!(
            out,
            "run {} after {} epochs: {best}; {} wall, {:.1} img/s",
            self.ending.replace('_', " "),
            self.epochs,
            console::duration(Duration::from_secs_f64(self.wall_seconds.max(0.0))),
            self.images_per_s
        );
        if self.skipped_files > 0 {
            let _ = writeln!(out, "skipped {} unreadable files", self.skipped_files);
        }
        for e in &self.exports {
            for f in &e.files {
                let check = match e.max_abs_diff {
                    Some(d) => format!("verified, max abs diff {d:.2e}"),
                    None => format!("verified: {}", e.detail),
                };
                let _ = writeln!(out, "exported {} ({}; {check})", f.display(), e.exporter);
            }
        }
        let _ = writeln!(out, "run directory: {}", self.run_dir);
        out
    }
}
