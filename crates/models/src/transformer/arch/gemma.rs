//! Gemma 1, 2 and 3 (text): decoder-only, tied embeddings scaled by √d, RMSNorm with a unit offset
//! (`(1 + w) · x / rms`), a tanh-GELU gated MLP, split-half RoPE.
//!
//! - Gemma 2 adds a norm after attention and after the MLP (four per layer), attention-logit and
//!   final-logit soft-capping (`cap · tanh(x / cap)`), a sliding window on alternate layers
//!   (layer 0 local), and scores scaled by `query_pre_attn_scalar^-½` instead of `head_dim^-½`.
//! - Gemma 3 adds per-head RMSNorms on queries and keys (before RoPE), one RoPE base for local
//!   layers and another for global ones, and five local layers to one global.
//!
//! Shapes: tokens `[k]` → embedding `[k, d]` · √d → N × [`GemmaBlock`] → norm → tied head
//! `[k, vocab]` (→ soft-cap).
//!
//! Reference: transformers' modeling_gemma.py / modeling_gemma2.py / modeling_gemma3.py (the
//! tests compare against logits recorded from them, tests/paper_parity.rs). GGUF files (llama.cpp's
//! converter) store every norm weight already offset (`1 + w`), and leave local RoPE base, window
//! pattern and score scale to per-architecture defaults, which [`GemmaConfig::from_gguf`] spells out.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::burn_lm::{BurnDecoder, DecoderSpec, LayerSpec};
use crate::gguf::{GgufFile, Value};
use crate::hf_tensors::{HfTensors, Renamed, as_size, cfg_err, eos_ids, read_config_json};
use crate::transformer::arch::{Architecture, LoadedModel};
use crate::transformer::attention::{HeadShape, ScoreRule, SelfAttention};
use crate::transformer::config::RopeStyle;
use crate::transformer::decoder::{CausalLm, DecoderLm, DecoderMeta, advance_all, batch_rows, layer_caches};
use crate::transformer::error::LoadError;
use crate::transformer::kv_cache::{KvCache, LayerCache};
use crate::transformer::matrix::{Embedding, Linear, Matrix};
use crate::transformer::mlp::Mlp;
use crate::transformer::norm::RmsNorm;
use crate::transformer::ops::{Activation, Acts, soft_cap};
use crate::transformer::rope::Rope;
use crate::transformer::weights::{WeightSource, expect, names};
use crate::transformer::{GgufSource, TransformerOptions, gguf_eos_ids};

/// The registry entry (see [`super::ARCHITECTURES`]).
pub const ARCHITECTURE: Architecture = Architecture {
    names: &["gemma", "gemma2", "gemma3", "gemma3_text"],
    hf_classes: &["GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM"],
    from_gguf,
    from_hf_dir,
};

/// Which generation of Gemma.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmaVersion {
    V1,
    V2,
    V3,
}

/// The hyper-parameters of a Gemma model, whichever file spelled them.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmaConfig {
    pub version: GemmaVersion,
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub vocab_size: usize,
    pub rms_eps: f32,
    pub context_length: usize,
    /// Scores are multiplied by `query_pre_attn_scalar^-½`.
    pub query_pre_attn_scalar: f32,
    pub attn_softcap: Option<f32>,
    pub final_softcap: Option<f32>,
    /// Keys a local layer's query sees (itself included).
    pub sliding_window: Option<usize>,
    /// Per layer: local (sliding-window) attention.
    pub local_layers: Vec<bool>,
    /// RoPE base of global layers (and of every layer in Gemma 1).
    pub rope_theta: f32,
    /// RoPE base of local layers.
    pub rope_local_theta: f32,
    pub eos: Vec<u32>,
}

