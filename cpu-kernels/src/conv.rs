//! 2-D convolution, forward and backward, with one group over NCHW tensors.
//!
//! Burn 0.21's flex backend computes a convolution's input gradient as a transposed convolution
//! and its weight gradient as a convolution with batch and channels swapped (a strided copy of
//! both tensors first). Here a convolution is what PyTorch's CPU path does without oneDNN: the
//! input is unfolded into columns ([im2col](Conv2d)) and each product is one call to the
//! [`gemm`] crate (the matrix kernels burn-flex itself uses, with their AVX-512 variants on CPUs
//! that have them).
//! Layers whose images have many output positions (64 or more) work image by image, each
//! image's columns unfolded into the thread's scratch just before the product that reads them,
//! so that they are read from cache:
//!
//! - forward: `Y_n = W · col(x_n)`;
//! - weight gradient: `dWᵀ = Σ_n col(x_n) · dY_nᵀ`, the batch split into a few groups of images
//!   (fixed by the shapes), each summed by one thread, then the groups added in order;
//! - input gradient: with stride 1, the forward pass of the flipped convolution (each kernel
//!   rotated by 180 degrees, channels swapped) over the output gradient; otherwise
//!   `dcol_n = Wᵀ · dY_n`, folded back onto the input (col2im).
//!
//! Layers with few positions (deep layers of small inputs) work over chunks of images at once,
//! so that each product is large enough to keep the matrix kernels busy: `Y = W · col(x)`,
//! `dW = dY · col(x)ᵀ` and `dcolᵀ = dYᵀ · W`, folded back.
//!
//! Each orientation is the one gemm ran fastest on ResNet's shapes. A pointwise convolution (1x1,
//! stride 1, no padding) with many positions is its own column matrix: its products read the
//! input directly. Where stride 1 keeps the output as wide as the input (ResNet's 3x3 layers),
//! each kernel position's columns are the input shifted by a constant, unfolded with one copy
//! per plane.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::norm::channel_sums;
use crate::{Grads, MIN_TASK, Needs, check_window, sliding_out_size};

/// Bytes of working memory a convolution keeps at once: the unfolded columns of a chunk of
/// images and its output (or output gradient) as one matrix, or the partial weight gradients of
/// groups of images. The batch is processed in chunks of images that fit (at least one image),
/// and split into as many groups as fit; a function of the shapes only, so results do not
/// depend on the machine.
const SCRATCH_BUDGET: usize = 32 << 20;

/// Output positions per image from which a convolution works image by image (see the module
/// documentation): with fewer (deep layers of small inputs), a product over the whole chunk
/// keeps the matrix kernels busier; with more, per-image forward products were 1.0x to 2.6x
/// faster in a benchmark of ResNet's shapes (resnet18's first stage at 64x64: 146 against 56
/// GFLOP/s on two cores).
const PER_IMAGE_POSITIONS: usize = 64;

/// Most groups of images whose weight gradients are summed separately, in parallel, then added
/// in order (see [`Conv2d::weight_groups`]): enough rayon tasks to balance the threads, few
/// enough that the partial sums stay small.
const WEIGHT_GROUPS: usize = 8;

thread_local! {
    /// The calling thread's working memory for unfolded columns and reordered gradients, kept
    /// between calls: a fresh buffer of several megabytes per convolution costs a page fault per
    /// 4 KiB on first touch, which was about half of the unfolding time of ResNet's stem.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on two scratch slices of `a` and `b` elements (contents unspecified).
fn with_scratch<T>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> T) -> T {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < a + b {
                buffer.resize(a + b, 0.0);
            }
            let (first, rest) = buffer.split_at_mut(a);
            f(first, &mut rest[..b])
        }
        // Only a convolution started from inside another one's callback would get here.
        Err(_) => f(&mut vec![0.0; a], &mut vec![0.0; b]),
    })
}

