//! The per-epoch metrics history and its two files, `metrics.csv` and `metrics.jsonl`.
//!
//! One row per evaluated epoch (numbered from 1): the mean training loss, the learning rate at
//! the end of the epoch, every evaluation value (`val_loss`, each metric scalar, and with EMA
//! on the same again prefixed `ema_`), the epoch's wall time and training throughput. The whole
//! history lives in the checkpoint, and both files are rewritten from it after each
//! evaluation, so a resumed run's files are exactly those of an uninterrupted one. A value that
//! is not a finite number is an empty CSV cell and a JSON `null`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One evaluated epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The epoch, from 1.
    pub epoch: u32,
    /// Mean training loss over the epoch's images.
    pub train_loss: f64,
    /// Learning rate of the epoch's last iteration.
    pub lr: f64,
    /// Evaluation values by name, in column order.
    pub values: Vec<(String, Option<f64>)>,
    /// Wall time of the epoch, training and evaluation, in seconds (over every invocation when
    /// the run was resumed within it).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_s: f64,
}

impl Row {
    /// The value named `name`, when present and finite.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| *v)
    }

    /// Every column after `epoch`, by name: `train_loss`, `lr`, the evaluation values,
    /// `seconds`, `images_per_s`; a value that is not finite is `None`.
    pub fn cells(&self) -> Vec<(String, Option<f64>)> {
        let mut cells = vec![
            ("train_loss".to_string(), finite(self.train_loss)),
            ("lr".to_string(), finite(self.lr)),
        ];
        cells.extend(self.values.iter().cloned());
        cells.push(("seconds".into(), finite(self.seconds)));
        cells.push(("images_per_s".into(), finite(self.images_per_s)));
        cells
    }
}

/// A finite value, or `None`.
pub fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// The CSV columns of `row`.
pub fn columns(row: &Row) -> Vec<String> {
    std::iter::once("epoch".to_string())
        .chain(row.cells().into_iter().map(|(n, _)| n))
        .collect()
}

/// `metrics.csv`: a header from the first row's columns, then one line per row.
pub fn csv(rows: &[Row]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let mut out = columns(first).join(",") + "\n";
    for row in rows {
        let cells = row
            .cells()
            .into_iter()
            .map(|(_, v)| v.map(|v| v.to_string()).unwrap_or_default());
        let line: Vec<String> = std::iter::once(row.epoch.to_string())
            .chain(cells)
            .collect();
        let _ = writeln!(out, "{}", line.join(","));
    }
    out
}

/// `metrics.jsonl`: one JSON object per row, keys as the CSV columns.
pub fn jsonl(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        let mut map = serde_json::Map::new();
        map.insert("epoch".into(), row.epoch.into());
        for (name, value) in row.cells() {
            map.insert(
                name,
                value.map_or(serde_json::Value::Null, serde_json::Value::from),
            );
        }
        let _ = writeln!(out, "{}", serde_json::Value::Object(map));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: u32, top1: Option<f64>) -> Row {
        Row {
            epoch,
            train_loss: 0.5,
            lr: 0.1,
            values: vec![("val_loss".into(), Some(0.25)), ("top1".into(), top1)],
            seconds: 2.0,
            images_per_s: 100.0,
        }
    }

    #[test]
    fn csv_has_a_header_and_empty_cells_for_missing_values() {
        let text = csv(&[row(1, Some(0.75)), row(2, None)]);
        assert_eq!(
            text,
            "epoch,train_loss,lr,val_loss,top1,seconds,images_per_s\n\
             1,0.5,0.1,0.25,0.75,2,100\n\
             2,0.5,0.1,0.25,,2,100\n"
        );
    }

    #[test]
    fn jsonl_has_one_object_per_row_with_nulls() {
        let text = jsonl(&[row(1, None)]);
        let value: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(value["epoch"], 1);
        assert_eq!(value["top1"], serde_json::Value::Null);
        assert_eq!(value["val_loss"], 0.25);
        assert_eq!(row(1, Some(0.5)).get("top1"), Some(0.5));
    }
}