impl GemmaConfig {
    fn validate(&self, file: &str) -> Result<(), LoadError> {
        if self.n_layers == 0
            || self.d_model == 0
            || self.n_heads == 0
            || self.n_kv_heads == 0
            || self.head_dim == 0
        {
            return Err(cfg_err(file, format!("zero-sized dimension in {self:?}")));
        }
        if self.n_heads % self.n_kv_heads != 0 {
            return Err(cfg_err(
                file,
                format!(
                    "{} heads are not a multiple of {} key/value heads",
                    self.n_heads, self.n_kv_heads
                ),
            ));
        }
        if self.head_dim % 2 != 0 {
            return Err(cfg_err(
                file,
                format!(
                    "head_dim {} must be even for rotary embeddings",
                    self.head_dim
                ),
            ));
        }
        if self.vocab_size == 0 || self.ffn_dim == 0 || self.context_length == 0 {
            return Err(cfg_err(
                file,
                "vocabulary, intermediate size and context length must be positive",
            ));
        }
        if self.local_layers.len() != self.n_layers {
            return Err(cfg_err(
                file,
                format!(
                    "{} layer types for {} layers",
                    self.local_layers.len(),
                    self.n_layers
                ),
            ));
        }
        if self.local_layers.iter().any(|&l| l) && self.sliding_window.is_none_or(|w| w == 0) {
            return Err(cfg_err(file, "local layers need a positive sliding_window"));
        }
        if !(self.query_pre_attn_scalar > 0.0) {
            return Err(cfg_err(file, "query_pre_attn_scalar must be positive"));
        }
        for (what, cap) in [
            ("attn_logit_softcapping", self.attn_softcap),
            ("final_logit_softcapping", self.final_softcap),
        ] {
            if cap.is_some_and(|c| !(c > 0.0)) {
                return Err(cfg_err(file, format!("{what} must be positive")));
            }
        }
        Ok(())
    }

