//! Safe calls into the kit's C++ shim over ATen (`csrc/aten_ops.cpp`): the fused backward
//! kernels of convolution and batch normalization, and the fused multi-tensor SGD and AdamW
//! steps, which the tch crate does not bind.

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
    fn clshost_aten_fused_sgd(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        buffers: *const *const C_tensor,
        count: usize,
        weight_decay: f64,
        momentum: f64,
        lr: f64,
        nesterov: bool,
        first_step: bool,
    ) -> *mut c_char;
    fn clshost_aten_fused_adamw(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        exp_avgs: *const *const C_tensor,
        exp_avg_sqs: *const *const C_tensor,
        steps: *const *const C_tensor,
        count: usize,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
    ) -> *mut c_char;
}

/// Up to three gradients, `None` where the mask did not ask for one.
pub(crate) type Grads = [Option<Tensor>; 3];

/// Turns the shim's error into a `Result`.
///
/// # Safety
/// `error` is null or a string from the shim.
unsafe fn checked(error: *mut c_char) -> Result<(), String> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null error is a NUL-terminated string the shim allocated with strdup.
    let message = unsafe { CStr::from_ptr(error) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: freed once, by the shim's own allocator.
    unsafe { clshost_aten_free(error) };
    Err(message)
}

/// Turns the shim's error and output handles into gradients.
///
/// # Safety
/// `error` is null or a string from the shim; each `out` entry is null or a new tensor handle.
unsafe fn collect(error: *mut c_char, out: [*mut C_tensor; 3]) -> Result<Grads, String> {
    // SAFETY: as the caller promises.
    unsafe { checked(error) }?;
    // SAFETY: non-null outputs are tensors the shim created for the caller to own.
    Ok(out.map(|t| (!t.is_null()).then(|| unsafe { Tensor::from_ptr(t) })))
}

/// The handles of `tensors`, for a tensor list of the shim.
fn handles(tensors: &[&Tensor]) -> Vec<*const C_tensor> {
    tensors.iter().map(|t| t.as_ptr()).collect()
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

/// One SGD step's hyper-parameters, as `torch.optim.SGD` takes them (no dampening).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    /// Whether the momentum buffers are new: the step fills them with the gradients.
    pub first_step: bool,
}

/// ATen's `_fused_sgd_`: one SGD step of `params`, in place on them and on `buffers` (one per
/// parameter; unused, and may be empty, without a momentum). `grads` are left unchanged.
pub(crate) fn fused_sgd(
    params: &[&Tensor],
    grads: &[&Tensor],
    buffers: &[&Tensor],
    sgd: Sgd,
) -> Result<(), String> {
    let count = params.len();
    if grads.len() != count || (sgd.momentum != 0.0 && buffers.len() != count) {
        return Err(format!(
            "fused SGD over {count} parameters got {} gradients and {} momentum buffers",
            grads.len(),
            buffers.len()
        ));
    }
    let (params, grads, buffers) = (handles(params), handles(grads), handles(buffers));
    // SAFETY: the handles are live tensors for the call; the shim reads `count` entries of each
    // list, and of `buffers` only with a momentum, when it has `count` entries too.
    unsafe {
        checked(clshost_aten_fused_sgd(
            params.as_ptr(),
            grads.as_ptr(),
            buffers.as_ptr(),
            count,
            sgd.weight_decay,
            sgd.momentum,
            sgd.lr,
            sgd.nesterov,
            sgd.first_step,
        ))
    }
}

/// One AdamW step's hyper-parameters, as `torch.optim.AdamW` takes them (no AMSGrad).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamW {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
}

/// ATen's `_fused_adamw_`: one AdamW step of `params`, in place on them and on their first and
/// second moments. `steps` holds each parameter's step count including this step, as a float32
/// scalar tensor on the parameter's device. `grads` are left unchanged.
pub(crate) fn fused_adamw(
    params: &[&Tensor],
    grads: &[&Tensor],
    moments: (&[&Tensor], &[&Tensor]),
    steps: &[&Tensor],
    adamw: AdamW,
) -> Result<(), String> {
    let count = params.len();
    if [grads.len(), moments.0.len(), moments.1.len(), steps.len()] != [count; 4] {
        return Err(format!(
            "fused AdamW over {count} parameters got {} gradients, {} and {} moments and {} steps",
            grads.len(),
            moments.0.len(),
            moments.1.len(),
            steps.len()
        ));
    }
    let (params, grads) = (handles(params), handles(grads));
    let (exp_avgs, exp_avg_sqs, steps) = (handles(moments.0), handles(moments.1), handles(steps));
    // SAFETY: the handles are live tensors for the call, `count` in each list.
    unsafe {
        checked(clshost_aten_fused_adamw(
            params.as_ptr(),
            grads.as_ptr(),
            exp_avgs.as_ptr(),
            exp_avg_sqs.as_ptr(),
            steps.as_ptr(),
            count,
            adamw.lr,
            adamw.beta1,
            adamw.beta2,
            adamw.weight_decay,
            adamw.eps,
        ))
    }
}
