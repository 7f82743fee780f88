//! Advisory locks on directories (`flock` through `std::fs::File::try_lock`).
//!
//! A lock lives in a file inside the directory (`.speccascade.lock` by default). `flock` locks
//! belong to the open file: the kernel drops them when the holder exits or is killed, so no
//! stale lock can block a later run. An exclusive holder writes its pid and what it is doing
//! into the file, and a refused writer quotes it. Shared locks let several cooperating writers
//! (the shards of one sweep, each writing its own files) in at once while keeping exclusive
//! writers out.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file's name inside a locked directory.
pub const LOCK_FILE: &str = ".speccascade.lock";

/// A held lock; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct DirLock {
    file: File,
    path: PathBuf,
    exclusive: bool,
}

/// What the lock file says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub what: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.what)
    }
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("{} is in use by {}: one writer at a time (wait for it to finish, or stop it)", .dir.display(), .holder.as_ref().map_or_else(|| "another process".to_string(), |h| h.to_string()))]
    Busy { dir: PathBuf, holder: Option<Holder> },
    #[error("{}: cannot lock: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl LockError {
    /// The holder's record, where the lock file has one.
    pub fn holder(&self) -> Option<&Holder> {
        match self {
            LockError::Busy { holder, .. } => holder.as_ref(),
            LockError::Io { .. } => None,
        }
    }
}

impl DirLock {
    /// Take the exclusive lock of `dir` (created if missing) at once, or fail with
    /// [`LockError::Busy`] naming the holder. `what` describes this holder for others' messages
    /// (e.g. "speccascade run experiments/x.yaml").
    pub fn exclusive(dir: &Path, what: &str) -> Result<DirLock, LockError> {
        Self::try_take(&dir.join(LOCK_FILE), true, what)
    }

    /// Take the shared lock of `dir` at once: any number of shared holders, no exclusive one.
    pub fn shared(dir: &Path, what: &str) -> Result<DirLock, LockError> {
        Self::try_take(&dir.join(LOCK_FILE), false, what)
    }

    /// Take an exclusive lock on the lock file `path`, waiting for the current holder; calls
    /// `waiting` once with the holder's record when it has to wait.
    pub fn exclusive_wait(path: &Path, what: &str, waiting: impl FnOnce(Option<&Holder>)) -> Result<DirLock, LockError> {
        match Self::try_take(path, true, what) {
            Err(LockError::Busy { holder, .. }) => {
                waiting(holder.as_ref());
                let file = open(path)?;
                file.lock().map_err(|source| LockError::Io { path: path.to_path_buf(), source })?;
                let mut l = DirLock { file, path: path.to_path_buf(), exclusive: true };
                l.record(what)?;
                Ok(l)
            }
            other => other,
        }
    }

    fn try_take(path: &Path, exclusive: bool, what: &str) -> Result<DirLock, LockError> {
        let file = open(path)?;
        let r = if exclusive { file.try_lock() } else { file.try_lock_shared() };
        match r {
            Ok(()) => {
                let mut l = DirLock { file, path: path.to_path_buf(), exclusive };
                if exclusive {
                    l.record(what)?;
                } else {
                    // No exclusive holder exists now, so any record is a dead one's: clear it,
                    // so a refused exclusive writer does not quote a pid long gone.
                    let _ = l.file.set_len(0);
                }
                Ok(l)
            }
            Err(TryLockError::WouldBlock) => Err(LockError::Busy {
                dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
                holder: read_holder(path),
            }),
            Err(TryLockError::Error(source)) => Err(LockError::Io { path: path.to_path_buf(), source }),
        }
    }

    fn record(&mut self, what: &str) -> Result<(), LockError> {
        let io = |source| LockError::Io { path: self.path.clone(), source };
        self.file.set_len(0).map_err(io)?;
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        let line = format!("{}\n{}\n", std::process::id(), what.replace('\n', " "));
        self.file.write_all(line.as_bytes()).map_err(io)?;
        self.file.flush().map_err(io)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if self.exclusive {
            // Leave no record of a holder that has gone (the kernel drops the lock itself).
            let _ = self.file.set_len(0);
        }
    }
}

/// Whether some process holds the lock file `path` (exclusively or shared) right now, and its
/// record where it wrote one. A probe: takes and releases a shared lock.
pub fn probe(path: &Path) -> Option<Option<Holder>> {
    let file = OpenOptions::new().read(true).open(path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            // Shared holders do not record themselves; an exclusive one would have blocked us.
            match file.try_lock() {
                Ok(()) => None,
                Err(_) => Some(None),
            }
        }
        Err(TryLockError::WouldBlock) => Some(read_holder(path)),
        Err(TryLockError::Error(_)) => None,
    }
}

fn open(path: &Path) -> Result<File, LockError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| LockError::Io { path: dir.to_path_buf(), source })?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| LockError::Io { path: path.to_path_buf(), source })
}

/// The holder's record; retried briefly, since a new holder writes it just after locking.
fn read_holder(path: &Path) -> Option<Holder> {
    let deadline = Instant::now() + Duration::from_millis(200);
    loop {
        let mut s = String::new();
        if let Ok(mut f) = File::open(path) {
            let _ = Read::by_ref(&mut f).take(4096).read_to_string(&mut s);
        }
        let mut lines = s.lines();
        if let Some(pid) = lines.next().and_then(|l| l.trim().parse().ok()) {
            return Some(Holder { pid, what: lines.next().unwrap_or("").to_string() });
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_exclusive_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let a = DirLock::exclusive(dir.path(), "first writer").unwrap();
        // A second open file description conflicts even within one process (flock semantics).
        let e = DirLock::exclusive(dir.path(), "second").unwrap_err();
        assert_eq!(e.holder(), Some(&Holder { pid: std::process::id(), what: "first writer".into() }));
        assert!(e.to_string().contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(DirLock::shared(dir.path(), "shard").is_err());
        drop(a);
        let s1 = DirLock::shared(dir.path(), "shard 0").unwrap();
        let _s2 = DirLock::shared(dir.path(), "shard 1").unwrap();
        assert!(DirLock::exclusive(dir.path(), "merge").is_err());
        assert_eq!(probe(&dir.path().join(LOCK_FILE)), Some(None));
        drop(s1);
        drop(_s2);
        assert_eq!(probe(&dir.path().join(LOCK_FILE)), None);
        DirLock::exclusive(dir.path(), "merge").unwrap();
    }
}
