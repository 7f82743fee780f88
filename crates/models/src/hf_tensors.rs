//! The tensors of a Hugging Face directory under their own names (`model.safetensors`, or the shards
//! a `model.safetensors.index.json` names), read straight from memory-mapped files: a
//! [`WeightSource`] for architectures whose HF names do not follow the llama layout (T5, Gemma).
//!
//! Every header field is checked against the file before use: dtype, shape × element size against
//! the byte range, the byte range against the file, so a corrupt or hostile file gives an error
//! naming the file and the tensor, never a panic or an allocation sized by an unchecked number.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::transformer::{HostTensor, LoadError, WeightSource};

/// Element types the reader converts to f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    F32,
    F16,
    Bf16,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }
}

struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range inside the file (absolute).
    start: usize,
    end: usize,
}

/// The safetensors tensors of one HF directory, by their HF names.
pub struct HfTensors {
    dir: PathBuf,
    files: Vec<(PathBuf, Mmap)>,
    entries: HashMap<String, Entry>,
}

fn format_err(path: &Path, reason: impl Into<String>) -> LoadError {
    LoadError::Format {
        file: path.display().to_string(),
        reason: reason.into(),
    }
}

impl HfTensors {
    /// Open the weights of `dir`: the shards named by `model.safetensors.index.json`, or
    /// `model.safetensors`.
    pub fn open(dir: &Path) -> Result<Self, LoadError> {
        let index = dir.join("model.safetensors.index.json");
        let names: Vec<PathBuf> = if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|source| LoadError::Io {
                path: index.display().to_string(),
                source,
            })?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format_err(&index, format!("not valid JSON: {e}")))?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| format_err(&index, "expected an object field 'weight_map'"))?;
            let mut files: Vec<String> = Vec::new();
            for (tensor, v) in map {
                let f = v.as_str().ok_or_else(|| {
                    format_err(&index, format!("weight_map['{tensor}'] is not a file name"))
                })?;
                if f.contains('/') || f.contains('\\') || f.starts_with('.') {
                    return Err(format_err(
                        &index,
                        format!("weight_map['{tensor}'] = '{f}' is not a plain file name"),
                    ));
                }
                if !files.iter().any(|x| x == f) {
                    files.push(f.to_string());
                }
            }
            if files.is_empty() {
                return Err(format_err(&index, "empty 'weight_map'"));
            }
            files.sort();
            files.into_iter().map(|f| dir.join(f)).collect()
        } else {
            let single = dir.join("model.safetensors");
            if !single.exists() {
                return Err(format_err(
                    dir,
                    "no model.safetensors or model.safetensors.index.json",
                ));
            }
            vec![single]
        };
        let mut out = HfTensors {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            entries: HashMap::new(),
        };
        for path in names {
            out.add_file(path)?;
        }
        Ok(out)
    }

    /// Open one safetensors file (reference outputs, a single shard).
    pub fn open_file(path: &Path) -> Result<Self, LoadError> {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut out = HfTensors {
            dir,
            files: Vec::new(),
            entries: HashMap::new(),
        };
        out.add_file(path.to_path_buf())?;
        Ok(out)
    }

    fn add_file(&mut self, path: PathBuf) -> Result<(), LoadError> {
        let f = std::fs::File::open(&path).map_err(|source| LoadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        // SAFETY: the file is opened read-only; the project never writes a model file it is reading.
        let map = unsafe { Mmap::map(&f) }.map_err(|source| LoadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let len = map.len();
        if len < 8 {
            return Err(format_err(
                &path,
                format!("{len} bytes: too short for a safetensors header"),
            ));
        }
        let header_len = u64::from_le_bytes(map[..8].try_into().expect("8 bytes"));
        if header_len > (len - 8) as u64 {
            return Err(format_err(
                &path,
                format!("header length {header_len} exceeds the file ({len} bytes)"),
            ));
        }
        let header_end = 8 + header_len as usize;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&map[8..header_end])
                .map_err(|e| format_err(&path, format!("header is not a JSON object: {e}")))?;
        let file = self.files.len();
        for (name, info) in header {
            if name == "__metadata__" {
                continue;
            }
            let bad = |what: &str| format_err(&path, format!("tensor '{name}': {what}"));
            let dtype = match info.get("dtype").and_then(|v| v.as_str()) {
                Some("F32") => Dtype::F32,
                Some("F16") => Dtype::F16,
                Some("BF16") => Dtype::Bf16,
                Some(other) => {
                    return Err(bad(&format!(
                        "dtype {other} is not supported (F32, F16, BF16)"
                    )));
                }
                None => return Err(bad("no dtype")),
            };
            let shape: Vec<usize> = info
                .get("shape")
                .and_then(|v| v.as_array())
                .ok_or_else(|| bad("no shape"))?
                .iter()
                .map(|d| {
                    d.as_u64()
                        .map(|d| d as usize)
                        .ok_or_else(|| bad("shape holds a non-integer"))
                })
                .collect::<Result<_, _>>()?;
            let offsets = info
                .get("data_offsets")
                .and_then(|v| v.as_array())
                .ok_or_else(|| bad("no data_offsets"))?;
            let (Some(a), Some(b)) = (
                offsets.first().and_then(|v| v.as_u64()),
                offsets.get(1).and_then(|v| v.as_u64()),
            ) else {
                return Err(bad("data_offsets is not [start, end]"));
            };
            let n = shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| bad("shape overflows"))?;
            let bytes = n
                .checked_mul(dtype.size())
                .ok_or_else(|| bad("shape overflows"))?;
            let data_len = (len - header_end) as u64;
            if a > b || b > data_len || (b - a) as usize != bytes {
                return Err(bad(&format!(
                    "data_offsets [{a}, {b}] do not hold {bytes} bytes of {shape:?} {dtype:?} inside the {data_len} data bytes"
                )));
            }
            self.entries.insert(
                name,
                Entry {
                    file,
                    dtype,
                    shape,
                    start: header_end + a as usize,
                    end: header_end + b as usize,
                },
            );
        }
        self.files.push((path, map));
        Ok(())
    }

    /// The directory, for error messages.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Names of every tensor held.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

