//! What compute devices a plugin can use: one [`BackendReport`] per backend it was compiled with.
//!
//! A plugin answers [`crate::PluginRoot::devices`] (ABI 1.1) with the backends compiled into it
//! (`cpu`, `wgpu`, `cuda`, or whatever a third-party backend calls itself) and, for each, the
//! devices it can see right now, or why it sees none. The host shows these in `clshost doctor`
//! and checks a recipe's `trainer.device` against them. A backend the plugin was not built with
//! is not listed at all; a compiled backend without a usable device has an empty
//! [`BackendReport::devices`] and a [`BackendReport::problem`].
//!
//! A plugin names its reporting function in [`crate::export_plugin!`]; it may return the reports
//! or a `Result` of them, and a panic in it comes back to the host as an error:
//!
//! ```
//! use clshost_plugin_api::prelude::*;
//!
//! fn devices() -> Result<Vec<BackendReport>, PluginError> {
//!     Ok(vec![
//!         BackendReport::available("cpu", vec![DeviceEntry::new("cpu", "my-cpu-kernels", "")]),
//!         BackendReport::unavailable("cuda", "no CUDA driver library (libcuda.so.1) found"),
//!     ])
//! }
//!
//! export_plugin!(description: "A plugin that reports its backends", devices: devices);
//!
//! # fn main() {
//! let reports = (__clshost_plugin_root().devices().unwrap())().unwrap();
//! assert_eq!(reports.into_vec(), devices().unwrap());
//! # }
//! ```

use abi_stable::StableAbi;
use abi_stable::std_types::{ROption, RString, RVec};

/// One backend compiled into a plugin, with the devices it sees.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct BackendReport {
    /// The backend's name, the part of a device id before `:` (`cpu`, `wgpu`, `cuda`, or the
    /// name a third-party backend gives itself).
    pub backend: RString,
    /// The devices usable now, in the order their ids number them; empty when none is.
    pub devices: RVec<DeviceEntry>,
    /// Why no device is usable (`no CUDA driver library (libcuda.so.1) found`, `no Vulkan
    /// adapter`), or a remark about the devices that are; `RNone` when there is nothing to say.
    pub problem: ROption<RString>,
}

/// One device a backend can run on.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct DeviceEntry {
    /// What a recipe writes in `trainer.device` to pick this device: `cpu`, `wgpu`, `wgpu:0`,
    /// `cuda:0`.
    pub id: RString,
    /// The device's own name (`NVIDIA H100 80GB HBM3`, `llvmpipe (LLVM 17, 256 bits)`).
    pub name: RString,
    /// One line of facts about it: memory, compute capability, graphics API, device type
    /// (`80 GiB, compute 9.0`, `Vulkan, Cpu`).
    pub detail: RString,
}

impl BackendReport {
    /// A backend with `devices` and nothing to remark.
    pub fn available(backend: impl Into<String>, devices: Vec<DeviceEntry>) -> Self {
        BackendReport {
            backend: backend.into().into(),
            devices: devices.into(),
            problem: ROption::RNone,
        }
    }

    /// A compiled backend with no usable device, and why.
    pub fn unavailable(backend: impl Into<String>, problem: impl Into<String>) -> Self {
        BackendReport {
            backend: backend.into().into(),
            devices: RVec::new(),
            problem: ROption::RSome(problem.into().into()),
        }
    }
}

impl DeviceEntry {
    /// A device with its recipe id, name and detail line.
    pub fn new(id: impl Into<String>, name: impl Into<String>, detail: impl Into<String>) -> Self {
        DeviceEntry {
            id: id.into().into(),
            name: name.into().into(),
            detail: detail.into().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_fill_every_field() {
        let cpu =
            BackendReport::available("cpu", vec![DeviceEntry::new("cpu", "flex", "4 threads")]);
        assert_eq!(cpu.backend.as_str(), "cpu");
        assert_eq!(cpu.devices[0].id.as_str(), "cpu");
        assert_eq!(cpu.devices[0].name.as_str(), "flex");
        assert_eq!(cpu.devices[0].detail.as_str(), "4 threads");
        assert_eq!(cpu.problem, ROption::RNone);

        let cuda = BackendReport::unavailable("cuda", "no driver");
        assert!(cuda.devices.is_empty());
        assert_eq!(
            cuda.problem.as_ref().map(RString::as_str),
            ROption::RSome("no driver")
        );
    }
}