    /// Read an HF `config.json` (`model_type` gemma, gemma2, gemma3_text; or gemma3 with a
    /// `text_config`), in the hub's spelling (`rope_theta`, `rope_local_base_freq`,
    /// `sliding_window_pattern`) or transformers 5's (`rope_parameters`, `layer_types`).
    pub fn from_hf_json(file: &str, json: &Json) -> Result<Self, LoadError> {
        let top_type = json.get("model_type").and_then(Json::as_str).unwrap_or("");
        let j = match json.get("text_config") {
            Some(t) if top_type == "gemma3" => t,
            _ => json,
        };
        let arch = j
            .get("model_type")
            .and_then(Json::as_str)
            .or_else(|| {
                json.get("architectures")
                    .and_then(|a| a.get(0))
                    .and_then(Json::as_str)
            })
            .unwrap_or(top_type);
        let version = match arch {
            "gemma" | "GemmaForCausalLM" => GemmaVersion::V1,
            "gemma2" | "Gemma2ForCausalLM" => GemmaVersion::V2,
            "gemma3" | "gemma3_text" | "Gemma3ForCausalLM" | "Gemma3ForConditionalGeneration" => {
                GemmaVersion::V3
            }
            other => {
                return Err(cfg_err(
                    file,
                    format!("model_type '{other}' is not a Gemma"),
                ));
            }
        };
        let num = |k: &str| j.get(k).filter(|v| !v.is_null()).and_then(Json::as_f64);
        let need = |k: &str| {
            num(k).ok_or_else(|| cfg_err(file, format!("field '{k}' is missing or not a number")))
        };
        let usize_of = |k: &str| as_size(file, &format!("field '{k}'"), need(k)?);
        if let Some(act) = j
            .get("hidden_activation")
            .or_else(|| j.get("hidden_act"))
            .and_then(Json::as_str)
            && !matches!(act, "gelu_pytorch_tanh" | "gelu")
        {
            // HF Gemma 1 maps "gelu" to the tanh approximation too (hidden_activation default).
            return Err(cfg_err(
                file,
                format!("hidden_activation '{act}' is not supported (gelu_pytorch_tanh)"),
            ));
        }
        if j.get("tie_word_embeddings").and_then(Json::as_bool) == Some(false) {
            return Err(cfg_err(
                file,
                "tie_word_embeddings = false: Gemma's head is its embedding",
            ));
        }
        let n_layers = usize_of("num_hidden_layers")?;
        let d_model = usize_of("hidden_size")?;
        let n_heads = usize_of("num_attention_heads")?;
        let head_dim = if num("head_dim").is_some() {
            usize_of("head_dim")?
        } else {
            d_model / n_heads.max(1)
        };
        let n_kv_heads = if num("num_key_value_heads").is_some() {
            usize_of("num_key_value_heads")?
        } else {
            n_heads
        };

        // RoPE bases: transformers 5 nests them in rope_parameters (per layer type for Gemma 3).
        let rope = j.get("rope_parameters").filter(|v| !v.is_null());
        let theta_in = |p: Option<&Json>| -> Result<Option<f64>, LoadError> {
            let Some(p) = p else { return Ok(None) };
            if let Some(t) = p
                .get("rope_type")
                .and_then(Json::as_str)
                .filter(|t| *t != "default")
            {
                return Err(cfg_err(
                    file,
                    format!("rope_type '{t}' is not supported (default RoPE only)"),
                ));
            }
            Ok(p.get("rope_theta").and_then(Json::as_f64))
        };
        let (global_params, local_params) = match rope {
            Some(r)
                if r.get("full_attention").is_some() || r.get("sliding_attention").is_some() =>
            {
                (r.get("full_attention"), r.get("sliding_attention"))
            }
            Some(r) => (Some(r), Some(r)),
            None => (None, None),
        };
        if let Some(s) = j.get("rope_scaling").filter(|v| !v.is_null()) {
            return Err(cfg_err(
                file,
                format!("rope_scaling {s} is not supported (plain RoPE only)"),
            ));
        }
        let rope_theta = theta_in(global_params)?
            .or_else(|| num("rope_theta"))
            .unwrap_or(10_000.0);
        let rope_local_theta = match version {
            GemmaVersion::V3 => theta_in(local_params)?
                .or_else(|| num("rope_local_base_freq"))
                .unwrap_or(10_000.0),
            _ => rope_theta,
        };

        let sliding_window = match version {
            GemmaVersion::V1 => None,
            _ => Some(usize_of("sliding_window")?),
        };
        let local_layers: Vec<bool> = match (version, j.get("layer_types").and_then(Json::as_array))
        {
            (GemmaVersion::V1, _) => vec![false; n_layers],
            (_, Some(types)) => types
                .iter()
                .enumerate()
                .map(|(i, t)| match t.as_str() {
                    Some("sliding_attention") => Ok(true),
                    Some("full_attention") => Ok(false),
                    _ => Err(cfg_err(
                        file,
                        format!(
                            "layer_types[{i}] = {t}: expected sliding_attention or full_attention"
                        ),
                    )),
                })
                .collect::<Result<_, _>>()?,
            (GemmaVersion::V2, None) => (0..n_layers).map(|i| (i + 1) % 2 != 0).collect(),
            (GemmaVersion::V3, None) => {
                let pattern = if num("sliding_window_pattern").is_some() {
                    usize_of("sliding_window_pattern")?
                } else {
                    6
                };
                if pattern == 0 {
                    return Err(cfg_err(file, "sliding_window_pattern must be positive"));
                }
                (0..n_layers).map(|i| (i + 1) % pattern != 0).collect()
            }
        };
        let query_pre_attn_scalar = match version {
            GemmaVersion::V1 => head_dim as f64,
            _ => num("query_pre_attn_scalar").unwrap_or(head_dim as f64),
        } as f32;
        let cap = |k: &str| num(k).map(|v| v as f32);
        let vocab_size = usize_of("vocab_size")?;
        let eos = eos_ids(file, j.get("eos_token_id").or_else(|| json.get("eos_token_id")), vocab_size)?;
        let cfg = GemmaConfig {
            version,
            n_layers,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim: usize_of("intermediate_size")?,
            vocab_size,
            rms_eps: num("rms_norm_eps").unwrap_or(1e-6) as f32,
            context_length: if num("max_position_embeddings").is_some() {
                usize_of("max_position_embeddings")?
            } else {
                8192
            },
            query_pre_attn_scalar,
            attn_softcap: if version == GemmaVersion::V1 {
                None
            } else {
                cap("attn_logit_softcapping")
            },
            final_softcap: if version == GemmaVersion::V1 {
                None
            } else {
                cap("final_logit_softcapping")
            },
            sliding_window,
            local_layers,
            rope_theta: rope_theta as f32,
            rope_local_theta: rope_local_theta as f32,
            eos,
        };
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Read GGUF metadata (`general.architecture` gemma, gemma2 or gemma3), with llama.cpp's
    /// defaults where the converter writes nothing: local RoPE base 10 000, window pattern 2
    /// (Gemma 2) or 6 (Gemma 3), scores scaled by `key_length^-½`.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, LoadError> {
        let src = file.path().display().to_string();
        let arch = file.architecture()?.to_string();
        let version = match arch.as_str() {
            "gemma" => GemmaVersion::V1,
            "gemma2" => GemmaVersion::V2,
            "gemma3" => GemmaVersion::V3,
            other => {
                return Err(cfg_err(
                    &src,
                    format!("general.architecture '{other}' is not a Gemma"),
                ));
            }
        };
        let num = |k: &str| file.get(&format!("{arch}.{k}")).and_then(Value::as_f64);
        let need = |k: &str| {
            num(k).ok_or_else(|| {
                cfg_err(
                    &src,
                    format!("metadata key '{arch}.{k}' is missing or not a number"),
                )
            })
        };
        let size = |k: &str| as_size(&src, &format!("metadata key '{arch}.{k}'"), need(k)?);
        if let Some(kind) = file
            .get(&format!("{arch}.rope.scaling.type"))
            .and_then(Value::as_str)
            .filter(|k| *k != "none")
        {
            return Err(cfg_err(
                &src,
                format!("rope scaling '{kind}' is not supported (plain RoPE only)"),
            ));
        }
        let n_layers = size("block_count")?;
        let d_model = size("embedding_length")?;
        let n_heads = size("attention.head_count")?;
        let n_kv_heads = if num("attention.head_count_kv").is_some() {
            size("attention.head_count_kv")?
        } else {
            n_heads
        };
        let head_dim = if num("attention.key_length").is_some() {
            size("attention.key_length")?
        } else {
            d_model / n_heads.max(1)
        };
        let vocab_size = match file.get("tokenizer.ggml.tokens").and_then(Value::as_array) {
            Some(t) => t.len(),
            None => file
                .tensor(names::EMBED)
                .map(|t| t.shape()[0])
                .ok_or_else(|| LoadError::MissingTensor {
                    file: src.clone(),
                    tensor: names::EMBED.into(),
                })?,
        };
        let sliding_window = match version {
            GemmaVersion::V1 => None,
            _ => Some(size("attention.sliding_window")?),
        };
        let pattern = match version {
            GemmaVersion::V1 => 1,
            GemmaVersion::V2 => 2,
            GemmaVersion::V3 => {
                if num("attention.sliding_window_pattern").is_some() {
                    size("attention.sliding_window_pattern")?
                } else {
                    6
                }
            }
        };
        if pattern == 0 {
            return Err(cfg_err(&src, "sliding window pattern must be positive"));
        }
        let rope_theta = num("rope.freq_base").unwrap_or(10_000.0) as f32;
        let cfg = GemmaConfig {
            version,
            n_layers,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim: size("feed_forward_length")?,
            vocab_size,
            rms_eps: need("attention.layer_norm_rms_epsilon")? as f32,
            context_length: size("context_length")?,
            query_pre_attn_scalar: head_dim as f32,
            attn_softcap: num("attn_logit_softcapping").map(|v| v as f32),
            final_softcap: num("final_logit_softcapping").map(|v| v as f32),
            sliding_window,
            local_layers: (0..n_layers)
                .map(|i| version != GemmaVersion::V1 && (i + 1) % pattern != 0)
                .collect(),
            rope_theta,
            rope_local_theta: match version {
                GemmaVersion::V3 => num("rope.freq_base_swa").unwrap_or(10_000.0) as f32,
                _ => rope_theta,
            },
            eos: gguf_eos_ids(file, vocab_size)?,
        };
        cfg.validate(&src)?;
        Ok(cfg)
    }
}

