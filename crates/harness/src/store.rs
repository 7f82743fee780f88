//! The result store: one output directory per experiment.
//!
//! ```text
//! <output>/experiment.yaml           the experiment as run (copied verbatim)
//! <output>/configs.json              configuration hash → configuration (union over runs)
//! <output>/records.jsonl             one record per line, append-only (unsharded run or merge)
//! <output>/shards/<i>-of-<n>/records.jsonl   a shard's records (`--shard i/n`)
//! <output>/summaries/<hash>.parquet  per-configuration summary; <output>/summary.parquet: all
//! ```
//!
//! Records are appended with one `write` of a whole line each and never rewritten, so a process
//! killed at any moment leaves complete records plus at most one partial last line. Opening for
//! resume cuts that partial line off; every complete record is kept and its unit skipped.
//! (Records survive a killed process, which is what resume needs; they are fsync'ed only at the
//! end of a run, so a power cut may lose the last few seconds.)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use speccascade_files::lock::{self, DirLock, LockError};

use crate::HarnessError;
use crate::grid::{Grid, RunConfig};
use crate::record::{Key, Record};
use crate::shard::Shard;

/// Paths of a store.
#[derive(Clone, Debug)]
pub struct Store {
    pub dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn experiment_path(&self) -> PathBuf {
        self.dir.join("experiment.yaml")
    }
    pub fn configs_path(&self) -> PathBuf {
        self.dir.join("configs.json")
    }
    /// Where a shard (or the whole run) keeps its records.
    pub fn shard_dir(&self, shard: Shard) -> PathBuf {
        if shard.is_whole() { self.dir.clone() } else { self.dir.join("shards").join(shard.dir_name()) }
    }
    pub fn records_path(&self, shard: Shard) -> PathBuf {
        self.shard_dir(shard).join("records.jsonl")
    }

