//! Reading the JSONL files `speccascade score` takes, with errors that name the file, the line
//! and the field.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Result, TaskError, json_reason};
use crate::example::CodeSpec;
use crate::metrics::Scored;

/// One JSON object per non-blank line, with its 1-based line number.
pub fn read_jsonl(path: &Path) -> Result<Vec<(usize, Map<String, Value>)>> {
    let file = std::fs::File::open(path).map_err(|e| TaskError::io(path, e))?;
    // Capped: an endless or enormous input ends in an error naming the limit.
    let file = speccascade_files::CappedRead::new(file, crate::data::read::DATA_FILE_LIMIT, "JSONL file");
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| TaskError::Parse { path: path.into(), line: i + 1, message: format!("unreadable line: {e}") })?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(m)) => out.push((i + 1, m)),
            Ok(other) => {
                return Err(TaskError::Parse {
                    path: path.into(),
                    line: i + 1,
                    message: format!("expected a JSON object, found {}", kind(&other)),
                });
            }
            Err(e) => return Err(TaskError::Parse { path: path.into(), line: i + 1, message: format!("malformed JSON at column {}: {}", e.column(), json_reason(&e)) }),
        }
    }
    if out.is_empty() {
        return Err(TaskError::Empty { path: path.into() });
    }
    Ok(out)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Field access with located errors.
struct Rec<'a> {
    path: &'a Path,
    line: usize,
    map: &'a Map<String, Value>,
}

impl Rec<'_> {
    fn missing(&self, field: &str, expected: &str) -> TaskError {
        TaskError::MissingField { path: self.path.to_path_buf(), line: self.line, field: field.into(), expected: expected.into() }
    }

    fn wrong(&self, field: &str, expected: &str, v: &Value) -> TaskError {
        TaskError::Parse { path: self.path.to_path_buf(), line: self.line, message: format!("field `{field}`: expected {expected}, found {}", kind(v)) }
    }

    /// The first present of `names`, as a string (an integer id is accepted and printed).
    fn string(&self, names: &[&str], expected: &str) -> Result<Option<String>> {
        for n in names {
            if let Some(v) = self.map.get(*n) {
                return match v {
                    Value::String(s) => Ok(Some(s.clone())),
                    Value::Number(x) if n.ends_with("id") => Ok(Some(x.to_string())),
                    other => Err(self.wrong(n, expected, other)),
                };
            }
        }
        Ok(None)
    }

    fn required(&self, names: &[&str], expected: &str) -> Result<String> {
        self.string(names, expected)?.ok_or_else(|| self.missing(names[0], expected))
    }
}

/// A predictions file: `(id, prediction)` in file order.
pub fn read_predictions(path: &Path) -> Result<Vec<(String, String)>> {
    read_jsonl(path)?
        .iter()
        .map(|(line, map)| {
            let r = Rec { path, line: *line, map };
            Ok((r.required(&["id", "task_id"], "a string id")?, r.required(&["prediction", "completion"], "a string")?))
        })
        .collect()
}

/// One line of a references file.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub id: String,
    pub references: Vec<String>,
    pub code: Option<CodeSpec>,
}

/// A references file. `code` asks for the code schema (`prompt`, `test`, optional
/// `entry_point`) instead of `references`.
pub fn read_references(path: &Path, code: bool) -> Result<Vec<Reference>> {
    let mut seen = BTreeSet::new();
    read_jsonl(path)?
        .iter()
        .map(|(line, map)| {
            let r = Rec { path, line: *line, map };
            let id = r.required(&["id", "task_id"], "a string id")?;
            if !seen.insert(id.clone()) {
                return Err(TaskError::Parse { path: path.into(), line: *line, message: format!("duplicate id `{id}`") });
            }
            if code {
                let spec = CodeSpec {
                    prompt: r.required(&["prompt"], "the code prompt the completion is appended to")?,
                    test: r.required(&["test"], "the test code")?,
                    entry_point: r.string(&["entry_point"], "the function name")?,
                };
                return Ok(Reference { id, references: Vec::new(), code: Some(spec) });
            }
            let references = match (map.get("references"), map.get("reference")) {
                (Some(Value::Array(items)), _) => items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(r.wrong(&format!("references[{i}]"), "a string", other)),
                    })
                    .collect::<Result<Vec<_>>>()?,
                (Some(other), _) => return Err(r.wrong("references", "an array of strings", other)),
                (None, Some(Value::String(s))) => vec![s.clone()],
                (None, Some(other)) => return Err(r.wrong("reference", "a string", other)),
                (None, None) => return Err(r.missing("references", "an array of reference strings")),
            };
            Ok(Reference { id, references, code: None })
        })
        .collect()
}

/// Predictions and references joined by id, in reference order. Every reference needs a
/// prediction and every prediction a reference; `multi` allows several predictions per id
/// (pass@k samples). Mismatches are reported with a few example ids.
pub fn join<'a>(
    predictions: &'a [(String, String)],
    references: &'a [Reference],
    multi: bool,
    pred_path: &Path,
    ref_path: &Path,
) -> Result<Vec<Scored<'a>>> {
    let mut by_id: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, p) in predictions {
        let e = by_id.entry(id).or_default();
        if !multi && !e.is_empty() {
            return Err(TaskError::Mismatch(format!(
                "{}: id `{id}` appears more than once (one prediction per id for this metric)",
                pred_path.display()
            )));
        }
        e.push(p);
    }
    let ref_ids: BTreeSet<&str> = references.iter().map(|r| r.id.as_str()).collect();
    let missing: Vec<&str> = references.iter().map(|r| r.id.as_str()).filter(|id| !by_id.contains_key(id)).collect();
    let mut extra: Vec<&str> = by_id.keys().copied().filter(|id| !ref_ids.contains(id)).collect();
    extra.sort_unstable();
    if !missing.is_empty() || !extra.is_empty() {
        let few = |ids: &[&str]| {
            let shown: Vec<String> = ids.iter().take(5).map(|s| format!("`{s}`")).collect();
            format!("{}{}", shown.join(", "), if ids.len() > 5 { format!(" and {} more", ids.len() - 5) } else { String::new() })
        };
        let mut msg = String::from("ids of predictions and references do not match:");
        if !missing.is_empty() {
            msg += &format!(" {} reference id(s) without a prediction in {}: {};", missing.len(), pred_path.display(), few(&missing));
        }
        if !extra.is_empty() {
            msg += &format!(" {} prediction id(s) without a reference in {}: {};", extra.len(), ref_path.display(), few(&extra));
        }
        return Err(TaskError::Mismatch(msg.trim_end_matches(';').to_string()));
    }
    Ok(references
        .iter()
        .map(|r| Scored { id: &r.id, predictions: by_id[r.id.as_str()].clone(), references: &r.references, code: r.code.as_ref() })
        .collect())
}
