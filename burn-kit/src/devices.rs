//! Which devices this build of the kit can run on, for a plugin's ABI 1.1 device report.
//!
//! [`devices`] lists one [`BackendReport`] per backend compiled in: `cpu` always, `wgpu` with the
//! `wgpu` feature, `cuda` with the `cuda` feature, `libtorch` (`libtorch:cpu`,
//! `libtorch:cuda:N`) with the `libtorch` feature. The ids it reports mean exactly what
//! [`DeviceChoice::parse`](crate::DeviceChoice::parse) and [`BurnBackbone`](crate::BurnBackbone)
//! make of them:
//!
//! - `wgpu` is Burn's default device: the adapter wgpu picks for a high-performance request on
//!   the platform's graphics API (Vulkan, or Metal on macOS). `CUBECL_WGPU_DEFAULT_DEVICE`
//!   overrides that choice.
//! - `wgpu:N` is Burn's `DiscreteGpu(N)`: the N-th discrete GPU among the adapters of that API,
//!   or, when there are not that many, the N-th adapter of type "other". Software adapters
//!   (Mesa's lavapipe) and integrated GPUs have no `wgpu:N` id: only `wgpu` reaches them.
//! - `cuda:N` is CUDA device ordinal N; a bare `cuda` means `cuda:0`.
//!
//! Nothing here allocates device memory or compiles a kernel, so the report is cheap enough for
//! `clshost check` to ask for it.

use clshost_plugin_api::{BackendReport, DeviceEntry};

use crate::device::cpu_threads;

/// One report per backend compiled into this build, each with the devices it sees now or why
/// it sees none.
pub fn devices() -> Vec<BackendReport> {
    let mut reports = vec![cpu()];
    #[cfg(feature = "wgpu")]
    reports.push(contained("wgpu", wgpu_probe::report));
    #[cfg(feature = "cuda")]
    reports.push(contained("cuda", cuda_probe::report));
    #[cfg(feature = "libtorch")]
    reports.push(contained("libtorch", crate::libtorch::report));
    reports
}

/// The CUDA device `cuda:{ordinal}` as the driver describes it, or why it cannot be used (no
/// driver library, no such ordinal), checked before Burn opens it: Burn's CUDA runtime panics
/// on a separate thread without a driver, which would reach the user as an opaque channel
/// error and a stray panic message.
#[cfg(feature = "cuda")]
pub fn cuda_device(ordinal: usize) -> Result<DeviceEntry, String> {
    let report = contained("cuda", cuda_probe::report);
    if let Some(problem) = report.problem.into_option() {
        return Err(problem.into_string());
    }
    let count = report.devices.len();
    report
        .devices
        .into_iter()
        .nth(ordinal)
        .ok_or_else(|| match count {
            1 => "there is 1 CUDA device: cuda:0".to_string(),
            n => format!("there are {n} CUDA devices: cuda:0 to cuda:{}", n - 1),
        })
}

fn cpu() -> BackendReport {
    let threads = cpu_threads();
    let unit = if threads == 1 { "thread" } else { "threads" };
    BackendReport::available(
        "cpu",
        vec![DeviceEntry::new("cpu", "flex", format!("{threads} {unit}"))],
    )
}

/// Runs a backend's probe, turning a panic inside the driver stack into the backend's problem.
#[cfg(any(feature = "wgpu", feature = "cuda", feature = "libtorch"))]
fn contained(backend: &str, probe: fn() -> BackendReport) -> BackendReport {
    std::panic::catch_unwind(probe).unwrap_or_else(|payload| {
        BackendReport::unavailable(
            backend,
            format!(
                "probing the devices failed: {}",
                clshost_plugin_api::panic_message(payload.as_ref())
            ),
        )
    })
}

#[cfg(feature = "wgpu")]
mod wgpu_probe {
    //! Adapter enumeration with the same graphics API and selection rules as cubecl-wgpu.

    use burn::backend::wgpu::graphics::{AutoGraphicsApi, GraphicsApi};
    use clshost_plugin_api::{BackendReport, DeviceEntry};
    use wgpu::{
        Adapter, AdapterInfo, DeviceType, Instance, InstanceDescriptor, InstanceFlags,
        PowerPreference, RequestAdapterOptions,
    };