/// The geometry of a 2-D convolution with one group over NCHW tensors: input
/// `[batch, in_channels, in_size[0], in_size[1]]`, weight
/// `[out_channels, in_channels, kernel[0], kernel[1]]`, output
/// `[batch, out_channels, out_size()[0], out_size()[1]]`; `padding` is symmetric, in zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Input height and width.
    pub in_size: [usize; 2],
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width (at least 1).
    pub stride: [usize; 2],
    /// Zero padding on each side along height and width.
    pub padding: [usize; 2],
    /// Dilation along height and width (at least 1).
    pub dilation: [usize; 2],
}

impl Conv2d {
    /// Output height and width, as PyTorch computes them (0 where the kernel does not fit).
    pub fn out_size(&self) -> [usize; 2] {
        sliding_out_size([
            self.in_size,
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
        ])
    }

    /// Rows of the unfolded input: one per input channel and kernel position.
    fn patch(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    /// Output positions of one image.
    fn positions(&self) -> usize {
        let [oh, ow] = self.out_size();
        oh * ow
    }

    /// Elements of one input image.
    fn image(&self) -> usize {
        self.in_channels * self.in_size[0] * self.in_size[1]
    }

    /// Images unfolded at once (see [`SCRATCH_BUDGET`]).
    fn chunk(&self) -> usize {
        let rows = self.patch() + self.out_channels;
        let per_image = rows * self.positions() * size_of::<f32>();
        (SCRATCH_BUDGET / per_image.max(1)).clamp(1, self.batch.max(1))
    }

    /// The output positions `o` along dimension `d` at which kernel offset `k` reads an input
    /// element inside the image (`o * stride + k * dilation - padding` in `0..in_size`).
    fn inside(&self, d: usize, k: usize, out_len: usize) -> std::ops::Range<usize> {
        let (stride, offset) = (self.stride[d], k * self.dilation[d]);
        let (pad, len) = (self.padding[d], self.in_size[d]);
        let first = pad.saturating_sub(offset).div_ceil(stride);
        let end = (len + pad).saturating_sub(offset).div_ceil(stride);
        first.min(out_len)..end.min(out_len).max(first.min(out_len))
    }

    /// Where each kernel position reads, in the order of the unfolded rows of one channel.
    fn taps(&self) -> Vec<Tap> {
        let [kh, kw] = self.kernel;
        let [oh, ow] = self.out_size();
        (0..kh * kw)
            .map(|k| {
                let (ky, kx) = (k / kw, k % kw);
                let rows = self.inside(0, ky, oh);
                let cols = self.inside(1, kx, ow);
                let first_x = cols.start * self.stride[1] + kx * self.dilation[1];
                Tap {
                    offset_y: ky * self.dilation[0],
                    first_x: first_x.saturating_sub(self.padding[1]),
                    rows,
                    cols,
                }
            })
            .collect()
    }

    /// The input row that output row `oy` of `tap` reads (`oy` in `tap.rows`).
    fn input_row(&self, tap: &Tap, oy: usize) -> usize {
        oy * self.stride[0] + tap.offset_y - self.padding[0]
    }

    /// Unfolds images `first..first + count` of `x` into `col`, a `[patch, count * positions]`
    /// row-major matrix whose column `i * positions + p` is output position `p` of image
    /// `first + i`; the rows are split across rayon's threads when `parallel`.
    fn im2col(&self, x: &[f32], first: usize, count: usize, col: &mut [f32], parallel: bool) {
        let [oh, ow] = self.out_size();
        let [h, w] = self.in_size;
        let positions = oh * ow;
        let row_len = count * positions;
        let taps = self.taps();
        let unfold = |(r, row): (usize, &mut [f32])| {
            let (c, tap) = (r / taps.len(), &taps[r % taps.len()]);
            let cols = tap.cols.clone();
            for (i, out) in row.chunks_exact_mut(positions).enumerate() {
                let plane = &x[((first + i) * self.in_channels + c) * h * w..][..h * w];
                if self.shifts() {
                    self.shifted_copy(tap, plane, out);
                    continue;
                }
                for (oy, dst) in out.chunks_exact_mut(ow).enumerate() {
                    if !tap.rows.contains(&oy) || cols.is_empty() {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[self.input_row(tap, oy) * w..][..w];
                    dst[..cols.start].fill(0.0);
                    dst[cols.end..].fill(0.0);
                    let inner = &mut dst[cols.clone()];
                    if self.stride[1] == 1 {
                        inner.copy_from_slice(&src[tap.first_x..tap.first_x + inner.len()]);
                    } else {
                        for (j, v) in inner.iter_mut().enumerate() {
                            *v = src[tap.first_x + j * self.stride[1]];
                        }
                    }
                }
            }
        };
        let col = &mut col[..self.patch() * row_len];
        if parallel {
            col.par_chunks_mut(row_len).enumerate().for_each(unfold);
        } else {
            col.chunks_mut(row_len).enumerate().for_each(unfold);
        }
    }

    /// Whether each kernel position's columns are the input shifted by a constant offset: stride
    /// 1 and an output as wide as the input (the "same" padding of ResNet's 3x3 layers), so
    /// that output position `p` reads input element `p + offset` wherever it reads inside the
    /// image.
    fn shifts(&self) -> bool {
        self.stride == [1, 1] && self.out_size()[1] == self.in_size[1]
    }

    /// One kernel position's row of one image's columns when [`Conv2d::shifts`]: a single copy
    /// of the input plane's span that it reads, then zeros where it reads padding (the rows
    /// before and after, and the columns outside `tap.cols`, which the copy filled with the
    /// neighbouring rows' edges). Per output row, the general path made up to three calls to
    /// `memcpy` and `memset` of a few elements each.
    fn shifted_copy(&self, tap: &Tap, plane: &[f32], out: &mut [f32]) {
        let ow = self.out_size()[1];
        let (rows, cols) = (tap.rows.clone(), tap.cols.clone());
        if rows.is_empty() || cols.is_empty() {
            out.fill(0.0);
            return;
        }
        let start = rows.start * ow + cols.start;
        let end = (rows.end - 1) * ow + cols.end;
        let from = self.input_row(tap, rows.start) * self.in_size[1] + tap.first_x;
        out[start..end].copy_from_slice(&plane[from..from + end - start]);
        out[..start].fill(0.0);
        out[end..].fill(0.0);
        for ox in (0..cols.start).chain(cols.end..ow) {
            for oy in rows.clone() {
                out[oy * ow + ox] = 0.0;
            }
        }
    }

    /// Adds the columns of `col` (ordered as [`Conv2d::im2col`] orders them, for the images of
    /// `dx`; element `(r, j)` at `r * strides[0] + j * strides[1]`) back onto the input gradient
    /// `dx` of those images, `[count, in_channels, h, w]`; the planes are split across rayon's
    /// threads when `parallel`.
    fn col2im(&self, (col, strides): (&[f32], [usize; 2]), dx: &mut [f32], parallel: bool) {
        let [oh, ow] = self.out_size();
        let [h, w] = self.in_size;
        let positions = oh * ow;
        let taps = self.taps();
        let fold = |(p, plane): (usize, &mut [f32])| {
            let (i, c) = (p / self.in_channels, p % self.in_channels);
            for (k, tap) in taps.iter().enumerate() {
                if tap.cols.is_empty() {
                    continue;
                }
                let r = c * taps.len() + k;
                let start = r * strides[0] + i * positions * strides[1];
                for oy in tap.rows.clone() {
                    let dst = &mut plane[self.input_row(tap, oy) * w..][..w];
                    let (x0, step) = (tap.first_x, self.stride[1]);
                    if strides[1] == 1 {
                        let src = &col[start + oy * ow..][..ow][tap.cols.clone()];
                        for (j, v) in src.iter().enumerate() {
                            dst[x0 + j * step] += v;
                        }
                    } else {
                        for (j, ox) in tap.cols.clone().enumerate() {
                            dst[x0 + j * step] += col[start + (oy * ow + ox) * strides[1]];
                        }
                    }
                }
            }
        };
        if parallel {
            dx.par_chunks_mut(h * w).enumerate().for_each(fold);
        } else {
            dx.chunks_mut(h * w).enumerate().for_each(fold);
        }
    }

    /// Copies a `[out_channels, count * positions]` matrix (columns ordered as [`Conv2d::im2col`]
    /// orders them) into the `[count, out_channels, oh, ow]` output of those images.
    fn scatter(&self, matrix: &[f32], count: usize, out: &mut [f32]) {
        let positions = self.positions();
        let row_len = count * positions;
        out.par_chunks_mut(positions)
            .enumerate()
            .for_each(|(plane, dst)| {
                let (i, o) = (plane / self.out_channels, plane % self.out_channels);
                dst.copy_from_slice(&matrix[o * row_len + i * positions..][..positions]);
            });
    }

    /// The inverse of [`Conv2d::scatter`]: the output gradient of images `first..first + count`
    /// as `[out_channels, count * positions]`.
    fn gather(&self, grad: &[f32], first: usize, count: usize, matrix: &mut [f32]) {
        let (positions, co) = (self.positions(), self.out_channels);
        let row_len = count * positions;
        matrix[..co * row_len]
            .par_chunks_mut(row_len)
            .enumerate()
            .for_each(|(o, row)| {
                for (i, dst) in row.chunks_exact_mut(positions).enumerate() {
                    dst.copy_from_slice(&grad[((first + i) * co + o) * positions..][..positions]);
                }
            });
    }

    /// Checks that the slices have this geometry's lengths.
    fn check(&self, x: &[f32], weight: &[f32], bias: Option<&[f32]>) {
        assert_eq!(x.len(), self.batch * self.image(), "input length");
        assert_eq!(
            weight.len(),
            self.out_channels * self.patch(),
            "weight length"
        );
        if let Some(bias) = bias {
            assert_eq!(bias.len(), self.out_channels, "bias length");
        }
        check_window([self.kernel, self.stride, self.dilation]);
    }
}

/// Where one kernel position reads in a convolution: the output rows and columns at which it
/// reads inside the image, and the input offsets of the first of them.
#[derive(Debug, Clone)]
struct Tap {
    /// Output rows at which the kernel position reads an input row inside the image.
    rows: std::ops::Range<usize>,
    /// Output columns at which it reads an input column inside the image.
    cols: std::ops::Range<usize>,
    /// Its offset along the height before padding (`ky * dilation`).
    offset_y: usize,
    /// The input column read at output column `cols.start`.
    first_x: usize,
}

/// `dst (m x n) = [dst +] lhs (m x k) · rhs (k x n)`, each matrix given by its pointer and its
/// (row, column) strides in elements.
///
/// # Safety
///
/// Every element the strides address must lie inside its slice's allocation, and `dst` must not
/// overlap `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    [m, n, k]: [usize; 3],
    dst: (*mut f32, [isize; 2]),
    accumulate: bool,
    lhs: (*const f32, [isize; 2]),
    rhs: (*const f32, [isize; 2]),
    parallel: bool,
) {
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the caller guarantees the bounds and the absence of overlap.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0,
            dst.1[1],
            dst.1[0],
            accumulate,
            lhs.0,
            lhs.1[1],
            lhs.1[0],
            rhs.0,
            rhs.1[1],
            rhs.1[0],
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The forward pass of `conv`: `x` is `[batch, in_channels, h, w]`, `weight`
/// `[out_channels, in_channels, kh, kw]`, `bias` `[out_channels]`; returns
/// `[batch, out_channels, oh, ow]`.
///
/// # Panics
///
/// When a slice's length does not match `conv`, or a kernel size, stride or dilation is 0.
pub fn conv2d_forward(conv: &Conv2d, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    conv.check(x, weight, bias);
    let (patch, positions) = (conv.patch(), conv.positions());
    let per_image = conv.out_channels * positions;
    let mut out = vec![0.0f32; conv.batch * per_image];
    if per_image == 0 {
        return out;
    }
    if positions < PER_IMAGE_POSITIONS {
        // One product per chunk of images, then reordered into the output.
        let chunk = conv.chunk();
        with_scratch(
            patch * chunk * positions,
            conv.out_channels * chunk * positions,
            |col, product| {
                for first in (0..conv.batch).step_by(chunk) {
                    let count = chunk.min(conv.batch - first);
                    let row_len = count * positions;
                    conv.im2col(x, first, count, col, true);
                    // SAFETY: `product` receives `out_channels x row_len`; `weight` is
                    // `out_channels x patch`; `col` holds `patch x row_len`.
                    unsafe {
                        matmul(
                            [conv.out_channels, row_len, patch],
                            (product.as_mut_ptr(), [row_len as isize, 1]),
                            false,
                            (weight.as_ptr(), [patch as isize, 1]),
                            (col.as_ptr(), [row_len as isize, 1]),
                            true,
                        );
                    }
                    let images = &mut out[first * per_image..(first + count) * per_image];
                    conv.scatter(product, count, images);
                }
            },
        );
    } else {
        // One product per image, written straight into its output, reading the image's
        // columns (unfolded just before into the thread's scratch, so read from cache).
        for_each_image(&mut out, per_image, |i, y, parallel| {
            with_scratch(patch * positions, 0, |col, _| {
                let rhs = conv.columns(x, i, col, parallel);
                // SAFETY: `y` is `out_channels x positions`; `weight` is
                // `out_channels x patch`; `rhs` holds `patch x positions`.
                unsafe {
                    matmul(
                        [conv.out_channels, positions, patch],
                        (y.as_mut_ptr(), [positions as isize, 1]),
                        false,
                        (weight.as_ptr(), [patch as isize, 1]),
                        (rhs.as_ptr(), [positions as isize, 1]),
                        parallel,
                    );
                }
            });
        });
    }
    if let Some(bias) = bias {
        out.par_chunks_mut(positions)
            .enumerate()
            .for_each(|(plane, y)| {
                let b = bias[plane % conv.out_channels];
                y.iter_mut().for_each(|v| *v += b);
            });
    }
    out
}

/// Runs `product(i, image, parallel)` over the images of `images` (`per_image` elements each):
/// one image per rayon task when there are images for every thread, else one after the other
/// with `parallel` set, so that the product splits each image across the threads (the same bits
/// either way: `gemm` splits outputs, never a sum).
fn for_each_image(
    images: &mut [f32],
    per_image: usize,
    product: impl Fn(usize, &mut [f32], bool) + Sync,
) {
    if images.len() / per_image.max(1) >= rayon::current_num_threads() {
        images
            .par_chunks_mut(per_image)
            .enumerate()
            .for_each(|(i, y)| product(i, y, false));
    } else {
        for (i, y) in images.chunks_mut(per_image).enumerate() {
            product(i, y, true);
        }
    }
}

/// The backward pass of `conv` from the gradient of its output `grad`
/// (`[batch, out_channels, oh, ow]`), with the forward's `x` and `weight`.
///
/// # Panics
///
/// When a slice's length does not match `conv`, or a kernel size, stride or dilation is 0.
pub fn conv2d_backward(
    conv: &Conv2d,
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    needs: Needs,
) -> Grads {
    conv.check(x, weight, None);
    let (patch, positions, co) = (conv.patch(), conv.positions(), conv.out_channels);
    assert_eq!(grad.len(), conv.batch * co * positions, "gradient length");
    let flipped = conv.flipped().filter(|_| needs.input);
    let mut grads = Grads {
        input: match flipped {
            Some(flipped) => Some(conv2d_forward(&flipped, grad, &conv.flip(weight), None)),
            None => needs.input.then(|| vec![0.0f32; x.len()]),
        },
        weight: None,
        bias: needs.bias.then(|| channel_sums(grad, co, positions)),
    };
    let mut dw = needs.weight.then(|| vec![0.0f32; weight.len()]);
    let dx = grads.input.as_deref_mut().filter(|_| flipped.is_none());
    if positions > 0 && (dx.is_some() || needs.weight) {
        conv.backward_products(x, weight, grad, dw.as_deref_mut(), dx);
    }
    grads.weight = dw.map(|dw| {
        if conv.weight_transposed() {
            transpose(&dw, patch, co)
        } else {
            dw
        }
    });
    grads
}

/// The `[cols, rows]` transpose of the row-major `[rows, cols]` matrix `t`.
fn transpose(t: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; t.len()];
    out.par_chunks_mut(rows.max(1))
        .enumerate()
        .for_each(|(c, dst)| {
            for (r, d) in dst.iter_mut().enumerate() {
                *d = t[r * cols + c];
            }
        });
    out
}

impl Conv2d {
    /// Whether the convolution reads its input as its own unfolded columns: a pointwise
    /// convolution (1x1, stride 1, no padding), whose column matrix of an image is the image,
    /// with [`PER_IMAGE_POSITIONS`] output positions or more, so that its products run per
    /// image. Its forward and weight-gradient products read the input with no unfolding, and
    /// its input gradient is the [flipped](Conv2d::flipped) convolution's forward, direct too.
    fn direct(&self) -> bool {
        self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.padding == [0, 0]
            && self.positions() >= PER_IMAGE_POSITIONS
    }

