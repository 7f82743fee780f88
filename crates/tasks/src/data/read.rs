//! Reading upstream files: JSONL (optionally gzipped), a JSON array, or parquet.

use std::io::{BufRead, Read};
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Result, TaskError, json_reason};

/// The records of a file as JSON objects, each with its 1-based line (JSONL) or row number.
pub fn read_records(path: &Path) -> Result<Vec<(usize, Map<String, Value>)>> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let records = if name.ends_with(".parquet") {
        read_parquet(path)?
    } else if name.ends_with(".json") {
        let text = std::fs::read_to_string(path).map_err(|e| TaskError::io(path, e))?;
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => objects(path, items.into_iter().enumerate().map(|(i, v)| (i + 1, v)))?,
            // A `.json` file may also be JSON lines (the hub's `datasets` exports are).
            _ => read_lines(path, text.as_bytes())?,
        }
    } else if name.ends_with(".gz") {
        let file = std::fs::File::open(path).map_err(|e| TaskError::io(path, e))?;
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(file).read_to_end(&mut text).map_err(|e| TaskError::io(path, e))?;
        read_lines(path, &text)?
    } else {
        let bytes = std::fs::read(path).map_err(|e| TaskError::io(path, e))?;
        read_lines(path, &bytes)?
    };
    if records.is_empty() {
        return Err(TaskError::Empty { path: path.into() });
    }
    Ok(records)
}

fn objects(path: &Path, items: impl Iterator<Item = (usize, Value)>) -> Result<Vec<(usize, Map<String, Value>)>> {
    items
        .map(|(line, v)| match v {
            Value::Object(m) => Ok((line, m)),
            _ => Err(TaskError::Parse { path: path.into(), line, message: "expected a JSON object".into() }),
        })
        .collect()
}

fn read_lines(path: &Path, bytes: &[u8]) -> Result<Vec<(usize, Map<String, Value>)>> {
    let mut out = Vec::new();
    for (i, line) in bytes.lines().enumerate() {
        let line = line.map_err(|e| TaskError::Parse { path: path.into(), line: i + 1, message: format!("not UTF-8 text: {e}") })?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| TaskError::Parse { path: path.into(), line: i + 1, message: format!("malformed JSON at column {}: {}", e.column(), json_reason(&e)) })?;
        out.extend(objects(path, std::iter::once((i + 1, v)))?);
    }
    Ok(out)
}

fn read_parquet(path: &Path) -> Result<Vec<(usize, Map<String, Value>)>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(path).map_err(|e| TaskError::io(path, e))?;
    let bad = |row: usize, e: parquet::errors::ParquetError| TaskError::Parse { path: path.into(), line: row, message: format!("parquet: {e}") };
    let reader = SerializedFileReader::new(file).map_err(|e| bad(0, e))?;
    let rows = reader.get_row_iter(None).map_err(|e| bad(0, e))?;
    let mut out = Vec::new();
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| bad(i + 1, e))?;
        out.extend(objects(path, std::iter::once((i + 1, row.to_json_value())))?);
    }
    Ok(out)
}