    /// Write the experiment text and add the grid's configurations to `configs.json`.
    pub fn write_meta(&self, experiment_src: &str, grid: &Grid) -> Result<(), HarnessError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| HarnessError::io(&self.dir, e))?;
        let mut configs = self.read_configs().unwrap_or_default();
        for (h, c) in grid.hashes.iter().zip(&grid.configs) {
            configs.insert(h.clone(), c.clone());
        }
        write_atomic(&self.experiment_path(), experiment_src.as_bytes())?;
        let json = serde_json::to_string_pretty(&configs).expect("configs serialise");
        write_atomic(&self.configs_path(), json.as_bytes())
    }

    /// Metric labels per task (`tasks.json`), written by the runner for the report's axes.
    pub fn write_metrics(&self, metrics: &BTreeMap<String, String>) -> Result<(), HarnessError> {
        let mut all = self.read_metrics();
        all.extend(metrics.iter().map(|(k, v)| (k.clone(), v.clone())));
        let json = serde_json::to_string_pretty(&all).expect("metrics serialise");
        write_atomic(&self.dir.join("tasks.json"), json.as_bytes())
    }

    pub fn read_metrics(&self) -> BTreeMap<String, String> {
        std::fs::read_to_string(self.dir.join("tasks.json")).ok().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default()
    }

    pub fn read_configs(&self) -> Result<BTreeMap<String, RunConfig>, HarnessError> {
        let p = self.configs_path();
        let s = std::fs::read_to_string(&p).map_err(|e| HarnessError::io(&p, e))?;
        serde_json::from_str(&s).map_err(|e| HarnessError::BadRecord { path: p.display().to_string(), line: e.line(), msg: e.to_string() })
    }

    /// Open a shard's records for appending. With `resume`, cut a partial last line and return the
    /// keys already done; without, refuse to touch existing records.
    pub fn open_records(&self, shard: Shard, resume: bool) -> Result<(RecordWriter, HashSet<Key>), HarnessError> {
        let path = self.records_path(shard);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| HarnessError::io(parent, e))?;
        }
        let mut done = HashSet::new();
        if path.exists() && std::fs::metadata(&path).map(|m| m.len() > 0).unwrap_or(false) {
            if !resume {
                return Err(HarnessError::Store(format!(
                    "{} already holds records: pass --resume to continue the sweep, or --fresh to start over",
                    path.display()
                )));
            }
            cut_partial_line(&path)?;
            for r in read_records(&path)? {
                done.insert(r.key());
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| HarnessError::io(&path, e))?;
        Ok((RecordWriter { file, path }, done))
    }

    /// Delete a shard's records (`--fresh`).
    pub fn clear_records(&self, shard: Shard) -> Result<(), HarnessError> {
        let p = self.records_path(shard);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(HarnessError::io(&p, e)),
        }
    }

    /// The merged (or unsharded) records; a store committed compressed (`records.jsonl.gz`, as
    /// under results/) is read as well.
    pub fn read_all(&self) -> Result<Vec<Record>, HarnessError> {
        let p = self.records_path(Shard::WHOLE);
        let gz = p.with_extension("jsonl.gz");
        if !p.exists() && gz.exists() {
            return read_records(&gz);
        }
        if !p.exists() {
            let shards = self.shard_dirs()?;
            let hint = if shards.is_empty() {
                "run the experiment first (speccascade run <exp.yaml>)".to_string()
            } else {
                format!("found {} shard(s): join them with `speccascade merge {}`", shards.len(), self.dir.display())
            };
            return Err(HarnessError::Store(format!("{} does not exist: {hint}", p.display())));
        }
        read_records(&p)
    }

    /// Shard directories present: (shard, path).
    pub fn shard_dirs(&self) -> Result<Vec<(Shard, PathBuf)>, HarnessError> {
        let root = self.dir.join("shards");
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&root) else { return Ok(out) };
        for e in rd {
            let e = e.map_err(|e| HarnessError::io(&root, e))?;
            let name = e.file_name().to_string_lossy().to_string();
            if let Some((i, n)) = name.split_once("-of-")
                && let (Ok(index), Ok(count)) = (i.parse(), n.parse())
            {
                out.push((Shard { index, count }, e.path()));
            }
        }
        out.sort_by_key(|(s, _)| (s.count, s.index));
        Ok(out)
    }

    /// Join the shards' records into `records.jsonl`, in the order an unsharded run writes them.
    /// Refuses missing shards (unless `partial`), mixed shard counts, and conflicting duplicates.
    pub fn merge(&self, grid: &Grid, partial: bool) -> Result<MergeReport, HarnessError> {
        let shards = self.shard_dirs()?;
        if shards.is_empty() {
            return Err(HarnessError::Store(format!("no shards under {}", self.dir.join("shards").display())));
        }
        let n = shards[0].0.count;
        if let Some((s, _)) = shards.iter().find(|(s, _)| s.count != n) {
            return Err(HarnessError::Store(format!("shards of different counts: {}/{} beside .../{n}", s.index, s.count)));
        }
        let present: HashSet<usize> = shards.iter().map(|(s, _)| s.index).collect();
        let missing: Vec<usize> = (0..n).filter(|i| !present.contains(i)).collect();
        if !missing.is_empty() && !partial {
            return Err(HarnessError::Store(format!("shards {missing:?} of {n} are missing (pass --partial to merge what exists)")));
        }
        let mut all: Vec<Record> = Vec::new();
        let mut seen: HashMap<Key, usize> = HashMap::new();
        let mut duplicates = 0;
        for (s, dir) in &shards {
            let p = dir.join("records.jsonl");
            if !p.exists() {
                continue;
            }
            cut_partial_line(&p)?;
            for r in read_records(&p)? {
                match seen.get(&r.key()) {
                    Some(&i) => {
                        if all[i].without_timing() != r.without_timing() {
                            return Err(HarnessError::Store(format!(
                                "shard {s}: record {:?} differs from an earlier copy (mixed experiments?)",
                                r.key()
                            )));
                        }
                        duplicates += 1;
                    }
                    None => {
                        seen.insert(r.key(), all.len());
                        all.push(r);
                    }
                }
            }
        }
        sort_canonical(&mut all, grid);
        let out = self.records_path(Shard::WHOLE);
        let mut buf = Vec::new();
        for r in &all {
            serde_json::to_writer(&mut buf, r).expect("record serialises");
            buf.push(b'\n');
        }
        write_atomic(&out, &buf)?;
        Ok(MergeReport { shards: shards.len(), of: n, missing, records: all.len(), duplicates_dropped: duplicates })
    }
}

/// What `merge` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MergeReport {
    pub shards: usize,
    pub of: usize,
    pub missing: Vec<usize>,
    pub records: usize,
    pub duplicates_dropped: usize,
}

/// Execution order: unit, then the configuration's place in the grid.
pub fn sort_canonical(records: &mut [Record], grid: &Grid) {
    let pos: HashMap<&str, usize> = grid.hashes.iter().enumerate().map(|(i, h)| (h.as_str(), i)).collect();
    records.sort_by(|a, b| {
        let ka = (a.unit, pos.get(a.config.as_str()).copied().unwrap_or(usize::MAX), &a.config);
        let kb = (b.unit, pos.get(b.config.as_str()).copied().unwrap_or(usize::MAX), &b.config);
        ka.cmp(&kb)
    });
}

/// Appends records, one whole line per write.
pub struct RecordWriter {
    file: File,
    path: PathBuf,
}

impl RecordWriter {
    pub fn append(&mut self, r: &Record) -> Result<(), HarnessError> {
        let mut line = serde_json::to_vec(r).expect("record serialises");
        line.push(b'\n');
        self.file.write_all(&line).map_err(|e| HarnessError::io(&self.path, e))?;
        self.file.flush().map_err(|e| HarnessError::io(&self.path, e))
    }

    pub fn sync(&mut self) -> Result<(), HarnessError> {
        self.file.sync_all().map_err(|e| HarnessError::io(&self.path, e))
    }
}

/// The largest records file read (a sweep of 10⁵ records with traces is well under it).
pub const RECORDS_FILE_LIMIT: u64 = 8 << 30;
/// The longest record line (a record with a per-token trace of a long generation is ~1 MB).
pub const RECORD_LINE_LIMIT: usize = 64 << 20;