    /// Image `n`'s columns, `[patch, positions]`: the image itself for a [direct](Conv2d::direct)
    /// convolution, else unfolded into `col` (its rows split across rayon's threads when
    /// `parallel`).
    fn columns<'a>(&self, x: &'a [f32], n: usize, col: &'a mut [f32], parallel: bool) -> &'a [f32] {
        if self.direct() {
            let image = self.image();
            return &x[n * image..(n + 1) * image];
        }
        self.im2col(x, n, 1, col, parallel);
        &col[..self.patch() * self.positions()]
    }

    /// The convolution whose forward pass, applied to this one's output gradient with the
    /// [flipped](Conv2d::flip) weight, is this one's input gradient: for stride 1, where
    /// `dx[c, y, x] = Σ dy[o, y + i·d - q, x + j·d - q] · w[o, c, k-1-i, k-1-j]` is a convolution
    /// with padding `q = d·(k-1) - p` (the "full" convolution of the backward pass). Only for
    /// layers with [`PER_IMAGE_POSITIONS`] output positions or more, where the forward's
    /// per-image products (with the input's columns unfolded in cache) ran 1.5x to 2x faster
    /// than the unfolded gradient's products and folding back (resnet18's first and second
    /// stages at 64x64: 2.5 and 2.3 against 4.1 ms per layer on two cores); `None` elsewhere.
    fn flipped(&self) -> Option<Conv2d> {
        if self.stride != [1, 1] || self.positions() < PER_IMAGE_POSITIONS {
            return None;
        }
        let padding =
            [0, 1].map(|d| (self.dilation[d] * (self.kernel[d] - 1)).checked_sub(self.padding[d]));
        let [Some(top), Some(left)] = padding else {
            return None;
        };
        Some(Conv2d {
            batch: self.batch,
            in_channels: self.out_channels,
            in_size: self.out_size(),
            out_channels: self.in_channels,
            kernel: self.kernel,
            stride: [1, 1],
            padding: [top, left],
            dilation: self.dilation,
        })
    }

