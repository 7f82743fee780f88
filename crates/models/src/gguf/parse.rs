//! Parsing of the GGUF header, metadata and tensor infos, with bounds checks on every read.

use super::error::{GgufError, Result};
use super::types::GgmlType;
use super::value::{type_id, Array, StrArray, Value};
use super::{TensorInfo, DEFAULT_ALIGNMENT};
use std::collections::BTreeMap;
use std::path::Path;

pub(super) struct Parsed {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_offset: u64,
}

/// Arrays nested deeper than this are rejected (guards the recursion against crafted files).
const MAX_ARRAY_DEPTH: usize = 8;
/// Tensors with more dimensions than this are rejected (ggml has `GGML_MAX_DIMS = 4`).
const MAX_DIMS: u32 = 8;

/// A cursor over the file bytes; every read checks the remaining length.
struct Reader<'a> {
    path: &'a Path,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn truncated(&self, what: &str, needed: u64) -> GgufError {
        GgufError::Truncated {
            path: self.path.to_path_buf(),
            what: what.to_string(),
            offset: self.pos as u64,
            needed,
            len: self.buf.len() as u64,
        }
    }

    fn invalid(&self, what: &str, offset: usize, reason: String) -> GgufError {
        GgufError::Invalid { path: self.path.to_path_buf(), what: what.to_string(), offset: offset as u64, reason }
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let remaining = (self.buf.len() - self.pos) as u64;
        if n > remaining {
            return Err(self.truncated(what, n));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self.bytes(N as u64, what)?.try_into().expect("length checked"))
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let start = self.pos;
        let len = self.u64(what)?;
        let b = self.bytes(len, what)?;
        String::from_utf8(b.to_vec()).map_err(|e| self.invalid(what, start, format!("string is not valid UTF-8: {e}")))
    }

    fn value(&mut self, ty: u32, what: &str, depth: usize) -> Result<Value> {
        let at = self.pos;
        Ok(match ty {
            type_id::U8 => Value::U8(self.u8(what)?),
            type_id::I8 => Value::I8(self.u8(what)? as i8),
            type_id::U16 => Value::U16(self.u16(what)?),
            type_id::I16 => Value::I16(self.u16(what)? as i16),
            type_id::U32 => Value::U32(self.u32(what)?),
            type_id::I32 => Value::I32(self.u32(what)? as i32),
            type_id::F32 => Value::F32(f32::from_bits(self.u32(what)?)),
            type_id::BOOL => match self.u8(what)? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.invalid(what, at, format!("bool byte is {b}, expected 0 or 1"))),
            },
            type_id::STRING => Value::String(self.string(what)?),
            type_id::U64 => Value::U64(self.u64(what)?),
            type_id::I64 => Value::I64(self.u64(what)? as i64),
            type_id::F64 => Value::F64(f64::from_bits(self.u64(what)?)),
            type_id::ARRAY => Value::Array(self.array_value(what, depth)?),
            other => return Err(self.invalid(what, at, format!("unknown metadata value type {other} (expected 0..=12)"))),
        })
    }
}

impl<'a> Reader<'a> {
    /// An array (element type, count, elements), packed by type. The count is checked against
    /// the bytes left before anything is reserved: each element needs at least its fixed size
    /// (1 byte for u8/bool, 8 for a string's length prefix, 12 for a nested array's header).
    fn array_value(&mut self, what: &str, depth: usize) -> Result<Array> {
        let at = self.pos;
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.invalid(what, at, format!("arrays nested deeper than {MAX_ARRAY_DEPTH}")));
        }
        let elem_ty = self.u32(what)?;
        let n = self.u64(what)?;
        let min_size: u64 = match elem_ty {
            type_id::U8 | type_id::I8 | type_id::BOOL => 1,
            type_id::U16 | type_id::I16 => 2,
            type_id::U32 | type_id::I32 | type_id::F32 => 4,
            type_id::U64 | type_id::I64 | type_id::F64 | type_id::STRING => 8,
            type_id::ARRAY => 12,
            other => return Err(self.invalid(what, at, format!("unknown array element type {other} (expected 0..=12)"))),
        };
        let remaining = (self.buf.len() - self.pos) as u64;
        if n.checked_mul(min_size).is_none_or(|need| need > remaining) {
            return Err(self.truncated(&format!("{what} ({n} array elements of at least {min_size} bytes)"), n.saturating_mul(min_size)));
        }
        let n = n as usize;
        macro_rules! fixed {
            ($variant:ident, $read:ident, $conv:expr) => {{
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push($conv(self.$read(what)?));
                }
                Array::$variant(v)
            }};
        }
        Ok(match elem_ty {
            type_id::U8 => Array::U8(self.bytes(n as u64, what)?.to_vec()),
            type_id::I8 => Array::I8(self.bytes(n as u64, what)?.iter().map(|&b| b as i8).collect()),
            type_id::BOOL => {
                let b = self.bytes(n as u64, what)?;
                if let Some(i) = b.iter().position(|&x| x > 1) {
                    return Err(self.invalid(what, self.pos - n + i, format!("bool byte is {}, expected 0 or 1", b[i])));
                }
                Array::Bool(b.iter().map(|&x| x == 1).collect())
            }
            type_id::U16 => fixed!(U16, u16, |x| x),
            type_id::I16 => fixed!(I16, u16, |x: u16| x as i16),
            type_id::U32 => fixed!(U32, u32, |x| x),
            type_id::I32 => fixed!(I32, u32, |x: u32| x as i32),
            type_id::F32 => fixed!(F32, u32, f32::from_bits),
            type_id::U64 => fixed!(U64, u64, |x| x),
            type_id::I64 => fixed!(I64, u64, |x: u64| x as i64),
            type_id::F64 => fixed!(F64, u64, f64::from_bits),
            type_id::STRING => {
                let mut strs = StrArray { text: String::new(), ends: Vec::with_capacity(n) };
                for _ in 0..n {
                    let start = self.pos;
                    let len = self.u64(what)?;
                    let b = self.bytes(len, what)?;
                    let s = std::str::from_utf8(b).map_err(|e| self.invalid(what, start, format!("string is not valid UTF-8: {e}")))?;
                    strs.push(s);
                }
                Array::String(strs)
            }
            _ => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    // Each element is an array of its own: element type, count, elements.
                    v.push(self.array_value(what, depth + 1)?);
                }
                Array::Array(v)
            }
        })
    }
}

