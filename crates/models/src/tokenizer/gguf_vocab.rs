//! Building a byte-level BPE tokenizer from GGUF metadata, the way llama.cpp does for
//! `tokenizer.ggml.model = gpt2`: vocabulary `tokenizer.ggml.tokens`, merges
//! `tokenizer.ggml.merges` ("left right"), token kinds `tokenizer.ggml.token_type`, and the
//! pre-tokenizer named by `tokenizer.ggml.pre`.

use super::{ChatTemplate, Result, Surface, Tokenizer, TokenizerError};
use crate::gguf::GgufFile;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior};

/// llama.cpp's token types (`llama_token_type`).
const TOKEN_CONTROL: i64 = 3;
const TOKEN_USER_DEFINED: i64 = 4;

/// Qwen2's split regex (from its `tokenizer.json`; llama.cpp `LLAMA_VOCAB_PRE_TYPE_QWEN2`).
pub const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's split regex (`llama-bpe`): like Qwen2's but digits in groups of up to three.
pub const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The pre-tokenizers this module can build, by `tokenizer.ggml.pre` value.
pub const SUPPORTED_PRE: &[&str] = &["qwen2", "smollm", "starcoder", "gpt-2", "llama-bpe"];

/// Pre-tokenization (and normalization) for a `tokenizer.ggml.pre` value, mirroring the
/// `tokenizer.json` of the model family.
fn pipeline(pre: &str) -> Option<(bool, PreTokenizerWrapper)> {
    let split = |pattern: &str| -> PreTokenizerWrapper {
        Split::new(SplitPattern::Regex(pattern.to_string()), SplitDelimiterBehavior::Isolated, false)
            .expect("valid built-in regex")
            .into()
    };
    let bytes_only: PreTokenizerWrapper = ByteLevel::new(false, false, false).into();
    Some(match pre {
        // Qwen2: NFC, the Qwen2 split regex, then the byte-level mapping.
        "qwen2" => (true, Sequence::new(vec![split(QWEN2_PATTERN), bytes_only]).into()),
        "llama-bpe" | "llama3" => (false, Sequence::new(vec![split(LLAMA3_PATTERN), bytes_only]).into()),
        // SmolLM / StarCoder: every digit alone, then GPT-2's byte-level regex split.
        "smollm" | "starcoder" => {
            (false, Sequence::new(vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()]).into())
        }
        "gpt-2" | "gpt2" => (false, ByteLevel::new(false, true, true).into()),
        _ => return None,
    })
}

fn invalid(file: &GgufFile, message: String) -> TokenizerError {
    TokenizerError::Invalid { source_name: file.path().display().to_string(), message }
}

pub(super) fn build(file: &GgufFile) -> Result<Tokenizer> {
    let source_name = file.path().display().to_string();
    let model = file.get_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(TokenizerError::UnsupportedModel { source_name, model: model.to_string() });
    }
    let pre = file.get_str("tokenizer.ggml.pre").unwrap_or("gpt-2");
    let (nfc, pre_tokenizer) = pipeline(pre).ok_or_else(|| TokenizerError::UnsupportedPre {
        source_name: source_name.clone(),
        pre: pre.to_string(),
        supported: SUPPORTED_PRE.join(", "),
    })?;

    let tokens = file.get_str_array("tokenizer.ggml.tokens")?;
    let types = match file.get("tokenizer.ggml.token_type") {
        Some(_) => file.get_i64_array("tokenizer.ggml.token_type")?,
        None => vec![1; tokens.len()],
    };
    if types.len() != tokens.len() {
        return Err(invalid(
            file,
            format!("tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens {}", types.len(), tokens.len()),
        ));
    }
    let merges_raw = file.get_str_array("tokenizer.ggml.merges")?;

    let mut vocab = tokenizers::models::bpe::Vocab::with_capacity(tokens.len());
    for (id, t) in tokens.iter().enumerate() {
        // Duplicates keep the first id (llama.cpp maps token → first id as well).
        vocab.entry(t.to_string()).or_insert(id as u32);
    }
    let mut merges = Vec::with_capacity(merges_raw.len());
    for (i, m) in merges_raw.iter().enumerate() {
        let (a, b) = m
            .split_once(' ')
            .ok_or_else(|| invalid(file, format!("tokenizer.ggml.merges[{i}] = {m:?} is not \"left right\"")))?;
        merges.push((a.to_string(), b.to_string()));
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| invalid(file, format!("cannot build BPE from vocabulary and merges: {e}")))?;

    let mut tok = tokenizers::Tokenizer::new(bpe);
    if nfc {
        tok.with_normalizer(Some(NFC)).map_err(|e| invalid(file, e.to_string()))?;
    }
    tok.with_pre_tokenizer(Some(pre_tokenizer));
    tok.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));

    let (is_control, raw) = add_typed_tokens(&mut tok, &tokens, &types, file)?;
    let (bos, add_bos, mut eos) = special_ids(file, tokens.len(), false)?;
    let chat = file.get("tokenizer.chat_template").and_then(|v| v.as_str()).and_then(ChatTemplate::from_jinja);
    if chat.is_some() {
        // A ChatML turn ends with <|im_end|>; base-style continuations end with <|endoftext|>.
        for t in ["<|im_end|>", "<|endoftext|>"] {
            if let Some(&id) = tokens.iter().position(|x| *x == t).map(|i| i as u32).as_ref()
                && !eos.contains(&id) {
                    eos.push(id);
                }
        }
    }
    for &id in eos.iter().chain(&bos) {
        if id as usize >= tokens.len() {
            return Err(invalid(file, format!("special token id {id} is outside the vocabulary of {}", tokens.len())));
        }
    }
    let strings = tokens.iter().map(|s| s.to_string()).collect();
    Ok(Tokenizer::assemble(tok, strings, is_control, raw, Surface::ByteLevel, bos, eos, add_bos, chat, source_name))
}

