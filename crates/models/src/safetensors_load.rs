//! Hugging Face checkpoints: `config.json` + `model.safetensors` (or a sharded index), bf16/f16/f32,
//! read through burn-store into a module mirroring the HF parameter names.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use burn::module::{Initializer, Module};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::store::{ChainAdapter, FloatCastAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::{DType, Device, Tensor};

use crate::transformer::checks::check_weights;
use crate::transformer::{HostTensor, LoadError, MemorySource, Transformer, TransformerConfig, TransformerOptions, WeightSource};

#[derive(Module, Debug)]
struct HfCausalLm {
    model: HfModel,
    lm_head: Option<Linear>,
}

#[derive(Module, Debug)]
struct HfModel {
    embed_tokens: Embedding,
    layers: Vec<HfLayer>,
    norm: RmsNorm,
}

#[derive(Module, Debug)]
struct HfLayer {
    self_attn: HfAttention,
    mlp: HfMlp,
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
}

#[derive(Module, Debug)]
struct HfAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
}

#[derive(Module, Debug)]
struct HfMlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl HfCausalLm {
    /// A zero-initialised skeleton of the right shapes (the checkpoint overwrites every value).
    fn skeleton(c: &TransformerConfig, device: &Device) -> Self {
        let lin = |i: usize, o: usize, bias: bool| {
            LinearConfig::new(i, o).with_bias(bias).with_initializer(Initializer::Zeros).init(device)
        };
        let norm = || RmsNormConfig::new(c.d_model).with_epsilon(c.rms_eps as f64).init(device);
        let (q, kv) = (c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim);
        Self {
            model: HfModel {
                embed_tokens: EmbeddingConfig::new(c.vocab_size, c.d_model)
                    .with_initializer(Initializer::Zeros)
                    .init(device),
                layers: (0..c.n_layers)
                    .map(|_| HfLayer {
                        self_attn: HfAttention {
                            q_proj: lin(c.d_model, q, c.qkv_bias),
                            k_proj: lin(c.d_model, kv, c.qkv_bias),
                            v_proj: lin(c.d_model, kv, c.qkv_bias),
                            o_proj: lin(q, c.d_model, false),
                        },
                        mlp: HfMlp {
                            gate_proj: lin(c.d_model, c.ffn_dim, false),
                            up_proj: lin(c.d_model, c.ffn_dim, false),
                            down_proj: lin(c.ffn_dim, c.d_model, false),
                        },
                        input_layernorm: norm(),
                        post_attention_layernorm: norm(),
                    })
                    .collect(),
                norm: norm(),
            },
            lm_head: (!c.tied_embeddings).then(|| lin(c.d_model, c.vocab_size, false)),
        }
    }
}

/// The safetensors files of an HF directory: the shards named by the index, or the single file.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index)
            .map_err(|source| LoadError::Io { path: index.display().to_string(), source })?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| LoadError::Format {
            file: index.display().to_string(),
            reason: format!("not valid JSON: {e}"),
        })?;
        let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| LoadError::Format {
            file: index.display().to_string(),
            reason: "expected an object field 'weight_map'".into(),
        })?;
        let files: BTreeSet<String> = map.values().filter_map(|v| v.as_str().map(String::from)).collect();
        if files.is_empty() {
            return Err(LoadError::Format { file: index.display().to_string(), reason: "empty 'weight_map'".into() });
        }
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    Err(LoadError::Format {
        file: dir.display().to_string(),
        reason: "no model.safetensors or model.safetensors.index.json".into(),
    })
}

/// Read `config.json` of an HF directory.
pub fn hf_config(dir: &Path) -> Result<TransformerConfig, LoadError> {
    let path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).map_err(|source| LoadError::Io { path: path.display().to_string(), source })?;
    TransformerConfig::from_hf_json(&path.display().to_string(), &text)
}

/// EOS ids from `generation_config.json` or `config.json` (`eos_token_id`: a number or a list).
/// An id outside the vocabulary (or not an integer) is an error naming the file, never truncated.
fn hf_eos(dir: &Path, vocab_size: usize) -> Result<Vec<u32>, LoadError> {
    for f in ["generation_config.json", "config.json"] {
        let path = dir.join(f);
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        if let Some(v) = json.get("eos_token_id").filter(|v| !v.is_null()) {
            return crate::hf_tensors::eos_ids(&path.display().to_string(), Some(v), vocab_size);
        }
    }
    Ok(Vec::new())
}