impl WeightSource for HfTensors {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
    fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }
    fn load_f32(&self, name: &str) -> Result<HostTensor, LoadError> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| LoadError::MissingTensor {
                file: self.describe(),
                tensor: name.to_string(),
            })?;
        let raw = &self.files[e.file].1[e.start..e.end];
        let data: Vec<f32> = match e.dtype {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::Bf16 => raw
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        };
        Ok(HostTensor {
            shape: e.shape.clone(),
            data,
        })
    }
}

/// A [`WeightSource`] that answers canonical (GGUF-style) names from another source under its
/// own names: `map` turns a canonical name into the source's name.
pub struct Renamed<'a> {
    pub inner: &'a dyn WeightSource,
    pub map: &'a dyn Fn(&str) -> String,
}

impl WeightSource for Renamed<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn contains(&self, name: &str) -> bool {
        self.inner.contains(&(self.map)(name))
    }
    fn load_f32(&self, name: &str) -> Result<HostTensor, LoadError> {
        self.inner.load_f32(&(self.map)(name))
    }
    fn load_q8_0(&self, name: &str) -> Result<Option<crate::transformer::q8::Q8Matrix>, LoadError> {
        self.inner.load_q8_0(&(self.map)(name))
    }
}

/// Read and parse `dir/config.json`.
pub fn read_config_json(dir: &Path) -> Result<(String, serde_json::Value), LoadError> {
    let path = dir.join("config.json");
    let file = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
        path: file.clone(),
        source,
    })?;
    let json = serde_json::from_str(&text).map_err(|e| LoadError::Config {
        file: file.clone(),
        reason: format!("not valid JSON: {e}"),
    })?;
    Ok((file, json))
}

/// A configuration error in `file`.
pub(crate) fn cfg_err(file: &str, reason: impl Into<String>) -> LoadError {
    LoadError::Config {
        file: file.to_string(),
        reason: reason.into(),
    }
}

/// The EOS ids of a config's `eos_token_id` (a number or a list; absent or null = none). An id
/// outside the vocabulary of `vocab_size`, or not an integer, is an error naming the file, never
/// truncated to 32 bits.
pub fn eos_ids(file: &str, value: Option<&serde_json::Value>, vocab_size: usize) -> Result<Vec<u32>, LoadError> {
    let one = |v: &serde_json::Value| match v.as_u64() {
        Some(id) if id < vocab_size as u64 => Ok(id as u32),
        _ => Err(LoadError::Config {
            file: file.to_string(),
            reason: format!("eos_token_id {v} is not a token id of the vocabulary of {vocab_size}"),
        }),
    };
    match value {
        Some(serde_json::Value::Array(a)) => a.iter().map(one).collect(),
        Some(serde_json::Value::Null) | None => Ok(Vec::new()),
        Some(v) => Ok(vec![one(v)?]),
    }
}

/// A size read from a config number (`what` names the field): a non-negative integer below 10⁹,
/// so that nothing is allocated from an absurd value.
pub fn as_size(file: &str, what: &str, v: f64) -> Result<usize, LoadError> {
    if v < 0.0 || v.fract() != 0.0 || v > 1e9 {
        return Err(LoadError::Config {
            file: file.to_string(),
            reason: format!("{what} = {v} is not a size"),
        });
    }
    Ok(v as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, header: &str, data: &[u8]) {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    }

    #[test]
    fn reads_f32_f16_bf16_and_rejects_bad_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = Vec::new();
        data.extend_from_slice(&1.5f32.to_le_bytes());
        data.extend_from_slice(&half::f16::from_f32(-2.0).to_le_bytes());
        data.extend_from_slice(&half::bf16::from_f32(3.0).to_le_bytes());
        write(
            dir.path(),
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F16","shape":[1,1],"data_offsets":[4,6]},"c":{"dtype":"BF16","shape":[1],"data_offsets":[6,8]}}"#,
            &data,
        );
        let t = HfTensors::open(dir.path()).unwrap();
        assert_eq!(t.load_f32("a").unwrap().data, vec![1.5]);
        assert_eq!(t.load_f32("b").unwrap().shape, vec![1, 1]);
        assert_eq!(t.load_f32("b").unwrap().data, vec![-2.0]);
        assert_eq!(t.load_f32("c").unwrap().data, vec![3.0]);
        assert!(matches!(
            t.load_f32("d"),
            Err(LoadError::MissingTensor { .. })
        ));

        write(
            dir.path(),
            r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
            &data,
        );
        let e = HfTensors::open(dir.path()).err().unwrap().to_string();
        assert!(
            e.contains("tensor 'a'") && e.contains("data_offsets"),
            "{e}"
        );
        write(
            dir.path(),
            r#"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#,
            &data,
        );
        let e = HfTensors::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("I64"), "{e}");
        std::fs::write(dir.path().join("model.safetensors"), [255u8; 12]).unwrap();
        let e = HfTensors::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("exceeds the file"), "{e}");
    }
}
