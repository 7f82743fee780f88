//! GGUF v3 (and v2) reader: header, metadata, tensor infos and memory-mapped tensor data, with
//! dequantization of ggml's quantized block formats to f32.
//!
//! ```no_run
//! use speccascade_models::gguf::GgufFile;
//! let file = GgufFile::open("model.gguf")?;
//! let arch = file.architecture()?;                         // "qwen2", "llama", …
//! let n_layer = file.get_u32(&format!("{arch}.block_count"))?;
//! for t in file.tensors() {
//!     // dims are in ggml order: dims[0] is the contiguous (row) length, so a
//!     // `[d_model, vocab]` token embedding has `vocab` rows of `d_model` values.
//!     println!("{} {:?} {}", t.name, t.dims, t.ggml_type);
//! }
//! let emb: Vec<f32> = file.dequantize("token_embd.weight")?;   // row-major, n_elements() values
//! let raw: &[u8] = file.tensor_data("blk.0.attn_q.weight")?;   // quantized blocks, as on disk
//! let tok_42: Vec<f32> = file.dequantize_rows("token_embd.weight", 42, 1)?; // one row only
//! # Ok::<(), speccascade_models::gguf::GgufError>(())
//! ```
//!
//! The file is memory-mapped (never read into RAM as a whole); [`GgufFile::tensor_data`] borrows
//! from the map and [`GgufFile::dequantize`] allocates only its f32 output, decoded in parallel
//! (rayon). Rows of quantized matrices can be decoded on the fly with [`dequantize_into`] over a
//! slice of [`GgufFile::tensor_data`] (a row of `dims[0]` elements is
//! `dims[0] / block_elems * block_bytes` bytes).
//!
//! Every malformed input — wrong magic, unsupported version, truncation anywhere, offsets past the
//! end, unknown tensor types — is a [`GgufError`] naming the file and the field, never a panic.

mod dequant;
pub(crate) use dequant::scale_min_k4;
mod error;
mod parse;
mod types;
mod value;
mod write;

pub use error::{GgufError, Result};
pub use types::{GgmlType, QK_K};
pub use value::{Array, StrArray, Value};
pub use write::GgufWriter;

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// The default alignment of the tensor data section (and of every tensor in it).
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// One tensor's header entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Shape in ggml order: `dims[0]` is the contiguous (fastest-varying, row) length. The
    /// PyTorch/numpy shape is `dims` reversed.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Byte offset of the data relative to [`GgufFile::data_offset`].
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements (product of `dims`).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
    /// Bytes of data on disk.
    pub fn n_bytes(&self) -> u64 {
        // Checked when the file was opened.
        self.ggml_type.bytes_for(self.n_elements()).unwrap_or(0)
    }
    /// The shape in row-major (numpy/PyTorch) order: `dims` reversed, as `usize`.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// The bytes of a GGUF file: memory-mapped from disk, or owned (tests, in-memory files).
enum Backing {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// An open GGUF file: parsed header and metadata, tensor infos, and the mapped data.
pub struct GgufFile {
    path: PathBuf,
    bytes: Backing,
    version: u32,
    metadata: BTreeMap<String, Value>,
    tensors: Vec<TensorInfo>,
    index: BTreeMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

impl GgufFile {
    /// Memory-map and parse the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref().to_path_buf();
        let io = |source| GgufError::Io { path: path.clone(), source };
        let file = std::fs::File::open(&path).map_err(io)?;
        // SAFETY: the map is read-only; GGUF files are not modified while a model is loaded
        // (fetch writes a temporary file and renames it into place).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::from_backing(path, Backing::Mmap(map))
    }

    /// Parse a GGUF image held in memory; `name` is used in error messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<GgufFile> {
        Self::from_backing(name.into(), Backing::Owned(bytes))
    }

    fn from_backing(path: PathBuf, bytes: Backing) -> Result<GgufFile> {
        let parsed = parse::parse(&path, &bytes)?;
        let index = parsed.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(GgufFile {
            path,
            bytes,
            version: parsed.version,
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            index,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
        })
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// All metadata key/value pairs, sorted by key.
    pub fn metadata(&self) -> &BTreeMap<String, Value> {
        &self.metadata
    }
    /// The tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    /// The tensor named `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }
    /// Alignment of the data section (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// Absolute byte offset at which tensor data starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// `general.architecture` ("llama", "qwen2", …).
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    fn need(&self, key: &str) -> Result<&Value> {
        self.metadata.get(key).ok_or_else(|| GgufError::MissingKey { path: self.path.clone(), key: key.into() })
    }

    fn wrong(&self, key: &str, expected: &'static str, v: &Value) -> GgufError {
        GgufError::WrongType { path: self.path.clone(), key: key.into(), expected, found: v.type_name() }
    }

    /// An integer value that fits in `u32` (any integer type is accepted).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.need(key)?;
        v.as_u64().and_then(|x| u32::try_from(x).ok()).ok_or_else(|| self.wrong(key, "unsigned 32-bit integer", v))
    }

