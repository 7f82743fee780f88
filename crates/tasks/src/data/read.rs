//! Reading upstream files: JSONL (optionally gzipped), a JSON array, or parquet.
//!
//! Every read is bounded before it allocates: a file (or a gzip stream, decompressed) larger than
//! [`DATA_FILE_LIMIT`] and a parquet file claiming more than [`MAX_RECORDS`] rows are refused
//! with the limit named, so `--from /dev/zero` or a forged footer ends in an error.

use std::io::{BufRead, Read};
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Result, TaskError, json_reason};

/// The largest data file read, decompressed (the largest supported split is ~60 MB).
pub const DATA_FILE_LIMIT: u64 = 512 << 20;
/// The most records a data file may hold (the largest supported split has 17 944).
pub const MAX_RECORDS: usize = 10_000_000;

/// The records of a file as JSON objects, each with its 1-based line (JSONL) or row number.
pub fn read_records(path: &Path) -> Result<Vec<(usize, Map<String, Value>)>> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let records = if name.ends_with(".parquet") {
        read_parquet(path)?
    } else if name.ends_with(".json") {
        let text = read_bounded(path)?;
        let text = String::from_utf8(text).map_err(|e| TaskError::Parse { path: path.into(), line: 0, message: format!("not UTF-8 text: {e}") })?;
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => objects(path, items.into_iter().enumerate().map(|(i, v)| (i + 1, v)))?,
            // A `.json` file may also be JSON lines (the hub's `datasets` exports are).
            _ => read_lines(path, text.as_bytes())?,
        }
    } else if name.ends_with(".gz") {
        let file = std::fs::File::open(path).map_err(|e| TaskError::io(path, e))?;
        let mut text = Vec::new();
        let gz = flate2::read::GzDecoder::new(speccascade_files::CappedRead::new(file, DATA_FILE_LIMIT, "data file"));
        speccascade_files::CappedRead::new(gz, DATA_FILE_LIMIT, "data file (decompressed)").read_to_end(&mut text).map_err(|e| TaskError::io(path, e))?;
        read_lines(path, &text)?
    } else {
        let bytes = read_bounded(path)?;
        read_lines(path, &bytes)?
    };
    if records.is_empty() {
        return Err(TaskError::Empty { path: path.into() });
    }
    if records.len() > MAX_RECORDS {
        return Err(TaskError::Invalid(format!("{}: {} records, over the limit of {MAX_RECORDS}", path.display(), records.len())));
    }
    Ok(records)
}

/// The whole file, refusing more than [`DATA_FILE_LIMIT`] bytes.
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    speccascade_files::read_capped(path, DATA_FILE_LIMIT, "data file").map_err(|e| TaskError::io(path, e))
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
    let file_len = file.metadata().map_err(|e| TaskError::io(path, e))?.len();
    if file_len > DATA_FILE_LIMIT {
        return Err(TaskError::io(path, std::io::Error::new(std::io::ErrorKind::FileTooLarge, format!("{file_len} bytes: over the {DATA_FILE_LIMIT}-byte limit for a data file"))));
    }
    let bad = |row: usize, e: parquet::errors::ParquetError| TaskError::Parse { path: path.into(), line: row, message: format!("parquet: {e}") };
    let reader = SerializedFileReader::new(file).map_err(|e| bad(0, e))?;
    check_parquet_footer(path, reader.metadata(), file_len)?;
    // The parquet crate may still panic on corrupt pages the footer does not describe: contain
    // that here and report it as this file's error.
    let rows = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<Vec<(usize, Map<String, Value>)>> {
        let rows = reader.get_row_iter(None).map_err(|e| bad(0, e))?;
        let mut out = Vec::new();
        for (i, row) in rows.enumerate() {
            let row = row.map_err(|e| bad(i + 1, e))?;
            out.extend(objects(path, std::iter::once((i + 1, row.to_json_value())))?);
        }
        Ok(out)
    }));
    rows.unwrap_or_else(|panic| {
        let what = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
        Err(TaskError::Parse { path: path.into(), line: 0, message: format!("corrupt parquet data: {what}") })
    })
}

/// The footer's claims against the limits and against what the file can hold: the row count
/// (at most [`MAX_RECORDS`], equal to the sum over row groups), each column chunk's values (a row
/// has at least one per column) and byte range (inside the file).
fn check_parquet_footer(path: &Path, meta: &parquet::file::metadata::ParquetMetaData, file_len: u64) -> Result<()> {
    let bad = |message: String| Err(TaskError::Parse { path: path.into(), line: 0, message: format!("parquet footer: {message}") });
    let rows = meta.file_metadata().num_rows();
    if rows < 0 || rows as u64 > MAX_RECORDS as u64 {
        return bad(format!("num_rows = {rows} is out of range: a data file holds at most {MAX_RECORDS} records"));
    }
    let mut sum: i64 = 0;
    for (g, rg) in meta.row_groups().iter().enumerate() {
        let n = rg.num_rows();
        if n < 0 {
            return bad(format!("row group {g}: num_rows = {n}"));
        }
        sum = sum.saturating_add(n);
        for c in rg.columns() {
            let (start, len) = c.byte_range();
            if start.checked_add(len).is_none_or(|end| end > file_len) {
                return bad(format!("row group {g}, column '{}': bytes {start}..+{len} lie outside the {file_len}-byte file", c.column_path()));
            }
            if c.num_values() < n {
                return bad(format!("row group {g}, column '{}': {} values cannot hold num_rows = {n}", c.column_path(), c.num_values()));
            }
        }
    }
    if sum != rows {
        return bad(format!("num_rows = {rows}, but the row groups hold {sum}"));
    }
    Ok(())
}
