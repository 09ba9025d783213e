//! The `metrics` plugin: `accuracy`, `precision`, `recall`, `f1`, `auroc`, `confusion_matrix`,
//! `per_class_accuracy` and `ece`.
//!
//! Every metric accumulates over an epoch (`update` per batch of `[N, C]` logits and labels),
//! reports each scalar with its direction, and is checked against scikit-learn on committed
//! fixtures (`scripts/fixtures/metrics.py`). Predictions are the argmax of the logits (first
//! maximum); probabilities are the softmax of the logits, computed in f64. Each component's doc
//! comment states its time and memory complexity; none is quadratic in the number of rows.

pub mod accuracy;
pub mod auroc;
pub mod classification;
pub mod confusion;
pub mod ece;
mod input;
pub mod per_class_accuracy;

pub use accuracy::{Accuracy, AccuracyConfig};
pub use auroc::{Auroc, AurocConfig};
pub use classification::{Average, Classification, ClassificationConfig, F1, Precision, Recall};
pub use confusion::{ConfusionMatrix, ConfusionMatrixConfig};
pub use ece::{Ece, EceConfig};
pub use per_class_accuracy::{PerClassAccuracy, PerClassAccuracyConfig};

use clshost_plugin_api::prelude::*;

register!(
    Metric: Accuracy,
    Metric: Precision,
    Metric: Recall,
    Metric: F1,
    Metric: Auroc,
    Metric: ConfusionMatrix,
    Metric: PerClassAccuracy,
    Metric: Ece,
);
export_plugin!(description: "Accuracy, precision, recall, F1, AUROC, confusion matrix, per-class accuracy and ECE");