/// Canonical (GGUF) tensor name → the HF checkpoint's name.
fn hf_name(version: GemmaVersion, prefix: &str, canonical: &str) -> String {
    match canonical {
        names::EMBED => return format!("{prefix}embed_tokens.weight"),
        names::OUTPUT_NORM => return format!("{prefix}norm.weight"),
        names::OUTPUT => return "lm_head.weight".to_string(),
        _ => {}
    }
    let Some(rest) = canonical.strip_prefix("blk.") else {
        return canonical.to_string();
    };
    let (layer, what) = rest.split_once('.').unwrap_or((rest, ""));
    let hf = match what {
        "attn_norm.weight" => "input_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "attn_q_norm.weight" => "self_attn.q_norm.weight",
        "attn_k_norm.weight" => "self_attn.k_norm.weight",
        "post_attention_norm.weight" => "post_attention_layernorm.weight",
        // Gemma 1's pre-MLP norm is HF's post_attention_layernorm (llama layout).
        "ffn_norm.weight" if version == GemmaVersion::V1 => "post_attention_layernorm.weight",
        "ffn_norm.weight" => "pre_feedforward_layernorm.weight",
        "post_ffw_norm.weight" => "post_feedforward_layernorm.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        other => other,
    };
    format!("{prefix}layers.{layer}.{hf}")
}

