//! Datasets: manifests, fetching into the cache, reading upstream files, and mapping records to
//! [`Example`]s.

pub mod fetch;
pub mod manifest;
pub mod read;
pub mod schema;

use std::path::{Path, PathBuf};

pub use fetch::{cache_dir, cached_path, fetch, fetch_from_file};
pub use manifest::{Manifest, manifest, names};

use crate::error::{Result, TaskError};
use crate::example::Example;
use crate::task::Task;

/// Where examples come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The cache filled by `speccascade data fetch <task>`.
    Cache,
    /// A local file in the upstream schema (JSONL, JSONL.gz, JSON array, or parquet).
    File(PathBuf),
    /// Our own small fixture (`datasets/fixtures/`, compiled in): for tests and smoke runs.
    Fixture,
}

/// Every data set, named once: its manifest (`datasets/<name>.yaml`, read by [`manifest`]) and
/// our fixture (`datasets/fixtures/<name>.jsonl`), both compiled in as `(name, text)` tables.
macro_rules! datasets {
    ($($name:literal),+ $(,)?) => {
        static MANIFESTS: &[(&str, &str)] =
            &[$(($name, include_str!(concat!("../../../../datasets/", $name, ".yaml")))),+];
        static FIXTURES: &[(&str, &str)] =
            &[$(($name, include_str!(concat!("../../../../datasets/fixtures/", $name, ".jsonl")))),+];
    };
}

datasets!(
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
);

/// The fixture text of dataset `name` (JSONL, upstream schema).
pub fn fixture_text(name: &str) -> Result<&'static str> {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| TaskError::Invalid(format!("no fixture for dataset `{name}`")))
}

/// The cached file of a manifest: its `cache_file`, or one with the same stem that
/// `data fetch --from` stored in another format.
pub fn find_cached(m: &Manifest) -> Option<PathBuf> {
    let exact = cached_path(m);
    if exact.is_file() {
        return Some(exact);
    }
    let stem = m.cache_file.split('.').next()?;
    let dir = exact.parent()?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{stem}."))))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Maps every record of `path` (upstream schema of `dataset`) to an example.
pub fn examples_from_file(dataset: &str, path: &Path) -> Result<Vec<Example>> {
    let records = read::read_records(path)?;
    records
        .iter()
        .enumerate()
        .map(|(i, (line, rec))| schema::to_example(dataset, rec, &schema::At { path, line: *line }, i))
        .collect()
}

fn examples_from_fixture(dataset: &str) -> Result<Vec<Example>> {
    let text = fixture_text(dataset)?;
    let path = PathBuf::from(format!("datasets/fixtures/{dataset}.jsonl"));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let rec: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).map_err(|e| TaskError::Parse { path: path.clone(), line: i + 1, message: e.to_string() })?;
        out.push(schema::to_example(dataset, &rec, &schema::At { path: &path, line: i + 1 }, out.len())?);
    }
    Ok(out)
}

/// SplitMix64: the deterministic generator behind example sampling.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Loads the examples of `task` from `source`. With `n`, a seeded shuffle picks `n` of them
/// (the same `n` and `seed` give the same examples, kept in dataset order); `n` larger than the
/// data set takes all. Errors name the file, line and field of a bad record.
pub fn load_examples(task: &Task, source: &Source, n: Option<usize>, seed: u64) -> Result<Vec<Example>> {
    let all = match source {
        Source::Fixture => examples_from_fixture(task.dataset)?,
        Source::File(path) => examples_from_file(task.dataset, path)?,
        Source::Cache => {
            let m = manifest(task.dataset)?;
            let path = find_cached(&m).ok_or_else(|| TaskError::Fetch {
                dataset: m.name.clone(),
                message: format!(
                    "not in the cache ({}); run `speccascade data fetch {}`, or use a local file in the upstream schema \
                     (`data_file:` in the experiment, `--from <file>` on the command line)",
                    cached_path(&m).display(),
                    task.name
                ),
            })?;
            examples_from_file(task.dataset, &path)?
        }
    };
    let Some(n) = n.filter(|&n| n < all.len()) else { return Ok(all) };
    let mut idx: Vec<usize> = (0..all.len()).collect();
    let mut rng = SplitMix(seed ^ 0x5EED_DA7A);
    for i in (1..idx.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        idx.swap(i, j);
    }
    let mut chosen = idx[..n].to_vec();
    chosen.sort_unstable();
    Ok(chosen.into_iter().map(|i| all[i].clone()).collect())
}
