//! Host-memory tensors and images: how pixel and logit data cross the boundary.
//!
//! A tensor is a shape plus a flat, row-major (C order) `f32` buffer. [`Tensor`] owns its data,
//! [`TensorRef`] and [`TensorMut`] borrow it for the duration of one call. Images for
//! image-stage augmentations are [`ImageU8`]: 8-bit RGB, height x width x 3.

use abi_stable::StableAbi;
use abi_stable::std_types::{RSlice, RSliceMut, RVec};

use crate::PluginError;

/// An owned tensor: `shape` and its row-major `f32` elements.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Size of each dimension, outermost first.
    pub shape: RVec<usize>,
    /// The elements in row-major order; `data.len()` is the product of `shape`.
    pub data: RVec<f32>,
}

/// A borrowed, read-only tensor.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct TensorRef<'a> {
    /// Size of each dimension, outermost first.
    pub shape: RSlice<'a, usize>,
    /// The elements in row-major order.
    pub data: RSlice<'a, f32>,
}

/// A borrowed tensor whose elements may be written.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct TensorMut<'a> {
    /// Size of each dimension, outermost first.
    pub shape: RSlice<'a, usize>,
    /// The elements in row-major order.
    pub data: RSliceMut<'a, f32>,
}

/// Checks that `len` elements fill `shape` exactly.
fn check_len(shape: &[usize], len: usize) -> Result<(), PluginError> {
    let expected: usize = shape.iter().product();
    if expected == len {
        Ok(())
    } else {
        Err(PluginError::input(format!(
            "tensor of shape {shape:?} needs {expected} elements, got {len}"
        )))
    }
}

/// Reads a shape of rank `N`, or says which rank was expected.
fn dims<const N: usize>(shape: &[usize]) -> Result<[usize; N], PluginError> {
    shape.try_into().map_err(|_| {
        PluginError::input(format!(
            "expected a tensor of rank {N}, got shape {shape:?}"
        ))
    })
}

impl Tensor {
    /// A tensor from a shape and its elements; fails when they disagree in size.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, PluginError> {
        check_len(&shape, data.len())?;
        Ok(Tensor {
            shape: shape.into(),
            data: data.into(),
        })
    }

    /// A tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let len = shape.iter().product();
        Tensor {
            shape: shape.into(),
            data: vec![0.0; len].into(),
        }
    }

    /// The elements as little-endian bytes, 4 per element: how safetensors and PyTorch store an
    /// `f32` tensor.
    ///
    /// One copy of the buffer on little-endian machines, not a conversion per element: a debug
    /// build (what the tests run) spent 42% of a tiny training run in a per-element conversion
    /// of its checkpoints.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        if cfg!(target_endian = "little") {
            bytemuck::cast_slice(self.data.as_slice()).to_vec()
        } else {
            self.data.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
    }

    /// A tensor of `shape` from the little-endian `f32` bytes [`Tensor::to_le_bytes`] writes;
    /// fails when `bytes` is not 4 bytes per element of `shape`.
    pub fn from_le_bytes(shape: Vec<usize>, bytes: &[u8]) -> Result<Self, PluginError> {
        if !bytes.len().is_multiple_of(4) {
            return Err(PluginError::input(format!(
                "{} bytes are not a whole number of 4-byte floats",
                bytes.len()
            )));
        }
        let data = if cfg!(target_endian = "little") {
            bytemuck::pod_collect_to_vec(bytes)
        } else {
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        Tensor::new(shape, data)
    }

    /// Borrows the tensor.
    pub fn view(&self) -> TensorRef<'_> {
        TensorRef {
            shape: self.shape.as_rslice(),
            data: self.data.as_rslice(),
        }
    }

    /// Borrows the tensor for writing.
    pub fn view_mut(&mut self) -> TensorMut<'_> {
        TensorMut {
            shape: self.shape.as_rslice(),
            data: self.data.as_mut_rslice(),
        }
    }
}

