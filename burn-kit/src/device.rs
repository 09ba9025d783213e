//! A recipe's `device` string: [`DeviceChoice::parse`] turns it into a backend and an ordinal,
//! and [`available_devices`] says, in words, which ones this build of the kit offers.

use clshost_plugin_api::PluginError;

/// A compute device parsed from a recipe's `device` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// `cpu`: Burn's flex backend, on all cores through rayon.
    Cpu,
    /// `wgpu` (the default adapter) or `wgpu:N` (the N-th discrete GPU).
    Wgpu(Option<usize>),
    /// `cuda` or `cuda:N`.
    Cuda(usize),
    /// `libtorch:cpu`, `libtorch:cuda` or `libtorch:cuda:N`: PyTorch's ATen kernels.
    LibTorch(TorchDevice),
}

/// Where the LibTorch backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchDevice {
    /// `libtorch:cpu`.
    Cpu,
    /// `libtorch:cuda` (ordinal 0) or `libtorch:cuda:N`.
    Cuda(usize),
}

/// The devices this build can run on, in words.
pub fn available_devices() -> String {
    let mut devices = vec!["cpu"];
    if cfg!(feature = "wgpu") {
        devices.extend(["wgpu", "wgpu:N"]);
    }
    if cfg!(feature = "cuda") {
        devices.extend(["cuda", "cuda:N"]);
    }
    if cfg!(feature = "libtorch") {
        devices.extend(["libtorch:cpu", "libtorch:cuda", "libtorch:cuda:N"]);
    }
    devices.join(", ")
}

impl DeviceChoice {
    /// Parses `cpu`, `wgpu`, `wgpu:N`, `cuda`, `cuda:N`, `libtorch:cpu`, `libtorch:cuda` or
    /// `libtorch:cuda:N`, whether or not this build has the backend.
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        let bad = || {
            PluginError::config(
                "device",
                format!(
                    "unknown device `{text}`; this build offers {}",
                    available_devices()
                ),
            )
        };
        let ordinal = |n: Option<&str>| -> Result<Option<usize>, PluginError> {
            n.map(|n| n.parse::<usize>().map_err(|_| bad())).transpose()
        };
        let mut parts = text.splitn(3, ':');
        let (kind, rest) = (parts.next().unwrap_or(""), parts.next());
        let tail = parts.next();
        match (kind, rest, tail) {
            ("cpu", None, _) => Ok(DeviceChoice::Cpu),
            ("wgpu", n, None) => Ok(DeviceChoice::Wgpu(ordinal(n)?)),
            ("cuda", n, None) => Ok(DeviceChoice::Cuda(ordinal(n)?.unwrap_or(0))),
            ("libtorch", Some("cpu"), None) => Ok(DeviceChoice::LibTorch(TorchDevice::Cpu)),
            ("libtorch", Some("cuda"), n) => Ok(DeviceChoice::LibTorch(TorchDevice::Cuda(
                ordinal(n)?.unwrap_or(0),
            ))),
            _ => Err(bad()),
        }
    }
}

/// The number of threads Burn's flex backend runs on.
pub fn cpu_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_unknown_ones_name_the_choices() {
        assert_eq!(DeviceChoice::parse("cpu").unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            DeviceChoice::parse("wgpu").unwrap(),
            DeviceChoice::Wgpu(None)
        );
        assert_eq!(
            DeviceChoice::parse("wgpu:1").unwrap(),
            DeviceChoice::Wgpu(Some(1))
        );
        assert_eq!(DeviceChoice::parse("cuda").unwrap(), DeviceChoice::Cuda(0));
        assert_eq!(
            DeviceChoice::parse("cuda:2").unwrap(),
            DeviceChoice::Cuda(2)
        );
        assert_eq!(
            DeviceChoice::parse("libtorch:cpu").unwrap(),
            DeviceChoice::LibTorch(TorchDevice::Cpu)
        );
        assert_eq!(
            DeviceChoice::parse("libtorch:cuda").unwrap(),
            DeviceChoice::LibTorch(TorchDevice::Cuda(0))
        );
        assert_eq!(
            DeviceChoice::parse("libtorch:cuda:3").unwrap(),
            DeviceChoice::LibTorch(TorchDevice::Cuda(3))
        );
        for bad in [
            "tpu",
            "cpu:1",
            "cuda:x",
            "cuda:1:2",
            "wgpu:0:1",
            "libtorch",
            "libtorch:gpu",
            "libtorch:cpu:0",
            "libtorch:cuda:x",
            "",
        ] {
            let err = DeviceChoice::parse(bad).unwrap_err();
            assert_eq!(err.field_path.as_str(), "device");
            assert!(err.message.contains(&available_devices()), "{err}");
        }
    }
}
