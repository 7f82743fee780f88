//! The chat templates of the instruct models, and loading a tokenizer from a Hugging Face
//! directory.
//!
//! Two template families are implemented: ChatML (`<|im_start|>role\ncontent<|im_end|>\n`, then
//! `<|im_start|>assistant\n`) and Gemma's (`<start_of_turn>user\ncontent<end_of_turn>\n`, the
//! assistant's role spelled `model`, then `<start_of_turn>model\n`). The default system prompt, used when the conversation has none, is
//! read from the model's own Jinja template: Qwen2.5 says "You are Qwen, created by Alibaba Cloud.
//! You are a helpful assistant.", SmolLM2 "You are a helpful AI assistant named SmolLM, trained by
//! Hugging Face".

use super::{Result, Surface, Tokenizer, TokenizerError};
use std::path::Path;

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage { role: role.into(), content: content.into() }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Which family of chat template a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChatStyle {
    /// `<|im_start|>role\n…<|im_end|>\n` (Qwen2.5, SmolLM2).
    #[default]
    ChatMl,
    /// `<start_of_turn>role\n…<end_of_turn>\n` with `model` for the assistant (Gemma 1/2/3). The
    /// template's leading `{{ bos_token }}` is left to [`super::Tokenizer::encode_prompt`], which
    /// prepends `<bos>` as the tokenizer.json post-processor says, so it is never doubled.
    Gemma,
}

/// A chat template with the model's default system prompt.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChatTemplate {
    /// Inserted as the first turn when the conversation does not start with a system message.
    pub default_system: Option<String>,
    pub style: ChatStyle,
}

impl ChatTemplate {
    /// Recognise a Jinja chat template: ChatML templates (containing `<|im_start|>`) are
    /// supported; anything else gives `None`.
    pub fn from_jinja(template: &str) -> Option<ChatTemplate> {
        if template.contains("<start_of_turn>") {
            return Some(ChatTemplate { default_system: None, style: ChatStyle::Gemma });
        }
        if !template.contains("<|im_start|>") {
            return None;
        }
        Some(ChatTemplate { default_system: default_system(template), style: ChatStyle::ChatMl })
    }

    /// The token that ends an assistant turn.
    pub fn end_of_turn(&self) -> &'static str {
        match self.style {
            ChatStyle::ChatMl => "<|im_end|>",
            ChatStyle::Gemma => "<end_of_turn>",
        }
    }

    /// Render `messages`; with `add_generation_prompt`, end with the assistant's header.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        if self.style == ChatStyle::Gemma {
            return render_gemma(messages, add_generation_prompt);
        }
        let mut out = String::new();
        let has_system = messages.first().is_some_and(|m| m.role == "system");
        if let (false, Some(sys)) = (has_system, &self.default_system) {
            out.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
        }
        for m in messages {
            out.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content));
        }
        if add_generation_prompt {
            out.push_str("<|im_start|>assistant\n");
        }
        out
    }
}

/// Gemma's template (Gemma 3's `chat_template.jinja`): a system message has no turn of its own, its
/// text opens the first user turn followed by a blank line; `assistant` is spelled `model`; every
/// content is trimmed.
fn render_gemma(messages: &[ChatMessage], add_generation_prompt: bool) -> String {
    let (prefix, rest) = match messages.split_first() {
        Some((m, rest)) if m.role == "system" => (format!("{}\n\n", m.content.trim()), rest),
        _ => (String::new(), messages),
    };
    let mut out = String::new();
    for (i, m) in rest.iter().enumerate() {
        let role = if m.role == "assistant" { "model" } else { m.role.as_str() };
        let first = if i == 0 { prefix.as_str() } else { "" };
        out.push_str(&format!("<start_of_turn>{role}\n{first}{}<end_of_turn>\n", m.content.trim()));
    }
    if add_generation_prompt {
        out.push_str("<start_of_turn>model\n");
    }
    out
}

/// The literal default system prompt of a ChatML Jinja template: the text of a string literal
/// `<|im_start|>system\n…<|im_end|>` that contains no template expression.
fn default_system(template: &str) -> Option<String> {
    // The newline appears either escaped inside a Jinja string (`\n`) or literally.
    for marker in ["<|im_start|>system\\n", "<|im_start|>system\n"] {
        let mut rest = template;
        while let Some(i) = rest.find(marker) {
            let after = &rest[i + marker.len()..];
            if let Some(j) = after.find("<|im_end|>") {
                let body = &after[..j];
                if !body.is_empty() && !body.contains(['\'', '"', '{', '}', '+']) {
                    return Some(body.replace("\\n", "\n"));
                }
            }
            rest = after;
        }
    }
    None
}

fn file_err(path: &Path, message: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::File { path: path.to_path_buf(), message: message.to_string() }
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| file_err(path, format!("invalid JSON: {e}")))
}

/// Ids from a JSON value that is an int or a list of ints; an id that is not a token id (negative,
/// fractional, beyond 32 bits) is an error naming the file and field, never truncated.
fn ids_of(path: &Path, field: &str, v: Option<&serde_json::Value>) -> Result<Vec<u32>> {
    let one = |x: &serde_json::Value| {
        x.as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| file_err(path, format!("`{field}`: {x} is not a token id (an integer in 0..=4294967295)")))
    };
    match v {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(a)) => a.iter().map(one).collect(),
        Some(x) => Ok(vec![one(x)?]),
    }
}

