//! Helpers shared by the GGUF and tokenizer tests: the Python reference interpreter and the
//! cached real models.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python interpreter holding the reference packages: `$SPECCASCADE_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("SPECCASCADE_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Directory of the Python reference scripts.
pub fn py_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py")
}

/// Run `tests/py/<script>` with `args`; panics with a message telling how to install the
/// reference environment when the interpreter or its packages are missing.
pub fn run_py(script: &str, args: &[&str]) {
    let py = python();
    let out = Command::new(&py).arg(py_dir().join(script)).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run Python reference interpreter '{py}': {e}. Run .ci/python-env.sh and set SPECCASCADE_PYTHON to the path it prints")
    });
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("ModuleNotFoundError") {
            panic!(
                "Python reference packages missing for '{py}':\n{err}\nRun .ci/python-env.sh and set SPECCASCADE_PYTHON to the path it prints"
            );
        }
        panic!("{script} {args:?} failed ({}):\n{err}", out.status);
    }
}

/// Path of a registered model in the cache. Panics naming the fetch command when it is absent,
/// unless `SPECCASCADE_SKIP_MODEL_TESTS=1`, which makes the caller skip (returns `None`).
pub fn cached_model(name: &str) -> Option<PathBuf> {
    let spec = speccascade_models::registry::find(name).unwrap_or_else(|| panic!("unknown model {name}"));
    let path = spec.cached_path();
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("SPECCASCADE_SKIP_MODEL_TESTS").as_deref() == Ok("1") {
        eprintln!("skipping: {} not fetched (SPECCASCADE_SKIP_MODEL_TESTS=1)", path.display());
        return None;
    }
    panic!("{} is missing: run `speccascade models fetch {name}` (CI's .ci/run does), or set SPECCASCADE_SKIP_MODEL_TESTS=1", path.display());
}

/// A scratch directory removed on drop.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}
