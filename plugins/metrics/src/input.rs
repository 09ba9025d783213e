//! Checks of the batch a metric receives, and per-row quantities several metrics share.

use clshost_plugin_api::{PluginError, TensorRef};

/// A checked batch: `n` rows of `c` finite logits and one label below `c` per row.
pub(crate) struct Rows<'a> {
    /// Number of classes (row width).
    pub c: usize,
    /// `n * c` logits, row-major.
    pub logits: &'a [f32],
    /// `n` true class indices.
    pub labels: &'a [u32],
}

impl<'a> Rows<'a> {
    /// Checks that `logits` is `[N, classes]` with `classes > 0`, finite, and that there are `N` labels below
    /// `classes`. `N = 0` is allowed.
    pub(crate) fn new(
        logits: TensorRef<'a>,
        labels: &'a [u32],
        classes: usize,
    ) -> Result<Self, PluginError> {
        let (n, c) = logits.dims2()?;
        if c == 0 {
            return Err(PluginError::input("logits have no classes (0 columns)"));
        }
        if c != classes {
            return Err(PluginError::input(format!(
                "logits have {c} columns but the metric was created for {classes} classes"
            )));
        }
        if labels.len() != n {
            return Err(PluginError::input(format!(
                "{n} rows of logits but {} labels",
                labels.len()
            )));
        }
        if let Some(i) = labels.iter().position(|&y| y as usize >= c) {
            return Err(PluginError::input(format!(
                "label {} of row {i} is not a class index below {c}",
                labels[i]
            )));
        }
        if let Some(i) = logits.data.iter().position(|x| !x.is_finite()) {
            return Err(PluginError::input(format!(
                "logit [{}, {}] is {}",
                i / c,
                i % c,
                logits.data[i]
            )));
        }
        Ok(Rows {
            c,
            logits: logits.data.as_slice(),
            labels,
        })
    }

    /// Each row's logits with its label.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'a [f32], usize)> + '_ {
        self.logits
            .chunks(self.c)
            .zip(self.labels)
            .map(|(row, &y)| (row, y as usize))
    }
}

/// The predicted class: the index of the largest logit, the first one among equals (as
/// `numpy.argmax` and `torch.argmax`).
pub(crate) fn argmax(row: &[f32]) -> usize {
    let (mut best, mut best_z) = (0, f32::NEG_INFINITY);
    for (j, &z) in row.iter().enumerate() {
        if z > best_z {
            (best, best_z) = (j, z);
        }
    }
    best
}

/// The softmax of one row, as the shift and normaliser: `p_j = exp(z_j - shift) / sum`.
#[derive(Clone, Copy)]
pub(crate) struct Softmax {
    /// The row's largest logit.
    pub shift: f64,
    /// `sum_j exp(z_j - shift)`, at least 1.
    pub sum: f64,
}

impl Softmax {
    /// The softmax normalisation of `row`, in f64.
    pub(crate) fn of(row: &[f32]) -> Self {
        let shift = f64::from(row.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        let sum = row.iter().map(|&z| (f64::from(z) - shift).exp()).sum();
        Softmax { shift, sum }
    }

    /// The probability of a class whose logit is `z`.
    pub(crate) fn prob(self, z: f32) -> f64 {
        (f64::from(z) - self.shift).exp() / self.sum
    }
}

/// `num / den`, or `zero_division` when `den` is 0 (scikit-learn's `zero_division`).
pub(crate) fn ratio(num: f64, den: f64, zero_division: f64) -> f64 {
    if den == 0.0 { zero_division } else { num / den }
}

/// Checks scikit-learn's allowed `zero_division` values: 0, 1 or NaN.
pub(crate) fn check_zero_division(value: f64) -> Result<(), PluginError> {
    if value == 0.0 || value == 1.0 || value.is_nan() {
        Ok(())
    } else {
        Err(PluginError::config(
            "zero_division",
            format!("must be 0.0, 1.0 or NaN (as in scikit-learn), got {value}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[0.0, 0.0]), 0);
        assert_eq!(argmax(&[-1.0, -5.0, -0.5]), 2);
    }

    #[test]
    fn softmax_handles_huge_logits() {
        let row = [1.0e30, 0.0, -1.0e30];
        let s = Softmax::of(&row);
        assert_eq!(s.prob(row[0]), 1.0);
        assert_eq!(s.prob(row[1]), 0.0);
    }
}
