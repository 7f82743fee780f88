//! Models on burn tensors: the same model code on every burn device (wgpu, cuda, and burn's
//! flex CPU backend as the reference without a GPU), at f32, f16 or bf16.
//!
//! The host kernels of [`crate::transformer`] are the CPU engine (8-bit, bit-exact across
//! batching); this module is the device engine. An architecture file describes its model as a
//! [`DecoderSpec`] and hands its weight source to [`BurnDecoder::load`]; weights, activations and
//! the KV cache then live on the device, and logits come back to the host once per call (timed:
//! [`speccascade_core::Session::transfer_s`]).
//!
//! Layout: [`spec`] (the plain-data description), [`layers`] (components), [`cache`] (the device
//! KV cache), [`decoder`] ([`BurnDecoder`] and its sessions), [`t5`] (the encoder-decoder, on the
//! same components).

pub mod cache;
pub mod decoder;
pub mod layers;
pub mod spec;
pub mod t5;

pub use decoder::{BurnDecoder, BurnSession};
pub use t5::{BurnT5, BurnT5Session};
pub use spec::{DecoderSpec, LayerSpec};

use burn::tensor::{DType, Device, Tensor};
use speccascade_core::ModelError;

use crate::transformer::LoadError;

/// Where and at what precision a [`BurnDecoder`] runs.
#[derive(Clone, Debug)]
pub struct TensorEngine {
    pub device: Device,
    /// Weights and activations (norms and logits are computed in f32 whatever this is).
    pub dtype: DType,
    /// The device as the user named it (`wgpu`, `cuda:0`, `flex`), for errors and records.
    pub label: String,
}

/// The devices a model can run on, as `device:` / `--device` spell them.
pub const DEVICES: &str = "cpu, flex, wgpu, cuda or cuda:N";

/// Where a model runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The host kernels of [`crate::transformer`] (8-bit by default; bit-exact across batching).
    Cpu,
    /// burn's flex CPU backend through the device engine: the GPU code path, run on the CPU.
    Flex,
    /// burn's wgpu backend (Vulkan, Metal, DX12; Mesa's lavapipe without a GPU).
    Wgpu,
    /// burn's cuda backend, device N.
    Cuda(u32),
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "flex" => Ok(Self::Flex),
            "wgpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<u32>) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => Err(format!("unknown device {s:?}: expected {DEVICES}")),
            },
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Flex => f.write_str("flex"),
            Self::Wgpu => f.write_str("wgpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The weight dtypes of the device engine, as `precision:` spells them.
pub const DTYPES: &str = "f32, f16 or bf16";

/// Parse a device precision (`native` is the device's default: bf16 on cuda, f16 on wgpu, whose
/// WGSL shaders have no bf16, f32 on flex).
pub fn parse_dtype(precision: &str, device: &DeviceChoice) -> Result<DType, String> {
    match precision {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" if *device == DeviceChoice::Wgpu => {
            Err("bf16 on wgpu: burn's WGSL shaders have no bf16; use f16 or f32 (or a cuda device for bf16)".into())
        }
        "bf16" => Ok(DType::BF16),
        "native" => Ok(match device {
            DeviceChoice::Cuda(_) => DType::BF16,
            DeviceChoice::Wgpu => DType::F16,
            _ => DType::F32,
        }),
        other => Err(format!("precision {other:?} on device {device}: the device engine takes {DTYPES} (q8 and q4k are the CPU kernels')")),
    }
}

impl TensorEngine {
    /// The dtype as `precision:` spells it.
    pub fn dtype_name(&self) -> &'static str {
        match self.dtype {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            _ => "other",
        }
    }

    /// Copy f32 logits of `model` to the host, adding the copy's seconds (the device synchronised
    /// first, so that they time the copy and not the compute) to `transfer_s`.
    pub fn to_host(&self, model: &str, logits: Tensor<2>, transfer_s: &mut f64) -> Result<Vec<f32>, ModelError> {
        let err = |what: &str, e: &dyn std::fmt::Display| ModelError::Other(format!("{model} on {}: {what}: {e}", self.label));
        self.device.sync().map_err(|e| err("the device failed", &e))?;
        let t0 = std::time::Instant::now();
        let v = logits.try_into_vec_as::<f32>().map_err(|e| err("reading logits back", &e))?;
        *transfer_s += t0.elapsed().as_secs_f64();
        Ok(v)
    }

    /// Open `device` (not [`DeviceChoice::Cpu`]: the host kernels need no engine) at `dtype`.
    /// Errors say what the build or the machine lacks.
    pub fn open(device: &DeviceChoice, dtype: DType) -> Result<Self, LoadError> {
        let label = device.to_string();
        let fail = |reason: String| LoadError::Device { device: label.clone(), reason };
        let device = match device {
            DeviceChoice::Cpu => return Err(fail("the host kernels run without a tensor engine".into())),
            DeviceChoice::Flex => Device::flex(),
            DeviceChoice::Wgpu => open_wgpu().map_err(fail)?,
            DeviceChoice::Cuda(n) => open_cuda(*n).map_err(fail)?,
        };
        Ok(Self { device, dtype, label })
    }
}

#[cfg(feature = "wgpu")]
fn open_wgpu() -> Result<Device, String> {
    // One runtime per process: a second `init` fails, so the device is opened once and cloned.
    static WGPU: std::sync::OnceLock<Result<Device, String>> = std::sync::OnceLock::new();
    WGPU.get_or_init(|| {
        Device::wgpu_options().init().map_err(|e| {
            format!(
                "no wgpu adapter: {e}. Without a GPU, install Mesa's software Vulkan driver (Debian: apt-get install mesa-vulkan-drivers)"
            )
        })
    })
    .clone()
}

#[cfg(not(feature = "wgpu"))]
fn open_wgpu() -> Result<Device, String> {
    Err("this binary was built without the wgpu backend: rebuild with `cargo build --release --features wgpu`".into())
}

#[cfg(feature = "cuda")]
fn open_cuda(n: u32) -> Result<Device, String> {
    // cudarc loads libcuda and NVRTC when the first device is opened, and panics where they are
    // missing: catch that and say what to install.
    std::panic::catch_unwind(|| {
        let d = Device::cuda(n as usize);
        d.sync().map(|_| d)
    })
    .map_err(|_| format!("cannot open CUDA device {n}: the NVIDIA driver (libcuda.so) and NVRTC (libnvrtc.so) must be on the library path"))?
    .map_err(|e| format!("CUDA device {n}: {e}"))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(_n: u32) -> Result<Device, String> {
    Err("this binary was built without the cuda backend: rebuild with `cargo build --release --features cuda` (README, \"GPUs\")".into())
}
