//! `speccascade generate`: text from one model, or from a drafter/verifier pair through a decoding
//! method.
//!
//! One model:  `generate --model M --prompt P [--chat] [--max-new-tokens N] [--temperature T] [--seed S] [--json]`
//! A pair:     `generate --drafter A --verifier B --method spec_decode [--alpha A] [--gamma G] --prompt P …`

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use speccascade_core::{LanguageModel, Purpose, Sampling, Stream, TokenDist, sample};
use speccascade_decoding::{Bonus, DecodeConfig, Method, MethodSpec, decode};
use speccascade_models::registry::resolve_model;
use speccascade_models::tokenizer::{ChatMessage, Tokenizer};
use speccascade_models::transformer::{ModelInfo, TransformerOptions, load_model};

use crate::limits;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The model (registered name, .gguf file or HF directory) for single-model generation.
    #[arg(long, conflicts_with_all = ["drafter", "verifier"])]
    model: Option<String>,
    /// The drafter of a pair (needs --verifier and --method).
    #[arg(long, requires_all = ["verifier", "method"])]
    drafter: Option<String>,
    /// The verifier of a pair.
    #[arg(long, requires = "drafter")]
    verifier: Option<String>,
    /// Decoding method of a pair.
    #[arg(long, value_enum, requires = "drafter")]
    method: Option<Method>,
    /// What follows a fully accepted block [default: free for spec_decode, exact otherwise].
    #[arg(long, value_enum, requires = "method")]
    bonus: Option<Bonus>,
    /// The method's deferral threshold α.
    #[arg(allow_hyphen_values = true, long)]
    alpha: Option<f64>,
    /// Draft block length γ.
    #[arg(long, default_value_t = 5)]
    gamma: usize,
    /// The prompt text, which may begin with '-' (for an encoder-decoder model such as T5: the
    /// encoder input, encoded with the tokenizer's post-processor, e.g. `</s>` appended).
    #[arg(long, allow_hyphen_values = true)]
    prompt: String,
    /// Wrap the prompt as a user turn in the model's chat template.
    #[arg(long)]
    chat: bool,
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    top_p: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Weight precision. On the CPU: q8 (8-bit blocks; `native`), q4k (a GGUF file's Q4_K blocks
    /// read natively, the rest at q8: fewest bytes a step), f16 (cheap blocks) or f32 (reference).
    /// On a device: f32, f16 or bf16 (`native`: bf16 on cuda, f16 on wgpu, f32 on flex).
    #[arg(long, default_value = "native")]
    precision: String,
    /// Where the models run: cpu (the host kernels), flex (burn's CPU backend through the device
    /// engine), wgpu, cuda or cuda:N (a binary built with `--features wgpu` / `cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print one JSON object: {"tokens", "logprobs" (one model: each emitted token's log-probability
    /// under the model's untransformed distribution), "text", "prompt_tokens", "seconds", "ledger" (pairs)}.
    #[arg(long)]
    json: bool,
}

/// The model, what it is, and its tokenizer.
fn load(name: &str, opts: &TransformerOptions) -> Result<(Box<dyn LanguageModel>, ModelInfo, Tokenizer)> {
    let loc = resolve_model(name)?;
    let tok = Tokenizer::from_location(&loc).with_context(|| format!("loading the tokenizer of {name}"))?;
    let loaded = load_model(&loc, opts).with_context(|| format!("loading model {name}"))?;
    Ok((loaded.model, loaded.info, tok))
}

/// `v` with where the models ran: precision, device and the CPU kernel paths.
fn with_placement(mut v: serde_json::Value, info: &ModelInfo) -> serde_json::Value {
    v["precision"] = info.precision.clone().into();
    v["device"] = info.device.clone().into();
    v["kernels"] = speccascade_models::cpu::describe().into();
    v
}

/// `--max-new-tokens` (plus the prompt, plus `block` positions in flight: a draft block and its
/// bonus for a pair, one token alone) must fit every model's context.
fn check_length(a: &GenerateArgs, prompt: &[u32], models: &[(&str, usize)], block: usize) -> Result<()> {
    for &(name, max_seq_len) in models {
        let room = max_seq_len.saturating_sub(prompt.len() + block);
        if a.max_new_tokens > room {
            bail!(
                "--max-new-tokens {} is over the limit of {room} for {name}: its context holds {} tokens, the prompt takes {} and {block} more are in flight",
                a.max_new_tokens,
                max_seq_len,
                prompt.len()
            );
        }
    }
    Ok(())
}

fn prompt_ids(tok: &Tokenizer, a: &GenerateArgs) -> Result<Vec<u32>> {
    let text = if a.chat { tok.apply_chat(&[ChatMessage::user(a.prompt.clone())], true)? } else { a.prompt.clone() };
    let ids = tok.encode_prompt(&text, true)?;
    if ids.is_empty() {
        bail!("the prompt tokenizes to no tokens");
    }
    Ok(ids)
}