    /// An integer value that fits in `u64`.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.need(key)?;
        v.as_u64().ok_or_else(|| self.wrong(key, "unsigned integer", v))
    }

    /// A float value (float32 or float64; integers are accepted too).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.need(key)?;
        v.as_f64().map(|x| x as f32).ok_or_else(|| self.wrong(key, "float", v))
    }

    /// A bool value.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        let v = self.need(key)?;
        v.as_bool().ok_or_else(|| self.wrong(key, "bool", v))
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.need(key)?;
        v.as_str().ok_or_else(|| self.wrong(key, "string", v))
    }

    /// An array of strings (e.g. `tokenizer.ggml.tokens`).
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        let v = self.need(key)?;
        let a = v.as_array().and_then(Array::as_strs).ok_or_else(|| self.wrong(key, "array of strings", v))?;
        Ok(a.iter().collect())
    }

    /// An array of integers (e.g. `tokenizer.ggml.token_type`).
    pub fn get_i64_array(&self, key: &str) -> Result<Vec<i64>> {
        let v = self.need(key)?;
        v.as_array().and_then(Array::to_i64s).ok_or_else(|| self.wrong(key, "array of integers", v))
    }

    /// An array of numbers as f32 (e.g. `tokenizer.ggml.scores`).
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        let v = self.need(key)?;
        let a = v.as_array().and_then(Array::to_f64s).ok_or_else(|| self.wrong(key, "array of floats", v))?;
        Ok(a.into_iter().map(|f| f as f32).collect())
    }

    /// An integer value used as an index or count that must lie in `0..=max` (token ids against
    /// the vocabulary, sizes against an architecture limit). Out of range is an error naming the
    /// key, the value and the limit — never a truncation.
    pub fn get_bounded(&self, key: &str, max: u64, limit: &str) -> Result<u64> {
        let v = self.need(key)?;
        let x = v.as_u64().ok_or_else(|| self.wrong(key, "unsigned integer", v))?;
        if x > max {
            return Err(GgufError::Invalid {
                path: self.path.clone(),
                what: format!("metadata '{key}'"),
                offset: 0,
                reason: format!("{x} is out of range: at most {max} ({limit})"),
            });
        }
        Ok(x)
    }

    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name).ok_or_else(|| GgufError::NoSuchTensor { path: self.path.clone(), name: name.into() })
    }

    /// The raw on-disk bytes of tensor `name` (quantized blocks for quantized types), borrowed
    /// from the memory map. Bounds were checked when the file was opened.
    pub fn tensor_data(&self, name: &str) -> Result<&[u8]> {
        let t = self.info(name)?;
        let start = self.data_offset + t.offset;
        let end = start + t.n_bytes();
        Ok(&self.bytes[start as usize..end as usize])
    }

    /// Tensor `name` decoded to f32, row-major (`dims[0]` fastest), `n_elements()` values.
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.info(name)?;
        let data = self.tensor_data(name)?;
        let mut out = vec![0f32; t.n_elements() as usize];
        dequantize_into(t.ggml_type, data, &mut out).map_err(|e| e.for_tensor(&self.path, &t.name))?;
        Ok(out)
    }
}

impl GgufFile {
    /// Rows `start..start + n` of tensor `name` decoded to f32 (a row is `dims[0]` contiguous
    /// values; for a token embedding, row `i` is token `i`'s vector). Decodes only those rows, so
    /// an embedding table can stay quantized and be looked up on demand.
    pub fn dequantize_rows(&self, name: &str, start: usize, n: usize) -> Result<Vec<f32>> {
        let t = self.info(name)?;
        let row_len = t.dims[0] as usize;
        let n_rows = (t.n_elements() / t.dims[0].max(1)) as usize;
        if start.checked_add(n).is_none_or(|end| end > n_rows) {
            return Err(GgufError::Invalid {
                path: self.path.clone(),
                what: format!("rows of tensor '{name}'"),
                offset: 0,
                reason: format!("rows {start}..{} requested, tensor has {n_rows}", start.saturating_add(n)),
            });
        }
        let row_bytes = (row_len / t.ggml_type.block_elems()) * t.ggml_type.block_bytes();
        let data = &self.tensor_data(name)?[start * row_bytes..(start + n) * row_bytes];
        let mut out = vec![0f32; n * row_len];
        dequantize_into(t.ggml_type, data, &mut out).map_err(|e| e.for_tensor(&self.path, &t.name))?;
        Ok(out)
    }
}

/// Why a byte slice could not be dequantized (see [`dequantize_into`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DequantError {
    #[error("ggml type {0} cannot be dequantized by this reader")]
    Unsupported(GgmlType),
    #[error("{ty}: {bytes} bytes do not hold {elems} elements ({block_elems} per {block_bytes}-byte block)")]
    Length { ty: GgmlType, bytes: usize, elems: usize, block_elems: usize, block_bytes: usize },
}

impl DequantError {
    fn for_tensor(self, path: &Path, tensor: &str) -> GgufError {
        match self {
            DequantError::Unsupported(ty) => GgufError::UnsupportedType {
                path: path.into(),
                tensor: tensor.into(),
                type_id: ty.id(),
                type_name: ty.name().into(),
                supported: supported_types(),
            },
            e => GgufError::Invalid { path: path.into(), what: format!("tensor '{tensor}'"), offset: 0, reason: e.to_string() },
        }
    }
}

/// Comma-separated names of the types [`dequantize_into`] decodes.
pub fn supported_types() -> String {
    GgmlType::ALL.iter().filter(|t| t.can_dequantize()).map(|t| t.name()).collect::<Vec<_>>().join(", ")
}

/// Decode `data` — whole blocks of `ty`, as stored in GGUF — into `out` (one f32 per element).
/// `out.len()` must be a multiple of the block size and `data.len()` exactly the matching byte
/// count. Runs in parallel over blocks.
pub fn dequantize_into(ty: GgmlType, data: &[u8], out: &mut [f32]) -> std::result::Result<(), DequantError> {
    let kernel = dequant::kernel(ty).ok_or(DequantError::Unsupported(ty))?;
    let (be, bb) = ty.block_layout();
    if !out.len().is_multiple_of(be) || data.len() != out.len() / be * bb {
        return Err(DequantError::Length { ty, bytes: data.len(), elems: out.len(), block_elems: be, block_bytes: bb });
    }
    dequant::run(kernel, ty, data, out);
    Ok(())
}
