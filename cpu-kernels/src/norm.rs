//! Batch normalization over NCHW tensors, in training mode (batch statistics) and eval mode
//! (running statistics), forward and backward.
//!
//! The kit's generic batch normalization is about ten tensor passes each way on Burn's flex
//! backend. Here it takes one pass for the statistics (accumulated in `f64`), one to normalize,
//! and two backward, with ATen's formulas (`x * α + β` with `α = γ / σ`, and
//! `native_batch_norm_backward`'s input gradient).

use rayon::prelude::*;

use crate::{Grads, Needs, map_chunks};

/// The sum of each channel of `[batch, channels, positions]`, accumulated in `f64`.
pub(crate) fn channel_sums(t: &[f32], channels: usize, positions: usize) -> Vec<f32> {
    (0..channels)
        .into_par_iter()
        .map(|c| channel_sum(t, channels, positions, c, f64::from) as f32)
        .collect()
}

/// The sum of `f` over channel `c` of `[batch, channels, positions]`, in `f64`: plane by plane,
/// then over the planes (a fixed order).
fn channel_sum(
    t: &[f32],
    channels: usize,
    positions: usize,
    c: usize,
    f: impl Fn(f32) -> f64,
) -> f64 {
    planes(t, channels, positions, c)
        .map(|plane| lane_sums(plane, plane, |v, _| [f(v)])[0])
        .sum()
}

/// Partial sums kept at once by [`lane_sums`].
const LANES: usize = 8;

/// The sums of the `N` values `f` gives for each pair of elements of `a` and `b` (of equal
/// lengths), in `f64`, each kept as [`LANES`] partial sums (pair `i` goes to partial
/// `i % LANES`) added in order at the end: a fixed order, like one running sum, but one the
/// compiler vectorizes, where every addition of a running sum waits for the previous one (which
/// made batch normalization's statistics about 4x slower than its other passes).
fn lane_sums<const N: usize>(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> [f64; N]) -> [f64; N] {
    let mut partial = [[0.0f64; LANES]; N];
    let mut add = |lane: usize, a: f32, b: f32| {
        for (sums, term) in partial.iter_mut().zip(f(a, b)) {
            sums[lane] += term;
        }
    };
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest = chunks_a.remainder().iter().zip(chunks_b.remainder());
    for (chunk_a, chunk_b) in chunks_a.zip(chunks_b) {
        for (lane, (&a, &b)) in chunk_a.iter().zip(chunk_b).enumerate() {
            add(lane, a, b);
        }
    }
    for (lane, (&a, &b)) in rest.enumerate() {
        add(lane, a, b);
    }
    partial.map(|sums| sums.iter().sum())
}

/// The planes of channel `c` of `[batch, channels, positions]`, one per image.
fn planes(t: &[f32], channels: usize, positions: usize, c: usize) -> impl Iterator<Item = &[f32]> {
    t.chunks_exact(positions.max(1))
        .skip(c)
        .step_by(channels.max(1))
}

/// The dimensions of a batch normalization's input: `[batch, channels, positions]`, positions
/// being height times width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormDims {
    /// Images.
    pub batch: usize,
    /// Channels, each normalized on its own.
    pub channels: usize,
    /// Elements per channel and image (height times width).
    pub positions: usize,
}

impl NormDims {
    /// Elements per channel over the batch.
    fn count(&self) -> usize {
        self.batch * self.positions
    }

    fn check(&self, x: &[f32], per_channel: &[&[f32]]) {
        assert_eq!(
            x.len(),
            self.batch * self.channels * self.positions,
            "input length"
        );
        for v in per_channel {
            assert_eq!(v.len(), self.channels, "per-channel length");
        }
    }
}

/// A training-mode batch normalization: the output and the batch statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct NormTrain {
    /// The normalized input, shaped as the input.
    pub output: Vec<f32>,
    /// The batch mean of each channel.
    pub mean: Vec<f32>,
    /// `1 / sqrt(var + eps)` of each channel, with the biased batch variance.
    pub invstd: Vec<f32>,
    /// The biased batch variance of each channel.
    pub var: Vec<f32>,
}

/// `1 / sqrt(var + eps)`.
fn invstd(var: f64, eps: f64) -> f32 {
    (1.0 / (var + eps).sqrt()) as f32
}

/// `(x - mean) * invstd * γ + β` per channel, computed as ATen does: `x * α + (β - mean * α)`
/// with `α = invstd * γ`.
fn normalize(
    x: &[f32],
    dims: NormDims,
    (weight, bias): (&[f32], &[f32]),
    (mean, invstd): (&[f32], &[f32]),
) -> Vec<f32> {
    let alpha: Vec<f32> = invstd.iter().zip(weight).map(|(i, w)| i * w).collect();
    let beta: Vec<f32> = (0..dims.channels)
        .map(|c| bias[c] - mean[c] * alpha[c])
        .collect();
    affine(x, dims, &alpha, &beta)
}