    /// The weight of [`Conv2d::flipped`]: `[in_channels, out_channels, kh, kw]`, each kernel
    /// rotated by 180 degrees.
    fn flip(&self, weight: &[f32]) -> Vec<f32> {
        let (ci, co) = (self.in_channels, self.out_channels);
        let [kh, kw] = self.kernel;
        let taps = kh * kw;
        let mut flipped = vec![0.0f32; weight.len()];
        for (i, kernel) in flipped.chunks_exact_mut(taps).enumerate() {
            let (c, o) = (i / co, i % co);
            let source = &weight[(o * ci + c) * taps..][..taps];
            for (k, v) in kernel.iter_mut().enumerate() {
                *v = source[taps - 1 - k];
            }
        }
        flipped
    }

    /// Whether the backward pass computes the weight gradient transposed, `[patch,
    /// out_channels]`: where an image has [`PER_IMAGE_POSITIONS`] output positions or more, the
    /// per-image products of [`Conv2d::weight_grad_by_groups`] compute `dWᵀ = Σ col(x_n) ·
    /// dY_nᵀ`, the orientation gemm ran 1.6x to 2.7x faster there (resnet18's first stage at
    /// 64x64: 162 against 61 GFLOP/s on two cores); with fewer, the chunk's one long product
    /// computes `dW = dY · col(x)ᵀ`, both ran alike and transposing cost more than it saved.
    fn weight_transposed(&self) -> bool {
        self.positions() >= PER_IMAGE_POSITIONS
    }