/// Read a JSONL records file; a bad line is an error naming its line number. The file and each
/// line are capped ([`RECORDS_FILE_LIMIT`], [`RECORD_LINE_LIMIT`]), so garbage without newlines
/// cannot take all memory.
pub fn read_records(path: &Path) -> Result<Vec<Record>, HarnessError> {
    let f = File::open(path).map_err(|e| HarnessError::io(path, e))?;
    // A `.gz` file is decompressed on the fly; the cap applies to the decompressed bytes.
    let raw: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") { Box::new(flate2::read::GzDecoder::new(f)) } else { Box::new(f) };
    let mut reader = BufReader::new(speccascade_files::CappedRead::new(raw, RECORDS_FILE_LIMIT, "records file"));
    let mut out = Vec::new();
    let mut line = Vec::new();
    for i in 0.. {
        let bad = |msg: String| HarnessError::BadRecord { path: path.display().to_string(), line: i + 1, msg };
        line.clear();
        let n = (&mut reader).take(RECORD_LINE_LIMIT as u64 + 1).read_until(b'\n', &mut line).map_err(|e| bad(e.to_string()))?;
        if n == 0 {
            break;
        }
        if line.len() > RECORD_LINE_LIMIT {
            return Err(bad(format!("line longer than {RECORD_LINE_LIMIT} bytes: not a records file")));
        }
        // Bytes first: a line that is not UTF-8 (binary garbage mid-file) is a bad record with
        // its line number, not an anonymous I/O error.
        let text = std::str::from_utf8(&line)
            .map_err(|e| bad(format!("not UTF-8 text (byte {} of the line): binary data in a records file", e.valid_up_to() + 1)))?;
        if text.trim().is_empty() {
            continue;
        }
        let r: Record = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        out.push(r);
    }
    Ok(out)
}

/// Truncate a file after its last newline (drops a line cut short by a kill).
fn cut_partial_line(path: &Path) -> Result<(), HarnessError> {
    let bytes = std::fs::read(path).map_err(|e| HarnessError::io(path, e))?;
    let keep = bytes.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
    if keep < bytes.len() {
        let mut f = OpenOptions::new().write(true).open(path).map_err(|e| HarnessError::io(path, e))?;
        f.set_len(keep as u64).map_err(|e| HarnessError::io(path, e))?;
        f.seek(SeekFrom::End(0)).map_err(|e| HarnessError::io(path, e))?;
    }
    Ok(())
}

/// Write via a temporary file, fsync and rename, so readers never see half a file (see
/// [`speccascade_files::atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HarnessError> {
    speccascade_files::write_atomic(path, bytes).map_err(|e| HarnessError::io(path, e))
}

/// The locks a writer holds on a store; released when dropped or when the process dies.
#[derive(Debug)]
pub struct StoreLock {
    _store: DirLock,
    _shard: Option<DirLock>,
}

impl Store {
    /// Take the writer's lock before touching the store: one writer per output directory. A whole
    /// run, `merge` and `report` lock the directory exclusively; a shard (`run --shard i/n`) locks it
    /// shared — shards write their own files, so they run in parallel — and its shard directory
    /// exclusively. A second writer is refused at once with the holder's pid. `what` says who is
    /// asking ("speccascade run x.yaml").
    pub fn lock(&self, shard: Shard, what: &str) -> Result<StoreLock, HarnessError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| HarnessError::io(&self.dir, e))?;
        if shard.is_whole() {
            let store = DirLock::exclusive(&self.dir, what).map_err(|e| self.busy(e))?;
            return Ok(StoreLock { _store: store, _shard: None });
        }
        let store = DirLock::shared(&self.dir, what).map_err(|e| self.busy(e))?;
        let dir = self.shard_dir(shard);
        let shard = DirLock::exclusive(&dir, what).map_err(|e| self.busy(e))?;
        Ok(StoreLock { _store: store, _shard: Some(shard) })
    }

    /// A refusal naming who holds the store: the exclusive holder's record, or the shards running.
    fn busy(&self, e: LockError) -> HarnessError {
        match e {
            LockError::Busy { holder: None, .. } => {
                let running: Vec<String> = self
                    .shard_dirs()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(s, d)| lock::probe(&d.join(lock::LOCK_FILE)).map(|h| (s, h)))
                    .map(|(s, h)| format!("shard {s}{}", h.map(|h| format!(" by pid {}", h.pid)).unwrap_or_default()))
                    .collect();
                let who = if running.is_empty() { "another process".to_string() } else { running.join(", ") };
                HarnessError::Store(format!("{} is in use by {who}: one writer at a time (wait for it to finish, or stop it)", self.dir.display()))
            }
            e => HarnessError::Store(e.to_string()),
        }
    }
}

/// Append one value as a JSON line to `path` (created when missing), whole line per write.
pub fn append_jsonl<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), HarnessError> {
    let mut line = serde_json::to_vec(value).expect("value serialises");
    line.push(b'\n');
    let mut f = OpenOptions::new().create(true).append(true).open(path).map_err(|e| HarnessError::io(path, e))?;
    f.write_all(&line).map_err(|e| HarnessError::io(path, e))
}
