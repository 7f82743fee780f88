//! `speccascade tokenize --model M --text T [--json]`: the token ids of a text.

use anyhow::{Context, Result};
use clap::Args;
use speccascade_models::registry::resolve_model;
use speccascade_models::tokenizer::{ChatMessage, Tokenizer};

#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// A registered model name, a .gguf file, or a Hugging Face directory.
    #[arg(long)]
    model: String,
    /// The text to tokenize (may begin with '-': `--text "-> x"`).
    #[arg(long, allow_hyphen_values = true)]
    text: String,
    /// Wrap the text as a user turn in the model's chat template (with the assistant header).
    #[arg(long)]
    chat: bool,
    /// Tokenize control-token strings like `<|im_end|>` as plain text instead of as their ids.
    #[arg(long)]
    no_special: bool,
    /// Print one JSON object: {"model", "ids", "tokens", "count"}.
    #[arg(long)]
    json: bool,
    /// Accepted for symmetry with `generate` and `run`; tokenizing runs on the host wherever the
    /// models would (checked like theirs: cpu, flex, wgpu, cuda or cuda:N).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    #[allow(dead_code)] // a no-op once its parser has checked it
    device: String,
}

fn parse_device(s: &str) -> Result<String, String> {
    s.parse::<speccascade_models::burn_lm::DeviceChoice>().map(|_| s.to_string())
}

pub fn run(a: TokenizeArgs) -> Result<()> {
    let loc = resolve_model(&a.model)?;
    let tok = Tokenizer::from_location(&loc).with_context(|| format!("loading the tokenizer of {}", a.model))?;
    let text = if a.chat { tok.apply_chat(&[ChatMessage::user(a.text.clone())], true)? } else { a.text.clone() };
    let ids = tok.encode_prompt(&text, !a.no_special || a.chat)?;
    if a.json {
        let tokens: Vec<String> =
            ids.iter().map(|&id| String::from_utf8_lossy(tok.token_bytes(id)).into_owned()).collect();
        println!("{}", serde_json::json!({ "model": a.model, "ids": ids, "tokens": tokens, "count": ids.len() }));
    } else {
        println!("{}", ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" "));
        eprintln!("{} tokens", ids.len());
    }
    Ok(())
}