    /// The products of [`conv2d_backward`]: writes the weight gradient into `dw` (transposed
    /// when [`Conv2d::weight_transposed`]) and adds the input gradient into `dx`, where given.
    fn backward_products(
        &self,
        x: &[f32],
        weight: &[f32],
        grad: &[f32],
        dw: Option<&mut [f32]>,
        dx: Option<&mut [f32]>,
    ) {
        if !self.weight_transposed() {
            self.chunk_backward(x, weight, grad, dw, dx);
            return;
        }
        if let Some(dx) = dx {
            self.input_grad_per_image(weight, grad, dx);
        }
        if let Some(dwt) = dw {
            self.weight_grad_by_groups(x, grad, dwt);
        }
    }

    /// The input gradient of a layer with many positions, per image: `dcol_n = Wᵀ · dY_n` into
    /// the thread's scratch, folded back onto the image's gradient while it is in cache.
    fn input_grad_per_image(&self, weight: &[f32], grad: &[f32], dx: &mut [f32]) {
        let (patch, positions, co) = (self.patch(), self.positions(), self.out_channels);
        for_each_image(dx, self.image(), |i, dx, parallel| {
            with_scratch(patch * positions, 0, |dcol, _| {
                // SAFETY: `dcol` is `patch x positions`; `weight` is `co x patch`, read
                // transposed as `patch x co`; image `i`'s gradient in `grad` is
                // `co x positions`.
                unsafe {
                    matmul(
                        [patch, positions, co],
                        (dcol.as_mut_ptr(), [positions as isize, 1]),
                        false,
                        (weight.as_ptr(), [1, patch as isize]),
                        (grad[i * co * positions..].as_ptr(), [positions as isize, 1]),
                        parallel,
                    );
                }
                self.col2im((dcol, [positions, 1]), dx, parallel);
            });
        });
    }

