//! A small GGUF v3 writer: metadata and tensors into one byte image. For fixtures and tests
//! (hostile files included: it writes whatever it is given, checked or not).
//!
//! ```
//! use speccascade_models::gguf::{GgmlType, GgufFile, GgufWriter, Value};
//! let mut w = GgufWriter::new();
//! w.kv("general.architecture", Value::String("llama".into()));
//! w.tensor_f32("t", &[4], &[1.0, 2.0, 3.0, 4.0]);
//! let f = GgufFile::from_bytes("t.gguf", w.to_bytes()).unwrap();
//! assert_eq!(f.dequantize("t").unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
//! ```

use super::types::GgmlType;
use super::value::{Array, Value, type_id};
use super::DEFAULT_ALIGNMENT;

/// Metadata and tensors, in insertion order.
#[derive(Default)]
pub struct GgufWriter {
    kvs: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<u64>, GgmlType, Vec<u8>)>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) metadata `key`.
    pub fn kv(&mut self, key: &str, value: Value) -> &mut Self {
        self.kvs.retain(|(k, _)| k != key);
        self.kvs.push((key.to_string(), value));
        self
    }

    /// Add a tensor: `dims` in ggml order (`dims[0]` contiguous), `data` its raw bytes.
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType, data: Vec<u8>) -> &mut Self {
        self.tensors.push((name.to_string(), dims.to_vec(), ty, data));
        self
    }

    /// Add an F32 tensor.
    pub fn tensor_f32(&mut self, name: &str, dims: &[u64], data: &[f32]) -> &mut Self {
        self.tensor(name, dims, GgmlType::F32, data.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        b.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            string(&mut b, k);
            b.extend_from_slice(&value_type(v).to_le_bytes());
            value(&mut b, v);
        }
        let mut offset = 0u64;
        let mut offsets = Vec::new();
        for (name, dims, ty, data) in &self.tensors {
            string(&mut b, name);
            b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                b.extend_from_slice(&d.to_le_bytes());
            }
            b.extend_from_slice(&ty.id().to_le_bytes());
            b.extend_from_slice(&offset.to_le_bytes());
            offsets.push(offset);
            offset = (offset + data.len() as u64).div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT;
        }
        let start = (b.len() as u64).div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT;
        b.resize(start as usize, 0);
        for ((_, _, _, data), off) in self.tensors.iter().zip(offsets) {
            b.resize((start + off) as usize, 0);
            b.extend_from_slice(data);
        }
        b
    }
}

fn string(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn value_type(v: &Value) -> u32 {
    match v {
        Value::U8(_) => type_id::U8,
        Value::I8(_) => type_id::I8,
        Value::U16(_) => type_id::U16,
        Value::I16(_) => type_id::I16,
        Value::U32(_) => type_id::U32,
        Value::I32(_) => type_id::I32,
        Value::F32(_) => type_id::F32,
        Value::Bool(_) => type_id::BOOL,
        Value::String(_) => type_id::STRING,
        Value::Array(_) => type_id::ARRAY,
        Value::U64(_) => type_id::U64,
        Value::I64(_) => type_id::I64,
        Value::F64(_) => type_id::F64,
    }
}

fn elem_type(a: &Array) -> u32 {
    match a {
        Array::U8(_) => type_id::U8,
        Array::I8(_) => type_id::I8,
        Array::U16(_) => type_id::U16,
        Array::I16(_) => type_id::I16,
        Array::U32(_) => type_id::U32,
        Array::I32(_) => type_id::I32,
        Array::F32(_) => type_id::F32,
        Array::Bool(_) => type_id::BOOL,
        Array::String(_) => type_id::STRING,
        Array::Array(_) => type_id::ARRAY,
        Array::U64(_) => type_id::U64,
        Array::I64(_) => type_id::I64,
        Array::F64(_) => type_id::F64,
    }
}

fn value(b: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => b.push(*x),
        Value::I8(x) => b.push(*x as u8),
        Value::U16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => b.push(*x as u8),
        Value::String(s) => string(b, s),
        Value::U64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::Array(a) => array(b, a),
    }
}

