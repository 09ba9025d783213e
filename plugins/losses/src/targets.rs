//! Checks of the batch a loss receives, the row-wise log-softmax, and label smoothing.

use clshost_plugin_api::{PluginError, TensorMut, TensorRef};

/// A checked batch: `n` rows of `c` logits with their targets.
pub(crate) struct Batch<'a> {
    /// Number of rows (samples).
    pub n: usize,
    /// Number of columns (classes).
    pub c: usize,
    /// `n * c` logits, row-major.
    pub logits: &'a [f32],
    /// `n * c` targets, row-major.
    pub targets: &'a [f32],
}

impl<'a> Batch<'a> {
    /// Checks that logits, targets and gradient are all `[N, num_classes]` with `N >= 1` and
    /// `num_classes >= 1`, that every logit is finite and every target lies in `[0, 1]`.
    pub(crate) fn new(
        logits: TensorRef<'a>,
        targets: TensorRef<'a>,
        grad: &TensorMut<'_>,
        num_classes: usize,
    ) -> Result<Self, PluginError> {
        let (n, c) = logits.dims2()?;
        if c == 0 {
            return Err(PluginError::input("logits have no classes (0 columns)"));
        }
        if c != num_classes {
            return Err(PluginError::input(format!(
                "logits have {c} columns but the loss was created for {num_classes} classes"
            )));
        }
        if n == 0 {
            return Err(PluginError::input(
                "the batch is empty; a mean loss needs at least one row",
            ));
        }
        if targets.dims2()? != (n, c) {
            return Err(PluginError::input(format!(
                "targets have shape {:?} but logits have shape [{n}, {c}]",
                targets.shape.as_slice()
            )));
        }
        if grad.dims2()? != (n, c) {
            return Err(PluginError::input(format!(
                "the gradient buffer has shape {:?} but logits have shape [{n}, {c}]",
                grad.shape.as_slice()
            )));
        }
        if let Some(i) = logits.data.iter().position(|x| !x.is_finite()) {
            return Err(PluginError::input(format!(
                "logit [{}, {}] is {}; the model has diverged",
                i / c,
                i % c,
                logits.data[i]
            )));
        }
        if let Some(i) = targets.data.iter().position(|t| !(0.0..=1.0).contains(t)) {
            return Err(PluginError::input(format!(
                "target [{}, {}] is {}; targets must be probabilities in [0, 1]",
                i / c,
                i % c,
                targets.data[i]
            )));
        }
        Ok(Batch {
            n,
            c,
            logits: logits.data.as_slice(),
            targets: targets.data.as_slice(),
        })
    }

    /// The logits of row `i`.
    pub(crate) fn logits(&self, i: usize) -> &'a [f32] {
        &self.logits[i * self.c..(i + 1) * self.c]
    }

    /// The targets of row `i`.
    pub(crate) fn targets(&self, i: usize) -> &'a [f32] {
        &self.targets[i * self.c..(i + 1) * self.c]
    }

    /// The class of every row when all rows are one-hot (one entry exactly 1, the rest exactly
    /// 0), otherwise `None`.
    pub(crate) fn hard_labels(&self) -> Option<Vec<usize>> {
        (0..self.n)
            .map(|i| one_hot_class(self.targets(i)))
            .collect()
    }
}

/// The class of a one-hot row (one entry exactly 1, the rest exactly 0), or `None`.
pub(crate) fn one_hot_class(row: &[f32]) -> Option<usize> {
    let k = row.iter().position(|&t| t == 1.0)?;
    row.iter()
        .enumerate()
        .all(|(j, &t)| j == k || t == 0.0)
        .then_some(k)
}

/// Writes the log-softmax of `row` into `log_p` and the softmax into `p`, computed in f64 with
/// the log-sum-exp shift (one `exp` per entry).
pub(crate) fn log_softmax(row: &[f32], log_p: &mut [f64], p: &mut [f64]) {
    let max = f64::from(row.iter().copied().fold(f32::NEG_INFINITY, f32::max));
    let mut sum = 0.0;
    for (e, &z) in p.iter_mut().zip(row) {
        *e = (f64::from(z) - max).exp();
        sum += *e;
    }
    let log_sum = sum.ln();
    for ((lp, e), &z) in log_p.iter_mut().zip(p.iter_mut()).zip(row) {
        *lp = f64::from(z) - max - log_sum;
        *e /= sum;
    }
}

/// PyTorch's label smoothing of a probability target: `t * (1 - eps) + eps / classes`.
pub(crate) fn smooth(t: f32, eps: f64, classes: usize) -> f64 {
    f64::from(t) * (1.0 - eps) + eps / classes as f64
}

/// Checks that an optional per-class vector holds finite, non-negative values.
pub(crate) fn check_class_values(field: &str, values: Option<&[f64]>) -> Result<(), PluginError> {
    let Some(values) = values else {
        return Ok(());
    };
    if values.is_empty() {
        return Err(PluginError::config(
            field,
            "must list one value per class, or be None",
        ));
    }
    if let Some(v) = values.iter().find(|v| !v.is_finite() || **v < 0.0) {
        return Err(PluginError::config(
            field,
            format!("values must be finite and non-negative, got {v}"),
        ));
    }
    Ok(())
}

/// Checks that an optional per-class vector has one value per class.
pub(crate) fn check_class_count(
    field: &str,
    values: Option<&[f64]>,
    num_classes: usize,
) -> Result<(), PluginError> {
    match values {
        Some(v) if v.len() != num_classes => Err(PluginError::config(
            field,
            format!("has {} values but there are {num_classes} classes", v.len()),
        )),
        _ => Ok(()),
    }
}

/// Checks that a label smoothing factor lies in `[0, 1]`, as PyTorch requires.
pub(crate) fn check_smoothing(eps: f64) -> Result<(), PluginError> {
    if (0.0..=1.0).contains(&eps) {
        Ok(())
    } else {
        Err(PluginError::config(
            "label_smoothing",
            format!("must be in [0, 1], got {eps}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hot_rows_are_recognised_exactly() {
        assert_eq!(one_hot_class(&[0.0, 1.0, 0.0]), Some(1));
        assert_eq!(one_hot_class(&[0.0, 0.999, 0.001]), None);
        assert_eq!(one_hot_class(&[0.5, 0.5, 0.0]), None);
        assert_eq!(one_hot_class(&[1.0, 1.0, 0.0]), None);
        assert_eq!(one_hot_class(&[0.0, 0.0, 0.0]), None);
    }

    #[test]
    fn log_softmax_is_stable_for_huge_logits() {
        let (mut log_p, mut p) = ([0.0; 3], [0.0; 3]);
        log_softmax(&[1.0e30, 0.0, -1.0e30], &mut log_p, &mut p);
        assert_eq!(log_p[0], 0.0);
        assert_eq!(log_p[1], -1.0e30_f32 as f64);
        assert_eq!(p, [1.0, 0.0, 0.0]);
        log_softmax(&[1000.0, 1000.0, 1000.0], &mut log_p, &mut p);
        for (lp, p) in log_p.iter().zip(p) {
            assert!((lp + 3.0_f64.ln()).abs() < 1e-15);
            assert!((p - 1.0 / 3.0).abs() < 1e-16);
        }
    }
}