    /// The environment variable with which cubecl-wgpu overrides the default device.
    const DEFAULT_DEVICE_ENV: &str = "CUBECL_WGPU_DEFAULT_DEVICE";

    pub(super) fn report() -> BackendReport {
        let api = AutoGraphicsApi::backend();
        let instance = Instance::new(InstanceDescriptor {
            backends: api.into(),
            flags: InstanceFlags::default(),
            ..InstanceDescriptor::new_without_display_handle()
        });
        let adapters = futures_lite::future::block_on(instance.enumerate_adapters(api.into()));
        if adapters.is_empty() {
            return BackendReport::unavailable(
                "wgpu",
                format!(
                    "no {api:?} adapter found: install the GPU's driver, or Mesa's software \
                     Vulkan (apt-get install mesa-vulkan-drivers libvulkan1)"
                ),
            );
        }
        let mut devices = Vec::new();
        let default =
            futures_lite::future::block_on(instance.request_adapter(&RequestAdapterOptions {
                power_preference: PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
            }));
        if let Ok(adapter) = default {
            let mut entry = entry("wgpu", &adapter.get_info());
            if let Ok(value) = std::env::var(DEFAULT_DEVICE_ENV) {
                entry.detail = format!(
                    "{}; {DEFAULT_DEVICE_ENV}={value} overrides this choice",
                    entry.detail
                )
                .into();
            }
            devices.push(entry);
        }
        let (other, typed): (Vec<&Adapter>, Vec<&Adapter>) = adapters
            .iter()
            .partition(|a| a.get_info().device_type == DeviceType::Other);
        let discrete: Vec<&Adapter> = typed
            .into_iter()
            .filter(|a| a.get_info().device_type == DeviceType::DiscreteGpu)
            .collect();
        for n in 0..discrete.len().max(other.len()) {
            let adapter = discrete.get(n).or_else(|| other.get(n));
            if let Some(adapter) = adapter {
                devices.push(entry(&format!("wgpu:{n}"), &adapter.get_info()));
            }
        }
        BackendReport::available("wgpu", devices)
    }

    fn entry(id: &str, info: &AdapterInfo) -> DeviceEntry {
        let kind = match info.device_type {
            DeviceType::Cpu => "Cpu: software rasterizer, slow".to_string(),
            other => format!("{other:?}"),
        };
        let driver = format!("{} {}", info.driver, info.driver_info);
        let detail = match driver.trim() {
            "" => format!("{:?}, {kind}", info.backend),
            driver => format!("{:?}, {kind}, {driver}", info.backend),
        };
        DeviceEntry::new(id, info.name.clone(), detail)
    }
}

#[cfg(feature = "cuda")]
mod cuda_probe {
    //! CUDA devices through the driver API, loaded at run time as cubecl-cuda loads it.

    use clshost_plugin_api::{BackendReport, DeviceEntry};
    use cudarc::driver::result::{self, DriverError};
    use cudarc::driver::sys::{self, CUdevice_attribute};

    pub(super) fn report() -> BackendReport {
        // SAFETY: only tries to open the driver library; no driver function is called.
        if !unsafe { sys::is_culib_present() } {
            return BackendReport::unavailable(
                "cuda",
                "no CUDA driver library (libcuda.so.1) found: install the NVIDIA driver",
            );
        }
        match list() {
            Ok(devices) if devices.is_empty() => {
                BackendReport::unavailable("cuda", "the CUDA driver reports no device")
            }
            Ok(devices) => BackendReport::available("cuda", devices),
            Err(e) => BackendReport::unavailable("cuda", format!("CUDA driver: {}", describe(e))),
        }
    }

    fn list() -> Result<Vec<DeviceEntry>, DriverError> {
        result::init()?;
        (0..result::device::get_count()?)
            .map(|ordinal| -> Result<DeviceEntry, DriverError> {
                let device = result::device::get(ordinal)?;
                let name = result::device::get_name(device)?;
                // SAFETY: `device` was returned by `device::get`, as these calls require.
                let (bytes, major, minor) = unsafe {
                    (
                        result::device::total_mem(device)?,
                        result::device::get_attribute(
                            device,
                            CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                        )?,
                        result::device::get_attribute(
                            device,
                            CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                        )?,
                    )
                };
                let gib = bytes as f64 / (1u64 << 30) as f64;
                Ok(DeviceEntry::new(
                    format!("cuda:{ordinal}"),
                    name,
                    format!("{gib:.0} GiB, compute {major}.{minor}"),
                ))
            })
            .collect()
    }

