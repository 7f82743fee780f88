//! `models fetch <hub-id>[@revision]`: a Hugging Face hub model repository into the cache, as a
//! plain Hugging Face directory that [`crate::registry::resolve_model`] loads.
//!
//! A small client over `ureq` speaking the hub's HTTP API (the `hf-hub` crate verifies no
//! checksum and keeps its own symlinked cache and locks; here every byte is checked and the
//! cache is ours):
//!
//! 1. `GET {endpoint}/api/models/{id}/revision/{revision}?blobs=true` gives the commit the
//!    revision points at and every file with its size, git blob id and, for LFS files, the
//!    sha256 (`lfs.sha256`; the tree API's spelling `lfs.oid` is accepted too).
//! 2. The files a model needs are chosen: `config.json`, `tokenizer.json`, the tokenizer's and
//!    generation's small configs when present, and the weights — `model.safetensors`, or
//!    `model.safetensors.index.json` and every shard its `weight_map` names.
//! 3. Each file comes from `{endpoint}/{id}/resolve/{commit}/{file}`, pinned to the commit so a
//!    moving branch cannot mix two versions. The hub answers LFS files with a redirect carrying
//!    `X-Linked-Etag` (the sha256, cross-checked against the API's) and `X-Linked-Size`; the
//!    token is sent to the hub only, never to the host a redirect points at.
//!
//! Large (LFS) files stream into `<file>.<sha256 prefix>.partial` and resume where a broken transfer left off
//! (`Range: bytes=N-`; the kept prefix is hashed again). A file is renamed into place only once
//! its size and sha256 equal the hub's; a mismatch deletes the partial file and is refused. Small
//! (git) files are read whole, checked against their git blob id and written atomically. The
//! manifest `.speccascade-hub.json`, written last, marks a complete download. Fetches of one
//! repository revision take turns on a lock file beside its directory.
//!
//! `HF_ENDPOINT` replaces `https://huggingface.co` (a mirror, or a test server), `HF_TOKEN`
//! authorises gated and private repositories, and `HF_HUB_OFFLINE=1` refuses to go online. An
//! unreachable hub gets an error that names the way round it: a local directory (`--model DIR`).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fetch::{bar, hex};

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The manifest that marks a complete download in a repository's cache directory.
pub const MANIFEST: &str = ".speccascade-hub.json";
/// Git (non-LFS) files are read into memory: the hub keeps files above 10 MB in LFS.
const SMALL_FILE_LIMIT: u64 = 64 << 20;
/// API answers (the file list) are capped too.
const API_LIMIT: u64 = 32 << 20;

/// Why a hub fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("'{given}': {reason}; expected a hub id `owner/name`, optionally `@revision` (a branch, tag or commit)")]
    BadId { given: String, reason: String },
    #[error(
        "cannot reach the hub at {endpoint} for {id}: {reason}. Without the hub, download the checkpoint on a \
         machine that has it (config.json, model.safetensors or its shards with model.safetensors.index.json, \
         tokenizer.json) and pass its directory instead: `--model DIR` (generate), `models.drafter: DIR` or \
         `--set models.drafter=DIR` (run); or set HF_ENDPOINT to a reachable mirror"
    )]
    Offline { endpoint: String, id: String, reason: String },
    #[error("{url}: HTTP {status}{hint}")]
    Status { url: String, status: u16, hint: String },
    #[error("{url}: {reason}")]
    BadAnswer { url: String, reason: String },
    #[error(
        "the download of {url} broke off after {have} bytes ({reason}); run the same command again to resume \
         from {}", partial.display()
    )]
    Interrupted { url: String, have: u64, reason: String, partial: PathBuf },
    #[error("{id}@{revision} has no {what}; its files: {files}")]
    Missing { id: String, revision: String, what: String, files: String },
    #[error(
        "{file}: {kind} {got} does not match the hub's {expected}; the download was refused and removed, nothing \
         was written under the final name"
    )]
    Hash { file: String, kind: &'static str, expected: String, got: String },
    #[error("{file}: {got} bytes arrived, the hub lists {expected}; the download was refused and removed")]
    Size { file: String, expected: u64, got: u64 },
    #[error("{id}: config.json says model_type {got:?}, the registry expects {expected:?}")]
    Architecture { id: String, expected: String, got: String },
    #[error("cannot lock the cache for {id}: {source}")]
    Lock { id: String, source: speccascade_files::LockError },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

type Result<T> = std::result::Result<T, HubError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HubError + '_ {
    move |source| HubError::Io { path: path.to_path_buf(), source }
}

