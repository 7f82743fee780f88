//! Linear layers in f32 (burn matmul), f16 (the [`F16Matrix`] kernel) or 8-bit blocks (the
//! [`Q8Matrix`] kernel).

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};

use super::f16::F16Matrix;
use super::q8::Q8Matrix;

/// Storage precision of the linear layers' weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 weights, burn matmul: the reference path.
    F32,
    /// Q8_0 weights and activations, custom kernel: about 3.8× fewer bytes per token than f32.
    Q8,
    /// f16 weights, f32 activations, custom kernel: half the bytes of f32, closer to f32 than
    /// 8-bit, and blocks of several tokens cost fewer steps than with 8-bit (see [`super::f16`]).
    F16,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Q8 => "q8",
            Precision::F16 => "f16",
        })
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "q8" | "q8_0" | "int8" => Ok(Precision::Q8),
            "f16" => Ok(Precision::F16),
            other => Err(format!("unknown precision '{other}': expected q8, f16 or f32")),
        }
    }
}

enum Weight {
    /// `[in, out]`
    F32(Tensor<2>),
    /// `[out, in]`
    Q8(Arc<Q8Matrix>),
    /// `[out, in]`
    F16(Arc<F16Matrix>),
}

/// `y = x Wᵀ + b` for `x: [k, in]`.
pub(crate) struct Linear {
    weight: Weight,
    bias: Option<Tensor<1>>,
    d_in: usize,
    d_out: usize,
}

impl Linear {
    /// Build from a row-major `[out, in]` f32 matrix (PyTorch layout).
    pub fn from_rows(
        d_out: usize,
        d_in: usize,
        rows: Vec<f32>,
        bias: Option<Vec<f32>>,
        precision: Precision,
        device: &Device,
    ) -> Result<Self, String> {
        let weight = match precision {
            Precision::F32 => {
                let w: Tensor<2> = Tensor::from_data(TensorData::new(rows, [d_out, d_in]), device);
                // Materialise [in, out] once so every forward is a plain row-major matmul.
                let t = w.transpose();
                let t: Tensor<2> = Tensor::from_data(t.into_data(), device);
                Weight::F32(t)
            }
            Precision::Q8 => Weight::Q8(Arc::new(Q8Matrix::from_f32(d_out, d_in, &rows)?)),
            Precision::F16 => Weight::F16(Arc::new(F16Matrix::from_f32(d_out, d_in, &rows)?)),
        };
        Ok(Self::with_weight(weight, d_in, d_out, bias, device))
    }

    /// Build from a ready 8-bit matrix (`[out, in]`).
    pub fn from_q8(m: Arc<Q8Matrix>, bias: Option<Vec<f32>>, device: &Device) -> Self {
        let (d_out, d_in) = (m.rows(), m.cols());
        Self::with_weight(Weight::Q8(m), d_in, d_out, bias, device)
    }

    /// Build from a ready f16 matrix (`[out, in]`).
    pub fn from_f16(m: Arc<F16Matrix>, bias: Option<Vec<f32>>, device: &Device) -> Self {
        let (d_out, d_in) = (m.rows(), m.cols());
        Self::with_weight(Weight::F16(m), d_in, d_out, bias, device)
    }

    fn with_weight(weight: Weight, d_in: usize, d_out: usize, bias: Option<Vec<f32>>, device: &Device) -> Self {
        let bias = bias.map(|b| Tensor::from_data(TensorData::new(b, [d_out]), device));
        Self { weight, bias, d_in, d_out }
    }

    /// Bytes of weight one forward reads.
    pub fn weight_bytes(&self) -> usize {
        match &self.weight {
            Weight::F32(_) => self.d_in * self.d_out * 4,
            Weight::Q8(m) => m.byte_len(),
            Weight::F16(m) => m.byte_len(),
        }
    }

    /// `[k, in] -> [k, out]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let y = match &self.weight {
            Weight::F32(w) => x.matmul(w.clone()),
            Weight::Q8(m) => self.host_matmul(x, |xs, k, out| m.matmul(xs, k, out)),
            Weight::F16(m) => self.host_matmul(x, |xs, k, out| m.matmul(xs, k, out)),
        };
        match &self.bias {
            Some(b) => y + b.clone().unsqueeze_dim::<2>(0),
            None => y,
        }
    }

    /// Run one of the host kernels (`x: [k, in]` row-major in, `[k, out]` out) on a burn tensor.
    fn host_matmul(&self, x: Tensor<2>, kernel: impl Fn(&[f32], usize, &mut [f32])) -> Tensor<2> {
        let device = x.device();
        let [k, _] = x.dims();
        let xs = to_vec(x);
        let mut out = vec![0f32; k * self.d_out];
        kernel(&xs, k, &mut out);
        Tensor::from_data(TensorData::new(out, [k, self.d_out]), &device)
    }
}

/// Read a float tensor back to the host.
pub(crate) fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("float tensor holds f32 values")
}