    /// Groups of images whose weight gradients [`Conv2d::weight_grad_by_groups`] sums
    /// separately: up to [`WEIGHT_GROUPS`], fewer where their partial sums would not fit in
    /// [`SCRATCH_BUDGET`]; a function of the shapes only.
    fn weight_groups(&self) -> usize {
        let partial = self.patch() * self.out_channels * size_of::<f32>();
        (SCRATCH_BUDGET / partial.max(1)).clamp(1, WEIGHT_GROUPS.min(self.batch.max(1)))
    }

    /// The transposed weight gradient `dWᵀ = Σ_n col(x_n) · dY_nᵀ` of a layer with many
    /// positions, written into `dwt` (`[patch, out_channels]`): the batch is split into
    /// [`Conv2d::weight_groups`] groups of consecutive images, each summed by one rayon task
    /// (each image's [columns](Conv2d::columns), unfolded into the thread's scratch, multiplied
    /// while in cache), then the groups' sums are added in order. The split depends on the shapes only, so the bits do not depend on the threads.
    /// Against one long product over the unfolded chunk (gemm splitting its outputs across the
    /// threads): 2.4 against 4.1 ms per layer of resnet18's first stage at 64x64 on two cores,
    /// 4.4 against 8.5 ms for its stem.
    fn weight_grad_by_groups(&self, x: &[f32], grad: &[f32], dwt: &mut [f32]) {
        let (patch, positions, co) = (self.patch(), self.positions(), self.out_channels);
        let (groups, batch) = (self.weight_groups(), self.batch);
        let mut rest = vec![0.0f32; (groups - 1) * dwt.len()];
        let mut partials: Vec<&mut [f32]> = std::iter::once(&mut *dwt)
            .chain(rest.chunks_mut(patch * co))
            .collect();
        partials.par_iter_mut().enumerate().for_each(|(g, sum)| {
            with_scratch(patch * positions, 0, |col, _| {
                for n in g * batch / groups..(g + 1) * batch / groups {
                    let lhs = self.columns(x, n, col, false);
                    // SAFETY: `sum` is `patch x co`; `lhs` holds `patch x positions`; image
                    // `n`'s gradient in `grad` is `co x positions`, read transposed.
                    unsafe {
                        matmul(
                            [patch, co, positions],
                            (sum.as_mut_ptr(), [co as isize, 1]),
                            n > g * batch / groups,
                            (lhs.as_ptr(), [positions as isize, 1]),
                            (grad[n * co * positions..].as_ptr(), [1, positions as isize]),
                            false,
                        );
                    }
                }
            });
        });
        dwt.par_chunks_mut(MIN_TASK)
            .enumerate()
            .for_each(|(b, out)| {
                for part in rest.chunks(patch * co) {
                    let part = &part[b * MIN_TASK..][..out.len()];
                    out.iter_mut().zip(part).for_each(|(o, p)| *o += p);
                }
            });
    }