    /// The driver's name and description of an error (`CUDA_ERROR_NO_DEVICE: no CUDA-capable
    /// device is detected`).
    fn describe(error: DriverError) -> String {
        match (error.error_name(), error.error_string()) {
            (Ok(name), Ok(text)) => {
                format!("{}: {}", name.to_string_lossy(), text.to_string_lossy())
            }
            _ => format!("{:?}", error.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report<'a>(reports: &'a [BackendReport], backend: &str) -> Option<&'a BackendReport> {
        reports.iter().find(|r| r.backend.as_str() == backend)
    }

    #[test]
    fn cpu_is_always_listed_with_its_threads() {
        let reports = devices();
        let cpu = report(&reports, "cpu").expect("cpu is always compiled in");
        assert_eq!(cpu.devices.len(), 1);
        assert_eq!(cpu.devices[0].id.as_str(), "cpu");
        assert_eq!(cpu.devices[0].name.as_str(), "flex");
        assert!(
            cpu.devices[0]
                .detail
                .starts_with(&cpu_threads().to_string())
        );
    }

    #[test]
    fn only_compiled_backends_are_listed() {
        let reports = devices();
        assert_eq!(report(&reports, "wgpu").is_some(), cfg!(feature = "wgpu"));
        assert_eq!(report(&reports, "cuda").is_some(), cfg!(feature = "cuda"));
        assert_eq!(
            report(&reports, "libtorch").is_some(),
            cfg!(feature = "libtorch")
        );
    }

    /// `libtorch:cpu` is always there; CUDA devices are numbered, or their absence explained.
    #[cfg(feature = "libtorch")]
    #[test]
    fn libtorch_lists_its_cpu_and_cuda_devices() {
        let reports = devices();
        let torch = report(&reports, "libtorch").unwrap();
        assert_eq!(torch.devices[0].id.as_str(), "libtorch:cpu");
        assert!(
            torch.devices[0]
                .detail
                .contains(crate::libtorch::TORCH_VERSION),
            "{torch:?}"
        );
        for (n, d) in torch.devices.iter().skip(1).enumerate() {
            assert_eq!(d.id.as_str(), format!("libtorch:cuda:{n}"));
        }
        assert_eq!(
            torch.devices.len() == 1,
            torch.problem.is_some(),
            "{torch:?}"
        );
        for d in torch.devices.iter() {
            assert!(crate::DeviceChoice::parse(d.id.as_str()).is_ok(), "{d:?}");
        }
    }

    #[cfg(feature = "wgpu")]
    #[test]
    fn wgpu_lists_devices_or_says_why_not() {
        let reports = devices();
        let wgpu = report(&reports, "wgpu").unwrap();
        assert_ne!(wgpu.devices.is_empty(), wgpu.problem.is_none(), "{wgpu:?}");
        for d in wgpu.devices.iter() {
            assert!(
                d.id.as_str() == "wgpu"
                    || d.id
                        .strip_prefix("wgpu:")
                        .is_some_and(|n| n.parse::<usize>().is_ok()),
                "{d:?}"
            );
            assert!(crate::DeviceChoice::parse(d.id.as_str()).is_ok(), "{d:?}");
        }
    }

    /// Without an NVIDIA driver (as on CI), the cuda backend is listed with a reason and no
    /// devices; with one, every device has an id `cuda:N` in order.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_lists_devices_or_says_why_not() {
        let reports = devices();
        let cuda = report(&reports, "cuda").unwrap();
        // SAFETY: only tries to open the driver library.
        if unsafe { cudarc::driver::sys::is_culib_present() } {
            for (n, d) in cuda.devices.iter().enumerate() {
                assert_eq!(d.id.as_str(), format!("cuda:{n}"));
            }
            assert_ne!(cuda.devices.is_empty(), cuda.problem.is_none(), "{cuda:?}");
        } else {
            assert!(cuda.devices.is_empty());
            assert_eq!(
                cuda.problem.as_ref().map(|p| p.as_str()).into_option(),
                Some("no CUDA driver library (libcuda.so.1) found: install the NVIDIA driver")
            );
        }
    }
}
