//! Hostile model files, generated here: sizes in the metadata that no file could hold, NaN and ±∞
//! in the weights at every precision, ids beyond 32 bits, oversized metadata arrays, an HF
//! config.json claiming a million layers, forged safetensors headers. Each must give an error
//! naming the file and the field (or tensor) and the limit — before anything is allocated from
//! the claim — never a panic, an abort or a silently changed value.

use half::f16;
use speccascade_models::gguf::{Array, GgmlType, GgufFile, GgufWriter, Value};
use speccascade_models::safetensors_load::load_hf_dir;
use speccascade_models::transformer::{LoadError, Precision, TransformerOptions, gguf_eos_ids, load_gguf_file};

fn open(w: &GgufWriter) -> GgufFile {
    GgufFile::from_bytes("hostile.gguf", w.to_bytes()).expect("parses")
}

fn load(w: &GgufWriter, p: Precision) -> Result<(), LoadError> {
    let opts = TransformerOptions { precision: p, ..TransformerOptions::default() };
    load_gguf_file(&open(w), "hostile", &opts).map(|_| ())
}

#[test]
fn the_base_file_loads_at_every_precision() {
    for p in [Precision::F32, Precision::F16, Precision::Q8] {
        load(&GgufWriter::tiny_llama(), p).unwrap_or_else(|e| panic!("{p}: {e}"));
    }
}

#[test]
fn sizes_beyond_the_architecture_limits_are_refused_before_allocation() {
    for (key, value, field, limit) in [
        ("llama.block_count", 1u64 << 62, "n_layers", "1024"),
        ("llama.block_count", u32::MAX as u64, "n_layers", "1024"),
        ("llama.feed_forward_length", 1 << 36, "ffn_dim", "1048576"),
        ("llama.attention.key_length", 1 << 40, "head_dim", "1024"),
        ("llama.embedding_length", 1 << 40, "d_model", "131072"),
        ("llama.attention.head_count", 1 << 33, "n_heads", "1024"),
    ] {
        let mut w = GgufWriter::tiny_llama();
        w.kv(key, Value::U64(value));
        let e = load(&w, Precision::Q8).expect_err(key).to_string();
        assert!(e.contains("hostile.gguf") && e.contains(field) && e.contains(limit) && e.contains(&value.to_string()), "{key} = {value}: {e}");
    }
}

#[test]
fn sizes_within_limits_are_checked_against_the_weights_present() {
    // Plausible claims the file cannot back: each names the tensor or the layer count.
    for (key, value, needle) in [
        ("llama.block_count", 30u64, "n_layers = 30 but the weights hold 1 layer(s)"),
        ("llama.feed_forward_length", 50_000, "blk.0.ffn_gate.weight"),
        ("llama.attention.key_length", 512, "blk.0.attn_q.weight"),
        ("llama.embedding_length", 4096, "token_embd.weight"),
    ] {
        let mut w = GgufWriter::tiny_llama();
        w.kv(key, Value::U64(value));
        let e = load(&w, Precision::Q8).expect_err(key).to_string();
        assert!(e.contains(needle), "{key} = {value}: {e}");
    }
    // A fraction or a negative size is not rounded into range.
    let mut w = GgufWriter::tiny_llama();
    w.kv("llama.block_count", Value::F64(1.5));
    assert!(load(&w, Precision::F32).unwrap_err().to_string().contains("'llama.block_count' = 1.5 is not a whole"));
    let mut w = GgufWriter::tiny_llama();
    w.kv("llama.feed_forward_length", Value::I64(-64));
    assert!(load(&w, Precision::F32).unwrap_err().to_string().contains("llama.feed_forward_length"));
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn non_finite_weights_are_refused_at_every_precision_naming_the_tensor() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for tensor in ["blk.0.ffn_up.weight", "token_embd.weight", "blk.0.attn_norm.weight"] {
            let mut w = GgufWriter::tiny_llama();
            let mut v: Vec<f32> = w.tensor_bytes(tensor).unwrap().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            v[5] = bad;
            w.replace_tensor(tensor, GgmlType::F32, f32_bytes(&v));
            for p in [Precision::F32, Precision::F16, Precision::Q8] {
                let e = load(&w, p).expect_err(&format!("{bad} in {tensor} at {p}"));
                assert!(matches!(e, LoadError::NonFinite { index: 5, .. }), "{p}: {e}");
                assert!(e.to_string().contains(tensor), "{e}");
            }
        }
    }
    // An F16 tensor holding NaN (decoded to f32 on load) and raw Q8_0 blocks with a NaN scale
    // (passed through without decoding at q8) are refused too.
    let mut w = GgufWriter::tiny_llama();
    let mut h: Vec<u8> = w.tensor_bytes("blk.0.attn_v.weight").unwrap().chunks(4).flat_map(|c| f16::from_f32(f32::from_le_bytes(c.try_into().unwrap())).to_le_bytes()).collect();
    h[14..16].copy_from_slice(&f16::NAN.to_le_bytes());
    w.replace_tensor("blk.0.attn_v.weight", GgmlType::F16, h);
    for p in [Precision::F32, Precision::F16, Precision::Q8] {
        let e = load(&w, p).unwrap_err();
        assert!(matches!(&e, LoadError::NonFinite { tensor, index: 7, .. } if tensor == "blk.0.attn_v.weight"), "{p}: {e}");
    }
    for scale in [f16::NAN, f16::INFINITY] {
        let mut w = GgufWriter::tiny_llama();
        // 32 × 32 Q8_0: 32 rows of one 34-byte block (f16 scale, 32 int8).
        let mut q = Vec::new();
        for row in 0..32 {
            q.extend_from_slice(&(if row == 3 { scale } else { f16::from_f32(0.01) }).to_le_bytes());
            q.extend((0..32).map(|i| (i as i8 - 16) as u8));
        }
        w.replace_tensor("blk.0.attn_q.weight", GgmlType::Q8_0, q);
        for p in [Precision::F32, Precision::F16, Precision::Q8] {
            let e = load(&w, p).unwrap_err();
            assert!(matches!(&e, LoadError::NonFinite { tensor, .. } if tensor == "blk.0.attn_q.weight"), "{p}: {e}");
        }
    }
}