pub(super) fn parse(path: &Path, buf: &[u8]) -> Result<Parsed> {
    let mut r = Reader { path, buf, pos: 0 };
    let magic = r.array::<4>("magic")?;
    if &magic != b"GGUF" {
        return Err(GgufError::BadMagic { path: path.to_path_buf(), found: magic });
    }
    let version = r.u32("version")?;
    if version != 2 && version != 3 {
        return Err(GgufError::BadVersion { path: path.to_path_buf(), version });
    }
    let n_tensors = r.u64("tensor count")?;
    let n_kv = r.u64("metadata count")?;
    // Each metadata entry takes at least 12 bytes (key length, value type) plus a 1-byte value,
    // each tensor info at least 32 (name length, dimension count, one dimension, type, offset).
    let left = (buf.len() - r.pos) as u64;
    for (what, n, min) in [("metadata count", n_kv, 13u64), ("tensor count", n_tensors, 32)] {
        if n.checked_mul(min).is_none_or(|need| need > left) {
            return Err(r.truncated(&format!("{what} ({n} entries of at least {min} bytes)"), n.saturating_mul(min)));
        }
    }

    let mut metadata = BTreeMap::new();
    for i in 0..n_kv {
        let key = r.string(&format!("key of metadata entry {i}"))?;
        let ty = r.u32(&format!("type of metadata '{key}'"))?;
        let value = r.value(ty, &format!("value of metadata '{key}'"), 0)?;
        metadata.insert(key, value);
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() => a,
            _ => {
                return Err(GgufError::Invalid {
                    path: path.to_path_buf(),
                    what: "metadata 'general.alignment'".into(),
                    offset: 0,
                    reason: format!("{v} is not a positive power of two"),
                });
            }
        },
    };

    let mut tensors = Vec::new();
    for i in 0..n_tensors {
        let at = r.pos;
        let name = r.string(&format!("name of tensor {i}"))?;
        let what = format!("tensor info '{name}'");
        let n_dims = r.u32(&what)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(r.invalid(&what, at, format!("{n_dims} dimensions (expected 1..={MAX_DIMS})")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64(&what)?);
        }
        let type_id = r.u32(&what)?;
        let offset = r.u64(&what)?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnsupportedType {
            path: path.to_path_buf(),
            tensor: name.clone(),
            type_id,
            type_name: "unknown".into(),
            supported: super::supported_types(),
        })?;
        tensors.push((at, TensorInfo { name, dims, ggml_type, offset }));
    }

    let data_offset = align_up(r.pos as u64, alignment);
    let file_len = buf.len() as u64;
    let mut seen = std::collections::HashSet::new();
    for (at, t) in &tensors {
        let what = format!("tensor info '{}'", t.name);
        if !seen.insert(t.name.as_str()) {
            return Err(r.invalid(&what, *at, "duplicate tensor name".into()));
        }
        let n = t.dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let be = t.ggml_type.block_elems();
        let n = n.ok_or_else(|| r.invalid(&what, *at, format!("dims {:?} overflow", t.dims)))?;
        if t.dims[0] % be as u64 != 0 {
            return Err(r.invalid(
                &what,
                *at,
                format!("row length {} is not a multiple of the {} block size {be}", t.dims[0], t.ggml_type),
            ));
        }
        let size = t
            .ggml_type
            .bytes_for(n)
            .ok_or_else(|| r.invalid(&what, *at, format!("size of {n} {} elements overflows", t.ggml_type)))?;
        if t.offset % alignment != 0 {
            return Err(r.invalid(&what, *at, format!("data offset {} is not a multiple of the alignment {alignment}", t.offset)));
        }
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(size));
        match (start, end) {
            (Some(_), Some(end)) if end <= file_len => {}
            _ => {
                return Err(GgufError::OutOfBounds {
                    path: path.to_path_buf(),
                    tensor: t.name.clone(),
                    start: start.unwrap_or(u64::MAX),
                    end: end.unwrap_or(u64::MAX),
                    len: file_len,
                });
            }
        }
    }
    let tensors = tensors.into_iter().map(|(_, t)| t).collect();
    Ok(Parsed { version, metadata, tensors, alignment, data_offset })
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}
