//! Building a SentencePiece tokenizer from GGUF metadata (`tokenizer.ggml.model = llama`: Gemma,
//! Llama 2, Mistral): vocabulary `tokenizer.ggml.tokens`, scores `tokenizer.ggml.scores`, kinds
//! `tokenizer.ggml.token_type`.
//!
//! The vocabulary becomes a `tokenizers` BPE with byte fallback, its merges derived the way
//! transformers converts a GGUF SentencePiece vocabulary (`generate_merges`): every split of a
//! piece into two vocabulary pieces is a merge, ranked by the merged piece's score (Gemma: by its
//! position in the vocabulary, which is what its merge order follows), so the best merge applies
//! first, which is SentencePiece's BPE. Spaces become `▁`; with `tokenizer.ggml.add_space_prefix` (Llama 2, default true;
//! Gemma writes false) one is prepended. Characters no piece covers fall back to `<0xNN>` bytes.

use std::collections::HashMap;

use tokenizers::NormalizerWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormSequence};

use super::{ChatTemplate, Result, Surface, Tokenizer, TokenizerError};
use crate::gguf::GgufFile;

/// llama.cpp's token type of the unknown token (`llama_token_type`).
const TOKEN_UNKNOWN: i64 = 2;

fn invalid(file: &GgufFile, message: String) -> TokenizerError {
    TokenizerError::Invalid {
        source_name: file.path().display().to_string(),
        message,
    }
}

/// The merges a SentencePiece vocabulary implies, best first, exactly as transformers derives them
/// (`generate_merges`): every split of a piece into two vocabulary pieces, grouped by piece in
/// vocabulary order and within a piece by the parts' ids, then stably sorted by the piece's rank
/// (higher first), the left part's length and the right part's length (longer first).
pub(crate) fn derive_merges(tokens: &[String], rank: &[f32]) -> Vec<(String, String)> {
    // Python's dict comprehension keeps the last id of a duplicated token.
    let ids: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut found: Vec<(f32, usize, usize, usize, usize)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if ids.get(piece.as_str()) != Some(&id) {
            continue; // a duplicate: the dict holds it once
        }
        let mut local = Vec::new();
        for (cut, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(cut);
            if let (Some(&li), Some(&ri)) = (ids.get(l), ids.get(r)) {
                local.push((li, ri));
            }
        }
        local.sort();
        for (li, ri) in local {
            found.push((
                rank[id],
                tokens[li].chars().count(),
                tokens[ri].chars().count(),
                li,
                ri,
            ));
        }
    }
    found.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
    found
        .into_iter()
        .map(|(_, _, _, l, r)| (tokens[l].clone(), tokens[r].clone()))
        .collect()
}

pub(super) fn build(file: &GgufFile) -> Result<Tokenizer> {
    let source_name = file.path().display().to_string();
    let tokens = file.get_str_array("tokenizer.ggml.tokens")?;
    let n = tokens.len();
    let scores = match file.get("tokenizer.ggml.scores") {
        Some(_) => file.get_f32_array("tokenizer.ggml.scores")?,
        None => {
            return Err(invalid(
                file,
                "tokenizer.ggml.scores is missing (a SentencePiece vocabulary needs scores)".into(),
            ));
        }
    };
    let types = match file.get("tokenizer.ggml.token_type") {
        Some(_) => file.get_i64_array("tokenizer.ggml.token_type")?,
        None => vec![1; n],
    };
    if scores.len() != n || types.len() != n {
        return Err(invalid(
            file,
            format!(
                "{n} tokens but {} scores and {} token types",
                scores.len(),
                types.len()
            ),
        ));
    }
    let gemma = file.architecture().is_ok_and(|a| a.starts_with("gemma"));
    // Gemma files store a token of two or more spaces as real spaces, which the normalizer never
    // produces (it writes `▁`), and their scores do not follow the merge order, their token order
    // does (transformers' `gemma_tokenizer` makes the same two fixes).
    let tokens: Vec<String> = tokens
        .iter()
        .map(|t| {
            if gemma && t.contains(' ') && t.trim().is_empty() {
                "\u{2581}".repeat(t.chars().count())
            } else {
                t.to_string()
            }
        })
        .collect();
    let rank: Vec<f32> = if gemma {
        (0..n).map(|i| -(i as f32)).collect()
    } else {
        scores.clone()
    };
    let mut vocab = tokenizers::models::bpe::Vocab::with_capacity(n);
    for (id, t) in tokens.iter().enumerate() {
        vocab.insert(t.clone(), id as u32);
    }
    let merges = derive_merges(&tokens, &rank);
    let unk = types
        .iter()
        .position(|&t| t == TOKEN_UNKNOWN)
        .map(|i| tokens[i].to_string());
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(u) = &unk {
        builder = builder.unk_token(u.clone());
    }
    let bpe = builder
        .build()
        .map_err(|e| invalid(file, format!("cannot build the SentencePiece BPE: {e}")))?;
    let mut tok = tokenizers::Tokenizer::new(bpe);
    let add_space_prefix = file
        .get("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let replace: NormalizerWrapper = Replace::new(" ", "\u{2581}")
        .map_err(|e| invalid(file, e.to_string()))?
        .into();
    let normalizer: NormalizerWrapper = if add_space_prefix {
        NormSequence::new(vec![Prepend::new("\u{2581}".into()).into(), replace]).into()
    } else {
        replace
    };
    tok.with_normalizer(Some(normalizer))
        .map_err(|e| invalid(file, e.to_string()))?;

    let (is_control, raw) = super::gguf_vocab::add_typed_tokens(&mut tok, &tokens, &types, file)?;
    // SentencePiece models prepend BOS unless the file says otherwise (llama.cpp's default).
    let (bos, add_bos, mut eos) = super::gguf_vocab::special_ids(file, tokens.len(), true)?;
    let chat = file
        .get("tokenizer.chat_template")
        .and_then(|v| v.as_str())
        .and_then(ChatTemplate::from_jinja);
    if let Some(t) = &chat
        && let Some(id) = tokens
            .iter()
            .position(|x| x == t.end_of_turn())
            .map(|i| i as u32)
        && !eos.contains(&id)
    {
        eos.push(id);
    }
    for &id in eos.iter().chain(&bos) {
        if id as usize >= n {
            return Err(invalid(
                file,
                format!("special token id {id} is outside the vocabulary of {n}"),
            ));
        }
    }
    let strings = tokens.clone();
    let surface = Surface::SentencePiece {
        strip_leading_space: add_space_prefix,
    };
    Ok(Tokenizer::assemble(
        tok,
        strings,
        is_control,
        raw,
        surface,
        bos,
        eos,
        add_bos,
        chat,
        source_name,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_rank_by_the_merged_pieces_score_then_part_lengths() {
        let tokens: Vec<String> = ["<unk>", "a", "b", "c", "ab", "bc", "abc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let scores = [0.0, -1.0, -1.0, -1.0, -3.0, -2.0, -4.0];
        let m = derive_merges(&tokens, &scores);
        let m: Vec<String> = m.into_iter().map(|(a, b)| format!("{a}+{b}")).collect();
        // "abc" splits as a+bc and ab+c: the longer left part first.
        assert_eq!(m, ["b+c", "a+b", "ab+c", "a+bc"]);
    }
}