#[test]
fn token_ids_out_of_range_are_refused_not_truncated() {
    let mut w = GgufWriter::tiny_llama();
    w.kv("tokenizer.ggml.eos_token_id", Value::U64((1 << 40) + 5));
    let f = open(&w);
    let e = gguf_eos_ids(&f, 256).unwrap_err().to_string();
    assert!(e.contains("tokenizer.ggml.eos_token_id") && e.contains("1099511627781") && e.contains("255"), "{e}");
    let e = speccascade_models::tokenizer::Tokenizer::from_gguf(&f).unwrap_err().to_string();
    assert!(e.contains("tokenizer.ggml.eos_token_id") && e.contains("1099511627781"), "{e}");
    assert!(load(&w, Precision::Q8).is_err());
    // In range it is kept as it is.
    w.kv("tokenizer.ggml.eos_token_id", Value::U64(5));
    assert_eq!(gguf_eos_ids(&open(&w), 256).unwrap(), vec![5]);
}

#[test]
fn metadata_arrays_are_packed_not_inflated() {
    // 80 MB of u8 in one array: held as 80 MB (a Vec<u8>), not one 32-byte value per element.
    let mut w = GgufWriter::tiny_llama();
    w.kv("test.blob", Value::Array(Array::U8(vec![7u8; 80 << 20])));
    let f = open(&w);
    match f.get("test.blob") {
        Some(Value::Array(Array::U8(v))) => assert_eq!(v.len(), 80 << 20),
        other => panic!("expected a packed u8 array, got {:?}", other.map(|v| v.type_name())),
    }
    // Counts that the remaining bytes cannot hold are refused before reserving anything.
    let mut b = GgufWriter::tiny_llama();
    b.kv("test.big", Value::Array(Array::U64(vec![1, 2, 3])));
    let mut bytes = b.to_bytes();
    let at = bytes.windows(8).position(|x| x == b"test.big").unwrap() + 8 + 4 + 4; // key, value type, elem type
    bytes[at..at + 8].copy_from_slice(&(1u64 << 59).to_le_bytes());
    let e = GgufFile::from_bytes("hostile.gguf", bytes).unwrap_err().to_string();
    assert!(e.contains("test.big") && e.contains("576460752303423488"), "{e}");
}