fn from_gguf(
    file: &GgufFile,
    name: &str,
    opts: &TransformerOptions,
) -> Result<LoadedModel, LoadError> {
    let cfg = GemmaConfig::from_gguf(file)?;
    // llama.cpp's converter stores every Gemma norm weight as 1 + w.
    finish(name, cfg, &GgufSource::new(file), false, opts)
}

fn from_hf_dir(
    dir: &Path,
    name: &str,
    opts: &TransformerOptions,
) -> Result<LoadedModel, LoadError> {
    let (file, json) = read_config_json(dir)?;
    let cfg = GemmaConfig::from_hf_json(&file, &json)?;
    let tensors = HfTensors::open(dir)?;
    // Gemma 3 multimodal checkpoints nest the text model under language_model.
    let prefix = ["model.", "model.language_model.", "language_model.model."]
        .into_iter()
        .find(|p| tensors.contains(&format!("{p}embed_tokens.weight")))
        .unwrap_or("model.");
    let version = cfg.version;
    let map = move |n: &str| hf_name(version, prefix, n);
    let src = Renamed {
        inner: &tensors,
        map: &map,
    };
    finish(name, cfg, &src, true, opts)
}

/// Build on the host kernels, or on the device engine when `opts` names one.
fn finish(
    name: &str,
    cfg: GemmaConfig,
    src: &dyn WeightSource,
    unit_offset: bool,
    opts: &TransformerOptions,
) -> Result<LoadedModel, LoadError> {
    let Some(engine) = &opts.engine else {
        let m = Gemma::from_source(name, cfg, src, unit_offset, opts)?;
        return Ok(LoadedModel::decoder("gemma", DecoderLm::new(m)));
    };
    cfg.validate(&src.describe())?;
    let spec = DecoderSpec {
        architecture: "gemma",
        d_model: cfg.d_model,
        n_heads: cfg.n_heads,
        n_kv_heads: cfg.n_kv_heads,
        head_dim: cfg.head_dim,
        ffn_dim: cfg.ffn_dim,
        vocab_size: cfg.vocab_size,
        context_length: cfg.context_length,
        rms_eps: cfg.rms_eps,
        norm_unit_offset: unit_offset,
        embed_scale: Some((cfg.d_model as f64).sqrt() as f32),
        activation: Activation::GeluTanh,
        qkv_bias: false,
        qk_norm: cfg.version == GemmaVersion::V3,
        post_norms: cfg.version != GemmaVersion::V1,
        score_scale: (cfg.query_pre_attn_scalar as f64).powf(-0.5) as f32,
        attn_softcap: cfg.attn_softcap,
        final_softcap: cfg.final_softcap,
        rope_style: RopeStyle::SplitHalf,
        tied_head: !src.contains(names::OUTPUT),
        layers: cfg
            .local_layers
            .iter()
            .map(|&local| LayerSpec {
                window: if local { cfg.sliding_window } else { None },
                rope_theta: if local { cfg.rope_local_theta } else { cfg.rope_theta },
            })
            .collect(),
        eos: cfg.eos.clone(),
    };
    Ok(LoadedModel::burn(BurnDecoder::load(name, spec, src, engine.clone(), opts.max_seq_len)?))
}

/// One Gemma layer. Gemma 1: `x += attn(n1(x)); x += mlp(n2(x))`. Gemma 2/3:
/// `x += n_post_attn(attn(n1(x))); x += n_post_ffw(mlp(n2(x)))`.
pub struct GemmaBlock {
    attn_norm: RmsNorm,
    attn: SelfAttention,
    post_attn_norm: Option<RmsNorm>,
    ffn_norm: RmsNorm,
    mlp: Mlp,
    post_ffw_norm: Option<RmsNorm>,
}

impl GemmaBlock {
    /// Shapes: `x: [Σ rows, d]` in place, the rows of several sequences one after another
    /// ([`SelfAttention::forward_many`]); appends `rows[i]` positions to `caches[i]`.
    pub fn forward(&self, x: &mut Acts, rows: &[usize], caches: &mut [&mut LayerCache]) {
        let mut h = self.attn.forward_many(&self.attn_norm.forward(x), rows, caches);
        if let Some(n) = &self.post_attn_norm {
            n.forward_in_place(&mut h);
        }
        x.add_assign(&h);
        let mut h = self.mlp.forward(&self.ffn_norm.forward(x));
        if let Some(n) = &self.post_ffw_norm {
            n.forward_in_place(&mut h);
        }
        x.add_assign(&h);
    }
}