pub fn run(a: GenerateArgs) -> Result<()> {
    let opts = speccascade_provider::model_options(&a.device, &a.precision).map_err(|e| anyhow!("--device {} --precision {}: {e}", a.device, a.precision))?;
    let sampling = Sampling::new(a.temperature, a.top_p)?;
    limits::in_range("--gamma", a.gamma, 1, limits::MAX_GAMMA, "draft block length γ")?;
    if a.max_new_tokens == 0 {
        bail!("--max-new-tokens must be at least 1");
    }
    if let Some(name) = &a.model {
        single(&a, name, &opts, sampling)
    } else if let (Some(d), Some(v)) = (&a.drafter, &a.verifier) {
        pair(&a, d, v, &opts, sampling)
    } else {
        bail!("pass --model M, or --drafter A --verifier B --method M")
    }
}

fn single(a: &GenerateArgs, name: &str, opts: &TransformerOptions, sampling: Sampling) -> Result<()> {
    let (model, info, tok) = load(name, opts)?;
    let prompt = prompt_ids(&tok, a)?;
    check_length(a, &prompt, &[(name, info.max_seq_len)], 1)?;
    let rng = Stream::new(a.seed, 0);
    let t0 = Instant::now();
    let (mut session, mut logits) = model.start(&prompt).with_context(|| format!("prefilling {name}"))?;
    let prefill_s = t0.elapsed().as_secs_f64();
    let mut tokens = Vec::new();
    let mut logprobs = Vec::new();
    let mut stream = tok.stream(true);
    let mut out = std::io::stdout();
    for pos in 0..a.max_new_tokens {
        let dist = TokenDist::from_logits(&logits, &sampling)?;
        let t = sample(dist.probs(), rng.uniform(pos as u64, Purpose::Bonus));
        tokens.push(t);
        logprobs.push(log_prob(&logits, t));
        if !a.json {
            write!(out, "{}", stream.push(t))?;
            out.flush()?;
        }
        if model.eos_ids().contains(&t) || pos + 1 == a.max_new_tokens {
            break;
        }
        logits = session.extend(&[t])?.into_vec();
    }
    let secs = t0.elapsed().as_secs_f64();
    let text = tok.decode(&tokens, true);
    if a.json {
        println!(
            "{}",
            with_placement(
                serde_json::json!({
                    "model": name, "prompt_tokens": prompt.len(),
                    "tokens": tokens, "logprobs": logprobs, "text": text, "seconds": secs, "prefill_seconds": prefill_s,
                    "decode_tokens_per_s": (tokens.len().saturating_sub(1)) as f64 / (secs - prefill_s).max(1e-9),
                }),
                &info
            )
        );
    } else {
        writeln!(out, "{}", stream.finish())?;
        eprintln!(
            "{} prompt tokens, {} new tokens in {secs:.2}s (prefill {prefill_s:.2}s)",
            prompt.len(),
            tokens.len()
        );
    }
    Ok(())
}

/// `log softmax(logits)[t]` of the untransformed logits (no temperature or top-p), in f64.
fn log_prob(logits: &[f32], t: u32) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let z: f64 = logits.iter().map(|&v| (v as f64 - max).exp()).sum();
    logits[t as usize] as f64 - max - z.ln()
}

fn pair(a: &GenerateArgs, drafter: &str, verifier: &str, opts: &TransformerOptions, sampling: Sampling) -> Result<()> {
    let method = a.method.ok_or_else(|| anyhow!("--method is required with --drafter/--verifier"))?;
    let spec = MethodSpec::new(method, a.alpha)?;
    let (dm, dinfo, dtok) = load(drafter, opts)?;
    let (vm, vinfo, vtok) = load(verifier, opts)?;
    let (dmax, vmax) = (dinfo.max_seq_len, vinfo.max_seq_len);
    if dm.vocab_size() != vm.vocab_size() || dtok.vocab_size() != vtok.vocab_size() {
        bail!(
            "drafter {drafter} (vocabulary {}) and verifier {verifier} (vocabulary {}) do not share a vocabulary; \
             a pair must use one tokenizer",
            dm.vocab_size(),
            vm.vocab_size()
        );
    }
    let prompt = prompt_ids(&vtok, a)?;
    check_length(a, &prompt, &[(drafter, dmax), (verifier, vmax)], a.gamma + 1)?;
    let mut cfg = DecodeConfig::new(spec);
    cfg.gamma = a.gamma;
    cfg.sampling = sampling;
    if let Some(b) = a.bonus {
        cfg.bonus = b;
    }
    cfg.seed = a.seed;
    cfg.max_new_tokens = a.max_new_tokens;
    let detok = |ids: &[u32]| vtok.decode(ids, true);
    let t0 = Instant::now();
    let generation = decode(&*dm, &*vm, &prompt, &cfg, Some(&detok))?;
    let secs = t0.elapsed().as_secs_f64();
    let text = vtok.decode(&generation.tokens, true);
    if a.json {
        println!(
            "{}",
            with_placement(
                serde_json::json!({
                    "drafter": drafter, "verifier": verifier, "method": spec.label(), "gamma": a.gamma, "bonus": cfg.bonus,
                    "prompt_tokens": prompt.len(), "tokens": generation.tokens,
                    "text": text, "stop": generation.stop, "ledger": generation.ledger, "seconds": secs,
                }),
                &vinfo
            )
        );
    } else {
        println!("{text}");
        eprintln!(
            "{} new tokens in {secs:.2}s; {}",
            generation.tokens.len(),
            serde_json::to_string(&generation.ledger).unwrap_or_default()
        );
    }
    Ok(())
}
