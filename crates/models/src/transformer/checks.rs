//! Checks run before a model is built: the config's shapes against the tensors the weights
//! actually hold (so no layer is allocated from a size only the metadata claims), and finiteness
//! of every weight (NaN or ±∞ would silently poison, or be quantized to 0).

use super::config::TransformerConfig;
use super::error::LoadError;
use super::weights::{WeightSource, names};

/// Every tensor the config implies exists with the implied shape. Runs on tensor headers only
/// (no data is read), after [`TransformerConfig::validate`] has bounded the sizes.
pub(crate) fn check_weights(cfg: &TransformerConfig, src: &dyn WeightSource) -> Result<(), LoadError> {
    let file = src.describe();
    let (d, q_dim, kv_dim, f, v) = (cfg.d_model, cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim, cfg.ffn_dim, cfg.vocab_size);
    let need = |name: &str, shape: &[usize]| -> Result<(), LoadError> {
        if !src.contains(name) {
            return Err(LoadError::MissingTensor { file: file.clone(), tensor: name.to_string() });
        }
        match src.shape(name) {
            Some(got) if got != shape => {
                Err(LoadError::TensorShape { file: file.clone(), tensor: name.to_string(), expected: shape.to_vec(), got })
            }
            _ => Ok(()),
        }
    };
    need(names::EMBED, &[v, d])?;
    if src.contains(names::OUTPUT) {
        need(names::OUTPUT, &[v, d])?;
    }
    need(names::OUTPUT_NORM, &[d])?;
    for l in 0..cfg.n_layers {
        let n = |w: &str| names::blk(l, w);
        if !src.contains(&n("attn_norm.weight")) {
            return Err(LoadError::Config {
                file,
                reason: format!("the config says n_layers = {} but the weights hold {l} layer(s): tensor '{}' is missing", cfg.n_layers, n("attn_norm.weight")),
            });
        }
        for (w, shape) in [
            ("attn_norm.weight", vec![d]),
            ("ffn_norm.weight", vec![d]),
            ("attn_q.weight", vec![q_dim, d]),
            ("attn_k.weight", vec![kv_dim, d]),
            ("attn_v.weight", vec![kv_dim, d]),
            ("attn_output.weight", vec![d, q_dim]),
            ("ffn_gate.weight", vec![f, d]),
            ("ffn_up.weight", vec![f, d]),
            ("ffn_down.weight", vec![d, f]),
        ] {
            need(&n(w), &shape)?;
        }
        if cfg.qkv_bias {
            for (w, len) in [("attn_q.bias", q_dim), ("attn_k.bias", kv_dim), ("attn_v.bias", kv_dim)] {
                need(&n(w), &[len])?;
            }
        }
    }
    Ok(())
}

/// Refuse a tensor holding NaN or ±∞, naming it and the first bad element.
pub(crate) fn check_finite(file: &str, tensor: &str, data: &[f32]) -> Result<(), LoadError> {
    match data.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(index) => Err(LoadError::NonFinite { file: file.to_string(), tensor: tensor.to_string(), index, value: data[index].to_string() }),
    }
}

/// The same for raw Q8_0 blocks (an f16 scale then 32 int8 values each): a non-finite scale.
pub(crate) fn check_q8_0_scales(file: &str, tensor: &str, blocks: &[u8]) -> Result<(), LoadError> {
    for (b, block) in blocks.chunks(34).enumerate() {
        let scale = half::f16::from_le_bytes([block[0], block.get(1).copied().unwrap_or(0)]);
        if !scale.is_finite() {
            return Err(LoadError::NonFinite { file: file.to_string(), tensor: tensor.to_string(), index: b * 32, value: format!("a Q8_0 block scale of {scale}") });
        }
    }
    Ok(())
}

/// The same for raw Q4_K blocks (f16 `d` and `dmin`, then 140 bytes of scales and quants each).
pub(crate) fn check_q4_k_scales(file: &str, tensor: &str, blocks: &[u8]) -> Result<(), LoadError> {
    use super::q4k::{BLOCK_BYTES, QK_K};
    for (b, block) in blocks.chunks(BLOCK_BYTES).enumerate() {
        for (what, o) in [("d", 0), ("dmin", 2)] {
            let v = half::f16::from_le_bytes([block.get(o).copied().unwrap_or(0), block.get(o + 1).copied().unwrap_or(0)]);
            if !v.is_finite() {
                return Err(LoadError::NonFinite { file: file.to_string(), tensor: tensor.to_string(), index: b * QK_K, value: format!("a Q4_K block {what} of {v}") });
            }
        }
    }
    Ok(())
}
