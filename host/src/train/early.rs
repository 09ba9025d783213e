//! The monitored metric: which evaluation is the best so far, and when to stop early.
//!
//! An evaluation improves on the best when it beats it by more than `min_delta` in the
//! metric's direction (the first evaluation always does). With early stopping on, `patience`
//! evaluations in a row without improvement stop the run. A non-finite value never improves.

use serde::{Deserialize, Serialize};

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Larger is better.
    Max,
    /// Smaller is better.
    Min,
}

impl Direction {
    /// Whether `a` is better than `b` (a non-finite `a` never is; a non-finite `b` loses to
    /// any finite `a`).
    pub fn better(self, a: f64, b: f64) -> bool {
        if !a.is_finite() {
            return false;
        }
        if !b.is_finite() {
            return true;
        }
        match self {
            Direction::Max => a > b,
            Direction::Min => a < b,
        }
    }
}

/// What one evaluation meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// It is the new best.
    pub improved: bool,
    /// Patience ran out: stop training.
    pub stop: bool,
}

/// The state of the monitored metric across evaluations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monitor {
    /// Which way is better.
    pub direction: Direction,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Evaluations without improvement before stopping; `None`: never stop early.
    pub patience: Option<u32>,
    /// The best value so far.
    pub best: Option<f64>,
    /// The epoch (0-based) of the best value.
    pub best_epoch: Option<u32>,
    /// Evaluations since the last improvement.
    pub since_best: u32,
}

impl Monitor {
    /// A monitor that has seen nothing yet.
    pub fn new(direction: Direction, min_delta: f64, patience: Option<u32>) -> Self {
        Monitor {
            direction,
            min_delta: min_delta.abs(),
            patience,
            best: None,
            best_epoch: None,
            since_best: 0,
        }
    }

    /// Whether `value` would improve on the best so far.
    pub fn improves(&self, value: f64) -> bool {
        if !value.is_finite() {
            return false;
        }
        match (self.best, self.direction) {
            (None, _) => true,
            (Some(best), Direction::Max) => value > best + self.min_delta,
            (Some(best), Direction::Min) => value < best - self.min_delta,
        }
    }

    /// Records the evaluation of `epoch`.
    pub fn observe(&mut self, epoch: u32, value: f64) -> Verdict {
        let improved = self.improves(value);
        if improved {
            self.best = Some(value);
            self.best_epoch = Some(epoch);
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        Verdict {
            improved,
            stop: self.patience.is_some_and(|p| self.since_best >= p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_evaluations_without_improvement() {
        let mut m = Monitor::new(Direction::Max, 0.0, Some(2));
        assert_eq!(
            m.observe(0, 0.5),
            Verdict {
                improved: true,
                stop: false
            }
        );
        assert!(m.observe(1, 0.6).improved);
        assert_eq!(
            m.observe(2, 0.6),
            Verdict {
                improved: false,
                stop: false
            }
        );
        assert_eq!(
            m.observe(3, 0.55),
            Verdict {
                improved: false,
                stop: true
            }
        );
        assert_eq!((m.best, m.best_epoch), (Some(0.6), Some(1)));
    }

    #[test]
    fn min_delta_and_direction() {
        let mut m = Monitor::new(Direction::Min, 0.1, None);
        assert!(m.observe(0, 1.0).improved);
        assert!(!m.observe(1, 0.95).improved);
        assert!(m.observe(2, 0.85).improved);
        assert!(!m.observe(3, 5.0).stop, "no patience: never stops");
        assert_eq!(m.since_best, 1);
    }

    #[test]
    fn better_respects_direction_and_nan() {
        assert!(Direction::Max.better(0.9, 0.8));
        assert!(Direction::Min.better(0.1, 0.2));
        assert!(!Direction::Max.better(f64::NAN, 0.1));
        assert!(Direction::Max.better(0.1, f64::NAN));
    }

    #[test]
    fn non_finite_values_never_improve() {
        let mut m = Monitor::new(Direction::Min, 0.0, Some(1));
        assert_eq!(
            m.observe(0, f64::NAN),
            Verdict {
                improved: false,
                stop: true
            }
        );
        assert_eq!(m.best, None);
    }
}
