//! The CPU kernels behind the Burn kit's fused layers on Burn's flex backend (the `cpu` device):
//! 2-D convolution forward and backward, training- and inference-mode batch normalization, ReLU
//! and max pooling ([`max_pool2d`]), on contiguous `f32` slices in NCHW order; and one SGD or
//! AdamW step over a parameter in a single pass ([`sgd_step`], [`adamw_step`]).
//!
//! Each kind of layer has its module: `conv` (unfolding into columns and matrix products), `norm`
//! (batch normalization), `pool` (max pooling) and `optim` (the optimizer steps); ReLU, and the
//! types the backward passes share, are here.
//!
//! Every result is deterministic: work is split over images, channels or output blocks, and a
//! sum only into groups fixed by the shapes, so the threads rayon has do not change a single bit
//! (the kit's exact resume depends on it). The crate is compiled with optimizations even in the
//! dev profile (the workspace's `Cargo.toml`), because the tests train on these loops.

mod conv;
mod norm;
mod optim;
mod pool;

use rayon::prelude::*;

pub use conv::{Conv2d, conv2d_backward, conv2d_forward};
pub use norm::{NormDims, NormTrain, batch_norm_backward, batch_norm_eval, batch_norm_train};
pub use optim::{AdamW, Sgd, State, adamw_step, sgd_step};
pub use pool::{NO_INDEX, Pool2d, max_pool2d, max_pool2d_backward};

/// Elements per rayon task in element-wise passes: large enough that scheduling is negligible.
const MIN_TASK: usize = 1 << 14;

/// Output height and width of a window of `kernel` elements, `dilation` apart, sliding `stride`
/// apart over `in_size` padded by `padding` on each side (a convolution's or a pooling's), as
/// PyTorch computes them: 0 where the window does not fit.
fn sliding_out_size([in_size, kernel, stride, padding, dilation]: [[usize; 2]; 5]) -> [usize; 2] {
    std::array::from_fn(|d| {
        let span = dilation[d] * (kernel[d] - 1) + 1;
        (in_size[d] + 2 * padding[d])
            .checked_sub(span)
            .map_or(0, |room| room / stride[d] + 1)
    })
}

/// Panics unless every kernel size, stride and dilation is at least 1.
fn check_window([kernel, stride, dilation]: [[usize; 2]; 3]) {
    assert!(
        kernel
            .iter()
            .chain(&stride)
            .chain(&dilation)
            .all(|&v| v > 0),
        "kernel, stride and dilation must be at least 1"
    );
}

/// Which gradients a backward pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// The gradient of the input.
    pub input: bool,
    /// The gradient of the weight (or scale).
    pub weight: bool,
    /// The gradient of the bias (or shift).
    pub bias: bool,
}

/// Gradients from a backward pass; `None` where not asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grads {
    /// The gradient of the input, shaped as the input.
    pub input: Option<Vec<f32>>,
    /// The gradient of the weight (or scale), shaped as it.
    pub weight: Option<Vec<f32>>,
    /// The gradient of the bias (or shift), `[channels]`.
    pub bias: Option<Vec<f32>>,
}

/// `max(x, 0)` element-wise.
pub fn relu(x: &[f32]) -> Vec<f32> {
    map_chunks((x, x), MIN_TASK, |_| |x, _| x.max(0.0))
}

/// The gradient of [`relu`] from the gradient of its output and the output itself: `grad` where
/// the output is above 0, else 0 (ATen's `threshold_backward(grad, output, 0)`).
///
/// # Panics
///
/// When the lengths differ.
pub fn relu_backward(grad: &[f32], output: &[f32]) -> Vec<f32> {
    assert_eq!(grad.len(), output.len(), "gradient length");
    map_chunks((grad, output), MIN_TASK, |_| {
        |g, y| if y > 0.0 { g } else { 0.0 }
    })
}

/// `f(k)(a_i, b_i)` for each pair of elements of `a` and `b` (of equal lengths), `k` being the
/// index of the pair's chunk of `chunk` elements (`f` makes each chunk's function once): a new
/// vector, written in parallel tasks of a chunk each without being zeroed first (zeroing output
/// buffers that the passes then overwrote took about 2.5% of a training step).
///
/// # Panics
///
/// When the lengths differ.
fn map_chunks<G: Fn(f32, f32) -> f32>(
    (a, b): (&[f32], &[f32]),
    chunk: usize,
    f: impl Fn(usize) -> G + Sync,
) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "lengths of the inputs");
    let (len, chunk) = (a.len(), chunk.max(1));
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk)
        .zip(a.par_chunks(chunk).zip(b.par_chunks(chunk)))
        .enumerate()
        .for_each(|(k, (dst, (a, b)))| {
            let g = f(k);
            for (d, (&a, &b)) in dst.iter_mut().zip(a.iter().zip(b)) {
                d.write(g(a, b));
            }
        });
    // SAFETY: the chunks of the first `len` elements of the spare capacity are zipped with the
    // chunks of `a` and `b`, of the same `len` elements and the same `chunk` size, so each
    // chunk's loop wrote every element of its chunk; a panic in `f` ends before this line.
    unsafe { out.set_len(len) };
    out
}
