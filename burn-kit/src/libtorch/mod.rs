//! The LibTorch backend (cargo feature `libtorch`): Burn's burn-tch backend runs every tensor
//! operation on PyTorch's ATen kernels (oneDNN on the CPU, cuDNN and cuBLAS on NVIDIA GPUs), and
//! [`fused`] replaces the layers where Burn's generic autodiff is slow on it (convolution,
//! training-mode batch normalization, ReLU) by ATen's fused forward and backward kernels
//! ([`aten`]); [`optim`] steps the optimizer with ATen's fused multi-tensor kernels, in place.
//!
//! Devices: `libtorch:cpu`, `libtorch:cuda` (ordinal 0) and `libtorch:cuda:N`. [`report`] lists
//! them for the plugin's device report; [`open`] checks one before Burn touches it (burn-tch
//! panics on a CUDA device when libtorch has none).

pub(crate) mod aten;
pub(crate) mod fused;
pub(crate) mod optim;

use burn_tch::LibTorchDevice;
use clshost_plugin_api::{BackendReport, DeviceEntry, ROption};

use crate::device::{TorchDevice, cpu_threads};

/// The torch version the kit was built against (from the libtorch directory torch-sys linked).
pub const TORCH_VERSION: &str = env!("CLSHOST_LIBTORCH_VERSION");

/// Sets ATen's intra-op thread count to the threads this process may use (it defaults to the
/// physical cores, which leaves hyper-threads and container quotas unused or oversubscribed).
fn set_threads() -> usize {
    let threads = cpu_threads();
    tch::set_num_threads(threads as i32);
    threads
}

/// The CUDA devices libtorch sees.
fn cuda_count() -> usize {
    usize::try_from(tch::Cuda::device_count()).unwrap_or(0)
}

/// The Burn device for `device` and a label for the run summary, or why it cannot be used.
pub(crate) fn open(device: TorchDevice) -> Result<(LibTorchDevice, String), String> {
    match device {
        TorchDevice::Cpu => {
            let threads = set_threads();
            Ok((
                LibTorchDevice::Cpu,
                format!("libtorch:cpu (torch {TORCH_VERSION}, {threads} threads)"),
            ))
        }
        TorchDevice::Cuda(ordinal) => match cuda_count() {
            0 => Err(no_cuda()),
            n if ordinal >= n => Err(format!(
                "libtorch sees {n} CUDA device(s): libtorch:cuda:0 to libtorch:cuda:{}",
                n - 1
            )),
            _ => Ok((
                LibTorchDevice::Cuda(ordinal),
                format!("libtorch:cuda:{ordinal} (torch {TORCH_VERSION})"),
            )),
        },
    }
}

/// Why libtorch has no CUDA device.
fn no_cuda() -> String {
    // `has_cudart` says whether libtorch was built with CUDA; `has_cuda` whether it can use it.
    if tch::utils::has_cudart() {
        "libtorch sees no CUDA device (no NVIDIA driver, or no GPU)".to_string()
    } else {
        format!("libtorch {TORCH_VERSION} was built without CUDA: install a CUDA build of torch")
    }
}

/// The LibTorch backend's devices: `libtorch:cpu` always, `libtorch:cuda:N` for each GPU.
pub(crate) fn report() -> BackendReport {
    let threads = cpu_threads();
    let mut devices = vec![DeviceEntry::new(
        "libtorch:cpu",
        "ATen",
        format!("torch {TORCH_VERSION}, {threads} threads"),
    )];
    let cuda = cuda_count();
    devices.extend((0..cuda).map(|n| {
        DeviceEntry::new(
            format!("libtorch:cuda:{n}"),
            format!("CUDA device {n}"),
            format!("torch {TORCH_VERSION}, cuDNN"),
        )
    }));
    let mut report = BackendReport::available("libtorch", devices);
    if cuda == 0 {
        report.problem = ROption::RSome(no_cuda().into());
    }
    report
}