/// `out = x * α + β` per channel, in one parallel pass.
fn affine(x: &[f32], dims: NormDims, alpha: &[f32], beta: &[f32]) -> Vec<f32> {
    map_chunks((x, x), dims.positions, |plane| {
        let c = plane % dims.channels;
        let (a, b) = (alpha[c], beta[c]);
        move |x, _| x * a + b
    })
}

/// Batch normalization of `x` with its batch statistics, as `torch.nn.BatchNorm2d` in training
/// mode (before the running statistics, which the caller updates from [`NormTrain::var`]).
///
/// # Panics
///
/// When a slice's length does not match `dims`.
pub fn batch_norm_train(
    x: &[f32],
    dims: NormDims,
    weight: &[f32],
    bias: &[f32],
    eps: f64,
) -> NormTrain {
    dims.check(x, &[weight, bias]);
    let count = dims.count().max(1) as f64;
    let stats: Vec<(f64, f64)> = (0..dims.channels)
        .into_par_iter()
        .map(|c| {
            let (channels, positions) = (dims.channels, dims.positions);
            let mean = channel_sum(x, channels, positions, c, f64::from) / count;
            let var = channel_sum(x, channels, positions, c, |v| (f64::from(v) - mean).powi(2));
            (mean, var / count)
        })
        .collect();
    let mean: Vec<f32> = stats.iter().map(|s| s.0 as f32).collect();
    let var: Vec<f32> = stats.iter().map(|s| s.1 as f32).collect();
    let invstd: Vec<f32> = stats.iter().map(|s| invstd(s.1, eps)).collect();
    NormTrain {
        output: normalize(x, dims, (weight, bias), (&mean, &invstd)),
        mean,
        invstd,
        var,
    }
}

/// Batch normalization of `x` with running statistics (`var` unbiased, as stored), as
/// `torch.nn.BatchNorm2d` in eval mode.
///
/// # Panics
///
/// When a slice's length does not match `dims`.
pub fn batch_norm_eval(
    x: &[f32],
    dims: NormDims,
    weight: &[f32],
    bias: &[f32],
    (mean, var): (&[f32], &[f32]),
    eps: f64,
) -> Vec<f32> {
    dims.check(x, &[weight, bias, mean, var]);
    let invstd: Vec<f32> = var.iter().map(|&v| invstd(f64::from(v), eps)).collect();
    normalize(x, dims, (weight, bias), (mean, &invstd))
}

/// The backward pass of [`batch_norm_train`] from the gradient of its output, with the forward's
/// input, scale and batch statistics, as ATen's `native_batch_norm_backward` in training mode.
///
/// # Panics
///
/// When a slice's length does not match `dims`.
pub fn batch_norm_backward(
    grad: &[f32],
    x: &[f32],
    dims: NormDims,
    weight: &[f32],
    (mean, invstd): (&[f32], &[f32]),
    needs: Needs,
) -> Grads {
    dims.check(x, &[weight, mean, invstd]);
    assert_eq!(grad.len(), x.len(), "gradient length");
    // Per channel: the sum of the gradient and its dot product with the centered input.
    let sums: Vec<(f64, f64)> = (0..dims.channels)
        .into_par_iter()
        .map(|c| {
            let m = f64::from(mean[c]);
            planes(grad, dims.channels, dims.positions, c)
                .zip(planes(x, dims.channels, dims.positions, c))
                .fold((0.0, 0.0), |(sum, dot), (g, x)| {
                    g.iter().zip(x).fold((sum, dot), |(sum, dot), (&g, &x)| {
                        (sum + f64::from(g), dot + f64::from(g) * (f64::from(x) - m))
                    })
                })
        })
        .collect();
    let count = dims.count().max(1) as f64;
    let input = needs.input.then(|| {
        // dx = (dy - mean(dy) - (x - mean) * invstd² * dot / count) * invstd * γ
        let coef: Vec<(f32, f32, f32)> = (0..dims.channels)
            .map(|c| {
                let inv = f64::from(invstd[c]);
                let proj = sums[c].1 * inv * inv / count;
                let grad_mean = sums[c].0 / count;
                (
                    proj as f32,
                    grad_mean as f32,
                    (inv * f64::from(weight[c])) as f32,
                )
            })
            .collect();
        map_chunks((grad, x), dims.positions, |plane| {
            let c = plane % dims.channels;
            let ((proj, grad_mean, scale), m) = (coef[c], mean[c]);
            move |g, x| (g - (x - m) * proj - grad_mean) * scale
        })
    });
    Grads {
        input,
        weight: needs.weight.then(|| {
            sums.iter()
                .zip(invstd)
                .map(|(s, &i)| (s.1 * f64::from(i)) as f32)
                .collect()
        }),
        bias: needs
            .bias
            .then(|| sums.iter().map(|s| s.0 as f32).collect()),
    }
}