/// `owner/name[@revision]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubRef {
    pub id: String,
    /// A branch, tag or commit (`main` when not given).
    pub revision: String,
}

impl HubRef {
    /// Parse `owner/name` or `owner/name@revision`.
    pub fn parse(given: &str) -> Result<HubRef> {
        let bad = |reason: &str| HubError::BadId { given: given.to_string(), reason: reason.to_string() };
        let (id, revision) = match given.rsplit_once('@') {
            Some((id, rev)) => (id, rev),
            None => (given, "main"),
        };
        let parts: Vec<&str> = id.split('/').collect();
        if parts.len() != 2 {
            return Err(bad("not of the form owner/name"));
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 96
                && !s.starts_with(['.', '-'])
                && !s.contains("..")
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if !parts.iter().all(|p| name_ok(p)) {
            return Err(bad("owner and name are letters, digits, '-', '_' and '.', not starting with '.' or '-'"));
        }
        let rev_ok = !revision.is_empty()
            && revision.len() <= 256
            && !revision.split('/').any(|s| s.is_empty() || s == "." || s == "..")
            && revision.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        if !rev_ok {
            return Err(bad("the revision is letters, digits, '-', '_', '.' and '/'-separated parts"));
        }
        Ok(HubRef { id: id.to_string(), revision: revision.to_string() })
    }

    /// Whether `s` has the shape of a hub id (`owner/name[@rev]`) — not whether it exists.
    pub fn looks_like(s: &str) -> bool {
        Self::parse(s).is_ok()
    }

    /// The directory the revision is cached in: `<cache>/hub/<owner>--<name>/<revision>`
    /// (a `/` in the revision written `%2F`).
    pub fn cache_dir(&self, cache_root: &Path) -> PathBuf {
        cache_root.join("hub").join(self.id.replace('/', "--")).join(self.revision.replace('/', "%2F"))
    }

    /// The complete cached download of this revision, if there is one.
    pub fn cached(&self, cache_root: &Path) -> Option<(PathBuf, Manifest)> {
        let dir = self.cache_dir(cache_root);
        let text = fs::read_to_string(dir.join(MANIFEST)).ok()?;
        let m: Manifest = serde_json::from_str(&text).ok()?;
        m.files.iter().all(|f| fs::metadata(dir.join(&f.name)).is_ok_and(|md| md.len() == f.size)).then_some((dir, m))
    }
}

/// Every complete download in the cache (`<cache>/hub/*/*` with a manifest), sorted by path.
pub fn cached_repos(cache_root: &Path) -> Vec<(PathBuf, Manifest)> {
    let mut out = Vec::new();
    for repo in fs::read_dir(cache_root.join("hub")).into_iter().flatten().flatten() {
        for rev in fs::read_dir(repo.path()).into_iter().flatten().flatten() {
            let Ok(text) = fs::read_to_string(rev.path().join(MANIFEST)) else { continue };
            if let Ok(m) = serde_json::from_str::<Manifest>(&text)
                && let Ok(r) = HubRef::parse(&format!("{}@{}", m.id, m.revision))
                && r.cache_dir(cache_root) == rev.path()
                && let Some(found) = r.cached(cache_root)
            {
                out.push(found);
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

impl std::fmt::Display for HubRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.id, self.revision)
    }
}

/// Where and how to fetch.
#[derive(Clone, Debug)]
pub struct HubOptions {
    /// `$HF_ENDPOINT`, default [`DEFAULT_ENDPOINT`] (no trailing `/`).
    pub endpoint: String,
    /// `$HF_TOKEN` (or the older `$HUGGING_FACE_HUB_TOKEN`).
    pub token: Option<String>,
    /// `$HF_HUB_OFFLINE` is set: refuse to go online.
    pub offline: bool,
    /// Cache root (default `$SPECCASCADE_CACHE`).
    pub cache_root: PathBuf,
    /// Progress bars on stderr.
    pub progress: bool,
}

impl HubOptions {
    /// From the environment, with the usual cache.
    pub fn from_env(progress: bool) -> HubOptions {
        let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        HubOptions {
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()).trim_end_matches('/').to_string(),
            token: var("HF_TOKEN").or_else(|| var("HUGGING_FACE_HUB_TOKEN")),
            offline: var("HF_HUB_OFFLINE").is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "on" | "yes" | "true")),
            cache_root: crate::registry::cache_dir(),
            progress,
        }
    }
}