/// The weights of a Gemma model. Immutable: sequences run in sessions of [`DecoderLm`].
pub struct Gemma {
    meta: DecoderMeta,
    cfg: GemmaConfig,
    embed: Embedding,
    embed_scale: f32,
    blocks: Vec<GemmaBlock>,
    norm: RmsNorm,
    head: Linear,
}

impl Gemma {
    /// Build from canonical (GGUF) tensor names. `unit_offset`: norm weights are stored as
    /// offsets from one (HF checkpoints) rather than as the scale itself (GGUF).
    pub fn from_source(
        name: &str,
        cfg: GemmaConfig,
        src: &dyn WeightSource,
        unit_offset: bool,
        opts: &TransformerOptions,
    ) -> Result<Self, LoadError> {
        cfg.validate(&src.describe())?;
        let (d, p, hd) = (cfg.d_model, opts.precision, cfg.head_dim);
        let norm = |tensor: &str, width: usize| -> Result<RmsNorm, LoadError> {
            let w = expect(src, tensor, &[width])?.data;
            Ok(if unit_offset {
                RmsNorm::new_unit_offset(w, cfg.rms_eps)
            } else {
                RmsNorm::new(w, cfg.rms_eps)
            })
        };
        let embed = Embedding::new(Matrix::load(
            src,
            &[(names::EMBED.to_string(), cfg.vocab_size)],
            d,
            p,
        )?);
        let head = if src.contains(names::OUTPUT) {
            Linear::load(
                src,
                &[(names::OUTPUT.to_string(), cfg.vocab_size)],
                d,
                None,
                p,
            )?
        } else {
            embed.tied_head()
        };
        let max_seq_len = opts.max_seq_len.min(cfg.context_length).max(1);
        let global = Arc::new(Rope::new(
            RopeStyle::SplitHalf,
            hd,
            cfg.rope_theta,
            max_seq_len,
        ));
        let local = if cfg.rope_local_theta == cfg.rope_theta {
            global.clone()
        } else {
            Arc::new(Rope::new(
                RopeStyle::SplitHalf,
                hd,
                cfg.rope_local_theta,
                max_seq_len,
            ))
        };
        let shape = HeadShape {
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            head_dim: hd,
        };
        let (q_dim, kv_dim) = (shape.q_dim(), shape.kv_dim());
        let scale = (cfg.query_pre_attn_scalar as f64).powf(-0.5) as f32;
        let four_norms = cfg.version != GemmaVersion::V1;
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let n = |w: &str| names::blk(l, w);
            let is_local = cfg.local_layers[l];
            let rule = ScoreRule {
                scale,
                soft_cap: cfg.attn_softcap,
                window: if is_local { cfg.sliding_window } else { None },
            };
            let qkv = Linear::load(
                src,
                &[
                    (n("attn_q.weight"), q_dim),
                    (n("attn_k.weight"), kv_dim),
                    (n("attn_v.weight"), kv_dim),
                ],
                d,
                None,
                p,
            )?;
            let o = Linear::load(src, &[(n("attn_output.weight"), d)], q_dim, None, p)?;
            let rope = if is_local {
                local.clone()
            } else {
                global.clone()
            };
            let mut attn = SelfAttention::new(qkv, o, shape, rule, Some(rope));
            if cfg.version == GemmaVersion::V3 {
                attn = attn.with_qk_norms(
                    norm(&n("attn_q_norm.weight"), hd)?,
                    norm(&n("attn_k_norm.weight"), hd)?,
                );
            }
            let gate_up = Linear::load(
                src,
                &[
                    (n("ffn_gate.weight"), cfg.ffn_dim),
                    (n("ffn_up.weight"), cfg.ffn_dim),
                ],
                d,
                None,
                p,
            )?;
            let down = Linear::load(src, &[(n("ffn_down.weight"), d)], cfg.ffn_dim, None, p)?;
            blocks.push(GemmaBlock {
                attn_norm: norm(&n("attn_norm.weight"), d)?,
                attn,
                post_attn_norm: if four_norms {
                    Some(norm(&n("post_attention_norm.weight"), d)?)
                } else {
                    None
                },
                ffn_norm: norm(&n("ffn_norm.weight"), d)?,
                mlp: Mlp::gated(gate_up, down, Activation::GeluTanh),
                post_ffw_norm: if four_norms {
                    Some(norm(&n("post_ffw_norm.weight"), d)?)
                } else {
                    None
                },
            });
        }
        let meta = DecoderMeta {
            name: name.to_string(),
            vocab_size: cfg.vocab_size,
            eos: cfg.eos.clone(),
            max_seq_len,
            precision: p,
        };
        Ok(Self {
            meta,
            embed_scale: (d as f64).sqrt() as f32,
            norm: norm(names::OUTPUT_NORM, d)?,
            cfg,
            embed,
            blocks,
            head,
        })
    }
}

