//! Tokenizers for the models: byte-level BPE built from GGUF metadata (`tokenizer.ggml.*`, with the
//! pre-tokenizer named by `tokenizer.ggml.pre`) or loaded from a Hugging Face `tokenizer.json`;
//! streaming detokenization that never splits a UTF-8 character; the ChatML and Gemma chat templates.
//!
//! ```no_run
//! use speccascade_models::{gguf::GgufFile, tokenizer::{Tokenizer, ChatMessage}};
//! let tok = Tokenizer::from_gguf(&GgufFile::open("model.gguf")?)?;
//! let prompt = tok.apply_chat(&[ChatMessage::user("def fib(n):")], true)?;
//! let ids = tok.encode(&prompt, true)?;          // `<|im_start|>` etc. become control tokens
//! let mut stream = tok.stream(true);
//! for &id in &ids { print!("{}", stream.push(id)); }  // only complete characters
//! print!("{}", stream.finish());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Encoding goes through the `tokenizers` crate (the library behind Hugging Face's fast
//! tokenizers): the GGUF vocabulary and merges become its BPE model, control tokens (token type 3)
//! its special tokens, user-defined tokens (type 4) its added tokens. Decoding uses our own
//! id → bytes table, so a streamed character is emitted only once all its bytes have arrived.

mod chat;
mod gguf_spm;
mod gguf_vocab;
mod stream;

pub use chat::{ChatMessage, ChatStyle, ChatTemplate};
pub use stream::StreamDecoder;

use std::path::{Path, PathBuf};

/// What went wrong building or using a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{source_name}: tokenizer model '{model}' is not supported (GGUF metadata can give byte-level BPE, `gpt2`, or SentencePiece, `llama`)")]
    UnsupportedModel { source_name: String, model: String },
    #[error("{source_name}: pre-tokenizer '{pre}' (tokenizer.ggml.pre) is not supported; supported: {supported}")]
    UnsupportedPre { source_name: String, pre: String, supported: String },
    #[error("{source_name}: invalid tokenizer data: {message}")]
    Invalid { source_name: String, message: String },
    #[error("encoding failed: {0}")]
    Encode(String),
    #[error("{0}")]
    Chat(String),
}

pub type Result<T> = std::result::Result<T, TokenizerError>;

/// How token strings map back to bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// GPT-2 byte-level: every character of a token stands for one byte.
    ByteLevel,
    /// SentencePiece style: `▁` is a space, `<0xNN>` a raw byte, the rest UTF-8.
    SentencePiece { strip_leading_space: bool },
}