    /// Both gradients of a layer with few positions, over chunks of images at once: the output
    /// gradient gathered as `[out_channels, chunk * positions]`, then `dW = dY · col(x)ᵀ` (one
    /// long product over the chunk, accumulated over the chunks) and the unfolded input
    /// gradient, folded back.
    fn chunk_backward(
        &self,
        x: &[f32],
        weight: &[f32],
        grad: &[f32],
        mut dw: Option<&mut [f32]>,
        mut dx: Option<&mut [f32]>,
    ) {
        let (patch, positions, co) = (self.patch(), self.positions(), self.out_channels);
        let chunk = self.chunk();
        with_scratch(
            patch * chunk * positions,
            co * chunk * positions,
            |col, gathered| {
                for first in (0..self.batch).step_by(chunk) {
                    let count = chunk.min(self.batch - first);
                    let row_len = count * positions;
                    self.gather(grad, first, count, gathered);
                    if let Some(dw) = dw.as_deref_mut() {
                        self.im2col(x, first, count, col, true);
                        // SAFETY: `dw` holds `co x patch`; `gathered` holds `co x row_len`
                        // and `col` `patch x row_len`, read transposed.
                        unsafe {
                            matmul(
                                [co, patch, row_len],
                                (dw.as_mut_ptr(), [patch as isize, 1]),
                                first > 0,
                                (gathered.as_ptr(), [row_len as isize, 1]),
                                (col.as_ptr(), [1, row_len as isize]),
                                true,
                            );
                        }
                    }
                    if let Some(dx) = dx.as_deref_mut() {
                        // The unfolded gradient `Wᵀ · dY`, `patch x row_len`, in `col`, stored
                        // column-major (computed as `dYᵀ · W`): on these layers with few
                        // positions, gemm ran that orientation 1.6x faster (resnet18's last
                        // stage at 64x64: 244 against 151 GFLOP/s on two cores).
                        let strides = [1, patch];
                        // SAFETY: `col` receives `patch x row_len` at `strides`; `weight` is
                        // `co x patch`, read transposed as `patch x co`; `gathered` holds
                        // `co x row_len`.
                        unsafe {
                            matmul(
                                [patch, row_len, co],
                                (col.as_mut_ptr(), strides.map(|s| s as isize)),
                                false,
                                (weight.as_ptr(), [1, patch as isize]),
                                (gathered.as_ptr(), [row_len as isize, 1]),
                                true,
                            );
                        }
                        let image = self.image();
                        let dx = &mut dx[first * image..(first + count) * image];
                        self.col2im((col, strides), dx, true);
                    }
                }
            },
        );
    }
}