/// One file of a finished download, as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub size: u64,
    /// LFS files: the sha256 the content was checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Git files: the blob id (sha1 of `blob <size>\0<content>`) it was checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_oid: Option<String>,
    /// The repository it came from, when not the one fetched (a borrowed tokenizer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// `.speccascade-hub.json`: what a complete download holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    pub revision: String,
    /// The commit the revision pointed at.
    pub commit: String,
    pub endpoint: String,
    pub files: Vec<ManifestFile>,
}

/// What happened to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Already in the cache with the hub's size and hash.
    Present,
    Downloaded,
    /// Continued from a partial download of this many bytes.
    Resumed { from: u64 },
}

/// The result of [`fetch_repo`].
#[derive(Clone, Debug)]
pub struct Fetched {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub status: Vec<FileStatus>,
}

/// What to fetch beside the repository's own files.
#[derive(Clone, Debug, Default)]
pub struct FetchPlan {
    /// Borrow `tokenizer.json` from this repository (at `main`) when the repository has none
    /// (T5 v1.1 ships only `spiece.model`; Flan-T5 has the same vocabulary as a tokenizer.json).
    pub tokenizer_from: Option<String>,
    /// Check `config.json`'s `model_type` against this.
    pub model_type: Option<String>,
}

/// Files a model needs (besides its weights) and those kept when present.
const REQUIRED: &[&str] = &["config.json"];
const OPTIONAL: &[&str] =
    &["generation_config.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "spiece.model"];
const SINGLE: &str = "model.safetensors";
const INDEX: &str = "model.safetensors.index.json";

/// Fetch the repository revision `r` into the cache (see the module docs).
pub fn fetch_repo(r: &HubRef, plan: &FetchPlan, opts: &HubOptions) -> Result<Fetched> {
    let hub = Client::new(opts, &r.id)?;
    let info = hub.repo_info(r)?;
    let dir = r.cache_dir(&opts.cache_root);
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let lock_path = dir.with_file_name(format!(".{}.fetch.lock", r.revision.replace('/', "%2F")));
    let _lock = speccascade_files::DirLock::exclusive_wait(&lock_path, &format!("speccascade models fetch {r}"), |holder| {
        if opts.progress {
            let who = holder.map_or_else(|| "another process".to_string(), |h| h.to_string());
            eprintln!("{r}: waiting for {who}, which is fetching it");
        }
    })
    .map_err(|source| HubError::Lock { id: r.id.clone(), source })?;
    let previous: Option<Manifest> =
        fs::read_to_string(dir.join(MANIFEST)).ok().and_then(|t| serde_json::from_str(&t).ok());

    let listing = || info.siblings.iter().map(|s| s.rfilename.as_str()).collect::<Vec<_>>().join(", ");
    let missing = |what: &str| HubError::Missing { id: r.id.clone(), revision: r.revision.clone(), what: what.into(), files: listing() };
    let mut wanted: Vec<&Sibling> = Vec::new();
    for &name in REQUIRED {
        wanted.push(info.file(name).ok_or_else(|| missing(name))?);
    }
    wanted.extend(OPTIONAL.iter().filter_map(|n| info.file(n)));
    let tokenizer = info.file("tokenizer.json");
    if tokenizer.is_none() && plan.tokenizer_from.is_none() {
        return Err(missing("tokenizer.json"));
    }
    wanted.extend(tokenizer);

    let mut files = Vec::new();
    let mut status = Vec::new();
    let mut get = |hub: &Client<'_>, repo: &str, commit: &str, s: &Sibling, from: Option<String>| -> Result<()> {
        let (f, st) = hub.download(repo, commit, s, &dir, previous.as_ref())?;
        files.push(ManifestFile { from, ..f });
        status.push(st);
        Ok(())
    };
    for s in wanted.iter().copied() {
        get(&hub, &r.id, &info.sha, s, None)?;
    }
    if let (None, Some(other)) = (tokenizer, &plan.tokenizer_from) {
        let oref = HubRef::parse(other)?;
        let oinfo = hub.repo_info(&oref)?;
        let s = oinfo.file("tokenizer.json").ok_or_else(|| HubError::Missing {
            id: oref.id.clone(),
            revision: oref.revision.clone(),
            what: "tokenizer.json (to borrow)".into(),
            files: oinfo.siblings.iter().map(|s| s.rfilename.clone()).collect::<Vec<_>>().join(", "),
        })?;
        get(&hub, &oref.id, &oinfo.sha, s, Some(format!("{}@{}", oref.id, oinfo.sha)))?;
    }
    // Weights: one file, or the index and the shards it names.
    if let Some(s) = info.file(SINGLE) {
        get(&hub, &r.id, &info.sha, s, None)?;
    } else if let Some(s) = info.file(INDEX) {
        get(&hub, &r.id, &info.sha, s, None)?;
        let index_path = dir.join(INDEX);
        let text = fs::read_to_string(&index_path).map_err(io(&index_path))?;
        let shards = shard_names(&text).map_err(|reason| HubError::BadAnswer { url: index_path.display().to_string(), reason })?;
        for name in shards {
            let s = info.file(&name).ok_or_else(|| missing(&format!("shard {name} (named by {INDEX})")))?;
            get(&hub, &r.id, &info.sha, s, None)?;
        }
    } else {
        let others: Vec<&str> = info
            .siblings
            .iter()
            .map(|s| s.rfilename.as_str())
            .filter(|n| n.ends_with(".bin") || n.ends_with(".h5") || n.ends_with(".msgpack") || n.ends_with(".pt"))
            .collect();
        return Err(missing(&format!(
            "safetensors weights ({SINGLE} or {INDEX}){}",
            if others.is_empty() {
                String::new()
            } else {
                format!(
                    "; only {} — convert them (transformers: `save_pretrained(DIR, safe_serialization=True)`) and \
                     pass DIR, or fetch a revision that has safetensors (the hub's conversion pull requests are \
                     `@refs/pr/N`)",
                    others.join(", ")
                )
            }
        )));
    }
    if let Some(want) = &plan.model_type {
        let cfg_path = dir.join("config.json");
        let cfg: serde_json::Value = serde_json::from_str(&fs::read_to_string(&cfg_path).map_err(io(&cfg_path))?)
            .map_err(|e| HubError::BadAnswer { url: cfg_path.display().to_string(), reason: format!("invalid JSON: {e}") })?;
        let got = cfg.get("model_type").and_then(|v| v.as_str()).unwrap_or("").to_string();
        if &got != want {
            return Err(HubError::Architecture { id: r.id.clone(), expected: want.clone(), got });
        }
    }
    let manifest = Manifest { id: r.id.clone(), revision: r.revision.clone(), commit: info.sha.clone(), endpoint: opts.endpoint.clone(), files };
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    speccascade_files::write_atomic(&dir.join(MANIFEST), json.as_bytes()).map_err(io(&dir.join(MANIFEST)))?;
    Ok(Fetched { dir, manifest, status })
}