/// The largest safetensors header read (the format's own reader refuses more than 100 MB).
const MAX_HEADER_BYTES: u64 = 100 << 20;

/// Tensor shapes from the headers of `files`, under canonical names (`blk.3.attn_q.weight`),
/// every header bounds-checked against its file: the header length, each tensor's byte range and
/// its size against dtype × shape. Reads the headers only.
fn header_shapes(files: &[PathBuf]) -> Result<HashMap<String, Vec<usize>>, LoadError> {
    use std::io::Read;
    let mut shapes = HashMap::new();
    for file in files {
        let name = file.display().to_string();
        let bad = |reason: String| LoadError::Format { file: name.clone(), reason };
        let io = |source| LoadError::Io { path: name.clone(), source };
        let mut f = std::fs::File::open(file).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let mut n = [0u8; 8];
        f.read_exact(&mut n).map_err(|_| bad(format!("{len} bytes: too short for a safetensors header")))?;
        let n = u64::from_le_bytes(n);
        if n > MAX_HEADER_BYTES || n > len - 8 {
            return Err(bad(format!("header length {n} is over the limit of {MAX_HEADER_BYTES} bytes or past the end of the {len}-byte file")));
        }
        let mut header = vec![0u8; n as usize];
        f.read_exact(&mut header).map_err(io)?;
        let json: serde_json::Value = serde_json::from_slice(&header).map_err(|e| bad(format!("header is not valid JSON: {e}")))?;
        let obj = json.as_object().ok_or_else(|| bad("header is not a JSON object".into()))?;
        let data_len = len - 8 - n;
        for (key, info) in obj.iter().filter(|(k, _)| *k != "__metadata__") {
            let field = |f: &str| info.get(f).ok_or_else(|| bad(format!("tensor '{key}': no '{f}' in the header")));
            let dtype = field("dtype")?.as_str().unwrap_or_default();
            let shape: Vec<u64> = field("shape")?
                .as_array()
                .and_then(|a| a.iter().map(|d| d.as_u64()).collect())
                .ok_or_else(|| bad(format!("tensor '{key}': 'shape' is not a list of sizes")))?;
            let offsets: Vec<u64> = field("data_offsets")?
                .as_array()
                .and_then(|a| a.iter().map(|d| d.as_u64()).collect())
                .filter(|o: &Vec<u64>| o.len() == 2)
                .ok_or_else(|| bad(format!("tensor '{key}': 'data_offsets' is not [begin, end]")))?;
            let width = match dtype {
                "F64" | "I64" | "U64" => 8,
                "F32" | "I32" | "U32" => 4,
                "F16" | "BF16" | "I16" | "U16" => 2,
                "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => 1,
                other => return Err(bad(format!("tensor '{key}': unknown dtype '{other}'"))),
            };
            let bytes = shape.iter().try_fold(width, |acc: u64, &d| acc.checked_mul(d));
            let (begin, end) = (offsets[0], offsets[1]);
            if end < begin || end > data_len || bytes != Some(end - begin) {
                return Err(bad(format!(
                    "tensor '{key}': shape {shape:?} of {dtype} needs {} bytes, the header gives bytes {begin}..{end} of {data_len}",
                    bytes.map_or("more than 2^64".to_string(), |b| b.to_string())
                )));
            }
            if let Some(canonical) = canonical_name(key) {
                shapes.insert(canonical, shape.iter().map(|&d| d as usize).collect());
            }
        }
    }
    Ok(shapes)
}

/// The GGUF-style name of an HF llama/qwen2 parameter.
fn canonical_name(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, param) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = param.rsplit_once('.')?;
    let gguf = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{gguf}.{kind}"))
}

/// The tensors a directory's headers describe, for [`check_weights`] (shapes only, no data).
struct HeaderShapes {
    label: String,
    shapes: HashMap<String, Vec<usize>>,
}

impl WeightSource for HeaderShapes {
    fn describe(&self) -> String {
        self.label.clone()
    }
    fn contains(&self, name: &str) -> bool {
        self.shapes.contains_key(name)
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.shapes.get(name).cloned()
    }
    fn load_f32(&self, name: &str) -> Result<HostTensor, LoadError> {
        Err(LoadError::Format { file: self.label.clone(), reason: format!("tensor '{name}': shapes only") })
    }
}

