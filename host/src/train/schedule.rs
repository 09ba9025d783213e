//! The learning-rate schedule, as a pure function of the iteration (training batch) number.
//!
//! The peak rate is `optimizer.lr`, times `batch_size x accumulate / scale_lr_batch_size` when
//! the linear scaling rule is on. A linear warmup of `warmup_epochs` (fractions allowed, rounded
//! to whole iterations) rises from `peak x warmup_start_factor` towards the peak, as PyTorch's
//! `LinearLR`. After it:
//!
//! - `cosine`: `min_lr + (peak - min_lr) (1 + cos(pi t / T)) / 2` over the remaining iterations,
//!   as `CosineAnnealingLR(T_max = T, eta_min = min_lr)` chained after the warmup with
//!   `SequentialLR`;
//! - `step`: `peak x gamma^floor(epoch / step_epochs)`;
//! - `multistep`: `peak x gamma^(number of milestones <= epoch)`;
//! - `constant`: `peak`.
//!
//! `step` and `multistep` count epochs from the start of training, warmup included. Because
//! the rate depends on nothing but the iteration, a resumed run gets exactly the rates it would
//! have had.

use crate::recipe::schema::{Schedule as ScheduleSpec, ScheduleName};

/// The learning rate of every iteration of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    name: ScheduleName,
    peak: f64,
    min_lr: f64,
    warmup_iters: u64,
    start_factor: f64,
    total_iters: u64,
    iters_per_epoch: u64,
    step_epochs: u32,
    milestones: Vec<u32>,
    gamma: f64,
}

impl Schedule {
    /// The schedule of `spec` for a run of `epochs` epochs of `iters_per_epoch` iterations,
    /// peaking at `lr` scaled for an effective batch of `effective_batch` images.
    pub fn new(
        spec: &ScheduleSpec,
        lr: f64,
        effective_batch: u32,
        epochs: u32,
        iters_per_epoch: u64,
    ) -> Self {
        let peak = match spec.scale_lr_batch_size {
            Some(reference) if reference > 0 => {
                lr * f64::from(effective_batch) / f64::from(reference)
            }
            _ => lr,
        };
        let iters_per_epoch = iters_per_epoch.max(1);
        let total_iters = iters_per_epoch * u64::from(epochs);
        let warmup_iters =
            ((spec.warmup_epochs * iters_per_epoch as f64).round() as u64).min(total_iters);
        Schedule {
            name: spec.name,
            peak,
            min_lr: spec.min_lr,
            warmup_iters,
            start_factor: spec.warmup_start_factor,
            total_iters,
            iters_per_epoch,
            step_epochs: spec.step_epochs.max(1),
            milestones: spec.milestones.clone(),
            gamma: spec.gamma,
        }
    }

    /// The peak learning rate, after batch-size scaling.
    pub fn peak(&self) -> f64 {
        self.peak
    }

    /// Iterations in the whole run.
    pub fn total_iters(&self) -> u64 {
        self.total_iters
    }

    /// The learning rate of iteration `iter` (0-based, counted over the whole run).
    pub fn lr(&self, iter: u64) -> f64 {
        if iter < self.warmup_iters {
            let progress = iter as f64 / self.warmup_iters as f64;
            return self.peak * (self.start_factor + (1.0 - self.start_factor) * progress);
        }
        let epoch = (iter / self.iters_per_epoch) as u32;
        match self.name {
            ScheduleName::Cosine => {
                let span = self.total_iters.saturating_sub(self.warmup_iters);
                if span == 0 {
                    return self.peak;
                }
                let t = (iter - self.warmup_iters).min(span) as f64 / span as f64;
                self.min_lr
                    + (self.peak - self.min_lr) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
            ScheduleName::Step => self.peak * self.gamma.powi((epoch / self.step_epochs) as i32),
            ScheduleName::Multistep => {
                let passed = self.milestones.iter().filter(|&&m| m <= epoch).count();
                self.peak * self.gamma.powi(passed as i32)
            }
            ScheduleName::Constant => self.peak,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `host/tests/fixtures/lr_schedule.json`, written by `scripts/fixtures/lr_schedule.py`
    /// with `torch.optim.lr_scheduler`.
    const FIXTURE: &str = include_str!("../../tests/fixtures/lr_schedule.json");

    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        lr: f64,
        epochs: u32,
        iters_per_epoch: u64,
        warmup_epochs: f64,
        warmup_start_factor: f64,
        min_lr: f64,
        milestones: Vec<u32>,
        gamma: f64,
        lrs: Vec<f64>,
    }

    #[test]
    fn matches_pytorch_schedulers_per_iteration() {
        let cases: Vec<Case> = serde_json::from_str(FIXTURE).unwrap();
        assert!(cases.len() >= 2);
        for case in cases {
            let spec = ScheduleSpec {
                name: match case.name.as_str() {
                    "cosine" => ScheduleName::Cosine,
                    _ => ScheduleName::Multistep,
                },
                warmup_epochs: case.warmup_epochs,
                warmup_start_factor: case.warmup_start_factor,
                min_lr: case.min_lr,
                milestones: case.milestones.clone(),
                gamma: case.gamma,
                ..ScheduleSpec::default()
            };
            let s = Schedule::new(&spec, case.lr, 1, case.epochs, case.iters_per_epoch);
            assert_eq!(
                case.lrs.len() as u64,
                case.epochs as u64 * case.iters_per_epoch
            );
            for (i, want) in case.lrs.iter().enumerate() {
                let got = s.lr(i as u64);
                assert!(
                    (got - want).abs() <= 1e-9 * case.lr,
                    "{} iteration {i}: {got} vs PyTorch {want}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn scales_with_the_batch_and_steps_by_epoch() {
        let spec = ScheduleSpec {
            name: ScheduleName::Step,
            step_epochs: 2,
            gamma: 0.5,
            scale_lr_batch_size: Some(256),
            ..ScheduleSpec::default()
        };
        let s = Schedule::new(&spec, 0.1, 512, 6, 10);
        assert_eq!(s.peak(), 0.2);
        assert_eq!(s.lr(19), 0.2);
        assert_eq!(s.lr(20), 0.1);
        assert_eq!(s.lr(59), 0.05);
    }

    #[test]
    fn constant_after_warmup() {
        let spec = ScheduleSpec {
            name: ScheduleName::Constant,
            warmup_epochs: 0.5,
            warmup_start_factor: 0.25,
            ..ScheduleSpec::default()
        };
        let s = Schedule::new(&spec, 1.0, 1, 2, 4);
        let lrs: Vec<f64> = (0..8).map(|i| s.lr(i)).collect();
        assert_eq!(lrs, [0.25, 0.625, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    }
}
