//! `max_input_tokens`: prompts held to the paper's input limits (WMT 80, XSum 1024, CNN/DM 2048
//! tokens for T5-style prompts) or to a limit the experiment sets, by cutting the example's input
//! text at a token boundary; the rest of the prompt (prefix, `</s>`, the closing "Summary:") stays.
//! On the tiny T5 and Gemma tokenizers of crates/models' parity fixtures and the task fixtures.

use std::path::PathBuf;

use speccascade_harness::config::{PromptStyle, TaskSpec};
use speccascade_harness::provider::{InputLimit, Provider};
use speccascade_harness::Experiment;
use speccascade_models::tokenizer::Tokenizer;
use speccascade_provider::RealProvider;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn pair(family: &str) -> (speccascade_harness::Pair, Tokenizer) {
    let dir = root().join("crates/models/tests/fixtures/paper").join(family);
    let src = format!(
        "name: t\noutput: out\nmodels: {{drafter: {d}, verifier: {d}, precision: f32}}\ntasks: [{{name: xsum, examples: 1, max_new_tokens: 4}}]\nmethods: {{verifier: }}\n",
        d = dir.display()
    );
    let exp = Experiment::from_str_named(&src, "t.yaml").unwrap();
    (RealProvider.pair(&exp.models).unwrap(), Tokenizer::from_hf_dir(&dir).unwrap())
}

fn spec(task: &str, style: Option<PromptStyle>, limit: Option<usize>) -> TaskSpec {
    TaskSpec {
        name: task.into(),
        examples: 1,
        seed: None,
        shots: Some(0),
        max_new_tokens: 4,
        data_file: Some(root().join("datasets/fixtures").join(format!("{task}.jsonl"))),
        chat: false,
        prompt_style: style,
        max_input_tokens: limit,
    }
}

#[test]
fn t5_inputs_are_cut_to_the_limit_keeping_the_prefix_and_eos() {
    let (pair, tok) = pair("t5");
    let eos = tok.eos_ids()[0];
    // The paper's default for T5-style prompts: XSum 1024 — the fixture documents fit it.
    let task = RealProvider.task(&spec("xsum", Some(PromptStyle::T5), None), &pair).unwrap();
    let p = task.prompt(0).unwrap();
    assert_eq!(p.input_limit, Some(InputLimit { max_tokens: 1024, truncated_from: None }));
    let full = p.tokens.clone();
    assert!(full.len() > 24, "{}", full.len());
    // A limit below the document's length cuts the document, not the prefix or `</s>`.
    let task = RealProvider.task(&spec("xsum", Some(PromptStyle::T5), Some(24)), &pair).unwrap();
    let p = task.prompt(0).unwrap();
    assert!(p.tokens.len() <= 24 && p.tokens.len() >= 20, "{}", p.tokens.len());
    assert_eq!(p.input_limit, Some(InputLimit { max_tokens: 24, truncated_from: Some(full.len()) }));
    assert_eq!(*p.tokens.last().unwrap(), eos, "</s> kept");
    let text = tok.decode(&p.tokens, true);
    assert!(text.starts_with("summarize:"), "{text}");
    // The kept tokens are the full input's first ones (the cut is at a token boundary).
    let n = p.tokens.len() - 1;
    assert_eq!(p.tokens[..n - 2], full[..n - 2], "a prefix of the uncut input");
    // Few-shot prompts have no default limit; an explicit one applies to them too.
    let task = RealProvider.task(&spec("xsum", None, None), &pair).unwrap();
    assert_eq!(task.prompt(0).unwrap().input_limit, None);
    let uncut = RealProvider.task(&spec("cnn_dailymail", Some(PromptStyle::FewShot), None), &pair).unwrap().prompt(0).unwrap().tokens;
    let task = RealProvider.task(&spec("cnn_dailymail", Some(PromptStyle::FewShot), Some(30)), &pair).unwrap();
    let p = task.prompt(0).unwrap();
    assert!(p.tokens.len() <= 30 && uncut.len() > 30);
    // "\nSummary:" and `</s>` close both (the tiny vocabulary spells some letters as <unk>).
    assert_eq!(p.tokens[p.tokens.len() - 5..], uncut[uncut.len() - 5..], "the prompt's end is kept");
    assert!(tok.decode(&p.tokens, true).starts_with("Article:"));
}

#[test]
fn decoder_prompts_are_cut_and_an_impossible_limit_is_an_error() {
    let (pair, tok) = pair("gemma2");
    let task = RealProvider.task(&spec("wmt14_en_de", Some(PromptStyle::T5), Some(24)), &pair).unwrap();
    let p = task.prompt(0).unwrap();
    assert!(p.tokens.len() <= 24 && p.tokens.len() > 16, "{}", p.tokens.len());
    assert_eq!(p.tokens[0], tok.bos_id().unwrap(), "<bos> kept");
    assert!(p.input_limit.unwrap().truncated_from.unwrap() > 24);
    // Nothing left to cut: the message says what to change.
    let task = RealProvider.task(&spec("wmt14_en_de", Some(PromptStyle::T5), Some(3)), &pair).unwrap();
    let e = task.prompt(0).unwrap_err();
    assert!(e.contains("max_input_tokens = 3") && e.contains("`source` cut away"), "{e}");
}

#[test]
fn the_limit_is_validated_and_in_the_records_configuration() {
    let base = "name: t\noutput: out\nmodels: {drafter: a, verifier: b}\nmethods: {verifier: }\ntasks: [{name: xsum, examples: 1, max_new_tokens: 4, max_input_tokens: ";
    let e = Experiment::from_str_named(&format!("{base}0}}]\n"), "t.yaml").unwrap_err().to_string();
    assert!(e.contains("t.yaml:5") && e.contains("tasks[0].max_input_tokens") && e.contains("expected 1..="), "{e}");
    let exp = Experiment::from_str_named(&format!("{base}512}}]\n"), "t.yaml").unwrap();
    assert_eq!(exp.tasks[0].max_input_tokens, Some(512));
    let grid = speccascade_harness::Grid::expand(&exp);
    let unset = Experiment::from_str_named(&format!("{base}512}}]\n").replace(", max_input_tokens: 512", ""), "t.yaml").unwrap();
    assert_ne!(grid.hashes[0], speccascade_harness::Grid::expand(&unset).hashes[0], "the limit is part of the configuration");
}