/// A tokenizer with its special ids and chat template.
pub struct Tokenizer {
    /// Splits control tokens out of the text (`<|im_start|>` → one id).
    special: tokenizers::Tokenizer,
    /// Treats control-token strings as plain text.
    plain: tokenizers::Tokenizer,
    /// id → bytes of its text (control/added tokens: their content).
    token_bytes: Vec<Vec<u8>>,
    /// id → whether it is a control (special) token.
    is_control: Vec<bool>,
    surface: Surface,
    bos: Option<u32>,
    eos: Vec<u32>,
    add_bos: bool,
    chat: Option<ChatTemplate>,
    source_name: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("source", &self.source_name)
            .field("vocab", &self.token_bytes.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

impl Tokenizer {
    /// Build the tokenizer stored in a GGUF file's metadata: byte-level BPE
    /// (`tokenizer.ggml.model = gpt2`) or a SentencePiece vocabulary with scores (`llama`).
    pub fn from_gguf(file: &crate::gguf::GgufFile) -> Result<Tokenizer> {
        match file.get_str("tokenizer.ggml.model")? {
            "llama" => gguf_spm::build(file),
            _ => gguf_vocab::build(file),
        }
    }

    /// Build the tokenizer of a resolved model location (GGUF metadata or the HF directory's
    /// `tokenizer.json`).
    pub fn from_location(loc: &crate::registry::ModelLocation) -> Result<Tokenizer> {
        match loc {
            crate::registry::ModelLocation::Gguf { path } => Self::from_gguf(&crate::gguf::GgufFile::open(path)?),
            crate::registry::ModelLocation::HfDir { dir, .. } => Self::from_hf_dir(dir),
        }
    }

    /// Load `tokenizer.json` from a Hugging Face directory; special ids and the chat template come
    /// from `tokenizer_config.json`, `generation_config.json` and `config.json` when present.
    pub fn from_hf_dir(dir: &Path) -> Result<Tokenizer> {
        chat::from_hf_dir(dir)
    }

    /// Assemble from a built `tokenizers::Tokenizer` (control tokens already registered).
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        special: tokenizers::Tokenizer,
        token_strings: Vec<String>,
        is_control: Vec<bool>,
        raw_tokens: Vec<bool>,
        surface: Surface,
        bos: Option<u32>,
        eos: Vec<u32>,
        add_bos: bool,
        chat: Option<ChatTemplate>,
        source_name: String,
    ) -> Tokenizer {
        let mut plain = special.clone();
        plain.set_encode_special_tokens(true);
        let inverse = stream::byte_decoder();
        let token_bytes = token_strings
            .iter()
            .zip(&raw_tokens)
            .map(|(s, &raw)| if raw { s.as_bytes().to_vec() } else { stream::surface_bytes(s, surface, &inverse) })
            .collect();
        Tokenizer { special, plain, token_bytes, is_control, surface, bos, eos, add_bos, chat, source_name }
    }

    /// Token ids of `text` (no BOS added). With `parse_special`, control-token strings in the text
    /// (`<|im_start|>`, …) become their ids; without, they are tokenized as ordinary text.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let tok = if parse_special { &self.special } else { &self.plain };
        let enc = tok.encode_fast(text, false).map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Where each token of `text` ends, as a byte offset into `text` (at a char boundary,
    /// non-decreasing): `&text[..ends[k - 1]]` is the text of its first `k` tokens. Control-token
    /// strings count as plain text, as in a prompt's input field.
    pub fn token_ends(&self, text: &str) -> Result<Vec<usize>> {
        let enc = self.plain.encode(text, false).map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let mut last = 0;
        Ok(enc
            .get_offsets()
            .iter()
            .map(|&(_, end)| {
                let mut e = end.clamp(last, text.len());
                while !text.is_char_boundary(e) {
                    e -= 1;
                }
                last = last.max(e);
                last
            })
            .collect())
    }

    /// A model's prompt (or encoder input): [`Self::encode`], then what the checkpoint's
    /// tokenizer says to add. A `tokenizer.json` post-processor is applied as written (Gemma's
    /// prepends `<bos>`, T5's appends `</s>`); without one, the BOS id is prepended when the model
    /// asks for it (`tokenizer.ggml.add_bos_token`, `add_bos_token`).
    pub fn encode_prompt(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        use tokenizers::PostProcessor;
        // A post-processor that adds tokens (TemplateProcessing, BertProcessing, …) is the
        // checkpoint's own statement of what a prompt looks like; otherwise BOS by the flag.
        if self.special.get_post_processor().is_some_and(|pp| pp.added_tokens(false) > 0) {
            let tok = if parse_special { &self.special } else { &self.plain };
            let enc = tok.encode_fast(text, true).map_err(|e| TokenizerError::Encode(e.to_string()))?;
            return Ok(enc.get_ids().to_vec());
        }
        let mut ids = Vec::new();
        if self.add_bos {
            ids.extend(self.bos);
        }
        ids.extend(self.encode(text, parse_special)?);
        Ok(ids)
    }

    /// The bytes `id` stands for (empty for ids outside the vocabulary).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes.get(id as usize).map(|b| b.as_slice()).unwrap_or(&[])
    }

    /// Whether `id` is a control token (`<|im_end|>`, `<|endoftext|>`, …).
    pub fn is_control(&self, id: u32) -> bool {
        self.is_control.get(id as usize).copied().unwrap_or(false)
    }

    /// Text of `ids`; invalid UTF-8 (e.g. a cut-off character at the end) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let mut s = self.stream(skip_special);
        let mut out = String::new();
        for &id in ids {
            out.push_str(&s.push(id));
        }
        out.push_str(&s.finish());
        out
    }

    /// An incremental decoder for streaming generation.
    pub fn stream(&self, skip_special: bool) -> StreamDecoder<'_> {
        StreamDecoder::new(self, skip_special)
    }

    /// Number of ids (including control and unused tokens).
    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }
    /// Ids that end generation (EOS, and for ChatML models `<|im_end|>`/`<|endoftext|>` too).
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos
    }
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    /// The id of a token string, control tokens included.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.special.token_to_id(token)
    }
    /// The token string of `id` as stored in the vocabulary (byte-level surface form).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.special.id_to_token(id)
    }
    /// The chat template, if the model has a supported one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat.as_ref()
    }
    /// Render `messages` with the model's chat template (ChatML or Gemma), ending with the assistant
    /// header when `add_generation_prompt`.
    pub fn apply_chat(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let t = self.chat.as_ref().ok_or_else(|| {
            TokenizerError::Chat(format!(
                "{}: no supported chat template (ChatML `<|im_start|>` and Gemma `<start_of_turn>` templates are implemented)",
                self.source_name
            ))
        })?;
        Ok(t.render(messages, add_generation_prompt))
    }
    /// The underlying `tokenizers` tokenizer (control tokens parsed).
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.special
    }
}
