//! What the user sees while a run trains: the per-epoch progress bar (or log lines), the table
//! row after each evaluation, and at the end the per-class table and the run summary.
//!
//! The progress bar is drawn only when stderr is a terminal and `--quiet` is off; otherwise a
//! `tracing` info line is logged every `log_interval` steps. Tables go to stdout.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::Duration;

use clshost_plugin_api::MetricReport;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::history::Row;

/// The columns of the evaluation table, when the run reports them.
const TABLE_VALUES: [(&str, &str); 8] = [
    ("val_loss", "val loss"),
    ("top1", "top-1"),
    ("top5", "top-5"),
    ("f1_macro", "F1"),
    ("f1_weighted", "F1 (wtd)"),
    ("f1_micro", "F1 (micro)"),
    ("auroc_macro", "AUROC"),
    ("ema_top1", "EMA top-1"),
];

/// Progress within one epoch.
pub struct Progress {
    bar: Option<ProgressBar>,
    log_interval: u64,
    epoch: u32,
    epochs: u32,
}

impl Progress {
    /// Progress for epoch `epoch` (from 1) of `epochs`, `steps` batches long, starting at
    /// batch `done`.
    pub fn start(
        epoch: u32,
        epochs: u32,
        steps: u64,
        done: u64,
        quiet: bool,
        log_interval: u32,
    ) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr());
            let style =
                ProgressStyle::with_template("{prefix} [{bar:25}] {pos}/{len} {msg} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(format!("epoch {epoch}/{epochs}"));
            bar.set_position(done);
            bar
        });
        Progress {
            bar,
            log_interval: u64::from(log_interval.max(1)),
            epoch,
            epochs,
        }
    }

    /// Reports a finished step (`step` from 1 within the epoch).
    pub fn step(&self, step: u64, loss: f64, lr: f64, images_per_s: f64) {
        let text = format!("loss {loss:.4} lr {lr:.3e} {images_per_s:.0} img/s");
        match &self.bar {
            Some(bar) => {
                bar.set_position(step);
                bar.set_message(text);
            }
            None if step.is_multiple_of(self.log_interval) => {
                tracing::info!("epoch {}/{} step {step}: {text}", self.epoch, self.epochs);
            }
            None => {}
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn fmt_value(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.4}"))
}

/// The table columns `values` reports, as (title, value) in table order: the known columns
/// first, under their short titles, then every other scalar a metric reports (whichever plugin
/// it came from) under its own name. The EMA twins of those stay in the metrics files.
fn table_columns(values: &[(String, Option<f64>)]) -> Vec<(String, Option<f64>)> {
    let known = TABLE_VALUES.iter().filter_map(|&(name, title)| {
        values
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| (title.to_string(), v))
    });
    let others = values
        .iter()
        .filter(|(n, _)| !n.starts_with("ema_") && !TABLE_VALUES.iter().any(|&(name, _)| name == n))
        .map(|(n, v)| (n.clone(), *v));
    known.chain(others).collect()
}

/// The width of a table column titled `title`: its length, and at least 10.
fn width(title: &str) -> usize {
    title.chars().count().max(10)
}

/// The header of the evaluation table for rows like `row`.
pub fn table_header(row: &Row) -> String {
    let mut out = format!("{:>5}  {:>10}", "epoch", "train loss");
    for (title, _) in table_columns(&row.values) {
        let _ = write!(out, "  {title:>w$}", w = width(&title));
    }
    let _ = write!(out, "  {:>10}  {:>7}", "best", "time");
    out + "\n"
}

/// One line of the evaluation table: `row`, with the best monitored value so far.
pub fn table_row(row: &Row, best: Option<f64>, improved: bool) -> String {
    let mut out = format!("{:>5}  {:>10}", row.epoch, fmt_value(Some(row.train_loss)));
    for (title, value) in table_columns(&row.values) {
        let _ = write!(out, "  {:>w$}", fmt_value(value), w = width(&title));
    }
    let mark = if improved { "*" } else { " " };
    let _ = write!(out, "  {:>9}{mark}  {:>6.1}s", fmt_value(best), row.seconds);
    out + "\n"
}

/// The evaluation table's columns for one evaluation without training (`clshost eval`): a
/// header and one line of the `values` the training table shows.
pub fn values_table(values: &[(String, Option<f64>)]) -> String {
    let columns = table_columns(values);
    let mut header = String::new();
    let mut line = String::new();
    for (title, value) in columns {
        let w = width(&title);
        let _ = write!(header, "{title:>w$}  ");
        let _ = write!(line, "{:>w$}  ", fmt_value(value));
    }
    format!("{}\n{}\n", header.trim_end(), line.trim_end())
}

/// One class's line of the per-class table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassLine {
    /// The class name.
    #[serde(rename = "class")]
    pub name: String,
    /// Precision, when known.
    pub precision: Option<f64>,
    /// Recall, when known.
    pub recall: Option<f64>,
    /// F1, when known.
    pub f1: Option<f64>,
    /// Validation images of the class.
    pub support: u64,
}

/// The first `confusion_matrix` of `reports` that is `classes` x `classes`, row-major (rows:
/// true class, columns: predicted).
pub fn confusion_matrix(reports: &[MetricReport], classes: usize) -> Option<Vec<f64>> {
    reports
        .iter()
        .flat_map(|r| r.matrices.iter())
        .find(|m| {
            m.name.as_str() == "confusion_matrix"
                && m.rows as usize == classes
                && m.cols as usize == classes
        })
        .map(|m| m.values.to_vec())
}