fn host<const D: usize>(t: Tensor<D>) -> HostTensor {
    let shape = t.dims().to_vec();
    let data = t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 after conversion");
    HostTensor { shape, data }
}

/// burn keeps linear weights as `[in, out]`; hand them out PyTorch-style `[out, in]`.
fn host_linear(l: &Linear) -> (HostTensor, Option<HostTensor>) {
    (host(l.weight.val().transpose()), l.bias.as_ref().map(|b| host(b.val())))
}

/// Load an HF directory (config.json + safetensors) as a [`Transformer`].
pub fn load_hf_dir(dir: &Path, name: &str, opts: &TransformerOptions) -> Result<Transformer, LoadError> {
    let (cfg, src, eos) = hf_source(dir, opts)?;
    Ok(Transformer::from_source(name, cfg, &src, opts)?.with_eos(eos))
}

/// An HF llama-family directory's config, its tensors under canonical names (f32, in memory) and
/// its EOS ids.
pub fn hf_source(dir: &Path, opts: &TransformerOptions) -> Result<(TransformerConfig, MemorySource, Vec<u32>), LoadError> {
    let cfg = hf_config(dir)?;
    let source = dir.display().to_string();
    // Before the skeleton allocates a single layer: the config against the weights present.
    let files = weight_files(dir)?;
    let headers = HeaderShapes { label: source.clone(), shapes: header_shapes(&files)? };
    check_weights(&cfg, &headers)?;
    let eos = hf_eos(dir, cfg.vocab_size)?;
    let mut module = HfCausalLm::skeleton(&cfg, &opts.device);
    let mut applied = BTreeSet::new();
    let mut expected = BTreeSet::new();
    for file in files {
        let mut store = SafetensorsStore::from_file(&file)
            .with_from_adapter(ChainAdapter::new(PyTorchToBurnAdapter, FloatCastAdapter::to(DType::F32)))
            .allow_partial(true);
        let result = module.load_from(&mut store).map_err(|e| LoadError::Format {
            file: file.display().to_string(),
            reason: format!("cannot read safetensors: {e}"),
        })?;
        if let Some(e) = result.errors.first() {
            return Err(LoadError::Format { file: file.display().to_string(), reason: format!("{e:?}") });
        }
        expected.extend(result.applied.iter().cloned());
        expected.extend(result.missing.iter().map(|(p, _)| p.clone()));
        applied.extend(result.applied);
    }
    if let Some(missing) = expected.difference(&applied).next() {
        return Err(LoadError::MissingTensor { file: source, tensor: missing.clone() });
    }

    // Hand the tensors to the decoder under canonical names.
    let mut t: HashMap<String, HostTensor> = HashMap::new();
    t.insert("token_embd.weight".into(), host(module.model.embed_tokens.weight.val()));
    t.insert("output_norm.weight".into(), host(module.model.norm.gamma.val()));
    if let Some(head) = &module.lm_head {
        t.insert("output.weight".into(), host_linear(head).0);
    }
    for (l, layer) in module.model.layers.iter().enumerate() {
        let n = |w: &str| format!("blk.{l}.{w}");
        t.insert(n("attn_norm.weight"), host(layer.input_layernorm.gamma.val()));
        t.insert(n("ffn_norm.weight"), host(layer.post_attention_layernorm.gamma.val()));
        for (gguf, lin) in [
            ("attn_q", &layer.self_attn.q_proj),
            ("attn_k", &layer.self_attn.k_proj),
            ("attn_v", &layer.self_attn.v_proj),
            ("attn_output", &layer.self_attn.o_proj),
            ("ffn_gate", &layer.mlp.gate_proj),
            ("ffn_up", &layer.mlp.up_proj),
            ("ffn_down", &layer.mlp.down_proj),
        ] {
            let (w, b) = host_linear(lin);
            t.insert(n(&format!("{gguf}.weight")), w);
            if let Some(b) = b {
                t.insert(n(&format!("{gguf}.bias")), b);
            }
        }
    }
    drop(module);
    Ok((cfg, MemorySource { label: source, tensors: t }, eos))
}