/// A tiny HF directory: config.json (from `config`) and a single safetensors file with the tensors
/// of the tiny llama (F32).
fn hf_dir(config: serde_json::Value, header_override: Option<Vec<u8>>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let g = GgufFile::from_bytes("base.gguf", GgufWriter::tiny_llama().to_bytes()).unwrap();
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    let hf = |gguf: &str| -> String {
        match gguf {
            "token_embd.weight" => "model.embed_tokens.weight".into(),
            "output_norm.weight" => "model.norm.weight".into(),
            _ => {
                let rest = gguf.strip_prefix("blk.0.").unwrap();
                let (m, k) = rest.rsplit_once('.').unwrap();
                let m = match m {
                    "attn_norm" => "input_layernorm",
                    "ffn_norm" => "post_attention_layernorm",
                    "attn_q" => "self_attn.q_proj",
                    "attn_k" => "self_attn.k_proj",
                    "attn_v" => "self_attn.v_proj",
                    "attn_output" => "self_attn.o_proj",
                    "ffn_gate" => "mlp.gate_proj",
                    "ffn_up" => "mlp.up_proj",
                    "ffn_down" => "mlp.down_proj",
                    other => panic!("{other}"),
                };
                format!("model.layers.0.{m}.{k}")
            }
        }
    };
    for t in g.tensors() {
        let bytes = g.tensor_data(&t.name).unwrap();
        header.insert(hf(&t.name), serde_json::json!({"dtype": "F32", "shape": t.shape(), "data_offsets": [data.len(), data.len() + bytes.len()]}));
        data.extend_from_slice(bytes);
    }
    let h = header_override.unwrap_or_else(|| serde_json::to_vec(&header).unwrap());
    let mut file = (h.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&h);
    file.extend_from_slice(&data);
    std::fs::write(dir.path().join("model.safetensors"), file).unwrap();
    std::fs::write(dir.path().join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    dir
}

fn tiny_config() -> serde_json::Value {
    serde_json::json!({
        "model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 256, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 256, "tie_word_embeddings": true, "eos_token_id": 0
    })
}

fn load_hf(dir: &tempfile::TempDir) -> Result<(), LoadError> {
    let opts = TransformerOptions { precision: Precision::F32, ..TransformerOptions::default() };
    load_hf_dir(dir.path(), "hf", &opts).map(|_| ())
}

#[test]
fn hf_directories_are_checked_before_the_skeleton_is_built() {
    load_hf(&hf_dir(tiny_config(), None)).expect("the tiny HF directory loads");
    let mut c = tiny_config();
    c["num_hidden_layers"] = serde_json::json!(1_000_000);
    let e = load_hf(&hf_dir(c, None)).unwrap_err().to_string();
    assert!(e.contains("n_layers") && e.contains("1000000") && e.contains("1024"), "{e}");
    let mut c = tiny_config();
    c["num_hidden_layers"] = serde_json::json!(40);
    let e = load_hf(&hf_dir(c, None)).unwrap_err().to_string();
    assert!(e.contains("n_layers = 40 but the weights hold 1 layer(s)"), "{e}");
    let mut c = tiny_config();
    c["intermediate_size"] = serde_json::json!(1 << 19);
    let e = load_hf(&hf_dir(c, None)).unwrap_err().to_string();
    assert!(e.contains("blk.0.ffn_gate.weight") && e.contains("524288"), "{e}");
    let mut c = tiny_config();
    c["eos_token_id"] = serde_json::json!((1u64 << 40) + 5);
    let e = load_hf(&hf_dir(c, None)).unwrap_err().to_string();
    assert!(e.contains("eos_token_id 1099511627781") && e.contains("config.json"), "{e}");
}

#[test]
fn forged_safetensors_headers_are_refused() {
    // Header length beyond the file, a tensor's byte range beyond the data, and a shape whose
    // byte count does not match its range.
    let dir = hf_dir(tiny_config(), None);
    let p = dir.path().join("model.safetensors");
    let mut b = std::fs::read(&p).unwrap();
    b[..8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let e = load_hf(&dir).unwrap_err().to_string();
    assert!(e.contains("model.safetensors") && e.contains("header length 1152921504606846976"), "{e}");
    let bad = serde_json::to_vec(&serde_json::json!({"model.norm.weight": {"dtype": "F32", "shape": [1u64 << 40], "data_offsets": [0, 128]}})).unwrap();
    let e = load_hf(&hf_dir(tiny_config(), Some(bad))).unwrap_err().to_string();
    assert!(e.contains("model.norm.weight") && e.contains("1099511627776"), "{e}");
    let bad = serde_json::to_vec(&serde_json::json!({"model.norm.weight": {"dtype": "F32", "shape": [32], "data_offsets": [0, 1u64 << 50]}})).unwrap();
    let e = load_hf(&hf_dir(tiny_config(), Some(bad))).unwrap_err().to_string();
    assert!(e.contains("model.norm.weight"), "{e}");
}