impl CausalLm for Gemma {
    fn meta(&self) -> &DecoderMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut DecoderMeta {
        &mut self.meta
    }
    fn new_cache(&self) -> KvCache {
        KvCache::new(
            self.cfg.n_layers,
            self.cfg.n_kv_heads * self.cfg.head_dim,
            self.meta.max_seq_len,
        )
    }
    fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Acts {
        self.forward_many(&[tokens], &mut [cache])
    }
    fn forward_many(&self, tokens: &[&[u32]], caches: &mut [&mut KvCache]) -> Acts {
        let (rows, flat) = batch_rows(tokens, caches);
        let mut x = self.embed.forward(&flat);
        x.scale(self.embed_scale);
        for (l, block) in self.blocks.iter().enumerate() {
            block.forward(&mut x, &rows, &mut layer_caches(caches, l));
        }
        advance_all(caches, &rows);
        self.norm.forward_in_place(&mut x);
        x
    }
    fn logits(&self, hidden: &Acts) -> Acts {
        let mut logits = self.head.forward(hidden);
        if let Some(cap) = self.cfg.final_softcap {
            logits
                .as_mut_slice()
                .iter_mut()
                .for_each(|v| *v = soft_cap(*v, cap));
        }
        logits
    }
    fn weight_bytes_per_token(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| b.attn.weight_bytes() + b.mlp.weight_bytes())
            .sum::<usize>()
            + self.head.weight().byte_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_and_transformers5_spellings_agree() {
        let hub = serde_json::json!({
            "model_type": "gemma3_text", "num_hidden_layers": 6, "hidden_size": 32, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 12, "intermediate_size": 48, "vocab_size": 100,
            "rope_theta": 10000.0, "rope_local_base_freq": 100.0, "sliding_window_pattern": 3, "sliding_window": 5,
            "query_pre_attn_scalar": 20, "rope_scaling": null
        });
        let mut v5 = hub.clone();
        let o = v5.as_object_mut().unwrap();
        for k in [
            "rope_theta",
            "rope_local_base_freq",
            "sliding_window_pattern",
            "rope_scaling",
        ] {
            o.remove(k);
        }
        o.insert(
            "layer_types".into(),
            serde_json::json!([
                "sliding_attention",
                "sliding_attention",
                "full_attention",
                "sliding_attention",
                "sliding_attention",
                "full_attention"
            ]),
        );
        o.insert(
            "rope_parameters".into(),
            serde_json::json!({
            "full_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 100.0}}),
        );
        let a = GemmaConfig::from_hf_json("hub", &hub).unwrap();
        let b = GemmaConfig::from_hf_json("v5", &v5).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.local_layers, vec![true, true, false, true, true, false]);
        assert_eq!((a.rope_theta, a.rope_local_theta), (10000.0, 100.0));

        let mut bad = hub.clone();
        bad["rope_scaling"] = serde_json::json!({"rope_type": "linear", "factor": 8.0});
        let e = GemmaConfig::from_hf_json("cfg.json", &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cfg.json") && e.contains("rope_scaling"), "{e}");
    }

    #[test]
    fn hf_names_follow_each_generation() {
        assert_eq!(
            hf_name(GemmaVersion::V1, "model.", "blk.3.ffn_norm.weight"),
            "model.layers.3.post_attention_layernorm.weight"
        );
        assert_eq!(
            hf_name(GemmaVersion::V2, "model.", "blk.3.ffn_norm.weight"),
            "model.layers.3.pre_feedforward_layernorm.weight"
        );
        assert_eq!(
            hf_name(GemmaVersion::V3, "model.", "blk.0.attn_k_norm.weight"),
            "model.layers.0.self_attn.k_norm.weight"
        );
        assert_eq!(
            hf_name(GemmaVersion::V3, "model.", names::EMBED),
            "model.embed_tokens.weight"
        );
    }
}