/// The shard file names of a `model.safetensors.index.json` (sorted, distinct, plain names).
fn shard_names(index: &str) -> std::result::Result<Vec<String>, String> {
    let json: serde_json::Value = serde_json::from_str(index).map_err(|e| format!("invalid JSON: {e}"))?;
    let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or("no \"weight_map\" object")?;
    let mut names: Vec<String> = Vec::new();
    for v in map.values() {
        let n = v.as_str().ok_or("a weight_map value is not a string")?;
        if !plain_name(n) {
            return Err(format!("shard name {n:?} is not a plain file name"));
        }
        names.push(n.to_string());
    }
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Err("empty weight_map".into());
    }
    Ok(names)
}

/// A file name without directories, `..` or odd characters (the cache is flat).
fn plain_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 255 && !n.starts_with('.') && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// One file of the repository as the API lists it.
#[derive(Clone, Debug, Deserialize)]
struct Sibling {
    rfilename: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "blobId")]
    blob_id: Option<String>,
    #[serde(default)]
    lfs: Option<Lfs>,
}

#[derive(Clone, Debug, Deserialize)]
struct Lfs {
    #[serde(default, alias = "oid")]
    sha256: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

/// `/api/models/{id}/revision/{rev}`: the commit and the files.
#[derive(Debug, Deserialize)]
struct RepoInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

impl RepoInfo {
    fn file(&self, name: &str) -> Option<&Sibling> {
        self.siblings.iter().find(|s| s.rfilename == name)
    }
}

/// The HTTP side: one agent that follows no redirect by itself (the token must not follow one
/// to another host, and the hub's first answer carries the checksum headers).
struct Client<'a> {
    agent: ureq::Agent,
    opts: &'a HubOptions,
    id: String,
}

