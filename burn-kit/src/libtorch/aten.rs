//! Safe calls into the kit's C++ shim over ATen (`csrc/aten_ops.cpp`): the fused backward
//! kernels of convolution and batch normalization that the tch crate does not bind.

use std::ffi::{CStr, c_char};
use std::ptr;

use tch::Tensor;
use torch_sys::C_tensor;

unsafe extern "C" {
    fn clshost_aten_free(text: *mut c_char);
    fn clshost_aten_conv2d_backward(
        grad: *const C_tensor,
        input: *const C_tensor,
        weight: *const C_tensor,
        has_bias: i32,
        stride: *const i64,
        padding: *const i64,
        dilation: *const i64,
        groups: i64,
        mask: *const bool,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn clshost_aten_batch_norm_backward(
        grad: *const C_tensor,
        input: *const C_tensor,
        weight: *const C_tensor,
        save_mean: *const C_tensor,
        save_invstd: *const C_tensor,
        eps: f64,
        mask: *const bool,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
}

/// Up to three gradients, `None` where the mask did not ask for one.
pub(crate) type Grads = [Option<Tensor>; 3];

/// Turns the shim's error and output handles into gradients.
///
/// # Safety
/// `error` is null or a string from the shim; each `out` entry is null or a new tensor handle.
unsafe fn collect(error: *mut c_char, out: [*mut C_tensor; 3]) -> Result<Grads, String> {
    if !error.is_null() {
        // SAFETY: a non-null error is a NUL-terminated string the shim allocated with strdup.
        let message = unsafe { CStr::from_ptr(error) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: freed once, by the shim's own allocator.
        unsafe { clshost_aten_free(error) };
        return Err(message);
    }
    // SAFETY: non-null outputs are tensors the shim created for the caller to own.
    Ok(out.map(|t| (!t.is_null()).then(|| unsafe { Tensor::from_ptr(t) })))
}

/// Options of a 2-D convolution, as ATen takes them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conv2d {
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub dilation: [i64; 2],
    pub groups: i64,
}

/// ATen's `convolution_backward`: the gradients of a 2-D convolution of `input` by `weight`
/// (and a bias, when `has_bias`) for the output gradient `grad`, those the mask asks for.
pub(crate) fn conv2d_backward(
    grad: &Tensor,
    input: &Tensor,
    weight: &Tensor,
    has_bias: bool,
    conv: Conv2d,
    mask: [bool; 3],
) -> Result<Grads, String> {
    let mut out = [ptr::null_mut(); 3];
    // SAFETY: the tensor handles are live for the call; the arrays have the lengths the shim
    // reads (2 for the options, 3 for the mask and outputs).
    unsafe {
        let error = clshost_aten_conv2d_backward(
            grad.as_ptr(),
            input.as_ptr(),
            weight.as_ptr(),
            i32::from(has_bias),
            conv.stride.as_ptr(),
            conv.padding.as_ptr(),
            conv.dilation.as_ptr(),
            conv.groups,
            mask.as_ptr(),
            out.as_mut_ptr(),
        );
        collect(error, out)
    }
}

/// ATen's `native_batch_norm_backward` in training mode: the gradients of the input, scale and
/// shift of a batch normalization that saved `save_mean` and `save_invstd`.
pub(crate) fn batch_norm_backward(
    grad: &Tensor,
    input: &Tensor,
    weight: &Tensor,
    saved: (&Tensor, &Tensor),
    eps: f64,
    mask: [bool; 3],
) -> Result<Grads, String> {
    let mut out = [ptr::null_mut(); 3];
    // SAFETY: as in `conv2d_backward`.
    unsafe {
        let error = clshost_aten_batch_norm_backward(
            grad.as_ptr(),
            input.as_ptr(),
            weight.as_ptr(),
            saved.0.as_ptr(),
            saved.1.as_ptr(),
            eps,
            mask.as_ptr(),
            out.as_mut_ptr(),
        );
        collect(error, out)
    }
}
