//! `speccascade demo`: one generation on the core's synthetic pair, printing text and ledger.

use anyhow::{Context, Result, bail};
use clap::Args;
use speccascade_core::Sampling;
use speccascade_core::synthetic::{SyntheticPair, detokenize};
use speccascade_decoding::{Bonus, DecodeConfig, Method, MethodSpec, decode};

use crate::limits;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Use the synthetic drafter/verifier pair (hashed n-gram models; no weights needed).
    #[arg(long)]
    synthetic: bool,
    /// Decoding method.
    #[arg(long, value_enum, default_value_t = Method::SpecDecode)]
    method: Method,
    /// The rule's trade-off parameter α (methods with a deferral rule).
    #[arg(long, allow_hyphen_values = true)]
    alpha: Option<f64>,
    /// Draft block length γ.
    #[arg(long, default_value_t = 5)]
    gamma: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    temperature: f32,
    /// Nucleus sampling mass (1 = off).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    top_p: f32,
    /// What follows a fully accepted block [default: free for spec_decode, exact otherwise].
    #[arg(long, value_enum)]
    bonus: Option<Bonus>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Vocabulary size of the synthetic pair.
    #[arg(long, default_value_t = 32_000)]
    vocab: usize,
    /// Prompt token ids, comma-separated.
    #[arg(long, default_value = "1,2,3", value_delimiter = ',')]
    prompt: Vec<u32>,
    /// Include the per-token trace.
    #[arg(long)]
    trace: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(a: DemoArgs) -> Result<()> {
    if !a.synthetic {
        bail!("demo runs on the synthetic pair only: pass --synthetic (for real models use `speccascade generate --drafter A --verifier B --method M`)");
    }
    limits::in_range("--vocab", a.vocab, 8, limits::MAX_SYNTHETIC_VOCAB, "the synthetic pair's vocabulary")?;
    limits::in_range("--gamma", a.gamma, 1, limits::MAX_GAMMA, "draft block length γ")?;
    limits::in_range("--max-new-tokens", a.max_new_tokens, 1, limits::MAX_SYNTHETIC_NEW_TOKENS, "the synthetic generation's length limit")?;
    if let Some(&t) = a.prompt.iter().find(|&&t| t as usize >= a.vocab) {
        bail!("--prompt token {t} is outside the vocabulary (--vocab {})", a.vocab);
    }
    let spec = MethodSpec::new(a.method, a.alpha).context("--method / --alpha")?;
    let mut cfg = DecodeConfig::new(spec);
    cfg.gamma = a.gamma;
    cfg.sampling = Sampling::new(a.temperature, a.top_p).context("--temperature / --top-p")?;
    if let Some(b) = a.bonus {
        cfg.bonus = b;
    }
    cfg.seed = a.seed;
    cfg.max_new_tokens = a.max_new_tokens;
    cfg.trace = a.trace;
    let pair = SyntheticPair::default_with_vocab(a.vocab, 0).with_eos_bias(1.0);
    let g = decode(&pair.drafter, &pair.verifier, &a.prompt, &cfg, None)?;
    let text = detokenize(&g.tokens);
    let quality = pair.quality(&a.prompt, &g.tokens);
    if a.json {
        let out = serde_json::json!({
            "method": spec.method.name(),
            "alpha": spec.alpha,
            "config": cfg,
            "prompt": a.prompt,
            "tokens": g.tokens,
            "text": text,
            "stop": g.stop,
            "quality_loglik_per_token": quality,
            "ledger": g.ledger,
            "trace": g.trace,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let l = &g.ledger;
    println!("method      {} (bonus {})", spec.label(), cfg.bonus);
    println!("text        {text}");
    println!("stop        {:?}", g.stop);
    println!("quality     {quality:.4} (mean log-likelihood per token under the ground truth)");
    println!(
        "tokens      {} emitted: {} accepted, {} residual, {} bonus, {} drafter, {} verifier",
        l.emitted, l.accepted, l.residual, l.bonus, l.drafter_direct, l.verifier_direct
    );
    println!(
        "calls       {} drafter steps, {} verifier calls ({} charged), {} blocks",
        l.drafter_steps, l.verifier_calls, l.verifier_calls_charged, l.blocks
    );
    println!(
        "rates       rejection {:.3}, deferral {:.3}, mean accept length {:.2}",
        l.rejection_rate(),
        l.deferral_rate(),
        l.mean_accept_length()
    );
    println!("cost        {:.2} (c = 0.25: 0.25·drafter steps + verifier calls)", l.modelled_cost(0.25));
    if let Some(trace) = &g.trace {
        println!("pos  drafted  δ      accepted  emitted  source");
        for r in trace {
            println!(
                "{:<4} {:<8} {:<6} {:<9} {:<8} {:?}",
                r.position,
                r.drafted.map(|x| x.to_string()).unwrap_or("-".into()),
                r.delta.map(|x| (x as u8).to_string()).unwrap_or("-".into()),
                r.accepted.map(|x| x.to_string()).unwrap_or("-".into()),
                r.emitted,
                r.source
            );
        }
    }
    Ok(())
}