/// The answer to a GET after redirects, with the hub's checksum headers from any hop.
struct Answer {
    url: String,
    status: u16,
    linked_etag: Option<String>,
    etag: Option<String>,
    content_range: Option<String>,
    body: ureq::Body,
}

impl<'a> Client<'a> {
    fn new(opts: &'a HubOptions, id: &str) -> Result<Client<'a>> {
        if opts.offline {
            return Err(HubError::Offline { endpoint: opts.endpoint.clone(), id: id.to_string(), reason: "HF_HUB_OFFLINE is set".into() });
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .user_agent(concat!("speccascade/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client { agent: config.into(), opts, id: id.to_string() })
    }

    /// GET `url` (with `Range: bytes=from-` when `from > 0`), following up to 5 redirects; the
    /// token goes only to the endpoint's own host.
    fn get(&self, url: &str, from: u64) -> Result<Answer> {
        let mut url = url.to_string();
        let mut linked_etag = None;
        for _ in 0..6 {
            let mut req = self.agent.get(&url);
            if same_origin(&url, &self.opts.endpoint)
                && let Some(t) = &self.opts.token
            {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
            if from > 0 {
                req = req.header("Range", format!("bytes={from}-"));
            }
            let resp = req.call().map_err(|e| self.unreachable(&url, e))?;
            let header = |k: &str| resp.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
            if let Some(e) = header("x-linked-etag") {
                linked_etag = Some(e);
            }
            let status = resp.status().as_u16();
            if (300..400).contains(&status) {
                let loc = header("location").ok_or_else(|| HubError::BadAnswer { url: url.clone(), reason: format!("HTTP {status} without a Location") })?;
                url = join_location(&url, &loc);
                continue;
            }
            return Ok(Answer {
                url,
                status,
                linked_etag,
                etag: header("etag"),
                content_range: header("content-range"),
                body: resp.into_body(),
            });
        }
        Err(HubError::BadAnswer { url, reason: "more than 5 redirects".into() })
    }

    /// A transport error: the hub cannot be reached (or broke the connection).
    fn unreachable(&self, url: &str, e: ureq::Error) -> HubError {
        if same_origin(url, &self.opts.endpoint) {
            HubError::Offline { endpoint: self.opts.endpoint.clone(), id: self.id.clone(), reason: e.to_string() }
        } else {
            HubError::BadAnswer { url: url.to_string(), reason: e.to_string() }
        }
    }

    fn status_error(&self, a: &Answer, repo: &str) -> HubError {
        let hint = match a.status {
            401 | 403 => format!(
                " — {repo} is gated or private: accept its terms at {}/{repo} while logged in, and set HF_TOKEN to an \
                 access token of that account{}",
                self.opts.endpoint,
                if self.opts.token.is_some() { " (HF_TOKEN is set, but was refused)" } else { " (HF_TOKEN is not set)" }
            ),
            404 => " — no such repository, revision or file (check the id and the @revision)".to_string(),
            429 => " — rate limited by the hub; wait and run again (setting HF_TOKEN raises the limit)".to_string(),
            _ => String::new(),
        };
        HubError::Status { url: a.url.clone(), status: a.status, hint }
    }

    fn repo_info(&self, r: &HubRef) -> Result<RepoInfo> {
        let url = format!("{}/api/models/{}/revision/{}?blobs=true", self.opts.endpoint, r.id, percent_encode(&r.revision));
        let mut a = self.get(&url, 0)?;
        if a.status != 200 {
            return Err(self.status_error(&a, &r.id));
        }
        let text = a.body.with_config().limit(API_LIMIT).read_to_string().map_err(|e| HubError::BadAnswer { url: url.clone(), reason: e.to_string() })?;
        let info: RepoInfo = serde_json::from_str(&text).map_err(|e| HubError::BadAnswer { url: url.clone(), reason: format!("not the hub's repository JSON: {e}") })?;
        if info.sha.len() != 40 || !info.sha.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(HubError::BadAnswer { url, reason: format!("commit {:?} is not 40 hex digits", info.sha) });
        }
        Ok(info)
    }

    /// One file into `dir`, verified (see the module docs).
    fn download(&self, repo: &str, commit: &str, s: &Sibling, dir: &Path, previous: Option<&Manifest>) -> Result<(ManifestFile, FileStatus)> {
        let name = &s.rfilename;
        if !plain_name(name) {
            return Err(HubError::BadAnswer { url: format!("{repo}: {name}"), reason: "not a plain file name".into() });
        }
        let target = dir.join(name);
        let url = format!("{}/{repo}/resolve/{commit}/{name}", self.opts.endpoint);
        let lfs_sha = s.lfs.as_ref().and_then(|l| l.sha256.clone()).map(|h| h.to_ascii_lowercase());
        let size = s.lfs.as_ref().and_then(|l| l.size).or(s.size);
        let is_lfs = s.lfs.is_some();
        // Already here? The manifest of an earlier fetch vouches for an unchanged file of the
        // same size and hash; anything else is hashed again.
        if let Ok(md) = fs::metadata(&target)
            && size.is_none_or(|n| md.len() == n)
        {
            let vouched = previous.is_some_and(|m| {
                m.files.iter().any(|f| {
                    &f.name == name && Some(f.size) == size && (f.sha256.is_some() && f.sha256 == lfs_sha || f.git_oid.is_some() && f.git_oid == s.blob_id)
                })
            });
            let matches = vouched
                || if is_lfs {
                    lfs_sha.as_ref().is_some_and(|want| crate::fetch::hash_file(&target, None).is_ok_and(|(h, _)| &h == want))
                } else {
                    s.blob_id.as_ref().is_some_and(|want| fs::read(&target).is_ok_and(|b| &git_oid(&b) == want))
                };
            if matches {
                let f = ManifestFile { name: name.clone(), size: md.len(), sha256: lfs_sha.clone(), git_oid: (!is_lfs).then(|| s.blob_id.clone()).flatten(), from: None };
                return Ok((f, FileStatus::Present));
            }
        }
        if is_lfs { self.download_lfs(&url, repo, name, lfs_sha, size, &target) } else { self.download_small(&url, repo, name, s, &target) }
    }

    /// A git file: read whole (capped), checked against its blob id, written atomically.
    fn download_small(&self, url: &str, repo: &str, name: &str, s: &Sibling, target: &Path) -> Result<(ManifestFile, FileStatus)> {
        let mut a = self.get(url, 0)?;
        if a.status != 200 {
            return Err(self.status_error(&a, repo));
        }
        let bytes = a.body.with_config().limit(SMALL_FILE_LIMIT).read_to_vec().map_err(|e| HubError::BadAnswer { url: url.to_string(), reason: e.to_string() })?;
        if let Some(n) = s.size.filter(|&n| n != bytes.len() as u64) {
            return Err(HubError::Size { file: name.to_string(), expected: n, got: bytes.len() as u64 });
        }
        // The blob id from the API, else the hub's ETag (a git file's ETag is its blob id).
        let want = s.blob_id.clone().or_else(|| a.etag.as_deref().map(clean_etag).filter(|e| e.len() == 40));
        let want = want.ok_or_else(|| HubError::BadAnswer { url: url.to_string(), reason: "neither the API nor the answer gives the file's git blob id: refusing an unverifiable file".into() })?;
        let got = git_oid(&bytes);
        if got != want.to_ascii_lowercase() {
            return Err(HubError::Hash { file: name.to_string(), kind: "git blob id", expected: want, got });
        }
        speccascade_files::write_atomic(target, &bytes).map_err(io(target))?;
        Ok((ManifestFile { name: name.to_string(), size: bytes.len() as u64, sha256: None, git_oid: Some(got), from: None }, FileStatus::Downloaded))
    }

    /// An LFS file: streamed into `<name>.partial`, resumed, verified, renamed into place.
    fn download_lfs(&self, url: &str, repo: &str, name: &str, lfs_sha: Option<String>, size: Option<u64>, target: &Path) -> Result<(ManifestFile, FileStatus)> {
        // The partial file is named for the content it is becoming, so that a new commit's file
        // never continues an old one's bytes; other partial files of this name are stale.
        let tag = lfs_sha.as_deref().map_or(String::new(), |h| format!(".{}", &h[..h.len().min(12)]));
        let partial = target.with_file_name(format!("{name}{tag}.partial"));
        if let Some(d) = target.parent()
            && let Ok(entries) = fs::read_dir(d)
        {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(&format!("{name}.")) && n.ends_with(".partial") && e.path() != partial {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let mut have = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if size.is_some_and(|n| have > n) {
            have = 0;
        }
        let mut a = self.get(url, have)?;
        if a.status == 416 && have > 0 && size == Some(have) {
            // The partial file is complete already (killed before its rename).
            a = self.get(url, 0)?;
            have = 0;
        }
        let resumed = match a.status {
            206 if have > 0 => {
                let ok = a.content_range.as_deref().is_some_and(|r| r.trim().starts_with(&format!("bytes {have}-")));
                if !ok {
                    return Err(HubError::BadAnswer { url: a.url.clone(), reason: format!("asked for bytes {have}-, got Content-Range {:?}", a.content_range) });
                }
                true
            }
            200 => {
                have = 0; // the server sent the whole file: start over
                false
            }
            _ => return Err(self.status_error(&a, repo)),
        };
        // The sha256: the API's and the hub's X-Linked-Etag must agree; one of them must exist.
        let header_sha = a.linked_etag.as_deref().map(clean_etag).filter(|e| e.len() == 64 && e.chars().all(|c| c.is_ascii_hexdigit()));
        let want = match (&lfs_sha, &header_sha) {
            (Some(x), Some(y)) if x != y => {
                return Err(HubError::BadAnswer { url: url.to_string(), reason: format!("the API lists sha256 {x} but X-Linked-Etag says {y}") });
            }
            (Some(x), _) | (None, Some(x)) => x.clone(),
            (None, None) => {
                return Err(HubError::BadAnswer { url: url.to_string(), reason: "no sha256 for this LFS file (neither lfs.sha256 in the API nor X-Linked-Etag): refusing an unverifiable download".into() });
            }
        };
        let mut hasher = Sha256::new();
        let mut file = fs::OpenOptions::new().create(true).append(true).open(&partial).map_err(io(&partial))?;
        if resumed {
            // Hash the kept prefix again: the bytes on disk are what will be renamed.
            let mut f = fs::File::open(&partial).map_err(io(&partial))?.take(have);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let k = f.read(&mut buf).map_err(io(&partial))?;
                if k == 0 {
                    break;
                }
                hasher.update(&buf[..k]);
            }
        } else {
            file.set_len(0).map_err(io(&partial))?;
        }
        let pb = bar(size.unwrap_or(0), name.to_string(), self.opts.progress);
        pb.set_position(have);
        let mut reader = a.body.into_reader();
        let mut buf = vec![0u8; 1 << 20];
        let mut got = have;
        loop {
            let k = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    pb.abandon();
                    file.flush().map_err(io(&partial))?;
                    let _ = file.sync_all();
                    return Err(HubError::Interrupted { url: url.to_string(), have: got, reason: e.to_string(), partial });
                }
            };
            if size.is_some_and(|n| got + k as u64 > n) {
                drop(file);
                let _ = fs::remove_file(&partial);
                return Err(HubError::Size { file: name.to_string(), expected: size.unwrap_or(0), got: got + k as u64 });
            }
            file.write_all(&buf[..k]).map_err(io(&partial))?;
            hasher.update(&buf[..k]);
            got += k as u64;
            pb.inc(k as u64);
        }
        pb.finish_and_clear();
        file.sync_all().map_err(io(&partial))?;
        drop(file);
        if let Some(n) = size.filter(|&n| n != got) {
            let _ = fs::remove_file(&partial);
            return Err(HubError::Size { file: name.to_string(), expected: n, got });
        }
        let sha = hex(&hasher.finalize());
        if sha != want {
            let _ = fs::remove_file(&partial);
            return Err(HubError::Hash { file: name.to_string(), kind: "sha256", expected: want, got: sha });
        }
        fs::rename(&partial, target).map_err(io(target))?;
        if let Some(d) = target.parent()
            && let Ok(f) = fs::File::open(d)
        {
            let _ = f.sync_all();
        }
        let status = if resumed { FileStatus::Resumed { from: have } } else { FileStatus::Downloaded };
        Ok((ManifestFile { name: name.to_string(), size: got, sha256: Some(sha), git_oid: None, from: None }, status))
    }
}

/// A git blob id: sha1 of `blob <len>\0<content>`.
fn git_oid(bytes: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex(&h.finalize())
}

/// An ETag without `W/` and quotes, lower-case.
fn clean_etag(e: &str) -> String {
    e.trim().trim_start_matches("W/").trim_matches('"').to_ascii_lowercase()
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(j) => &url[..after + j],
        None => url,
    }
}

fn same_origin(url: &str, endpoint: &str) -> bool {
    origin(url).eq_ignore_ascii_case(origin(endpoint))
}

/// A redirect's `Location` against the URL that answered it.
fn join_location(base: &str, loc: &str) -> String {
    if loc.contains("://") {
        loc.to_string()
    } else if loc.starts_with('/') {
        format!("{}{loc}", origin(base))
    } else {
        let dir = base.rsplit_once('/').map_or(base, |(d, _)| d);
        format!("{dir}/{loc}")
    }
}

/// A revision in a URL path (`refs/pr/1` → `refs%2Fpr%2F1`).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_revisions_parse_strictly() {
        assert_eq!(HubRef::parse("google/gemma-2-2b-it").unwrap(), HubRef { id: "google/gemma-2-2b-it".into(), revision: "main".into() });
        assert_eq!(HubRef::parse("google/t5-v1_1-small@refs/pr/3").unwrap().revision, "refs/pr/3");
        for bad in ["gemma", "a/b/c", "../x", "a/..", "a/b@", "a/b@x/../y", "a/.b", "a b/c", "/abs"] {
            assert!(HubRef::parse(bad).is_err(), "{bad}");
        }
        let r = HubRef::parse("google/t5-v1_1-small@refs/pr/3").unwrap();
        assert!(r.cache_dir(Path::new("/c")).ends_with("hub/google--t5-v1_1-small/refs%2Fpr%2F3"));
    }

    #[test]
    fn urls_and_hashes() {
        assert_eq!(percent_encode("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(join_location("http://h:1/a/resolve/x/f", "/b/c"), "http://h:1/b/c");
        assert_eq!(join_location("http://h:1/a/f", "https://cdn/x"), "https://cdn/x");
        assert!(same_origin("http://127.0.0.1:9/x/y", "http://127.0.0.1:9"));
        assert!(!same_origin("https://cdn.example/x", "https://huggingface.co"));
        // `git hash-object` of "hello\n".
        assert_eq!(git_oid(b"hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
        assert_eq!(clean_etag("W/\"ABC\""), "abc");
        assert_eq!(shard_names(r#"{"weight_map":{"a":"m-2.safetensors","b":"m-1.safetensors","c":"m-1.safetensors"}}"#).unwrap(), ["m-1.safetensors", "m-2.safetensors"]);
        assert!(shard_names(r#"{"weight_map":{"a":"../evil"}}"#).is_err());
    }
}