/// A token given in tokenizer_config.json as a string or as `{"content": …}`.
fn token_str(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

pub(super) fn from_hf_dir(dir: &Path) -> Result<Tokenizer> {
    let path = dir.join("tokenizer.json");
    let special = tokenizers::Tokenizer::from_file(&path).map_err(|e| file_err(&path, e))?;
    let tok_cfg = read_json(&dir.join("tokenizer_config.json"))?;
    let gen_cfg = read_json(&dir.join("generation_config.json"))?;
    let cfg = read_json(&dir.join("config.json"))?;

    let n = special.get_vocab_size(true);
    let added = special.get_added_tokens_decoder();
    let max_id = added.keys().copied().max().map(|m| m as usize + 1).unwrap_or(0);
    let n = n.max(max_id);
    let mut strings = Vec::with_capacity(n);
    let mut is_control = vec![false; n];
    let mut raw = vec![false; n];
    for id in 0..n as u32 {
        match added.get(&id) {
            Some(t) => {
                strings.push(t.content.clone());
                is_control[id as usize] = t.special;
                raw[id as usize] = true;
            }
            None => strings.push(special.id_to_token(id).unwrap_or_default()),
        }
    }
    let decoder_json = special.get_decoder().and_then(|d| serde_json::to_string(d).ok()).unwrap_or_default();
    let surface = if decoder_json.contains("ByteLevel") {
        Surface::ByteLevel
    } else {
        // Llama 2 / Mistral: `Strip` drops the space the normalizer prepended; the `Metaspace`
        // decoder does the same unless its prepend scheme is "never".
        let metaspace_strips = decoder_json.contains("Metaspace") && !decoder_json.contains("\"never\"");
        Surface::SentencePiece { strip_leading_space: decoder_json.contains("Strip") || metaspace_strips }
    };

    let lookup = |name: &str| -> Option<u32> {
        let s = tok_cfg.as_ref().and_then(|c| token_str(c.get(name)))?;
        special.token_to_id(&s)
    };
    let (gen_path, cfg_path) = (dir.join("generation_config.json"), dir.join("config.json"));
    let mut eos = ids_of(&gen_path, "eos_token_id", gen_cfg.as_ref().and_then(|c| c.get("eos_token_id")))?;
    if eos.is_empty() {
        eos = ids_of(&cfg_path, "eos_token_id", cfg.as_ref().and_then(|c| c.get("eos_token_id")))?;
    }
    if eos.is_empty() {
        eos.extend(lookup("eos_token"));
    }
    let bos = ids_of(&cfg_path, "bos_token_id", cfg.as_ref().and_then(|c| c.get("bos_token_id")))?.first().copied().or_else(|| lookup("bos_token"));
    if let Some(&id) = eos.iter().chain(&bos).find(|&&id| id as usize >= n) {
        return Err(file_err(&cfg_path, format!("special token id {id} (eos_token_id / bos_token_id) is outside the vocabulary of {n} tokens")));
    }
    let add_bos = tok_cfg.as_ref().and_then(|c| c.get("add_bos_token")).and_then(|v| v.as_bool()).unwrap_or(false);
    let template = tok_cfg.as_ref().and_then(|c| c.get("chat_template")).and_then(|t| match t {
        serde_json::Value::String(s) => Some(s.clone()),
        // A list of named templates: take "default".
        serde_json::Value::Array(a) => a
            .iter()
            .find(|x| x.get("name").and_then(|n| n.as_str()) == Some("default"))
            .and_then(|x| x.get("template")?.as_str().map(str::to_string)),
        _ => None,
    });
    let chat = template.as_deref().and_then(ChatTemplate::from_jinja);
    if let Some(t) = chat.as_ref().filter(|t| t.style == ChatStyle::Gemma)
        && let Some(id) = special.token_to_id(t.end_of_turn())
        && !eos.contains(&id)
    {
        eos.push(id);
    }
    if chat.as_ref().is_some_and(|t| t.style == ChatStyle::ChatMl) {
        for t in ["<|im_end|>", "<|endoftext|>"] {
            if let Some(id) = special.token_to_id(t)
                && !eos.contains(&id) {
                    eos.push(id);
                }
        }
    }
    Ok(Tokenizer::assemble(
        special,
        strings,
        is_control,
        raw,
        surface,
        bos,
        eos,
        add_bos,
        chat,
        path.display().to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_system_prompts_are_read_from_templates() {
        let qwen = "{%- else %}\n {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n{%- else %}\n {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}";
        assert_eq!(
            ChatTemplate::from_jinja(qwen).unwrap().default_system.as_deref(),
            Some("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
        );
        let smol = "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}";
        assert_eq!(
            ChatTemplate::from_jinja(smol).unwrap().default_system.as_deref(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        assert_eq!(ChatTemplate::from_jinja("{{ '<|im_start|>' + m }}").unwrap().default_system, None);
        assert!(ChatTemplate::from_jinja("[INST] {{ m }} [/INST]").is_none());
    }

    #[test]
    fn gemma_rendering_folds_the_system_prompt_into_the_first_turn() {
        let t = ChatTemplate::from_jinja("{{ bos_token }}{{ '<start_of_turn>' + role + '\\n' }}").unwrap();
        assert_eq!(t.style, ChatStyle::Gemma);
        assert_eq!(
            t.render(&[ChatMessage::user(" hi "), ChatMessage::assistant("yo"), ChatMessage::user("q")], true),
            "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\nyo<end_of_turn>\n<start_of_turn>user\nq<end_of_turn>\n<start_of_turn>model\n"
        );
        assert_eq!(
            t.render(&[ChatMessage::system("Be brief."), ChatMessage::user("hi")], false),
            "<start_of_turn>user\nBe brief.\n\nhi<end_of_turn>\n"
        );
    }

    #[test]
    fn chatml_rendering() {
        let t = ChatTemplate { default_system: Some("S".into()), style: ChatStyle::ChatMl };
        assert_eq!(
            t.render(&[ChatMessage::user("hi")], true),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            t.render(&[ChatMessage::system("X"), ChatMessage::user("hi")], false),
            "<|im_start|>system\nX<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        );
    }
}
