//! 2-D max pooling over NCHW planes, forward (with or without the index of each window's
//! maximum) and backward, with ATen's CPU semantics: the first maximum in the window's scan
//! order (rows, then columns) wins a tie, a NaN wins over any number, and the output size is
//! `torch.nn.functional.max_pool2d`'s without `ceil_mode`.
//!
//! burn-flex 0.21 pools with a bounds check and a branch per window element: 13 to 15 ms for
//! the max pool of resnet18's stem at 64x64 batch 32 on two cores, a fifth of an evaluation
//! batch. Here the windows' extents inside the image are computed once per call, and each plane
//! is pooled in two separable passes without branches on the values (2 ms).

use rayon::prelude::*;

use crate::{check_window, sliding_out_size};

/// The geometry of a 2-D max pooling of `planes` planes (batch times channels) of `in_size`:
/// windows of `kernel` elements `dilation` apart, `stride` apart, over the input padded by
/// `padding` on each side (the padding never wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2d {
    /// Planes pooled (batch size times channels).
    pub planes: usize,
    /// Input height and width.
    pub in_size: [usize; 2],
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width (at least 1).
    pub stride: [usize; 2],
    /// Implicit padding on each side along height and width.
    pub padding: [usize; 2],
    /// Dilation along height and width (at least 1).
    pub dilation: [usize; 2],
}

impl Pool2d {
    /// Output height and width, as PyTorch computes them without `ceil_mode` (0 where the
    /// window does not fit).
    pub fn out_size(&self) -> [usize; 2] {
        sliding_out_size([
            self.in_size,
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
        ])
    }

    /// The window positions along dimension `d` that read inside the input, for each output
    /// position.
    fn spans(&self, d: usize) -> Vec<Span> {
        let out = self.out_size()[d];
        let (len, step) = (self.in_size[d], self.dilation[d]);
        (0..out)
            .map(|o| {
                let inside = (0..self.kernel[d])
                    .map(|k| (o * self.stride[d] + k * step).checked_sub(self.padding[d]))
                    .filter(|i| i.is_some_and(|i| i < len));
                let mut indices = inside.flatten();
                match indices.next() {
                    Some(first) => (first, 1 + indices.count()),
                    None => (0, 0),
                }
            })
            .collect()
    }

    /// Checks the input's length and the geometry.
    fn check(&self, x_len: usize) {
        assert_eq!(
            x_len,
            self.planes * self.in_size[0] * self.in_size[1],
            "input length"
        );
        check_window([self.kernel, self.stride, self.dilation]);
    }
}

/// Along one dimension, a window's first input index inside the image and how many of its
/// elements lie inside (`dilation` apart).
type Span = (usize, usize);

/// The index a window without any input element inside the image reports (its output is
/// `-inf`, and the backward pass gives it no gradient).
pub const NO_INDEX: u32 = u32::MAX;

/// The max pooling of `x` (`[planes, h, w]` contiguous): the output, `[planes, oh, ow]`, and
/// when `indices` the position in its plane (`row * w + column`) of each output's input
/// element, for [`max_pool2d_backward`].
///
/// # Panics
///
/// When `x`'s length does not match `pool`, a kernel size, stride or dilation is 0, or a plane
/// has `u32::MAX` elements or more.
pub fn max_pool2d(pool: &Pool2d, x: &[f32], indices: bool) -> (Vec<f32>, Option<Vec<u32>>) {
    pool.check(x.len());
    let [h, w] = pool.in_size;
    assert!(
        h * w < NO_INDEX as usize,
        "a plane too large for u32 indices"
    );
    let [oh, ow] = pool.out_size();
    let mut out = vec![f32::NEG_INFINITY; pool.planes * oh * ow];
    let mut index = vec![NO_INDEX; if indices { out.len() } else { 0 }];
    if out.is_empty() || h * w == 0 {
        // No windows, or windows over padding only.
        return (out, indices.then_some(index));
    }
    let spans = (&pool.spans(0)[..], &pool.spans(1)[..]);
    let planes = x.par_chunks(h * w).zip(out.par_chunks_mut(oh * ow));
    let scratch = || (Vec::new(), Vec::new());
    if indices {
        planes.zip(index.par_chunks_mut(oh * ow)).for_each_init(
            scratch,
            |rows, ((plane, dst), idx)| {
                pool.plane::<true>(spans, plane, (dst, idx), rows);
            },
        );
    } else {
        planes.for_each_init(scratch, |rows, (plane, dst)| {
            pool.plane::<false>(spans, plane, (dst, &mut []), rows);
        });
    }
    (out, indices.then_some(index))
}