fn array(b: &mut Vec<u8>, a: &Array) {
    b.extend_from_slice(&elem_type(a).to_le_bytes());
    b.extend_from_slice(&(a.len() as u64).to_le_bytes());
    match a {
        Array::U8(v) => b.extend_from_slice(v),
        Array::String(s) => s.iter().for_each(|x| string(b, x)),
        Array::Array(n) => n.iter().for_each(|x| array(b, x)),
        _ => a.values().for_each(|x| value(b, &x)),
    }
}

impl GgufWriter {
    /// A tiny valid llama (1 layer, d_model 32, 4 heads of 8, ffn 64, the 256 byte-level tokens
    /// of GPT-2's BPE with no merges), F32 weights from a fixed LCG: the base that hostile-input
    /// tests mutate one field or tensor at a time.
    pub fn tiny_llama() -> GgufWriter {
        let (d, f, v) = (32u64, 64u64, 256u64);
        let mut w = GgufWriter::new();
        let u32v = |x: u32| Value::U32(x);
        w.kv("general.architecture", Value::String("llama".into()))
            .kv("llama.block_count", u32v(1))
            .kv("llama.embedding_length", u32v(d as u32))
            .kv("llama.feed_forward_length", u32v(f as u32))
            .kv("llama.attention.head_count", u32v(4))
            .kv("llama.attention.head_count_kv", u32v(4))
            .kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
            .kv("llama.context_length", u32v(256))
            .kv("llama.rope.freq_base", Value::F32(10_000.0))
            .kv("tokenizer.ggml.model", Value::String("gpt2".into()))
            .kv("tokenizer.ggml.pre", Value::String("gpt-2".into()))
            .kv("tokenizer.ggml.tokens", Value::Array(Array::String(super::StrArray::from_strs(byte_level_alphabet().iter().map(String::as_str)))))
            .kv("tokenizer.ggml.merges", Value::Array(Array::String(super::StrArray::default())))
            .kv("tokenizer.ggml.eos_token_id", u32v(0));
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut values = |n: u64| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
                })
                .collect()
        };
        w.tensor_f32("token_embd.weight", &[d, v], &values(d * v));
        w.tensor_f32("output_norm.weight", &[d], &vec![1.0; d as usize]);
        for (name, dims) in [
            ("attn_norm.weight", vec![d]),
            ("ffn_norm.weight", vec![d]),
            ("attn_q.weight", vec![d, d]),
            ("attn_k.weight", vec![d, d]),
            ("attn_v.weight", vec![d, d]),
            ("attn_output.weight", vec![d, d]),
            ("ffn_gate.weight", vec![d, f]),
            ("ffn_up.weight", vec![d, f]),
            ("ffn_down.weight", vec![f, d]),
        ] {
            let n = dims.iter().product();
            let data = if dims.len() == 1 { vec![1.0; n as usize] } else { values(n) };
            w.tensor_f32(&format!("blk.0.{name}"), &dims, &data);
        }
        w
    }

    /// Replace tensor `name`'s data and type (keeping its dims), e.g. to plant a NaN.
    pub fn replace_tensor(&mut self, name: &str, ty: GgmlType, data: Vec<u8>) -> &mut Self {
        if let Some(t) = self.tensors.iter_mut().find(|t| t.0 == name) {
            t.2 = ty;
            t.3 = data;
        }
        self
    }

    /// The raw bytes of tensor `name`, if present.
    pub fn tensor_bytes(&self, name: &str) -> Option<&[u8]> {
        self.tensors.iter().find(|t| t.0 == name).map(|t| t.3.as_slice())
    }
}

/// GPT-2's byte-to-character map (`bytes_to_unicode`): the 256 single-byte tokens.
fn byte_level_alphabet() -> Vec<String> {
    let mut n = 0;
    (0u32..256)
        .map(|b| {
            let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
            let c = if printable {
                b
            } else {
                n += 1;
                255 + n
            };
            char::from_u32(c).expect("valid char").to_string()
        })
        .collect()
}
