//! Prompts: T5-style task prefixes, few-shot prompts (our own exemplars, see [`crate::fewshot`]),
//! and the ChatML chat template.

use crate::error::{Result, TaskError};
use crate::example::Example;
use crate::fewshot::{self, Exemplar};
use crate::task::Task;

/// Which prompt to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptStyle {
    /// Zero-shot T5 task prefix, e.g. `translate English to German: …`, `summarize: …`.
    T5,
    /// The few-shot prompt (`shots` exemplars, the task's default when `None`).
    FewShot,
}

impl std::str::FromStr for PromptStyle {
    type Err = TaskError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "t5" | "zero_shot" | "zeroshot" => Ok(PromptStyle::T5),
            "few_shot" | "fewshot" => Ok(PromptStyle::FewShot),
            _ => Err(TaskError::Invalid(format!("unknown prompt style `{s}` (expected `t5` or `few_shot`)"))),
        }
    }
}

/// Fills `{name}` placeholders from `lookup`; an unknown placeholder is an error.
fn render(template: &str, task: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| TaskError::Invalid(format!("task {task}: unclosed `{{` in template `{template}`")))?;
        let name = &after[..close];
        let value = lookup(name).ok_or_else(|| TaskError::Invalid(format!("task {task}: the example has no field `{name}` that the prompt needs")))?;
        out.push_str(&value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn example_lookup(ex: &Example) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| ex.fields.get(name).cloned()
}

fn exemplar_lookup(ex: &'static Exemplar) -> impl Fn(&str) -> Option<String> {
    move |name| ex.fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
}

/// The prompt for one example. Few-shot exemplars come from the task's fixed list in order,
/// skipping any whose inputs equal this example's (an example never prompts itself).
pub fn build_prompt(task: &Task, example: &Example, style: PromptStyle, shots: Option<usize>) -> Result<String> {
    let lookup = example_lookup(example);
    match style {
        PromptStyle::T5 => render(task.t5_template, task.name, &lookup),
        PromptStyle::FewShot => {
            let k = shots.unwrap_or(task.default_shots);
            let pool = fewshot::exemplars(task.name);
            let chosen: Vec<&'static Exemplar> = pool
                .iter()
                .filter(|e| !e.fields.iter().all(|(k, v)| example.fields.get(*k).is_some_and(|x| x == v)))
                .take(k)
                .collect();
            if chosen.len() < k {
                return Err(TaskError::Invalid(format!(
                    "task {}: {k}-shot prompt asked for, but only {} exemplars are available",
                    task.name,
                    chosen.len()
                )));
            }
            let mut parts = Vec::with_capacity(k + 1);
            for e in chosen {
                let shown = render(task.fewshot_template, task.name, &exemplar_lookup(e))?;
                parts.push(format!("{shown}{}", task.answer_template.replace("{answer}", e.answer)));
            }
            parts.push(render(task.fewshot_template, task.name, &lookup)?);
            Ok(parts.join(task.shot_separator))
        }
    }
}

/// A chat message for [`chat_template`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: &str) -> Self {
        ChatMessage { role: "system".into(), content: content.into() }
    }
    pub fn user(content: &str) -> Self {
        ChatMessage { role: "user".into(), content: content.into() }
    }
    pub fn assistant(content: &str) -> Self {
        ChatMessage { role: "assistant".into(), content: content.into() }
    }
}

/// The system message Qwen2.5 (and Qwen2.5-Coder) instruct templates insert when none is given.
pub const QWEN25_DEFAULT_SYSTEM: &str = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

/// ChatML as Qwen2.5 instruct models use it: `<|im_start|>{role}\n{content}<|im_end|>\n` per
/// message, then `<|im_start|>assistant\n` when `add_generation_prompt`. Like Qwen2.5's own
/// template, a conversation that does not start with a system message gets
/// [`QWEN25_DEFAULT_SYSTEM`]; pass a system message to choose another.
pub fn chat_template(messages: &[ChatMessage], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    if messages.first().is_none_or(|m| m.role != "system") {
        out.push_str(&format!("<|im_start|>system\n{QWEN25_DEFAULT_SYSTEM}<|im_end|>\n"));
    }
    for m in messages {
        out.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content));
    }
    if add_generation_prompt {
        out.push_str("<|im_start|>assistant\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::task_by_name;
    use std::collections::BTreeMap;

    fn ex(fields: &[(&str, &str)]) -> Example {
        Example {
            id: "x".into(),
            fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            references: vec![],
            code: None,
        }
    }

    #[test]
    fn t5_prefixes() {
        let t = task_by_name("wmt14_en_de").unwrap();
        assert_eq!(build_prompt(t, &ex(&[("source", "Hello.")]), PromptStyle::T5, None).unwrap(), "translate English to German: Hello.");
        let t = task_by_name("xsum").unwrap();
        assert_eq!(build_prompt(t, &ex(&[("document", "Text")]), PromptStyle::T5, None).unwrap(), "summarize: Text");
        assert!(build_prompt(t, &ex(&[("article", "Text")]), PromptStyle::T5, None).unwrap_err().to_string().contains("document"));
    }

    #[test]
    fn few_shot_counts_and_never_uses_the_example() {
        let t = task_by_name("gsm8k").unwrap();
        let p = build_prompt(t, &ex(&[("question", "What is 2+2?")]), PromptStyle::FewShot, None).unwrap();
        assert_eq!(p.matches("Question:").count(), 9);
        assert_eq!(p.matches("\n#### ").count(), 8);
        assert!(p.ends_with("Question: What is 2+2?\nAnswer:"));
        let w = task_by_name("wmt14_en_de").unwrap();
        let own = ex(&[("source", "The weather is very nice today.")]);
        let p = build_prompt(w, &own, PromptStyle::FewShot, Some(5)).unwrap();
        assert_eq!(p.matches("The weather is very nice today.").count(), 1, "{p}");
        assert_eq!(p.matches("German:").count(), 6);
        assert!(build_prompt(w, &own, PromptStyle::FewShot, Some(6)).is_err());
    }

    #[test]
    fn chatml() {
        let s = chat_template(&[ChatMessage::system("S"), ChatMessage::user("Hi")], true);
        assert_eq!(s, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
        assert!(chat_template(&[ChatMessage::user("Hi")], false).starts_with("<|im_start|>system\nYou are Qwen"));
    }
}