/// Whether `v` replaces `best` (found at `at`) as a window's maximum in ATen's scan: a larger
/// value, any NaN, or the first element of the window.
fn takes(v: f32, best: f32, at: u32) -> bool {
    v > best || v.is_nan() || at == NO_INDEX
}

impl Pool2d {
    /// Pools one plane into `dst` (filled with `-inf`) and, with `INDICES`, `idx` (filled with
    /// [`NO_INDEX`]), given the windows' [spans](Pool2d::spans) along both dimensions, in two
    /// separable passes: each input row's maximum over each output
    /// column's window columns (`rows`: the maxima and their columns, scratch), then, down each
    /// output column, the maximum of those over the window's rows. Both passes take a value by
    /// [`takes`] in scan order, which picks the element ATen's single scan picks (the first
    /// maximum, or the last NaN), with selects rather than branches; the second pass runs over
    /// whole output rows, which the compiler vectorizes. One scan per window ran at about 6 ns
    /// per output: nine dependent comparisons, their branches mispredicted about twice a window.
    fn plane<const INDICES: bool>(
        &self,
        (rows, cols): (&[Span], &[Span]),
        plane: &[f32],
        (dst, idx): (&mut [f32], &mut [u32]),
        (row_max, row_at): &mut (Vec<f32>, Vec<u32>),
    ) {
        let [h, w] = self.in_size;
        let ow = self.out_size()[1];
        let [dy, dx] = self.dilation;
        row_max.clear();
        row_max.resize(h * ow, f32::NEG_INFINITY);
        row_at.clear();
        row_at.resize(if INDICES { h * ow } else { 0 }, NO_INDEX);
        for (y, row) in plane.chunks_exact(w).enumerate() {
            for (ox, &(x0, nx)) in cols.iter().enumerate() {
                let (mut best, mut at) = (f32::NEG_INFINITY, NO_INDEX);
                for x in (0..nx).map(|j| x0 + j * dx) {
                    let v = row[x];
                    if INDICES {
                        let take = takes(v, best, at);
                        best = if take { v } else { best };
                        at = if take { x as u32 } else { at };
                    } else {
                        best = if v > best || v.is_nan() { v } else { best };
                    }
                }
                row_max[y * ow + ox] = best;
                if INDICES {
                    row_at[y * ow + ox] = at;
                }
            }
        }
        for (oy, &(y0, ny)) in rows.iter().enumerate() {
            let out = &mut dst[oy * ow..][..ow];
            for y in (0..ny).map(|i| y0 + i * dy) {
                let values = &row_max[y * ow..][..ow];
                if !INDICES {
                    for (o, &v) in out.iter_mut().zip(values) {
                        *o = if v > *o || v.is_nan() { v } else { *o };
                    }
                    continue;
                }
                let (at, columns) = (&mut idx[oy * ow..][..ow], &row_at[y * ow..][..ow]);
                for ((o, a), (&v, &c)) in out.iter_mut().zip(at).zip(values.iter().zip(columns)) {
                    // A window row with no column inside the image has no position.
                    let position = if c == NO_INDEX {
                        NO_INDEX
                    } else {
                        (y * w) as u32 + c
                    };
                    let take = takes(v, *o, *a);
                    *o = if take { v } else { *o };
                    *a = if take { position } else { *a };
                }
            }
        }
    }
}

/// The gradient of the input of [`max_pool2d`] from the gradient of its output (`[planes, oh,
/// ow]`) and its `indices`: each output's gradient added to the input element it took, in
/// output order (ATen's order, so overlapping windows sum alike).
///
/// # Panics
///
/// When a length does not match `pool`, or an index lies outside its plane.
pub fn max_pool2d_backward(pool: &Pool2d, grad: &[f32], indices: &[u32]) -> Vec<f32> {
    let [h, w] = pool.in_size;
    let [oh, ow] = pool.out_size();
    assert_eq!(grad.len(), pool.planes * oh * ow, "gradient length");
    assert_eq!(indices.len(), grad.len(), "indices length");
    let mut dx = vec![0.0f32; pool.planes * h * w];
    if dx.is_empty() || grad.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(h * w)
        .zip(grad.par_chunks(oh * ow).zip(indices.par_chunks(oh * ow)))
        .for_each(|(plane, (grad, indices))| {
            for (&g, &i) in grad.iter().zip(indices) {
                if i != NO_INDEX {
                    plane[i as usize] += g;
                }
            }
        });
    dx
}