/// The per-class lines from the metric reports: `precision_per_class`, `recall_per_class` and
/// `f1_per_class` vectors where a metric reports them, otherwise computed from a
/// `confusion_matrix` (rows: true class, columns: predicted).
pub fn class_lines(
    classes: &[String],
    reports: &[MetricReport],
    support: &[u64],
) -> Vec<ClassLine> {
    let vector = |name: &str| {
        reports
            .iter()
            .flat_map(|r| r.vectors.iter())
            .find(|v| v.name.as_str() == name && v.values.len() == classes.len())
            .map(|v| v.values.to_vec())
    };
    let c = classes.len();
    let confusion = confusion_matrix(reports, c);
    let from_confusion = |k: usize| {
        confusion.as_ref().map(|m| {
            let tp = m[k * c + k];
            let predicted: f64 = (0..c).map(|i| m[i * c + k]).sum();
            let actual: f64 = (0..c).map(|j| m[k * c + j]).sum();
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
            let (p, r) = (ratio(tp, predicted), ratio(tp, actual));
            (p, r, ratio(2.0 * p * r, p + r))
        })
    };
    let (precision, recall, f1) = (
        vector("precision_per_class"),
        vector("recall_per_class"),
        vector("f1_per_class"),
    );
    classes
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let derived = from_confusion(k);
            ClassLine {
                name: name.clone(),
                precision: precision.as_ref().map(|v| v[k]).or(derived.map(|d| d.0)),
                recall: recall.as_ref().map(|v| v[k]).or(derived.map(|d| d.1)),
                f1: f1.as_ref().map(|v| v[k]).or(derived.map(|d| d.2)),
                support: support.get(k).copied().unwrap_or(0),
            }
        })
        .collect()
}

/// The per-class table.
pub fn class_table(lines: &[ClassLine]) -> String {
    let width = lines.iter().map(|l| l.name.len()).max().unwrap_or(5).max(5);
    let mut out = format!(
        "{:<width$}  {:>9}  {:>9}  {:>9}  {:>7}\n",
        "class", "precision", "recall", "F1", "support"
    );
    for l in lines {
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {:>9}  {:>9}  {:>7}",
            l.name,
            fmt_value(l.precision),
            fmt_value(l.recall),
            fmt_value(l.f1),
            l.support
        );
    }
    out
}

/// A duration as `1h02m03s`, `2m03s` or `4.5s`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60),
    }
}

#[cfg(test)]
mod tests {
    use clshost_plugin_api::{MetricMatrix, MetricVector};

    use super::*;

    #[test]
    fn class_lines_prefer_vectors_and_fall_back_to_the_confusion_matrix() {
        let classes = vec!["a".to_string(), "b".to_string()];
        let report = MetricReport {
            vectors: vec![MetricVector {
                name: "f1_per_class".into(),
                values: vec![0.9, 0.1].into(),
            }]
            .into(),
            matrices: vec![MetricMatrix {
                name: "confusion_matrix".into(),
                rows: 2,
                cols: 2,
                values: vec![3.0, 1.0, 0.0, 4.0].into(),
            }]
            .into(),
            ..MetricReport::default()
        };
        let lines = class_lines(&classes, &[report], &[4, 4]);
        assert_eq!(lines[0].f1, Some(0.9));
        assert_eq!(lines[0].precision, Some(1.0));
        assert_eq!(lines[0].recall, Some(0.75));
        assert_eq!(lines[1].precision, Some(0.8));
        assert_eq!(lines[1].support, 4);
        let table = class_table(&lines);
        assert!(table.starts_with("class  precision"), "{table}");
    }

    #[test]
    fn table_rows_show_only_reported_columns_and_every_other_scalar_after_them() {
        let row = Row {
            epoch: 3,
            train_loss: 0.5,
            lr: 0.1,
            values: vec![("val_loss".into(), Some(0.4)), ("top1".into(), Some(0.9))],
            seconds: 1.25,
            images_per_s: 10.0,
        };
        assert_eq!(
            table_header(&row),
            "epoch  train loss    val loss       top-1        best     time\n"
        );
        assert_eq!(
            table_row(&row, Some(0.9), true),
            "    3      0.5000      0.4000      0.9000     0.9000*     1.2s\n"
        );
        let plugin = Row {
            values: vec![
                ("balanced_accuracy".into(), Some(0.75)),
                ("val_loss".into(), Some(0.4)),
                ("ema_balanced_accuracy".into(), Some(0.7)),
                ("kappa".into(), None),
            ],
            ..row
        };
        assert_eq!(
            table_header(&plugin),
            "epoch  train loss    val loss  balanced_accuracy       kappa        best     time\n"
        );
        assert_eq!(
            table_row(&plugin, Some(0.75), false),
            "    3      0.5000      0.4000             0.7500           -     0.7500      1.2s\n"
        );
    }

    #[test]
    fn the_values_table_has_the_training_table_columns() {
        let values = vec![
            ("top1".to_string(), Some(0.5)),
            ("val_loss".to_string(), Some(0.25)),
            ("unlisted".to_string(), Some(1.0)),
        ];
        assert_eq!(
            values_table(&values),
            "  val loss       top-1    unlisted\n    0.2500      0.5000      1.0000\n"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(4500)), "4.5s");
        assert_eq!(duration(Duration::from_secs(123)), "2m03s");
        assert_eq!(duration(Duration::from_secs(3723)), "1h02m03s");
    }
}