impl<'a> TensorRef<'a> {
    /// A view of `data` with `shape`; fails when they disagree in size.
    pub fn new(shape: &'a [usize], data: &'a [f32]) -> Result<Self, PluginError> {
        check_len(shape, data.len())?;
        Ok(TensorRef {
            shape: shape.into(),
            data: data.into(),
        })
    }

    /// The shape as `(rows, columns)`, for matrices such as logits `N x C`.
    pub fn dims2(&self) -> Result<(usize, usize), PluginError> {
        check_len(&self.shape, self.data.len())?;
        let [n, c] = dims(&self.shape)?;
        Ok((n, c))
    }

    /// The shape as `[N, C, H, W]`, for image batches.
    pub fn dims4(&self) -> Result<[usize; 4], PluginError> {
        check_len(&self.shape, self.data.len())?;
        dims(&self.shape)
    }

    /// Copies the view into an owned tensor.
    pub fn to_tensor(&self) -> Tensor {
        Tensor {
            shape: self.shape.to_vec().into(),
            data: self.data.to_vec().into(),
        }
    }
}

impl<'a> TensorMut<'a> {
    /// A writable view of `data` with `shape`; fails when they disagree in size.
    pub fn new(shape: &'a [usize], data: &'a mut [f32]) -> Result<Self, PluginError> {
        check_len(shape, data.len())?;
        Ok(TensorMut {
            shape: shape.into(),
            data: data.into(),
        })
    }

    /// A read-only view of the same data.
    pub fn as_ref(&self) -> TensorRef<'_> {
        TensorRef {
            shape: self.shape,
            data: self.data.as_rslice(),
        }
    }

    /// Reborrows the view, so it can be passed on while keeping this one.
    pub fn reborrow(&mut self) -> TensorMut<'_> {
        TensorMut {
            shape: self.shape,
            data: self.data.as_mut_slice().into(),
        }
    }

    /// The shape as `(rows, columns)`.
    pub fn dims2(&self) -> Result<(usize, usize), PluginError> {
        self.as_ref().dims2()
    }

    /// The shape as `[N, C, H, W]`.
    pub fn dims4(&self) -> Result<[usize; 4], PluginError> {
        self.as_ref().dims4()
    }
}

/// An 8-bit RGB image in height x width x 3 order (interleaved, row-major).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct ImageU8 {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `height * width * 3` bytes: R, G, B for each pixel, rows top to bottom.
    pub data: RVec<u8>,
}

impl ImageU8 {
    /// An image from its size and pixels; fails when they disagree.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, PluginError> {
        let expected = width as usize * height as usize * 3;
        if data.len() != expected {
            return Err(PluginError::input(format!(
                "a {width}x{height} RGB image needs {expected} bytes, got {}",
                data.len()
            )));
        }
        Ok(ImageU8 {
            width,
            height,
            data: data.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked() {
        assert!(Tensor::new(vec![2, 3], vec![0.0; 6]).is_ok());
        let err = Tensor::new(vec![2, 3], vec![0.0; 5]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tensor of shape [2, 3] needs 6 elements, got 5"
        );
        let t = Tensor::zeros(vec![2, 3]);
        assert_eq!(t.view().dims2().unwrap(), (2, 3));
        assert!(t.view().dims4().is_err());
        assert!(ImageU8::new(2, 2, vec![0; 11]).is_err());
    }

    #[test]
    fn le_bytes_are_the_little_endian_floats_and_read_back() {
        let t = Tensor::new(vec![2], vec![1.0, -0.5]).unwrap();
        let bytes = t.to_le_bytes();
        assert_eq!(bytes, [0, 0, 128, 63, 0, 0, 0, 191]);
        assert_eq!(Tensor::from_le_bytes(vec![2], &bytes).unwrap(), t);
        // An odd offset: the bytes of a file need not be aligned for f32.
        let shifted = [&[9u8][..], &bytes].concat();
        assert_eq!(Tensor::from_le_bytes(vec![2], &shifted[1..]).unwrap(), t);
        let err = Tensor::from_le_bytes(vec![2], &bytes[..7]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "7 bytes are not a whole number of 4-byte floats"
        );
        assert!(Tensor::from_le_bytes(vec![3], &bytes).is_err());
    }
}