/// Register a GGUF vocabulary's control tokens (type 3) as special tokens and its user-defined
/// tokens (type 4) as added tokens; returns per id whether it is a control token and whether its
/// text is taken verbatim (not through the surface mapping).
pub(super) fn add_typed_tokens<T: AsRef<str>>(
    tok: &mut tokenizers::Tokenizer,
    tokens: &[T],
    types: &[i64],
    file: &GgufFile,
) -> Result<(Vec<bool>, Vec<bool>)> {
    let mut control = Vec::new();
    let mut user = Vec::new();
    let mut is_control = vec![false; tokens.len()];
    let mut raw = vec![false; tokens.len()];
    for (id, (t, &ty)) in tokens.iter().zip(types).enumerate() {
        match ty {
            TOKEN_CONTROL => {
                control.push(AddedToken::from(t.as_ref().to_string(), true).normalized(false));
                is_control[id] = true;
                raw[id] = true;
            }
            TOKEN_USER_DEFINED => {
                user.push(AddedToken::from(t.as_ref().to_string(), false).normalized(false));
                raw[id] = true;
            }
            _ => {}
        }
    }
    tok.add_special_tokens(control).map_err(|e| invalid(file, format!("control tokens: {e}")))?;
    tok.add_tokens(user).map_err(|e| invalid(file, format!("user-defined tokens: {e}")))?;
    Ok((is_control, raw))
}

/// BOS id, whether to prepend it (`tokenizer.ggml.add_bos_token`, else `default_add_bos`), and the
/// EOS ids (`eos_token_id`, then `eot_token_id`).
/// BOS, whether to add it, and the EOS ids from GGUF metadata. A special token id must index the
/// vocabulary of `vocab` tokens: out of range is an error, never truncated.
pub(super) fn special_ids(file: &GgufFile, vocab: usize, default_add_bos: bool) -> Result<(Option<u32>, bool, Vec<u32>)> {
    let id_key = |k: &str| -> Result<Option<u32>> {
        match file.get(k) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(id) if id < vocab as u64 => Ok(Some(id as u32)),
                _ => Err(invalid(file, format!("metadata '{k}' = {v} is outside the vocabulary of {vocab} tokens"))),
            },
        }
    };
    let bos = id_key("tokenizer.ggml.bos_token_id")?;
    let add_bos = file.get("tokenizer.ggml.add_bos_token").and_then(|v| v.as_bool()).unwrap_or(default_add_bos);
    let mut eos: Vec<u32> = id_key("tokenizer.ggml.eos_token_id")?.into_iter().collect();
    if let Some(e) = id_key("tokenizer.ggml.eot_token_id")?
        && !eos.contains(&e)
    {
        eos.push(e);
    }
    Ok((bos, add_bos, eos))
}
